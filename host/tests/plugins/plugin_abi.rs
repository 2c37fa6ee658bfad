//! Which files the loader refuses, and that plugins built against plugin-api 1.0 still load.

use crate::common;

use auth_host::plugins::{LoadOutcome, PluginRegistry};
use auth_host_plugin_api::UserInfo;
use common::{PluginDir, build_abi_fixture, plugin_settings as settings, replace_in};
use serde_json::json;

/// Loads `alias:name` as a service and returns the one failure message.
fn refusal(dir: &PluginDir, name: &str) -> String {
    let outcomes = PluginRegistry::load(&settings(dir.path(), &format!("svc:{name}"), ""))
        .expect_err("the load must fail");
    let messages: Vec<String> = outcomes
        .iter()
        .filter_map(LoadOutcome::failure_message)
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = messages.into_iter().next().unwrap();
    // One paragraph naming alias and file.
    let file = dir.file_of(name);
    let prefix = format!("service `svc`: cannot load {}: ", file.display());
    assert!(message.starts_with(&prefix), "{message}");
    assert!(!message.contains('\n'), "{message}");
    message[prefix.len()..].to_owned()
}

#[test]
fn a_missing_file_is_refused() {
    let dir = PluginDir::new();
    assert_eq!(refusal(&dir, "nothing_here"), "no such file");
}

#[test]
fn a_text_file_is_refused() {
    let dir = PluginDir::new();
    dir.add_bytes(b"#!/bin/sh\necho I am not a library\n", "x");
    assert_eq!(
        refusal(&dir, "x"),
        "not a plugin: not an ELF shared library"
    );
}

#[test]
fn a_truncated_copy_of_a_real_plugin_is_refused_without_a_crash() {
    let real = std::fs::read(&common::workspace_plugins()["sample_permission_provider"]).unwrap();
    let dir = PluginDir::new();
    for (name, length) in [
        ("half", real.len() / 2),
        ("most", real.len() - 4096),
        ("headers_only", 256),
    ] {
        dir.add_bytes(&real[..length], name);
        let message = refusal(&dir, name);
        assert!(
            message.starts_with("damaged file: ") && message.contains("truncated")
                || message.starts_with("damaged file: unreadable ELF headers"),
            "{name}: {message}"
        );
    }
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    let dir = PluginDir::new();
    dir.add_file(&common::system_zlib(), "z");
    assert_eq!(
        refusal(&dir, "z"),
        "not an auth-host plugin: it has no plugin entry point (a plugin crate must call `export_plugin!`)"
    );
}

#[test]
fn a_plugin_of_the_wrong_kind_is_refused() {
    let dir =
        PluginDir::with_workspace_plugins(&["sample_extension", "sample_permission_provider"]);
    assert_eq!(
        refusal(&dir, "sample_extension"),
        "it is a lifecycle extension, but it is named as a permission provider"
    );
    let outcomes =
        PluginRegistry::load(&settings(dir.path(), "", "ext:sample_permission_provider"))
            .unwrap_err();
    assert_eq!(
        outcomes[0].failure_message().unwrap(),
        format!(
            "extension `ext`: cannot load {}: it is a permission provider, but it is named as a lifecycle extension",
            dir.file_of("sample_permission_provider").display()
        )
    );
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused() {
    let dir = PluginDir::new();
    dir.add_file(common::abort_plugin(), "aborting");
    assert_eq!(
        refusal(&dir, "aborting"),
        "built with panic = \"abort\": a panic in it would end auth-host; build it with panic = \"unwind\" (the default)"
    );
}

#[test]
fn a_plugin_built_against_another_major_plugin_api_is_refused() {
    let file = build_abi_fixture("api2_provider", |root| {
        replace_in(
            &root.join("plugin-api-1.0/Cargo.toml"),
            "version = \"1.0.0\"",
            "version = \"2.0.0\"",
        );
    });
    let dir = PluginDir::new();
    dir.add_file(&file, "api2");
    assert_eq!(
        refusal(&dir, "api2"),
        format!(
            "incompatible plugin-api: expected plugin-api 1.x (this auth-host has {}), found plugin-api 2.0.0",
            auth_host_plugin_api::API_VERSION
        )
    );
}

#[test]
fn a_plugin_whose_layout_differs_under_the_same_version_is_refused() {
    // Same version number, but the first two fields of the root module swapped: what a
    // plugin-api edited in place (instead of appending) would produce.
    let file = build_abi_fixture("reordered_provider", |root| {
        let abi = root.join("plugin-api-1.0/src/abi.rs");
        replace_in(&abi, "    pub kind: PluginKind,\n", "");
        replace_in(
            &abi,
            "    pub unwinds: bool,\n",
            "    pub unwinds: bool,\n    pub kind: PluginKind,\n",
        );
    });
    let dir = PluginDir::new();
    dir.add_file(&file, "reordered");
    let message = refusal(&dir, "reordered");
    assert!(
        message.starts_with(&format!(
            "incompatible plugin-api: expected plugin-api {} layout, found plugin-api 1.0.0 with a different layout (",
            auth_host_plugin_api::API_VERSION
        )),
        "{message}"
    );
    assert!(message.contains("unexpected field"), "{message}");
    assert!(
        message.len() < 600,
        "keep it short for operators: {message}"
    );
}

#[test]
fn a_plugin_built_against_plugin_api_1_0_still_loads_and_answers() {
    let file = build_abi_fixture("old_provider", |_| {});
    let dir = PluginDir::with_workspace_plugins(&["test_provider"]);
    dir.add_file(&file, "old_provider");
    // Loaded beside a current plugin, under two aliases.
    let registry = PluginRegistry::load(&settings(
        dir.path(),
        "old:old_provider;old2:old_provider;new:test_provider",
        "",
    ))
    .unwrap();
    let old = common::in_process(registry.permission_provider("old").unwrap());
    assert_eq!(old.summary().api_version, "1.0.0");
    let user = UserInfo {
        id: "u7".into(),
        username: Some("seven".into()),
        ..UserInfo::default()
    };
    // Through the 1.0 entry point: the id only.
    assert_eq!(
        serde_json::Value::Object(old.get_permissions("old", &user).unwrap()),
        json!({"old": "old-u7", "has_username": false})
    );
    assert_eq!(
        common::in_process(registry.permission_provider("old2").unwrap())
            .get_permissions("old2", &user)
            .unwrap()["old"],
        "old2-u7"
    );
    // The current plugin gets the whole record through the 1.1 entry point.
    assert_eq!(
        common::in_process(registry.permission_provider("new").unwrap())
            .get_permissions("new", &user)
            .unwrap()["username"],
        "seven"
    );
}

#[test]
fn every_failure_is_reported_not_only_the_first() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    dir.add_bytes(b"text", "text");
    let outcomes = PluginRegistry::check(&settings(
        dir.path(),
        "good:sample_permission_provider;missing;text",
        "",
    ));
    let results: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.alias.as_str(), o.result.is_ok()))
        .collect();
    assert_eq!(
        results,
        [("good", true), ("missing", false), ("text", false)]
    );
}
