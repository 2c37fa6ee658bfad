//! The built plugin, loaded and called through the ABI as auth-host does
//! (`auth-host-plugin-api`'s `testing` feature): `cargo test`.

use auth_host_plugin_api::testing::{TestPlugin, built_plugin};
use auth_host_plugin_api::{PluginKind, UserInfo};
use serde_json::json;

fn user(email: &str) -> UserInfo {
    UserInfo {
        id: "u1".into(),
        email: Some(email.into()),
        ..UserInfo::default()
    }
}

#[test]
fn admins_from_the_settings_and_no_one_else() {
    let file = built_plugin("my_provider").unwrap();
    let plugin = TestPlugin::load(&file, json!({"admins": ["ada@example.com"]})).unwrap();
    assert_eq!(plugin.kind(), PluginKind::PermissionProvider);
    let admin = plugin
        .get_permissions("wiki", &user("ADA@example.com"))
        .unwrap();
    assert_eq!(admin["admin"], json!(true));
    let other = plugin
        .get_permissions("wiki", &user("bob@example.com"))
        .unwrap();
    assert_eq!(other["admin"], json!(false));
}

#[test]
fn unknown_settings_stop_the_load() {
    let file = built_plugin("my_provider").unwrap();
    let error = TestPlugin::load(&file, json!({"admin": "ada@example.com"}))
        .err()
        .unwrap();
    assert!(error.contains("unknown field `admin`"), "{error}");
}
