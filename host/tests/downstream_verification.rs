//! A downstream service verifies a permission token with nothing but the PEM from
//! `/auth/public-key` and RS256, using PyJWT as the existing services do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::server::{Backend, TestServer};
use serde_json::{Value, json};

fn pyjwt_python() -> std::path::PathBuf {
    let python = common::workspace_root().join("target/pyjwt-venv/bin/python");
    assert!(
        python.exists(),
        "PyJWT is not installed at {}: run `make pyjwt` (`make test` does it)",
        python.display()
    );
    python
}

/// Runs tools/verify_permission_token.py; the claims on success, stderr on failure.
fn verify_with_pyjwt(pem: &str, token: &str) -> Result<Value, String> {
    let pem_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem_file.path(), pem).unwrap();
    let output = Command::new(pyjwt_python())
        .arg(common::workspace_root().join("tools/verify_permission_token.py"))
        .arg(pem_file.path())
        .arg(token)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
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
