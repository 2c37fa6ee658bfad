//! The bundled `http_permissions` provider against the example permission service
//! (`examples/http-provider/provider.py`, run with the verifiers' Python), and against
//! stand-ins that answer badly.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_host_plugin_api::UserInfo;
use common::server::{Backend, TestServer};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The example service, on a free port, with the example's own table, its `wiki` rules
/// copied to the other services the tests ask for.
struct ExampleService {
    child: Child,
    url: String,
    log: tempfile::NamedTempFile,
    _table: tempfile::NamedTempFile,
}

impl ExampleService {
    fn start() -> ExampleService {
        let root = common::workspace_root().join("examples/http-provider");
        let example: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("permissions.json")).unwrap())
                .unwrap();
        let rules = &example["wiki"];
        assert!(rules.is_object(), "{example}");
        let table = tempfile::NamedTempFile::new().unwrap();
        let services: serde_json::Map<String, Value> = ["wiki", "cached", "stale", "offline"]
            .into_iter()
            .map(|service| (service.to_owned(), rules.clone()))
            .collect();
        std::fs::write(table.path(), Value::Object(services).to_string()).unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(common::verifiers_python())
            .arg(root.join("provider.py"))
            .arg(table.path())
            .env("PROVIDER_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the example said {line:?}"));
        ExampleService {
            child,
            url: format!("http://{address}"),
            log,
            _table: table,
        }
    }

    /// Requests it answered so far (http.server logs one line for each).
    fn requests(&self) -> usize {
        std::fs::read_to_string(self.log.path())
            .unwrap()
            .lines()
            .filter(|line| line.contains("\"POST /"))
            .count()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ExampleService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[plugins.<alias>]` asking `url` with the example's secret, and `extra` over it.
fn table(url: &str, extra: Value) -> Value {
    let mut table =
        json!({"url": format!("{url}/{{service}}"), "secret": SECRET, "timeout_ms": 500});
    if let (Value::Object(table), Value::Object(extra)) = (&mut table, extra) {
        table.extend(extra);
    }
    table
}

async fn authorize(server: &TestServer, token: &str, service: &str) -> (u16, Value) {
    let (status, answer) = server
        .get_json(&format!("/auth/authorize?jwt={token}&service={service}"))
        .await;
    (status.as_u16(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_come_from_the_example_service_and_caching_cuts_the_calls() {
    let example = ExampleService::start();
    let server = TestServer::start_with(
        Backend::Sqlite,
        json!({
            "allowed_services": "wiki:http_permissions;cached:http_permissions",
            "plugins": {
                "wiki": table(&example.url, json!({})),
                "cached": table(&example.url, json!({"cache_secs": 60})),
            },
        }),
    )
    .await;
    let ada = server.add_user("ada@example.org", "ada").await;
    let bob = server.add_user("bob@example.org", "bob").await;
    let (ada_token, bob_token) = (server.token_for(&ada.id), server.token_for(&bob.id));

    let (status, answer) = authorize(&server, &ada_token, "wiki").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["permissions"], json!({"read": true, "write": true}));
    assert_eq!(answer["service"], "wiki");
    let (_, answer) = authorize(&server, &bob_token, "wiki").await;
    assert_eq!(answer["permissions"], json!({"read": true, "write": false}));
    assert_eq!(example.requests(), 2);

    // Without a cache, every authorize asks; with one, the first asks and the rest are
    // answered from it, per user.
    for _ in 0..5 {
        authorize(&server, &ada_token, "wiki").await;
    }
    assert_eq!(example.requests(), 7);
    for _ in 0..5 {
        let (_, answer) = authorize(&server, &ada_token, "cached").await;
        assert_eq!(answer["permissions"], json!({"read": true, "write": true}));
    }
    assert_eq!(example.requests(), 8);
    let (_, answer) = authorize(&server, &bob_token, "cached").await;
    assert_eq!(answer["permissions"], json!({"read": true, "write": false}));
    assert_eq!(example.requests(), 9);
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_refuses_a_forged_or_missing_signature() {
    let example = ExampleService::start();
    let body = serde_json::to_vec(
        &json!({"service": "wiki", "user": {"id": "u1", "email": "ada@example.org"}}),
    )
    .unwrap();
    let post = |secret: Option<&str>| {
        let mut request = common::server::client()
            .post(format!("{}/wiki", example.url))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(secret) = secret {
            let signer = standard_webhooks::Signer::new(secret).unwrap();
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            request = request
                .header("webhook-id", "req_test")
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signer.signature("req_test", timestamp, &body).unwrap(),
                );
        }
        request.send()
    };
    let answer = post(Some(SECRET)).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"read": true, "write": true})
    );
    let forged = post(Some("whsec_AAECAwQFBgcICQoLDA0ODw==")).await.unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.json::<Value>().await.unwrap(),
        json!({"error": "bad signature"})
    );
    assert_eq!(post(None).await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_absent_service_is_an_error_or_the_last_good_answer() {
    let example = ExampleService::start();
    let server = TestServer::start_with(
        Backend::Sqlite,
        json!({
            "allowed_services": "wiki:http_permissions;stale:http_permissions",
            "plugins": {
                "wiki": table(&example.url, json!({"timeout_ms": 300})),
                "stale": table(&example.url, json!({
                    "timeout_ms": 300, "on_error": "stale", "max_stale_secs": 60,
                })),
            },
        }),
    )
    .await;
    let ada = server.add_user("ada@example.org", "ada").await;
    let bob = server.add_user("bob@example.org", "bob").await;
    let (ada_token, bob_token) = (server.token_for(&ada.id), server.token_for(&bob.id));
    let good = json!({"read": true, "write": true});
    assert_eq!(
        authorize(&server, &ada_token, "wiki").await.1["permissions"],
        good
    );
    assert_eq!(
        authorize(&server, &ada_token, "stale").await.1["permissions"],
        good
    );

    // Slow: stopped, it accepts connections and never answers.
    example.signal("STOP");
    let started = Instant::now();
    let (status, answer) = authorize(&server, &ada_token, "wiki").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["permissions"], json!({}));
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("could not be reached") && error.contains("imeout"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (status, answer) = authorize(&server, &ada_token, "stale").await;
    assert_eq!((status, &answer["permissions"]), (200, &good), "{answer}");
    // Never asked before: nothing to fall back on.
    let (status, answer) = authorize(&server, &bob_token, "stale").await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["permissions"], json!({}));
    example.signal("CONT");

    // Absent: the connection is refused.
    drop(example);
    let (status, answer) = authorize(&server, &ada_token, "wiki").await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{answer}"
    );
    let (status, answer) = authorize(&server, &ada_token, "stale").await;
    assert_eq!((status, &answer["permissions"]), (200, &good), "{answer}");
    let _ = server.stop().await;
}

fn user(id: &str) -> UserInfo {
    UserInfo {
        id: id.into(),
        email: Some(format!("{id}@example.org")),
        ..UserInfo::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_errors_naming_what_was_wrong() {
    // One stand-in, answering by the service in the path.
    let base = common::serve_local(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let (status, body): (u16, Vec<u8>) = match request.uri().path() {
                "/down" => (503, b"{}".to_vec()),
                "/html" => (200, b"<html>hello</html>".to_vec()),
                "/array" => (200, b"[true]".to_vec()),
                "/large" => (
                    200,
                    format!("{{\"x\": \"{}\"}}", "y".repeat(2000)).into_bytes(),
                ),
                "/exact" => (
                    200,
                    format!("{{\"x\": \"{}\"}}", "y".repeat(1024 - 9)).into_bytes(),
                ),
                _ => (404, Vec::new()),
            };
            hyper::Response::builder()
                .status(status)
                .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                .unwrap()
        },
    )
    .await;
    let dir = common::PluginDir::with_workspace_plugins(&["http_permissions"]);
    let mut settings = common::plugin_settings(dir.path(), "p:http_permissions", "");
    settings
        .settings
        .insert("p".into(), table(&base, json!({"max_answer_bytes": 1024})));
    let registry = auth_host::plugins::PluginRegistry::load(&settings).unwrap();
    let provider = common::in_process(registry.permission_provider("p").unwrap());
    let cases = [
        ("down", "the permission service answered 503"),
        ("html", "the permission service's answer is not JSON"),
        (
            "array",
            "the permission service's answer is not a JSON object",
        ),
        (
            "large",
            "the permission service's answer is larger than 1024 bytes",
        ),
        ("missing", "the permission service answered 404"),
    ];
    for (service, expected) in cases {
        let error = tokio::task::block_in_place(|| provider.get_permissions(service, &user("u1")))
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{service}: {error}");
    }
    let exact =
        tokio::task::block_in_place(|| provider.get_permissions("exact", &user("u1"))).unwrap();
    assert_eq!(exact["x"].as_str().unwrap().len(), 1024 - 9);
}

#[test]
fn settings_that_make_no_sense_stop_the_load() {
    let dir = common::PluginDir::with_workspace_plugins(&["http_permissions"]);
    let refusal = |table: Value| -> String {
        let mut settings = common::plugin_settings(dir.path(), "p:http_permissions", "");
        settings.settings.insert("p".into(), table);
        let outcomes = auth_host::plugins::PluginRegistry::load(&settings).unwrap_err();
        let message: Value = outcomes[0].failure_message().unwrap().into();
        message.as_str().unwrap().to_owned()
    };
    let cases = [
        (json!({"secret": SECRET}), "missing field `url`"),
        (
            json!({"url": "https://p.example/"}),
            "missing field `secret`",
        ),
        (
            json!({"url": "http://p.example/", "secret": SECRET}),
            "set allow_http = true",
        ),
        (
            json!({"url": "https://p.example/", "secret": "short"}),
            "secret: must be at least 16 bytes",
        ),
        (
            json!({"url": "https://p.example/", "secret": SECRET, "on_error": "guess"}),
            "unknown variant `guess`",
        ),
        (
            json!({"url": "https://p.example/", "secret": SECRET,
                   "headers": {"Webhook-Signature": "v1,forged"}}),
            "headers: `Webhook-Signature` is set by the plugin itself",
        ),
        (
            json!({"url": "https://p.example/", "secret": SECRET, "headers": {"bad name": "x"}}),
            "headers: `bad name` is not a header name",
        ),
        (
            json!({"url": "https://p.example/", "secret": SECRET, "timeout_ms": 0}),
            "timeout_ms: must be at least 1",
        ),
    ];
    for (table, expected) in cases {
        let message = refusal(table.clone());
        assert!(message.contains(expected), "{table}: {message}");
        assert!(!message.contains("MfKQ9r8G"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxed_it_needs_the_network_setting() {
    let example = ExampleService::start();
    let server = TestServer::start_with(
        Backend::Sqlite,
        json!({
            "allowed_services": "wiki:http_permissions;offline:http_permissions",
            "plugin_isolation": "process",
            "plugin_sandbox": "strict",
            "plugins": {
                "wiki": table(&example.url, json!({"network": true})),
                "offline": table(&example.url, json!({})),
            },
        }),
    )
    .await;
    let ada = server.add_user("ada@example.org", "ada").await;
    let token = server.token_for(&ada.id);
    let (status, answer) = authorize(&server, &token, "wiki").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["permissions"], json!({"read": true, "write": true}));
    // Without `network = true` the sandbox has no socket to give it.
    let (status, answer) = authorize(&server, &token, "offline").await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{answer}"
    );
    assert_eq!(example.requests(), 1);
    let _ = server.stop().await;
}
