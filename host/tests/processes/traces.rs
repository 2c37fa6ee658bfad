//! OpenTelemetry traces from a real server to a stand-in OTLP collector: a request's
//! `traceparent` is continued with the expected span tree, and a login carries the trace on
//! to the identity provider.

use crate::common;

use common::collector::{ReceivedSpan, StandInCollector};
use common::idp::{OidcUser, StandInIdp};
use common::{PluginDir, ServerProcess};

/// The one span called `name` (panics when there is none or several).
fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span in {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect()
}

/// The collector's URL with credentials in it, which the log must never show.
fn with_credentials(base: &str) -> String {
    base.replacen("http://", "http://trace-user:trace-secret@", 1)
}

fn tracing_env(collector: &StandInCollector) -> Vec<(&'static str, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            with_credentials(&collector.base),
        ),
        ("OTEL_SERVICE_NAME", "auth-host-under-test".into()),
        // Sent within a tenth of a second, not the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorize_continues_the_callers_trace_with_the_expected_span_tree() {
    let collector = StandInCollector::start().await;
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let data = tempfile::tempdir().unwrap();
    let token = common::user_token(data.path(), "ada@example.com");
    let mut envs = vec![
        ("AUTH_DATA_DIR", data.path().display().to_string()),
        ("AUTH_PLUGIN_DIR", plugins.path().display().to_string()),
        (
            "ALLOWED_SERVICES",
            "example:sample_permission_provider;isolated:sample_permission_provider".into(),
        ),
        ("AUTH_PLUGINS__ISOLATED__ISOLATION", "process".into()),
    ];
    envs.extend(tracing_env(&collector));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start(&envs);
    let client = common::server::client();
    for (service, trace_id, isolated) in [
        ("example", "4bf92f3577b34da6a3ce929d0e0e4736", "false"),
        ("isolated", "0af7651916cd43dd8448eb211c80319c", "true"),
    ] {
        let caller = "00f067aa0ba902b7";
        let response = client
            .get(format!(
                "{}/auth/authorize?service={service}&jwt={token}",
                server.base
            ))
            .header("traceparent", format!("00-{trace_id}-{caller}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let spans = collector
            .trace(trace_id, |spans| {
                ["GET authorize", "authorize", "sign token"]
                    .iter()
                    .all(|name| spans.iter().any(|s| s.name == *name))
                    && spans.iter().any(|s| s.name.starts_with("plugin "))
                    && (service == "example" || spans.iter().any(|s| s.name.ends_with("worker")))
            })
            .await;
        // The request: a server span under the caller's.
        let request = one(&spans, "GET authorize");
        assert_eq!(request.parent_span_id, caller, "{request:?}");
        assert_eq!(request.kind, 2, "server");
        assert_eq!(request.service, "auth-host-under-test");
        assert_eq!(request.attributes["http.route"], "authorize");
        assert_eq!(request.attributes["http.response.status_code"], "200");
        assert_eq!(request.attributes["http.request.method"], "GET");
        // The use case under it; authentication, the plugin call and the signature under that.
        let authorize = one(&spans, "authorize");
        assert_eq!(authorize.parent_span_id, request.span_id);
        assert_eq!(authorize.attributes["service"], service);
        let plugin = one(&spans, &format!("plugin {service} Permissions"));
        assert_eq!(plugin.parent_span_id, authorize.span_id);
        assert_eq!(plugin.attributes["plugin.alias"], service);
        assert_eq!(plugin.attributes["plugin.isolated"], isolated);
        assert_eq!(plugin.attributes["plugin.outcome"], "Permissions");
        // An isolated plugin's own run, as its worker timed it, under the host's call.
        let in_worker: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.name == format!("plugin {service} in its worker"))
            .collect();
        if isolated == "true" {
            assert_eq!(in_worker.len(), 1, "{spans:#?}");
            assert_eq!(in_worker[0].parent_span_id, plugin.span_id);
        } else {
            assert!(in_worker.is_empty());
        }
        let sign = one(&spans, "sign token");
        assert_eq!(sign.parent_span_id, authorize.span_id);
        assert_eq!(sign.attributes["token.kind"], "Permission");
        let under_authorize: Vec<&str> = children(&spans, authorize)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            under_authorize.contains(&"authenticate"),
            "{under_authorize:?}"
        );
        // Database statements, with what they are but never their values. The second
        // request's token is in the token cache: it reads nothing.
        let statements: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .collect();
        if service == "example" {
            assert!(!statements.is_empty(), "no database span in {spans:#?}");
        }
        for statement in &statements {
            assert_eq!(statement.attributes["db.system"], "sqlite");
            assert!(statement.attributes["db.statement"].contains("= ?"));
        }
    }
    // Each request's spans are in its caller's trace: none started a trace of its own.
    let traces: Vec<String> = collector
        .spans()
        .into_iter()
        .filter(|s| s.name == "authorize" || s.name.ends_with(" Permissions"))
        .map(|s| s.trace_id)
        .collect();
    assert_eq!(traces.len(), 4, "{traces:?}");
    assert!(
        traces
            .iter()
            .all(|t| t == "4bf92f3577b34da6a3ce929d0e0e4736"
                || t == "0af7651916cd43dd8448eb211c80319c"),
        "{traces:?}"
    );
    assert!(
        collector.paths().iter().all(|p| p == "/v1/traces"),
        "{:?}",
        collector.paths()
    );
    let log = server.stop();
    assert!(log.contains("exporting traces"), "{log}");
    assert!(!log.contains("trace-secret"), "{log}");
}

/// An anonymous caller's 60,000-byte `service` (exported whole, before) reaches the collector
/// cut to 256 bytes, and the request's span keeps its place in the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_from_outside_are_exported_bounded() {
    let collector = StandInCollector::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut envs = vec![("AUTH_DATA_DIR", data.path().display().to_string())];
    envs.extend(tracing_env(&collector));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start(&envs);
    let trace_id = "5c1f0e4b2a9d8c7b6a5f4e3d2c1b0a99";
    let service = "s".repeat(60_000);
    let response = common::server::client()
        .get(format!(
            "{}/auth/authorize?service={service}&jwt=x",
            server.base
        ))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert!(response.status().as_u16() < 500, "{}", response.status());
    let spans = collector
        .trace(trace_id, |spans| {
            spans.iter().any(|s| s.name == "authorize")
        })
        .await;
    let exported = &one(&spans, "authorize").attributes["service"];
    assert!(exported.len() <= 256, "{} bytes", exported.len());
    assert!(
        exported.starts_with("sss") && exported.ends_with('…'),
        "{exported}"
    );
    let _ = server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_the_spans_not_the_requests() {
    let data = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = ServerProcess::start(&[
        ("AUTH_DATA_DIR", data.path().to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &with_credentials(&down)),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    for _ in 0..5 {
        let (status, _) = common::server::get_json(&format!("{}/auth/check", server.base)).await;
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = server.stop();
    let warnings = log
        .lines()
        .filter(|l| l.contains("spans could not be sent"))
        .count();
    assert_eq!(warnings, 1, "one warning a minute at most: {log}");
    assert!(!log.contains("trace-secret"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_carries_the_trace_on_to_the_identity_provider() {
    let collector = StandInCollector::start().await;
    let idp = StandInIdp::start().await;
    idp.set_oidc_user(OidcUser {
        sub: "traced-1".into(),
        email: Some("traced@example.com".into()),
        email_verified: Some(true),
        name: Some("Traced".into()),
        picture: None,
    });
    let data = tempfile::tempdir().unwrap();
    // The login links point there; the test sends them to the server itself.
    let external = "http://127.0.0.1:9";
    let mut envs = vec![
        ("AUTH_DATA_DIR", data.path().display().to_string()),
        ("EXTERNAL_ADDRESS", external.into()),
        ("AUTH_PROVIDERS__CORP__KIND", "oidc".into()),
        ("AUTH_PROVIDERS__CORP__ISSUER", idp.base.clone()),
        ("AUTH_PROVIDERS__CORP__CLIENT_ID", "corp-client".into()),
        ("AUTH_PROVIDERS__CORP__CLIENT_SECRET", "corp-secret".into()),
    ];
    envs.extend(tracing_env(&collector));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start(&envs);
    let to_server = |url: &str| url.replacen(external, &server.base, 1);
    let next = format!("{external}/app");
    let (_, check) = common::server::get_json(&format!(
        "{}/auth/check?next={}",
        server.base,
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    ))
    .await;
    let login = to_server(check["providers"]["corp"]["url"].as_str().unwrap());
    let browser = common::server::browser();
    // To the provider and back to the callback, which the test then sends with a trace.
    let callback = common::server::follow(&browser, &login, &format!("{external}/auth/"))
        .await
        .unwrap();
    let trace_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    let response = browser
        .get(to_server(&callback))
        .header("traceparent", format!("00-{trace_id}-051581bf3cb55c13-01"))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_redirection(),
        "{:?}",
        response.status()
    );
    let landing = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        common::server::params_of(&landing).contains_key("jwt"),
        "{landing}"
    );
    // The provider saw the trace on the code exchange…
    let seen = idp.traceparents();
    let token_call = seen
        .iter()
        .find(|(path, _)| path == "/token")
        .unwrap_or_else(|| panic!("no traceparent on /token: {seen:?}"));
    let parts: Vec<&str> = token_call.1.split('-').collect();
    assert_eq!(parts.len(), 4, "{token_call:?}");
    assert_eq!(parts[1], trace_id, "{token_call:?}");
    // …from a client span of that trace, under the callback's request span.
    let spans = collector
        .trace(trace_id, |spans| {
            spans.iter().any(|s| s.span_id == parts[2])
                && spans.iter().any(|s| s.name == "GET oauth_callback")
        })
        .await;
    let exchange = spans.iter().find(|s| s.span_id == parts[2]).unwrap();
    assert_eq!(exchange.kind, 3, "client: {exchange:?}");
    assert_eq!(exchange.attributes["url.path"], "/token");
    let request = one(&spans, "GET oauth_callback");
    assert_eq!(request.parent_span_id, "051581bf3cb55c13");
    let finish = one(&spans, "finish_login");
    assert_eq!(finish.parent_span_id, request.span_id);
    server.stop();
}
