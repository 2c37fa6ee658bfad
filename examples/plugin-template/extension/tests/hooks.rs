//! The built plugin, loaded and called through the ABI as auth-host does
//! (`auth-host-plugin-api`'s `testing` feature): `cargo test`.

use auth_host_plugin_api::testing::{TestPlugin, built_plugin};
use auth_host_plugin_api::{UserInfo, Verdict};
use serde_json::json;

fn user(email: &str) -> UserInfo {
    UserInfo {
        id: "u1".into(),
        email: Some(email.into()),
        ..UserInfo::default()
    }
}

#[test]
fn the_blocked_domain_is_refused_and_others_go_on() {
    let file = built_plugin("my_extension").unwrap();
    let plugin = TestPlugin::load(&file, json!({"blocked_domain": "spam.example"})).unwrap();
    assert!(matches!(
        plugin.on_user_login(&user("ada@example.com")).unwrap(),
        Verdict::Continue
    ));
    let Verdict::Refuse(reason) = plugin.on_new_user(&user("x@spam.example")).unwrap() else {
        panic!("not refused");
    };
    assert!(reason.contains("spam.example"), "{reason}");
    plugin.on_user_logout(&user("ada@example.com")).unwrap();
}
