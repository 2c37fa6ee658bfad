//! One rule decides what a client token is: each kind of token against each endpoint that
//! takes a `jwt`.

use crate::common;
use crate::on_both_backends;

use common::server::{Backend, TestServer};
use serde_json::{Value, json};

/// Whether each endpoint that takes a client token took `token` as one.
async fn accepted_by(server: &TestServer, token: &str) -> Vec<(&'static str, bool)> {
    let (_, check) = server.get_json(&format!("/auth/check?jwt={token}")).await;
    let (_, authorize) = server
        .get_json(&format!("/auth/authorize?jwt={token}&service=example2"))
        .await;
    let (_, update) = server.post_json(&format!("/auth/update?jwt={token}")).await;
    vec![
        ("check", check["authenticated"] == json!(true)),
        ("authorize", authorize.get("token").is_some()),
        ("update", update == json!({"success": true})),
    ]
}

fn everywhere(accepted: bool) -> Vec<(&'static str, bool)> {
    vec![
        ("check", accepted),
        ("authorize", accepted),
        ("update", accepted),
    ]
}

async fn a_permission_token_is_never_a_client_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("pat@example.com", "pat").await;
    let client = server.token_for(&user.id);
    let (_, granted) = server
        .get_json(&format!("/auth/authorize?jwt={client}&service=example"))
        .await;
    let permission = granted["token"].as_str().unwrap().to_owned();

    let kinds: [(&str, &str, bool); 2] = [
        ("client token", &client, true),
        ("permission token", &permission, false),
    ];
    for (kind, token, accepted) in kinds {
        assert_eq!(
            accepted_by(&server, token).await,
            everywhere(accepted),
            "{kind}"
        );
    }
    // The permission token cannot log anybody out either.
    let (status, _) = server
        .post_json(&format!("/auth/logout?jwt={permission}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(accepted_by(&server, &client).await, everywhere(true));

    // After the user logged out, neither works anywhere.
    server
        .post_json(&format!("/auth/logout?jwt={client}"))
        .await;
    for token in [&client, &permission] {
        assert_eq!(accepted_by(&server, token).await, everywhere(false));
    }
    let header: Value =
        serde_json::to_value(jsonwebtoken::decode_header(&permission).unwrap()).unwrap();
    assert_eq!(header["typ"], "JWT", "permission tokens keep the plain typ");
    let _ = server.stop().await;
}

on_both_backends!(a_permission_token_is_never_a_client_token);
