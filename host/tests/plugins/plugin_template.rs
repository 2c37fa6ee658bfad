//! The plugin template builds outside the workspace, as a plugin author would build it, and
//! its plugins load and work as documented.

use crate::common;

use std::process::Command;

use auth_host::plugins::{HookDecision, PluginRegistry};
use auth_host_plugin_api::UserInfo;
use common::{PluginDir, plugin_settings};
use serde_json::json;

#[test]
fn the_template_builds_outside_the_workspace_and_its_plugins_work() {
    // As the README says: the dependency points at this checkout.
    let built = common::build_plugin_template(|_| {});
    let provider = &built["my_provider"];
    let extension = &built["my_extension"];

    // A plugin author's CI step.
    let output = Command::new(common::auth_host_bin())
        .args(["plugins", "check"])
        .arg(provider)
        .arg(extension)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let version = auth_host_plugin_api::API_VERSION;
    assert!(
        stdout.contains(&format!(
            "OK    `libmy_provider.so`: permission provider, my_provider 0.1.0, plugin-api {version}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("OK    `libmy_extension.so`: lifecycle extension, my_extension 0.1.0"),
        "{stdout}"
    );

    // Dropped into a plugin directory and named, with the README's settings.
    let dir = PluginDir::new();
    dir.add_file(provider, "my_provider");
    dir.add_file(extension, "my_extension");
    let mut settings = plugin_settings(dir.path(), "myservice:my_provider", "my_extension");
    settings
        .settings
        .insert("myservice".into(), json!({"admins": ["ada@example.com"]}));
    settings.settings.insert(
        "my_extension".into(),
        json!({"blocked_domain": "spam.example"}),
    );
    let registry = PluginRegistry::load(&settings).unwrap();
    let user = |email: &str| UserInfo {
        id: "u".into(),
        email: Some(email.into()),
        ..UserInfo::default()
    };
    let provider = common::in_process(registry.permission_provider("myservice").unwrap());
    assert_eq!(
        provider
            .get_permissions("myservice", &user("Ada@example.com"))
            .unwrap()["admin"],
        true
    );
    assert_eq!(
        provider
            .get_permissions("myservice", &user("bob@example.com"))
            .unwrap()["admin"],
        false
    );
    let extension = common::in_process(&registry.extensions()[0]);
    assert_eq!(
        extension.on_new_user(&user("x@spam.example")).unwrap(),
        HookDecision::Refuse("accounts from spam.example are not accepted".into())
    );
    assert_eq!(
        extension.on_user_login(&user("x@fine.example")).unwrap(),
        HookDecision::Continue
    );

    // A settings table the plugin does not understand stops the load, saying why.
    settings
        .settings
        .insert("myservice".into(), json!({"admin": ["typo"]}));
    let outcomes = PluginRegistry::load(&settings).unwrap_err();
    let message = outcomes[0].failure_message().unwrap();
    assert!(
        message.contains("failed to start: invalid settings: unknown field `admin`"),
        "{message}"
    );
}

#[test]
fn the_templates_own_tests_load_and_call_the_built_plugins() {
    // `cargo test` in a copy outside the workspace, as an author runs it.
    let output = common::test_plugin_template();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for test in [
        "admins_from_the_settings_and_no_one_else ... ok",
        "unknown_settings_stop_the_load ... ok",
        "the_blocked_domain_is_refused_and_others_go_on ... ok",
    ] {
        assert!(stdout.contains(test), "{test} missing:\n{stdout}");
    }
}
