//! Where logins and logouts send the browser: the browser binding is always fresh, and
//! `next` is normalized and stripped of planted results before a token is added.

use crate::common;
use crate::on_both_backends;

use common::server::{Backend, TestServer, browser, dev_login_landing};
use serde_json::json;

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every value of the query parameter `key` in `url`.
fn all_of(url: &str, key: &str) -> Vec<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn a_planted_browser_binding_is_never_adopted(backend: Backend) {
    let server = TestServer::start_with(backend, json!({"dev_login": true})).await;
    let planted = "p".repeat(43);
    let started = common::server::client()
        .get(server.url("/auth/login/dev"))
        .header("cookie", format!("auth_host_browser={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let cookie = started.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("auth_host_browser="), "{cookie}");
    assert!(!cookie.contains(&planted), "{cookie}");
    let _ = server.stop().await;
}

async fn planted_results_in_next_are_dropped(backend: Backend) {
    let server = TestServer::start_with(backend, json!({"dev_login": true})).await;
    let next = server.url("/app?jwt=attacker&keep=1&error=planted");
    let landing = dev_login_landing(&server, &next, "vic@example.com").await;
    let tokens = all_of(&landing, "jwt");
    assert_eq!(tokens.len(), 1, "{landing}");
    assert_ne!(tokens[0], "attacker");
    assert_eq!(all_of(&landing, "keep"), ["1"], "{landing}");
    assert!(all_of(&landing, "error").is_empty(), "{landing}");
    // A refused login (no email) carries its own error, and no planted token.
    let landing = dev_login_landing(&server, &next, "not-an-email").await;
    assert!(all_of(&landing, "jwt").is_empty(), "{landing}");
    assert_eq!(all_of(&landing, "error"), ["an email address is required"]);
    let _ = server.stop().await;
}

async fn logout_redirects_to_the_normalized_next(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (raw, normalized) in [
        (server.url("/app\r\n?x=1"), server.url("/app?x=1")),
        (server.url("/a\tpp?y=2"), server.url("/app?y=2")),
    ] {
        let response = browser()
            .get(server.url(&format!("/auth/logout?next={}", encoded(&raw))))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{raw:?}");
        assert_eq!(
            response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap()),
            Some(normalized.as_str()),
            "{raw:?}"
        );
    }
    let _ = server.stop().await;
}

on_both_backends!(
    a_planted_browser_binding_is_never_adopted,
    planted_results_in_next_are_dropped,
    logout_redirects_to_the_normalized_next,
);
