//! Verification as the other side does it: a downstream service checks a permission token
//! with nothing but the PEM from `/auth/public-key` and RS256, using PyJWT as the existing
//! services do; a webhook receiver checks a delivery with Standard Webhooks' own library.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::receiver::{self, Attempt, WebhookReceiver};
use common::server::{Backend, TestServer};
use serde_json::{Value, json};

/// A verifier script's answer: its JSON on stdout when it exits 0, else its stderr.
fn verdict(output: &std::process::Output) -> Result<Value, String> {
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Runs tools/verify_permission_token.py; the claims on success, stderr on failure.
fn verify_with_pyjwt(pem: &str, token: &str) -> Result<Value, String> {
    let pem_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem_file.path(), pem).unwrap();
    let output = Command::new(common::verifiers_python())
        .arg(common::workspace_root().join("tools/verify_permission_token.py"))
        .arg(pem_file.path())
        .arg(token)
        .output()
        .unwrap();
    verdict(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_a_permission_token_with_only_the_public_key() {
    let server = TestServer::start(Backend::Sqlite).await;
    let user = server.add_user("dana@example.com", "dana").await;
    let token = server.token_for(&user.id);
    let (_, answer) = server
        .get_json(&format!("/auth/authorize?jwt={token}&service=example"))
        .await;
    let permission_token = answer["token"].as_str().unwrap();
    let pem = common::server::get_text(&server.url("/auth/public-key")).await;

    let claims = verify_with_pyjwt(&pem, permission_token).unwrap();
    assert_eq!(claims["userid"], user.id.as_str());
    assert_eq!(claims["service"], "example");
    assert_eq!(
        claims["permissions"],
        json!({"provider-token": format!("example-{}", user.id)})
    );
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);

    // A tampered token is refused by the same check.
    let mut parts: Vec<String> = permission_token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replace('A', "B");
    let tampered = parts.join(".");
    assert_ne!(tampered, permission_token);
    let refusal = verify_with_pyjwt(&pem, &tampered).unwrap_err();
    assert!(refusal.starts_with("refused: "), "{refusal}");
    let _ = server.stop().await;
}

/// Runs tools/verify_permission_token.py with the JWKS text; the claims, or stderr.
fn verify_with_pyjwt_jwks(jwks: &str, token: &str) -> Result<Value, String> {
    let jwks_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwks_file.path(), jwks).unwrap();
    let output = Command::new(common::verifiers_python())
        .arg(common::workspace_root().join("tools/verify_permission_token.py"))
        .arg("--jwks")
        .arg(jwks_file.path())
        .arg(token)
        .output()
        .unwrap();
    verdict(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_es256_and_eddsa_permission_tokens_from_the_jwks() {
    for algorithm in ["ES256", "EdDSA"] {
        let server = TestServer::start_with(
            Backend::Sqlite,
            json!({"permission_token_algorithm": algorithm}),
        )
        .await;
        let user = server.add_user("erin@example.com", "erin").await;
        let token = server.token_for(&user.id);
        let (_, answer) = server
            .get_json(&format!("/auth/authorize?jwt={token}&service=example"))
            .await;
        let permission_token = answer["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{algorithm}: {answer}"));
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(permission_token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], algorithm, "{header}");
        let jwks = common::server::get_text(&server.url("/auth/.well-known/jwks.json")).await;
        let published: Value = serde_json::from_str(&jwks).unwrap();
        let key = published["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["kid"] == header["kid"])
            .unwrap_or_else(|| panic!("kid {} not in {jwks}", header["kid"]));
        assert_eq!(key["alg"], algorithm, "{key}");

        let claims = verify_with_pyjwt_jwks(&jwks, permission_token).unwrap();
        assert_eq!(claims["userid"], user.id.as_str());
        assert_eq!(claims["service"], "example");

        // Tampered: refused by the same check; and a PEM-pinning service cannot take it
        // for RS256.
        let mut parts: Vec<String> = permission_token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replace('A', "B");
        let tampered = parts.join(".");
        assert_ne!(tampered, permission_token);
        let refusal = verify_with_pyjwt_jwks(&jwks, &tampered).unwrap_err();
        assert!(refusal.starts_with("refused: "), "{refusal}");
        let pem = common::server::get_text(&server.url("/auth/public-key")).await;
        let refusal = verify_with_pyjwt(&pem, permission_token).unwrap_err();
        assert!(refusal.starts_with("refused: "), "{refusal}");
        // The client token stays RS256, verifiable with the PEM's key in the JWKS.
        let client_header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(client_header["alg"], "RS256");
        let _ = server.stop().await;
    }
}

/// Runs tools/verify_webhook.py on one delivery; the event on success, stderr on failure.
fn verify_with_standard_webhooks(secret: &str, attempt: &Attempt) -> Result<Value, String> {
    let mut child = Command::new(common::verifiers_python())
        .arg(common::workspace_root().join("tools/verify_webhook.py"))
        .args([secret, &attempt.id, &attempt.timestamp, &attempt.signature])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attempt.body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    verdict(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_library_verifies_webhook_deliveries() {
    let receiver = WebhookReceiver::start(|_| (200, json!({}))).await;
    let server = TestServer::start_with(
        Backend::Sqlite,
        receiver.server_settings(json!({"hooks": {
            "on_new_user": "blocking", "on_user_login": "blocking", "on_user_logout": "off",
        }})),
    )
    .await;
    let landed = common::server::dev_login(&server, "ray@example.com").await;
    assert!(landed.contains_key("jwt"), "{landed:?}");
    let attempts = receiver.attempts();
    assert_eq!(attempts.len(), 2);
    let secret = receiver::secret();
    for attempt in &attempts {
        let event = verify_with_standard_webhooks(&secret, attempt).unwrap();
        assert_eq!(event, attempt.json());

        let mut tampered = attempt.clone();
        tampered.body = tampered.body.replace("ray@", "eve@");
        assert_ne!(tampered.body, attempt.body);
        let refusal = verify_with_standard_webhooks(&secret, &tampered).unwrap_err();
        assert!(refusal.starts_with("refused: "), "{refusal}");

        let other_secret = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        let refusal = verify_with_standard_webhooks(&other_secret, attempt).unwrap_err();
        assert!(refusal.starts_with("refused: "), "{refusal}");
    }
    let _ = server.stop().await;
}
