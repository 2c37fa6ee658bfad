//! Every endpoint over a real socket, against SQLite and PostgreSQL.

use crate::common;
use crate::on_both_backends;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::server::{Backend, TestServer, client, get_json};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Tokens that must never authenticate, for a server and one of its users.
async fn bad_tokens(server: &TestServer, userid: &str) -> Vec<(&'static str, String)> {
    let good = server.token_for(userid);
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let exp = now() + 3600;
    let claims = json!({"userid": userid, "iat": now(), "exp": exp, "jti": "x"});
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD
            .encode(json!({"userid": "someone-else", "iat": now(), "exp": exp}).to_string()),
        parts[2]
    );
    let hmac_with_public_key = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(
            server.service.tokens().keys().public_pem().as_bytes(),
        ),
    )
    .unwrap();
    // Expired: signed by the server's own key, in the past.
    let private_pem = server.signing_key_pem().await.into_bytes();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
        },
        &json!({"userid": userid, "iat": 1, "exp": now() - 3600}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&private_pem).unwrap(),
    )
    .unwrap();
    vec![
        (
            "alg none",
            forge(&json!({"alg": "none", "typ": "JWT"}), &claims, b""),
        ),
        (
            "alg none with kid",
            forge(&json!({"alg": "none", "kid": kid}), &claims, b""),
        ),
        ("hmac with the public key", hmac_with_public_key),
        ("tampered payload", tampered),
        ("expired", expired),
        (
            "unknown kid",
            forge(&json!({"alg": "RS256", "kid": "nope"}), &claims, b"sig"),
        ),
        ("garbage", "not.a.token".into()),
        ("empty segments", "..".into()),
    ]
}

async fn check_authenticates_only_valid_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("ada@example.com", "ada").await;

    let (status, body) = get_json(&server.url("/auth/check")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"authenticated": false, "providers": {}}));

    let token = server.token_for(&user.id);
    let expected_profile = json!({
        "id": user.id, "idhash": user.id, "provider_id": "github:ada",
        "username": "ada", "name": "ada name", "email": "ada@example.com",
        "avatar_url": "https://avatars.example/ada.png",
        "join_date": "2024-02-29T10:20:30.123456",
    });
    for prefix in ["/auth", "/user"] {
        let (status, body) = get_json(&server.url(&format!("{prefix}/check?jwt={token}"))).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"authenticated": true, "profile": expected_profile})
        );
    }
    // The auth-token header wins over the query parameter.
    let response = client()
        .get(server.url("/auth/check?jwt=garbage"))
        .header("auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["authenticated"],
        true
    );

    for (what, bad) in bad_tokens(&server, &user.id).await {
        let (status, body) = get_json(&server.url(&format!("/auth/check?jwt={bad}"))).await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(body["authenticated"], false, "{what}");
    }

    // A valid token of a user that no longer exists.
    let gone = server.add_user("gone@example.com", "gone").await;
    let gone_token = server.token_for(&gone.id);
    server.service.store().delete_user(&gone.id).await.unwrap();
    let (_, body) = get_json(&server.url(&format!("/auth/check?jwt={gone_token}"))).await;
    assert_eq!(body["authenticated"], false);

    // A revoked token.
    let revoked = server.token_for(&user.id);
    let claims = server
        .service
        .tokens()
        .verify_client_token(&revoked)
        .unwrap();
    server
        .service
        .store()
        .revoke_token(&claims.revocation_id(&revoked), claims.exp as i64)
        .await
        .unwrap();
    let (_, body) = get_json(&server.url(&format!("/auth/check?jwt={revoked}"))).await;
    assert_eq!(body["authenticated"], false);
    let (_, body) = get_json(&server.url(&format!("/auth/check?jwt={token}"))).await;
    assert_eq!(
        body["authenticated"], true,
        "other tokens of the user still work"
    );
    let _ = server.stop().await;
}

async fn jsonp_wraps_answers_and_refuses_bad_callback_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = client()
        .get(server.url("/auth/check?callback=jQuery_123.cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"jQuery_123.cb({"authenticated":false,"providers":{}})"#
    );
    for bad in ["alert(1)//", "1abc", "a-b", &"a".repeat(65)] {
        let response = client()
            .get(server.url("/auth/check"))
            .query(&[("callback", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("callback"));
    }
    let _ = server.stop().await;
}

async fn authorize_signs_the_providers_permissions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("grace@example.com", "grace").await;
    let token = server.token_for(&user.id);

    for service in ["example", "example2"] {
        let (status, body) =
            get_json(&server.url(&format!("/auth/authorize?jwt={token}&service={service}"))).await;
        assert_eq!(status, 200);
        assert_eq!(body["userid"], user.id.as_str());
        assert_eq!(body["service"], service);
        let expected = json!({"provider-token": format!("{service}-{}", user.id)});
        assert_eq!(body["permissions"], expected);
        let claims = server
            .service
            .tokens()
            .verify_permission_token(body["token"].as_str().unwrap())
            .unwrap();
        assert_eq!(claims.userid, user.id);
        assert_eq!(claims.service, service);
        assert_eq!(serde_json::Value::Object(claims.permissions), expected);
        assert_eq!(claims.exp - claims.iat, 3600);
        // No audience: downstream verifies with the public key alone.
        let payload = body["token"].as_str().unwrap().split('.').nth(1).unwrap();
        let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(raw.get("aud").is_none());
    }
    // The provider gets the whole user record (plugin-api 1.1).
    let (_, body) =
        get_json(&server.url(&format!("/user/authorize?jwt={token}&service=test"))).await;
    assert_eq!(body["permissions"]["username"], "grace");
    // POST with a form body works too.
    let response = client()
        .post(server.url("/auth/authorize"))
        .form(&[("jwt", token.as_str()), ("service", "example")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["service"],
        "example"
    );

    // Nothing to grant: always 200 with empty permissions.
    let nothing = json!({"permissions": {}});
    for query in [
        "service=example".to_owned(),
        format!("jwt={token}"),
        format!("jwt={token}&service="),
        format!("jwt={token}&service=unknown"),
        format!("jwt={token}&service=sample_permission_provider"),
        "jwt=garbage&service=example".to_owned(),
    ] {
        let (status, body) = get_json(&server.url(&format!("/auth/authorize?{query}"))).await;
        assert_eq!((status, &body), (StatusCode::OK, &nothing), "{query}");
    }
    for (what, bad) in bad_tokens(&server, &user.id).await {
        let (status, body) =
            get_json(&server.url(&format!("/auth/authorize?jwt={bad}&service=example"))).await;
        assert_eq!((status, &body), (StatusCode::OK, &nothing), "{what}");
    }
    // Revoked (logged out on this replica), deleted user.
    server
        .service
        .logout(Some(&token), None, &Default::default())
        .await
        .unwrap();
    let (_, body) =
        get_json(&server.url(&format!("/auth/authorize?jwt={token}&service=example"))).await;
    assert_eq!(body, nothing);
    let fresh = server.token_for(&user.id);
    server.service.store().delete_user(&user.id).await.unwrap();
    let (_, body) =
        get_json(&server.url(&format!("/auth/authorize?jwt={fresh}&service=example"))).await;
    assert_eq!(body, nothing);
    let _ = server.stop().await;
}

async fn a_failing_provider_fails_only_its_own_requests(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        json!({"plugins": {"test": {"sleep_ms": 3000}}, "plugin_timeout_ms": 300}),
    )
    .await;
    let ok_user = server.add_user("ok@example.com", "okay").await;
    let ok_token = server.token_for(&ok_user.id);
    // The test provider misbehaves for these user ids.
    for id in ["panic", "error", "sleep"] {
        server
            .add_user_with_id(id, &format!("{id}@example.com"), id)
            .await;
    }
    let url = |id: &str| {
        server.url(&format!(
            "/auth/authorize?jwt={}&service=test",
            server.token_for(id)
        ))
    };

    let (status, body) = get_json(&url("panic")).await;
    assert_eq!(status, 502);
    assert_eq!(body["permissions"], json!({}));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("plugin `test` panicked: asked to panic"),
        "{body}"
    );
    let (status, body) = get_json(&url("error")).await;
    assert_eq!(status, 502);
    assert_eq!(
        body,
        json!({"permissions": {}, "error": "plugin `test` failed: asked to fail"})
    );

    // While a call hangs past the limit, everything else keeps answering.
    let slow = tokio::spawn({
        let url = url("sleep");
        async move {
            let started = std::time::Instant::now();
            let answer = get_json(&url).await;
            (answer, started.elapsed())
        }
    });
    for _ in 0..5 {
        let (status, body) =
            get_json(&server.url(&format!("/auth/authorize?jwt={ok_token}&service=example"))).await;
        assert_eq!(status, 200);
        assert_eq!(body["userid"], ok_user.id.as_str());
        let (status, body) = get_json(&server.url(&format!("/auth/check?jwt={ok_token}"))).await;
        assert_eq!(
            (status, &body["authenticated"]),
            (StatusCode::OK, &json!(true))
        );
        // The same plugin still serves other users.
        let (status, _) =
            get_json(&server.url(&format!("/auth/authorize?jwt={ok_token}&service=test"))).await;
        assert_eq!(status, 200);
    }
    let ((status, body), elapsed) = slow.await.unwrap();
    assert_eq!(status, 504);
    assert_eq!(
        body,
        json!({"permissions": {}, "error": "plugin `test` did not answer within 300ms"})
    );
    assert!(
        elapsed < std::time::Duration::from_millis(2500),
        "{elapsed:?}"
    );

    let metrics = common::server::get_text(&server.url("/auth/metrics")).await;
    for outcome in ["panic", "error", "timeout", "ok"] {
        assert!(
            metrics.contains(&format!(
                "auth_host_plugin_calls_total{{alias=\"test\",outcome=\"{outcome}\"}} 1"
            )) || (outcome == "ok"
                && metrics
                    .contains("auth_host_plugin_calls_total{alias=\"test\",outcome=\"ok\"} 5")),
            "{outcome}:\n{metrics}"
        );
    }
    let _ = server.stop().await;
}

async fn update_sets_the_username_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.add_user("alice@example.com", "alice").await;
    let bob = server.add_user("bob@example.com", "bob").await;
    let alice_token = server.token_for(&alice.id);
    let post = |query: String| {
        let url = server.url(&format!("/auth/update?{query}"));
        async move {
            let response = client().post(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let refused = |error: &str| json!({"success": false, "error": error});

    assert_eq!(post("username=x".into()).await, refused("No token"));
    assert_eq!(
        post("jwt=garbage&username=x".into()).await,
        refused("Not authenticated")
    );
    let orphan = server.token_for("no-such-user");
    assert_eq!(
        post(format!("jwt={orphan}&username=x")).await,
        refused("Unknown User")
    );
    // Taken, whatever the case.
    assert_eq!(
        post(format!("jwt={alice_token}&username=BOB")).await,
        refused("Username already taken")
    );
    // Invalid.
    let invalid = post(format!("jwt={alice_token}&username=a%20b")).await;
    assert_eq!(invalid["success"], false);
    assert!(
        invalid["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid username: ")
    );
    // Other profile fields are ignored.
    assert_eq!(
        post(format!("jwt={alice_token}&email=evil@example.com")).await,
        json!({"success": true})
    );
    // The change, through a form body and the header.
    let response = client()
        .post(server.url("/auth/update"))
        .header("auth-token", &alice_token)
        .form(&[("username", "Alice_Liddell"), ("email", "evil@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let stored = server
        .service
        .store()
        .user(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.username.as_deref(), Some("Alice_Liddell"));
    assert_eq!(stored.email.as_deref(), Some("alice@example.com"));
    // Only once.
    assert_eq!(
        post(format!("jwt={alice_token}&username=alice2")).await,
        refused("Cannot modify username, already set")
    );
    // Bob cannot take Alice's new name in another case.
    let bob_token = server.token_for(&bob.id);
    assert_eq!(
        post(format!("jwt={bob_token}&username=alice_liddell")).await,
        refused("Username already taken")
    );
    // GET is not how it is done.
    let response = client()
        .get(server.url(&format!("/auth/update?jwt={bob_token}&username=bobby")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let _ = server.stop().await;
}

async fn two_concurrent_updates_for_one_free_username_have_one_winner(backend: Backend) {
    let server = TestServer::start(backend).await;
    for round in 0..10 {
        let mut tokens = Vec::new();
        for contender in 0..4 {
            let user = server
                .add_user(
                    &format!("r{round}c{contender}@example.com"),
                    &format!("r{round}c{contender}"),
                )
                .await;
            tokens.push(server.token_for(&user.id));
        }
        let wanted = format!("prize{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tokens.len()));
        let attempts: Vec<_> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                // Alternate the case: uniqueness is case-insensitive.
                let name = if i % 2 == 0 {
                    wanted.clone()
                } else {
                    wanted.to_uppercase()
                };
                let url = server.url("/auth/update");
                let barrier = std::sync::Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    client()
                        .post(url)
                        .header("auth-token", token)
                        .form(&[("username", name)])
                        .send()
                        .await
                        .unwrap()
                        .json::<Value>()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for attempt in attempts {
            let answer = attempt.await.unwrap();
            if answer == json!({"success": true}) {
                winners += 1;
            } else {
                assert_eq!(
                    answer,
                    json!({"success": false, "error": "Username already taken"})
                );
            }
        }
        assert_eq!(winners, 1, "round {round}");
        assert!(
            server
                .service
                .store()
                .user_by_username(&wanted)
                .await
                .unwrap()
                .is_some()
        );
    }
    let _ = server.stop().await;
}

async fn lookups_keys_health_metrics_and_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("Lin@Example.com", "lin").await;

    for prefix in ["/auth", "/user"] {
        let (_, body) = get_json(&server.url(&format!("{prefix}/resolve?username=LIN"))).await;
        assert_eq!(body, json!({"userid": user.id}));
    }
    let (_, body) = get_json(&server.url("/auth/resolve?username=nobody")).await;
    assert_eq!(body, json!({"userid": null}));
    let (_, body) = get_json(&server.url("/auth/resolve")).await;
    assert_eq!(body, json!({"userid": null}));

    let (_, body) = get_json(&server.url("/auth/get_profile?username=Lin")).await;
    assert_eq!(
        body,
        json!({"found": true, "profile": {
            "id": user.id, "name": "lin name", "join_date": "2024-02-29T10:20:30.123456",
            "avatar_url": "https://avatars.example/lin.png",
            "gravatar": format!("{:x}", <md5::Md5 as md5::Digest>::digest(b"Lin@Example.com")),
        }})
    );
    let (_, body) = get_json(&server.url("/user/get_profile?username=nobody")).await;
    assert_eq!(body, json!({"found": false, "profile": null}));

    let response = client()
        .get(server.url("/auth/public-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pem = response.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert_eq!(pem, server.service.tokens().keys().public_pem());

    let (_, jwks) = get_json(&server.url("/auth/.well-known/jwks.json")).await;
    let token = server.token_for(&user.id);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header.kid.unwrap().as_str());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    // The JWK verifies the token.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();

    let (status, body) = get_json(&server.url("/auth/health")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, body) = get_json(&server.url("/auth/no-such-route")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "not found"}))
    );
    let (status, _) = get_json(&server.url("/elsewhere")).await;
    assert_eq!(status, 404);
    let response = client()
        .delete(server.url("/auth/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "method not allowed"})
    );

    // Every answer carries a request id; a caller's own is kept.
    let response = client()
        .get(server.url("/auth/check"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");

    let metrics = client()
        .get(server.url("/auth/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("auth_host_http_requests_total{route=\"resolve\",status=\"200\"} 4"),
        "{text}"
    );
    assert!(text.contains("auth_host_plugins_loaded 3"), "{text}");
    let _ = server.stop().await;
}

async fn limits_and_cors(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        json!({"max_body_bytes": 1024, "cors_origins": "https://app.example.com"}),
    )
    .await;
    let big = "x".repeat(4096);
    let response = client()
        .post(server.url("/auth/update"))
        .form(&[("username", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let response = client()
        .get(server.url("/auth/check"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let response = client()
        .get(server.url("/auth/check"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = client()
        .request(reqwest::Method::OPTIONS, server.url("/auth/update"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["access-control-allow-methods"], "POST");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let _ = server.stop().await;
}

async fn changes_made_elsewhere_show_within_the_auth_cache_bound(backend: Backend) {
    let server = TestServer::start_with(backend, json!({"token_cache_ms": 1500})).await;
    let user = server.add_user("kim@example.com", "kim").await;
    let token = server.token_for(&user.id);
    let check = |token: String| {
        let url = server.url(&format!("/auth/check?jwt={token}"));
        async move { get_json(&url).await.1["authenticated"].as_bool().unwrap() }
    };
    assert!(check(token.clone()).await);
    // Another replica revokes the token (straight in the database).
    let claims = server.service.tokens().verify_client_token(&token).unwrap();
    server
        .service
        .store()
        .revoke_token(&claims.revocation_id(&token), claims.exp as i64)
        .await
        .unwrap();
    // This replica trusted it for at most token_cache_ms…
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert!(
        !check(token.clone()).await,
        "revoked once the bound has passed"
    );
    // …and with the cache off, at once.
    let uncached = TestServer::start_with(backend, json!({"token_cache_ms": 0})).await;
    let other = uncached.add_user("lee@example.com", "lee").await;
    let token = uncached.token_for(&other.id);
    let url = uncached.url(&format!("/auth/check?jwt={token}"));
    assert_eq!(get_json(&url).await.1["authenticated"], true);
    uncached
        .service
        .store()
        .delete_user(&other.id)
        .await
        .unwrap();
    assert_eq!(get_json(&url).await.1["authenticated"], false);
    let _ = uncached.stop().await;
    let _ = server.stop().await;
}

async fn client_tokens_signed_with_es256_or_eddsa_work_everywhere(backend: Backend) {
    for algorithm in ["ES256", "EdDSA"] {
        let mut settings = json!({"client_token_algorithm": algorithm});
        if backend == Backend::Postgres {
            // Replicas must share it: a key of their own in each data directory won't do.
            let key_type: &[&str] = match algorithm {
                "ES256" => &["EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                _ => &["ed25519"],
            };
            let key = std::process::Command::new("openssl")
                .arg("genpkey")
                .arg("-algorithm")
                .args(key_type)
                .output()
                .expect("openssl is installed");
            assert!(key.status.success(), "{key:?}");
            settings["client_token_private_key"] = json!(String::from_utf8(key.stdout).unwrap());
        }
        let server = TestServer::start_with(backend, settings).await;
        let user = server.add_user("eve@example.com", "eve").await;
        let token = server.token_for(&user.id);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            serde_json::from_value(json!(algorithm)).unwrap()
        );
        let (_, body) = get_json(&server.url(&format!("/auth/check?jwt={token}"))).await;
        assert_eq!(body["authenticated"], true, "{algorithm}");
        let (_, body) =
            get_json(&server.url(&format!("/auth/authorize?jwt={token}&service=example"))).await;
        let permission = body["token"].as_str().unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(permission).unwrap().alg,
            jsonwebtoken::Algorithm::RS256,
            "permission tokens stay RS256"
        );
        let (_, jwks) = get_json(&server.url("/auth/.well-known/jwks.json")).await;
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        let _ = server.stop().await;
    }
}

on_both_backends!(
    client_tokens_signed_with_es256_or_eddsa_work_everywhere,
    changes_made_elsewhere_show_within_the_auth_cache_bound,
    check_authenticates_only_valid_tokens,
    jsonp_wraps_answers_and_refuses_bad_callback_names,
    authorize_signs_the_providers_permissions,
    a_failing_provider_fails_only_its_own_requests,
    update_sets_the_username_once,
    two_concurrent_updates_for_one_free_username_have_one_winner,
    lookups_keys_health_metrics_and_errors,
    limits_and_cors,
);
