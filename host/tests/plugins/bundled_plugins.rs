//! The bundled plugins' rules, through a real auth-host over HTTP.

use crate::common;
use crate::on_both_backends;

use std::time::Duration;

use common::receiver::{self, Attempt, WebhookReceiver};
use common::server::{Backend, TestServer};
use serde_json::{Value, json};

async fn email_allowlist_lets_in_listed_emails_and_domains_only(backend: Backend) {
    email_allowlist_in(backend, Placement::InProcess).await;
}

/// The email allowlist reads nothing and needs no network: its sandbox is the default one.
async fn email_allowlist_in(backend: Backend, placement: Placement) {
    let server = placement
        .start(
            backend,
            json!({}),
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
        let landed = common::server::dev_login(&server, allowed).await;
        assert!(landed.contains_key("jwt"), "{allowed}: {landed:?}");
    }
    for refused in [
        "eve@evil.example",
        "ada@corp.example.evil.example",
        "guest2@gmail.example",
    ] {
        let landed = common::server::dev_login(&server, refused).await;
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
    static_permissions_in(backend, Placement::InProcess).await;
}

async fn static_permissions_in(backend: Backend, placement: Placement) {
    // The rules in a directory of their own: the sandbox lets the plugin read that directory
    // (`read_paths`), so that a rules file replaced by an editor (a new file) is read too.
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.toml");
    std::fs::write(
        &rules,
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
    let server = placement
        .start(
            backend,
            json!({"read_paths": [rules_dir.path()]}),
            json!({
                "allowed_services": "wiki:static_permissions;blog:static_permissions",
                "plugins": {"wiki": {"file": rules}, "blog": {"file": rules}},
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
    // Replaced, as an editor saves: a new file under the same name.
    let replacement = rules_dir.path().join("rules.toml.new");
    std::fs::write(
        &replacement,
        r#"
            [defaults]
            role = "nobody"

            [[rules]]
            email = "ZOE@elsewhere.example"
            permissions = { role = "owner" }
        "#,
    )
    .unwrap();
    std::fs::rename(&replacement, &rules).unwrap();
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
    std::fs::write(&rules, "[defaults\nrole = ").unwrap();
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

fn summary(attempts: &[Attempt]) -> Vec<(String, String, u16)> {
    attempts
        .iter()
        .map(|a| (a.event_type(), a.email(), a.status))
        .collect()
}

fn owned(expected: &[(&str, &str, u16)]) -> Vec<(String, String, u16)> {
    expected
        .iter()
        .map(|(t, e, s)| ((*t).to_owned(), (*e).to_owned(), *s))
        .collect()
}

async fn webhook_posts_signed_events_and_a_blocking_refusal_refuses_the_login(backend: Backend) {
    webhook_in(backend, Placement::InProcess).await;
}

/// The webhook plugin posts over the network: its sandbox has `network = true`.
async fn webhook_in(backend: Backend, placement: Placement) {
    let receiver = WebhookReceiver::start(|attempt| {
        if attempt.email().starts_with("eve@") {
            (403, json!({"reason": "eve's account is closed"}))
        } else {
            (200, json!({"ok": true}))
        }
    })
    .await;
    let server = placement
        .start(
            backend,
            json!({"network": true}),
            receiver.server_settings(json!({"hooks": {
                "on_new_user": "blocking",
                "on_user_login": "blocking",
                "on_user_logout": "fire_and_forget",
            }})),
        )
        .await;

    // Blocking hooks: both events were taken before the login finished.
    let landed = common::server::dev_login(&server, "ada@corp.example").await;
    let token = landed.get("jwt").expect("ada logs in").clone();
    let attempts = receiver.attempts();
    assert_eq!(
        summary(&attempts),
        owned(&[
            ("user.new", "ada@corp.example", 200),
            ("user.login", "ada@corp.example", 200)
        ])
    );
    let now = chrono::Utc::now();
    for attempt in &attempts {
        assert!(attempt.signed_with(receiver::KEY), "{attempt:?}");
        assert!(!attempt.signed_with(b"another key, also of 32 bytes..."));
        let mut tampered = attempt.clone();
        tampered.body.push(' ');
        assert!(!tampered.signed_with(receiver::KEY));
        let mut replayed = attempt.clone();
        replayed.timestamp = (now.timestamp() + 3600).to_string();
        assert!(!replayed.signed_with(receiver::KEY));

        assert_eq!(attempt.content_type, "application/json");
        assert!(attempt.id.starts_with("evt_"), "{}", attempt.id);
        let sent: i64 = attempt.timestamp.parse().unwrap();
        assert!((now.timestamp() - sent).abs() < 300, "{sent}");
        let body = attempt.json();
        let stamped =
            chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
        assert!((now - stamped.to_utc()).num_seconds().abs() < 300);
        assert_eq!(body["data"]["user"]["username"], "ada");
        assert_eq!(body["data"]["user"]["email"], "ada@corp.example");
        assert_eq!(body["data"]["user"]["id"].as_str().unwrap().len(), 32);
    }
    assert_ne!(attempts[0].id, attempts[1].id);

    // A non-2xx from a blocking hook refuses the login, with the receiver's reason.
    let landed = common::server::dev_login(&server, "eve@corp.example").await;
    assert!(!landed.contains_key("jwt"), "{landed:?}");
    assert_eq!(landed["error"], "Login refused: eve's account is closed");
    assert_eq!(server.service.store().count_users().await.unwrap(), 1);
    assert_eq!(
        summary(&receiver.attempts()[2..]),
        owned(&[("user.new", "eve@corp.example", 403)])
    );

    // A returning user is no new user.
    let again = common::server::dev_login(&server, "ada@corp.example").await;
    assert!(again.contains_key("jwt"), "{again:?}");
    assert_eq!(
        summary(&receiver.attempts()[3..]),
        owned(&[("user.login", "ada@corp.example", 200)])
    );

    // The logout is fire-and-forget: it arrives after the answer.
    let (status, body) = server.post_json(&format!("/auth/logout?jwt={token}")).await;
    assert_eq!(status, 200, "{body}");
    let attempts = receiver
        .wait_until("user.logout", |all| all.len() == 5 && all[4].status != 0)
        .await;
    assert_eq!(
        summary(&attempts[4..]),
        owned(&[("user.logout", "ada@corp.example", 200)])
    );
    assert!(attempts[4].signed_with(receiver::KEY));
    let _ = server.stop().await;
}

async fn fire_and_forget_events_never_delay_a_login_and_are_retried(backend: Backend) {
    // Every event fails twice and is then taken; lost@'s events are never taken.
    let receiver = WebhookReceiver::start(|attempt| {
        match (attempt.email().starts_with("lost@"), attempt.number) {
            (true, _) | (false, 1 | 2) => (503, json!({})),
            (false, _) => (200, json!({})),
        }
    })
    .await;
    let secret = "a plain secret, used as its bytes";
    let server = TestServer::start_with(
        backend,
        receiver
            .server_settings(json!({"secret": secret, "timeout_ms": 30_000, "max_attempts": 4})),
    )
    .await;

    // The receiver holds its answers: the first delivery gets stuck there, and logins
    // still go through, since they never wait for a delivery.
    receiver.hold();
    let first = common::server::dev_login(&server, "ada@corp.example").await;
    assert!(first.contains_key("jwt"), "{first:?}");
    receiver
        .wait_until("the first delivery, held", |all| !all.is_empty())
        .await;
    for email in ["ada@corp.example", "lost@corp.example"] {
        let landed = common::server::dev_login(&server, email).await;
        assert!(landed.contains_key("jwt"), "{email}: {landed:?}");
    }
    // The others are queued behind the held one.
    assert_eq!(receiver.attempts().len(), 1);
    receiver.release();

    // Five events, each taken (200) or answered at its last attempt.
    let done = |all: &[Attempt]| {
        let finished = |id: &str| {
            all.iter()
                .any(|a| a.id == id && (a.status == 200 || (a.number == 4 && a.status != 0)))
        };
        all.iter().filter(|a| a.number == 1).count() == 5 && all.iter().all(|a| finished(&a.id))
    };
    let attempts = receiver
        .wait_until("every event taken or given up", done)
        .await;
    // Longer than the longest retry delay: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.attempts().len(), attempts.len());

    let firsts: Vec<&Attempt> = attempts.iter().filter(|a| a.number == 1).collect();
    let events: Vec<(String, String)> =
        firsts.iter().map(|a| (a.event_type(), a.email())).collect();
    let expected: Vec<(String, String)> = [
        ("user.new", "ada@corp.example"),
        ("user.login", "ada@corp.example"),
        ("user.login", "ada@corp.example"),
        ("user.new", "lost@corp.example"),
        ("user.login", "lost@corp.example"),
    ]
    .iter()
    .map(|(t, e)| ((*t).to_owned(), (*e).to_owned()))
    .collect();
    assert_eq!(events, expected, "queued in order");
    for first in firsts {
        let tries: Vec<&Attempt> = attempts.iter().filter(|a| a.id == first.id).collect();
        let statuses: Vec<u16> = tries.iter().map(|a| a.status).collect();
        if first.email().starts_with("lost@") {
            assert_eq!(
                statuses,
                [503, 503, 503, 503],
                "given up after max_attempts"
            );
        } else {
            assert_eq!(statuses, [503, 503, 200]);
        }
        for (number, attempt) in tries.iter().enumerate() {
            assert_eq!(attempt.number, number + 1);
            assert_eq!(
                attempt.body, first.body,
                "every attempt posts the same event"
            );
            assert!(attempt.signed_with(secret.as_bytes()), "{attempt:?}");
        }
    }
    let _ = server.stop().await;
}

async fn a_blocking_hook_refuses_the_login_when_its_receiver_is_slow_or_down(backend: Backend) {
    let receiver = WebhookReceiver::start(|_| (200, json!({}))).await;
    let blocking_login = json!({"timeout_ms": 300, "hooks": {
        "on_new_user": "off", "on_user_login": "blocking", "on_user_logout": "off",
    }});
    let server =
        TestServer::start_with(backend, receiver.server_settings(blocking_login.clone())).await;
    // No answer within timeout_ms: refused, and not retried.
    receiver.hold();
    let slow = common::server::dev_login(&server, "ada@corp.example").await;
    assert!(!slow.contains_key("jwt"), "{slow:?}");
    assert_eq!(slow["error"], "Login refused: an extension failed");
    assert_eq!(receiver.attempts().len(), 1);
    assert_eq!(server.service.store().count_users().await.unwrap(), 0);
    // Answering again: logins go through.
    receiver.release();
    let answered = common::server::dev_login(&server, "ada@corp.example").await;
    assert!(answered.contains_key("jwt"), "{answered:?}");
    let database = server.stop().await;

    // Nothing listening at the URL: refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/events", closed.local_addr().unwrap());
    drop(closed);
    let mut settings = receiver.server_settings(blocking_login);
    settings["plugins"]["webhook"]["url"] = json!(nowhere);
    let server = TestServer::start_on(database, settings).await;
    let down = common::server::dev_login(&server, "bob@corp.example").await;
    assert_eq!(down["error"], "Login refused: an extension failed");
    assert_eq!(server.service.store().count_users().await.unwrap(), 1);
    let _ = server.stop().await;
}

/// Where a bundled plugin runs in a test: in auth-host's process, or isolated in a sandboxed
/// worker with exactly the sandbox settings its documentation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    InProcess,
    Sandboxed,
}

impl Placement {
    /// Starts a server with `settings`; sandboxed, every plugin alias gets `sandbox_keys`.
    async fn start(self, backend: Backend, sandbox_keys: Value, mut settings: Value) -> TestServer {
        if self == Placement::Sandboxed {
            settings["plugin_isolation"] = json!("process");
            settings["plugin_sandbox"] = json!("strict");
            if let (Some(plugins), Value::Object(keys)) =
                (settings["plugins"].as_object_mut(), sandbox_keys)
            {
                for table in plugins.values_mut() {
                    if let Some(table) = table.as_object_mut() {
                        table.extend(keys.clone());
                    }
                }
            }
        }
        let server = TestServer::start_with(backend, settings).await;
        if self == Placement::Sandboxed {
            let metrics = common::server::get_text(&server.url("/auth/metrics")).await;
            assert!(
                metrics.contains("auth_host_plugin_worker_starts_total{"),
                "the plugins run in workers:\n{metrics}"
            );
        }
        server
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_allowlist_sandboxed() {
    email_allowlist_in(Backend::Sqlite, Placement::Sandboxed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_permissions_sandboxed_reading_only_its_rules_directory() {
    static_permissions_in(Backend::Sqlite, Placement::Sandboxed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_sandboxed_with_the_network() {
    webhook_in(Backend::Sqlite, Placement::Sandboxed).await;
}

on_both_backends!(
    email_allowlist_lets_in_listed_emails_and_domains_only,
    static_permissions_follow_the_rules_file_and_its_changes,
    webhook_posts_signed_events_and_a_blocking_refusal_refuses_the_login,
    fire_and_forget_events_never_delay_a_login_and_are_retried,
    a_blocking_hook_refuses_the_login_when_its_receiver_is_slow_or_down,
);

#[test]
fn webhook_settings_that_make_no_sense_stop_the_load() {
    let dir = common::PluginDir::with_workspace_plugins(&["webhook"]);
    let refusal = |webhook: Value| -> String {
        let mut settings = common::plugin_settings(dir.path(), "", "webhook");
        settings.settings.insert("webhook".into(), webhook);
        let outcomes = auth_host::plugins::PluginRegistry::load(&settings).unwrap_err();
        let message: Value = outcomes[0].failure_message().unwrap().into();
        message.as_str().unwrap().to_owned()
    };
    let secret = "sixteen bytes or more";
    let cases = [
        (json!({"secret": secret}), "missing field `url`"),
        (
            json!({"url": "https://hooks.example/"}),
            "missing field `secret`",
        ),
        (
            json!({"url": "http://hooks.example/", "secret": secret}),
            "set allow_http = true",
        ),
        (
            json!({"url": "https://hooks.example/", "secret": "short"}),
            "secret: must be at least 16 bytes, found 5",
        ),
        (
            json!({"url": "https://hooks.example/", "secret": secret,
                   "hooks": {"on_user_login": "sometimes"}}),
            "unknown variant `sometimes`",
        ),
        (
            json!({"url": "https://hooks.example/", "secret": secret, "max_attempts": 0}),
            "max_attempts: must be at least 1",
        ),
        (
            json!({"url": "https://hooks.example/", "secret": secret, "retries": 3}),
            "unknown field `retries`",
        ),
    ];
    for (settings, expected) in cases {
        let message = refusal(settings.clone());
        assert!(message.contains(expected), "{settings}: {message}");
        assert!(!message.contains(secret), "{message}");
    }
}

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
