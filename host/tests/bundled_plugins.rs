//! The bundled plugins' rules, through a real auth-host over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::server::{Backend, TestServer, browser, params_of};
use serde_json::{Value, json};

/// Logs `email` in through the development login; the query `next` received.
async fn dev_login(server: &TestServer, email: &str) -> std::collections::HashMap<String, String> {
    let browser = browser();
    let next = server.url("/app");
    let started = browser
        .get(server.url(&format!("/auth/login/dev?next={next}")))
        .send()
        .await
        .unwrap();
    let form = started.headers()["location"].to_str().unwrap().to_owned();
    let state = params_of(&form)["state"].clone();
    let finished = browser
        .post(server.url("/auth/login/dev"))
        .form(&[("state", state.as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    params_of(finished.headers()["location"].to_str().unwrap())
}

async fn email_allowlist_lets_in_listed_emails_and_domains_only(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        json!({
            "dev_login": true,
            "installed_extensions": "email_allowlist",
            "plugins": {"email_allowlist": {
                "emails": ["Guest@Gmail.example"], "domains": ["@corp.example"]
            }},
        }),
    )
    .await;
    for allowed in [
        "ada@corp.example",
        "BOB@Corp.Example",
        "guest@gmail.example",
    ] {
        let landed = dev_login(&server, allowed).await;
        assert!(landed.contains_key("jwt"), "{allowed}: {landed:?}");
    }
    for refused in [
        "eve@evil.example",
        "ada@corp.example.evil.example",
        "guest2@gmail.example",
    ] {
        let landed = dev_login(&server, refused).await;
        assert!(!landed.contains_key("jwt"), "{refused}");
        assert_eq!(
            landed["error"],
            format!("Login refused: {refused} is not allowed to log in here")
        );
    }
    assert_eq!(server.service.store().count_users().await.unwrap(), 3);
    let _ = server.stop().await;
}

async fn static_permissions_follow_the_rules_file_and_its_changes(backend: Backend) {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        r#"
            [defaults]
            role = "reader"

            [[rules]]
            email_domain = "corp.example"
            permissions = { role = "editor" }

            [[rules]]
            username = "ADA"
            services = ["wiki"]
            permissions = { admin = true }
        "#,
    )
    .unwrap();
    let server = TestServer::start_with(
        backend,
        json!({
            "allowed_services": "wiki:static_permissions;blog:static_permissions",
            "plugins": {"wiki": {"file": rules.path()}, "blog": {"file": rules.path()}},
        }),
    )
    .await;
    let ada = server.add_user("ada@corp.example", "ada").await;
    let zoe = server.add_user("zoe@elsewhere.example", "zoe").await;
    let permissions = |userid: String, service: &'static str| {
        let url = server.url(&format!(
            "/auth/authorize?jwt={}&service={service}",
            server.token_for(&userid)
        ));
        async move {
            let (status, body) = common::server::json_answer(
                common::server::client().get(url).send().await.unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["permissions"].clone()
        }
    };
    assert_eq!(
        permissions(ada.id.clone(), "wiki").await,
        json!({"role": "editor", "admin": true})
    );
    assert_eq!(
        permissions(ada.id.clone(), "blog").await,
        json!({"role": "editor"})
    );
    assert_eq!(
        permissions(zoe.id.clone(), "wiki").await,
        json!({"role": "reader"})
    );

    // The file changes: the new rules apply (checked at most once a second).
    std::fs::write(
        rules.path(),
        r#"
            [defaults]
            role = "nobody"

            [[rules]]
            email = "ZOE@elsewhere.example"
            permissions = { role = "owner" }
        "#,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while permissions(zoe.id.clone(), "wiki").await != json!({"role": "owner"}) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new rules never applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        permissions(ada.id.clone(), "wiki").await,
        json!({"role": "nobody"})
    );
    // Each alias has its own instance, which notices the change on its own next call.
    while permissions(ada.id.clone(), "blog").await != json!({"role": "nobody"}) {
        assert!(
            std::time::Instant::now() < deadline,
            "blog never saw the new rules"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A broken file keeps the last good rules.
    std::fs::write(rules.path(), "[defaults\nrole = ").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        permissions(zoe.id.clone(), "wiki").await,
        json!({"role": "owner"})
    );
    assert_eq!(
        permissions(ada.id.clone(), "blog").await,
        json!({"role": "nobody"})
    );
    let _ = server.stop().await;
}

on_both_backends!(
    email_allowlist_lets_in_listed_emails_and_domains_only,
    static_permissions_follow_the_rules_file_and_its_changes,
);

#[test]
fn a_rules_file_that_does_not_parse_stops_the_load() {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "[[rules]]\npermissions = { x = 1 }\n").unwrap();
    let dir = common::PluginDir::with_workspace_plugins(&["static_permissions"]);
    let mut settings = common::plugin_settings(dir.path(), "wiki:static_permissions", "");
    settings
        .settings
        .insert("wiki".into(), json!({"file": rules.path()}));
    let outcomes = auth_host::plugins::PluginRegistry::load(&settings).unwrap_err();
    let message: Value = outcomes[0].failure_message().unwrap().into();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("rules[0] needs at least one of userid, username, email, email_domain"),
        "{message}"
    );
}
