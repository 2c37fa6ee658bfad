//! Findings of an outside probe, each over a real socket: derived usernames within the
//! username rules, unreadable bodies, headers of pages, an unreachable database.

use std::io::{Read, Write};

use crate::common;
use crate::on_both_backends;

use common::server::{Backend, TestServer, browser, params_of};
use serde_json::json;

async fn usernames_derived_from_an_email_follow_the_username_rules(backend: Backend) {
    let server = TestServer::start_with(backend, json!({"dev_login": true})).await;
    for (email, username) in [
        (
            "<img src=x onerror=alert(1)>@example.com",
            "imgsrcxonerroralert1",
        ),
        ("''@example.com", "user"),
        ("'@example.org", "user1"),
        ("../../etc@example.com", "etc"),
    ] {
        let landed = common::server::dev_login(&server, email).await;
        let token = landed
            .get("jwt")
            .unwrap_or_else(|| panic!("{email}: {landed:?}"));
        let (_, body) = server.get_json(&format!("/auth/check?jwt={token}")).await;
        assert_eq!(body["profile"]["username"], username, "{email}");
    }
    let _ = server.stop().await;
}

/// Sends `request` as raw bytes and returns the status line of the answer.
fn raw_status(base: &str, request: &[u8]) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn a_broken_chunked_body_is_a_bad_request(backend: Backend) {
    let server = TestServer::start(backend).await;
    let base = server.base.clone();
    let status = tokio::task::spawn_blocking(move || {
        raw_status(
            &base,
            b"POST /auth/update HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\nusername=x\r\n0\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let _ = server.stop().await;
}

async fn pages_forbid_framing_scripts_and_referrers(backend: Backend) {
    let server = TestServer::start_with(backend, json!({"dev_login": true})).await;
    let browser = browser();
    let started = browser
        .get(server.url("/auth/login/dev"))
        .send()
        .await
        .unwrap();
    let form = started.headers()["location"].to_str().unwrap().to_owned();
    assert!(params_of(&form).contains_key("state"));
    let error_page = server.url("/auth/oauth_callback?state=unknown&code=x");
    for url in [form, error_page] {
        let response = browser.get(&url).send().await.unwrap();
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{url}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
    let _ = server.stop().await;
}

/// Starts a development login as the client `forwarded_for` (behind the test's proxy).
async fn start_dev_login(
    server: &TestServer,
    browser: &reqwest::Client,
    forwarded_for: &str,
    next: &str,
) -> reqwest::Response {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    browser
        .get(server.url(&format!("/auth/login/dev?next={next}")))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
}

async fn unfinished_logins_are_bounded_per_client(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        json!({"dev_login": true, "max_unfinished_logins_per_client": 5,
               "trusted_proxies": "127.0.0.0/8", "client_ip_header": "x-forwarded-for"}),
    )
    .await;
    let next = server.url("/app");
    let flooder = browser();
    // A huge `next` is refused before anything is stored.
    let huge = format!("{next}?x={}", "a".repeat(60_000));
    let response = start_dev_login(&server, &flooder, "203.0.113.7", &huge).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "next is longer than 2048 bytes");
    // One client's unfinished logins are bounded…
    for _ in 0..5 {
        let response = start_dev_login(&server, &flooder, "203.0.113.7", &next).await;
        assert_eq!(response.status(), 302);
    }
    let refused = start_dev_login(&server, &flooder, "203.0.113.7", &next).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    // A `Forwarded` header of the client's own is not read (only the one header named).
    let disguised = flooder
        .get(server.url(&format!(
            "/auth/login/dev?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )))
        .header("forwarded", "for=198.51.100.50")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(disguised.status(), 429);
    // An IPv6 client is counted by its /64: rotating addresses within it gains nothing.
    for i in 1..=6 {
        let address = format!("2001:db8:7:7::{i:x}");
        let response = start_dev_login(&server, &flooder, &address, &next).await;
        assert_eq!(
            response.status(),
            if i <= 5 { 302 } else { 429 },
            "{address}"
        );
    }
    let neighbour = start_dev_login(&server, &flooder, "2001:db8:7:8::1", &next).await;
    assert_eq!(neighbour.status(), 302, "another /64 is another client");
    // …while a user behind another address logs in meanwhile.
    let user = browser();
    let started = start_dev_login(&server, &user, "198.51.100.9", &next).await;
    assert_eq!(started.status(), 302);
    let form = started.headers()["location"].to_str().unwrap().to_owned();
    let finished = user
        .post(server.url("/auth/login/dev"))
        .header("x-forwarded-for", "198.51.100.9")
        .form(&[
            ("state", params_of(&form)["state"].as_str()),
            ("email", "real@example.com"),
        ])
        .send()
        .await
        .unwrap();
    let landing = finished.headers()["location"].to_str().unwrap();
    assert!(params_of(landing).contains_key("jwt"), "{landing}");
    let _ = server.stop().await;

    // Without trusted proxies, a forwarding header is the client's own claim: ignored.
    let server = TestServer::start_with(
        backend,
        json!({"dev_login": true, "max_unfinished_logins_per_client": 2}),
    )
    .await;
    let next = server.url("/app");
    for (forwarded_for, status) in [("192.0.2.1", 302), ("192.0.2.2", 302), ("192.0.2.3", 429)] {
        let response = start_dev_login(&server, &browser(), forwarded_for, &next).await;
        assert_eq!(response.status(), status, "{forwarded_for}");
    }
    let _ = server.stop().await;
}

on_both_backends!(
    unfinished_logins_are_bounded_per_client,
    usernames_derived_from_an_email_follow_the_username_rules,
    a_broken_chunked_body_is_a_bad_request,
    pages_forbid_framing_scripts_and_referrers,
);

/// The database goes away (PostgreSQL refuses every connection), then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_recovers() {
    if common::server::postgres_skipped() {
        return;
    }
    let server = TestServer::start_with(Backend::Postgres, json!({"token_cache_ms": 0})).await;
    let user = server.add_user("dora@example.com", "dora").await;
    let token = server.token_for(&user.id);
    let admin = sea_orm::Database::connect(common::server::postgres_admin_url())
        .await
        .unwrap();
    let name = server.database().postgres_name().unwrap().to_owned();
    let run = |sql: String| {
        let admin = admin.clone();
        async move {
            use sea_orm::ConnectionTrait;
            admin.execute_unprepared(&sql).await.unwrap();
        }
    };
    run(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await;
    run(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    for path in [
        format!("/auth/check?jwt={token}"),
        format!("/auth/authorize?jwt={token}&service=example"),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"], "database unavailable", "{path}");
    }
    run(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await;
    let (status, body) = server.get_json(&format!("/auth/check?jwt={token}")).await;
    assert_eq!(
        (status.as_u16(), &body["authenticated"]),
        (200, &json!(true))
    );
    let _ = server.stop().await;
}

/// A TCP proxy that can be frozen: its connections stay open and nothing passes either way,
/// as with a database host that stopped answering (not one that refuses).
struct FreezableProxy {
    address: String,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezableProxy {
    async fn start(target: String) -> FreezableProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&frozen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let flag = std::sync::Arc::clone(&flag);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buffer).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            }
                            if to.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezableProxy { address, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database stops answering (its host hangs): `/auth/health` says 503 within a second
/// (it took the pool's whole 5 s wait, longer than a balancer's probe waits), a request cut
/// at `request_timeout` is counted under its own route and as a database error (it was
/// counted under `route="timeout"` and not as a database error), and all recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_is_reported_at_once_and_counted() {
    if common::server::postgres_skipped() {
        return;
    }
    let database = common::server::TestDatabase::new(Backend::Postgres).await;
    let target = url::Url::parse(&database.url).unwrap();
    let proxy = FreezableProxy::start(format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port().unwrap_or(5432)
    ))
    .await;
    let mut through = target.clone();
    through
        .set_port(Some(
            proxy.address.rsplit(':').next().unwrap().parse().unwrap(),
        ))
        .unwrap();
    let server = TestServer::start_on(
        database,
        json!({
            "database_url": through.to_string(),
            "token_cache_ms": 0,
            "request_timeout_ms": 1500,
        }),
    )
    .await;
    let user = server.add_user("hana@example.com", "hana").await;
    let token = server.token_for(&user.id);
    let (status, _) = server.get_json(&format!("/auth/check?jwt={token}")).await;
    assert_eq!(status, 200);

    proxy.freeze(true);
    let asked = std::time::Instant::now();
    let (status, body) = server.get_json("/auth/health").await;
    let took = asked.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unreachable", "{body}");
    assert!(took < std::time::Duration::from_millis(1800), "{took:?}");

    let (status, body) = server.get_json(&format!("/auth/check?jwt={token}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "request took too long", "{body}");
    let metric = |text: &str, name: &str| common::server::metric_value(text, name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let metrics = loop {
        let text = common::server::get_text(&server.url("/auth/metrics")).await;
        if metric(&text, "auth_host_database_errors_total") >= 1.0
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        metric(
            &metrics,
            "auth_host_http_requests_total{route=\"check\",status=\"503\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "auth_host_http_request_timeouts_total{route=\"check\"}"
        ),
        1.0
    );
    assert!(!metrics.contains("route=\"timeout\""), "{metrics}");
    assert!(metric(&metrics, "auth_host_database_errors_total") >= 1.0);

    proxy.freeze(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = server.get_json(&format!("/auth/check?jwt={token}")).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = server.stop().await;
}
