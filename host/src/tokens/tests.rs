//! Tokens: round trips, pinned algorithms, refusals, key files, rotation.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::clock::unix_now as now;
use keys::PRIVATE_KEY_FILE;

fn service() -> TokenService {
    let dir = tempfile::tempdir().unwrap();
    let (keys, created) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    assert!(created);
    TokenService::new(keys, Duration::from_secs(3600), Duration::from_secs(600))
}

fn forge(header: &str, claims: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn client_tokens_round_trip_and_carry_a_kid() {
    let tokens = service();
    let (token, claims) = tokens.issue_client_token("u1").unwrap();
    assert_eq!(tokens.verify_client_token(&token).unwrap(), claims);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(tokens.keys().kid()));
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(claims.jti.is_some());
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let tokens = service();
    let exp = now() + 600;
    let claims = format!(r#"{{"userid":"u1","iat":1,"exp":{exp}}}"#);
    let none = forge(r#"{"alg":"none","typ":"JWT"}"#, &claims, b"");
    assert!(tokens.verify_client_token(&none).is_err());
    let kid = tokens.keys().kid().to_owned();
    let hmac = jsonwebtoken::encode(
        &Header {
            kid: Some(kid),
            ..Header::new(Algorithm::HS256)
        },
        &serde_json::json!({"userid": "u1", "iat": 1, "exp": exp}),
        &EncodingKey::from_secret(tokens.keys().public_pem().as_bytes()),
    )
    .unwrap();
    assert_eq!(
        tokens.verify_client_token(&hmac),
        Err(TokenError::Algorithm)
    );
}

#[test]
fn tampered_expired_and_unknown_key_tokens_are_refused() {
    let tokens = service();
    let (token, _) = tokens.issue_client_token("u1").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let other_claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"userid":"admin","iat":1,"exp":{}}}"#,
        now() + 600
    ));
    let tampered = format!("{}.{other_claims}.{}", parts[0], parts[2]);
    assert!(matches!(
        tokens.verify_client_token(&tampered),
        Err(TokenError::Invalid(_))
    ));

    let expired = tokens
        .keys()
        .sign(
            TokenKind::Client,
            &ClientClaims {
                userid: "u1".into(),
                iat: 1,
                exp: now() - 120,
                jti: None,
                legacy: false,
            },
        )
        .unwrap();
    assert_eq!(
        tokens.verify_client_token(&expired),
        Err(TokenError::Expired)
    );

    let other = service();
    let (foreign, _) = other.issue_client_token("u1").unwrap();
    assert_eq!(
        tokens.verify_client_token(&foreign),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        tokens.verify_client_token("garbage"),
        Err(TokenError::Malformed)
    );
}

#[test]
fn a_key_in_the_data_directory_is_kept_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, created) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    assert!(created);
    let (second, created) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    assert!(!created);
    assert_eq!(first.kid(), second.kid());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(PRIVATE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn previous_public_keys_still_verify_during_a_rotation() {
    let old = service();
    let (old_token, _) = old.issue_client_token("u1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) =
        KeySet::from_data_dir(dir.path(), &[old.keys().public_pem().to_owned()]).unwrap();
    let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
    assert_eq!(tokens.verify_client_token(&old_token).unwrap().userid, "u1");
    assert_eq!(tokens.keys().jwks().keys.len(), 2);
}

#[test]
fn a_public_key_of_another_pair_is_refused_at_load() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    KeySet::from_data_dir(a.path(), &[]).unwrap();
    let (other, _) = KeySet::from_data_dir(b.path(), &[]).unwrap();
    let private = std::fs::read_to_string(a.path().join(PRIVATE_KEY_FILE)).unwrap();
    let error = KeySet::from_pem(&private, other.public_pem(), &[]).unwrap_err();
    assert_eq!(
        error,
        KeyError::Invalid("public_key does not belong to private_key".into())
    );
}

#[test]
fn pkcs1_and_pkcs8_private_keys_from_the_environment_both_work() {
    let openssl = |args: &[&str], input: Option<&[u8]>| {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl is installed");
        if let Some(input) = input {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let pkcs1 = openssl(&["genrsa", "-traditional", "2048"], None);
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt"], Some(pkcs1.as_bytes()));
    let public = openssl(&["rsa", "-pubout"], Some(pkcs1.as_bytes()));
    for private in [&pkcs1, &pkcs8] {
        let keys = KeySet::from_pem(private, &public, &[]).unwrap();
        let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
        let (token, _) = tokens.issue_client_token("u1").unwrap();
        assert_eq!(tokens.verify_client_token(&token).unwrap().userid, "u1");
    }
}

#[test]
fn client_tokens_can_use_es256_or_eddsa_while_permission_tokens_stay_rs256() {
    for algorithm in [TokenAlgorithm::ES256, TokenAlgorithm::EdDSA] {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
        let keys = keys
            .with_algorithm(TokenKind::Client, algorithm, None, dir.path())
            .unwrap();
        let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
        let (token, _) = tokens.issue_client_token("u1").unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm.jwt());
        assert_ne!(header.kid.as_deref(), Some(tokens.keys().kid()));
        assert_eq!(tokens.verify_client_token(&token).unwrap().userid, "u1");
        let permission = tokens
            .issue_permission_token("u1", "s", &Permissions::new())
            .unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&permission).unwrap().alg,
            Algorithm::RS256
        );
        assert_eq!(tokens.keys().jwks().keys.len(), 2);
        // The same key pair is kept for the next start.
        let (again, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
        let again = again
            .with_algorithm(TokenKind::Client, algorithm, None, dir.path())
            .unwrap();
        let again = TokenService::new(again, Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(again.verify_client_token(&token).unwrap().userid, "u1");
        // A token naming this key's kid but another algorithm is refused.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_header = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": "RS256", "kid": header.kid}).to_string());
        let forged = format!("{forged_header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            tokens.verify_client_token(&forged),
            Err(TokenError::Algorithm)
        );
    }
}

#[test]
fn permission_tokens_can_use_es256_or_eddsa_under_their_own_kid() {
    for algorithm in [TokenAlgorithm::ES256, TokenAlgorithm::EdDSA] {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
        let keys = keys
            .with_algorithm(TokenKind::Permission, algorithm, None, dir.path())
            .unwrap();
        let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
        let permissions: Permissions =
            serde_json::from_value(serde_json::json!({"read": true})).unwrap();
        let token = tokens
            .issue_permission_token("u1", "wiki", &permissions)
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm.jwt());
        let kid = header.kid.clone().unwrap();
        assert_ne!(kid, tokens.keys().kid());
        assert_eq!(kid, tokens.keys().signing_kid(TokenKind::Permission));
        // Published in the JWKS under that kid, with its algorithm.
        let jwks = tokens.keys().jwks();
        let published = jwks.find(&kid).unwrap();
        assert_eq!(
            published.common.key_algorithm.map(|a| format!("{a:?}")),
            Some(format!("{:?}", algorithm.jwt()))
        );
        let claims = tokens.verify_permission_token(&token).unwrap();
        assert_eq!(
            (claims.userid.as_str(), claims.service.as_str()),
            ("u1", "wiki")
        );
        // Client tokens keep the RS256 key; neither is taken for the other.
        let (client, _) = tokens.issue_client_token("u1").unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&client).unwrap().alg,
            Algorithm::RS256
        );
        assert!(tokens.verify_client_token(&token).is_err());
        assert_eq!(
            tokens.verify_permission_token(&client),
            Err(TokenError::WrongKind)
        );
        // The key is kept apart from a client-token key of the same algorithm.
        let file = dir.path().join(algorithm.key_file(TokenKind::Permission));
        assert!(file.is_file(), "{}", file.display());
        assert!(
            !dir.path()
                .join(algorithm.key_file(TokenKind::Client))
                .exists()
        );
        // Its kid with RS256 in the header is refused.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_header =
            URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": "RS256", "kid": kid}).to_string());
        let forged = format!("{forged_header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            tokens.verify_permission_token(&forged),
            Err(TokenError::Algorithm)
        );
    }
}

/// Signs `claims` with `tokens`' RS256 key (`private_pem`), under the header `typ`.
fn sign_rs256(
    tokens: &TokenService,
    private_pem: &[u8],
    typ: Option<&str>,
    claims: serde_json::Value,
) -> String {
    let header = Header {
        kid: Some(tokens.keys().kid().to_owned()),
        typ: typ.map(str::to_owned),
        ..Header::new(Algorithm::RS256)
    };
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(private_pem).unwrap(),
    )
    .unwrap()
}

#[test]
fn only_client_tokens_are_client_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
    let pem = std::fs::read(dir.path().join(PRIVATE_KEY_FILE)).unwrap();
    let signed_as = |typ, claims| sign_rs256(&tokens, &pem, typ, claims);
    let exp = now() + 600;
    let (client, _) = tokens.issue_client_token("u1").unwrap();
    let permission = tokens
        .issue_permission_token("u1", "s", &Permissions::new())
        .unwrap();
    let cases: Vec<(&str, String, Result<(), TokenError>)> = vec![
        ("a client token", client.clone(), Ok(())),
        (
            "a permission token",
            permission.clone(),
            Err(TokenError::WrongKind),
        ),
        (
            "a client token signed before explicit typing",
            signed_as(
                Some("JWT"),
                serde_json::json!({"userid": "u1", "iat": 1, "exp": exp, "jti": "j"}),
            ),
            Ok(()),
        ),
        (
            "an old client token: userid and exp, no typ",
            signed_as(None, serde_json::json!({"userid": "u1", "exp": exp})),
            Ok(()),
        ),
        (
            "an untyped permission token",
            signed_as(
                None,
                serde_json::json!({"userid": "u1", "exp": exp, "service": "s", "permissions": {}}),
            ),
            Err(TokenError::WrongKind),
        ),
        (
            "a token with only a service claim",
            signed_as(
                Some("JWT"),
                serde_json::json!({"userid": "u1", "exp": exp, "service": "s"}),
            ),
            Err(TokenError::WrongKind),
        ),
        (
            "an OAuth state token of the old service",
            signed_as(
                None,
                serde_json::json!({"userid": "u1", "exp": exp, "next": "https://a.example/", "provider": "github"}),
            ),
            Err(TokenError::WrongKind),
        ),
        (
            "another typ",
            signed_as(
                Some("at+jwt"),
                serde_json::json!({"userid": "u1", "exp": exp}),
            ),
            Err(TokenError::WrongKind),
        ),
    ];
    for (what, token, expected) in cases {
        let verdict = tokens.verify_client_token(&token).map(|claims| {
            assert_eq!(claims.userid, "u1", "{what}");
        });
        assert_eq!(verdict, expected, "{what}");
    }
    // And the reverse: a client token is no permission token.
    assert!(tokens.verify_permission_token(&permission).is_ok());
    assert_eq!(
        tokens.verify_permission_token(&client),
        Err(TokenError::WrongKind)
    );
    let header = jsonwebtoken::decode_header(&client).unwrap();
    assert_eq!(header.typ.as_deref(), Some(CLIENT_TOKEN_TYPE));
    let header = jsonwebtoken::decode_header(&permission).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[test]
fn the_old_services_client_tokens_only_as_client_tokens_and_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    // The key is the SHA-256 of the PRIVATE_KEY text exactly as configured.
    let private_text = std::fs::read_to_string(dir.path().join(PRIVATE_KEY_FILE)).unwrap() + "\n";
    let public_pem = keys.public_pem().to_owned();
    let legacy = TokenService::new(
        keys.with_legacy_client_tokens(&private_text),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let hs256 = |secret: &[u8], kid: Option<&str>, claims: serde_json::Value| {
        let header = Header {
            kid: kid.map(str::to_owned),
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let key = crate::crypto::sha256(private_text.as_bytes());
    let exp = now() + 600;
    let old = hs256(&key, None, serde_json::json!({"userid": "u1", "exp": exp}));
    let claims = legacy.verify_client_token(&old).unwrap();
    assert_eq!(
        (claims.userid.as_str(), claims.legacy, claims.jti),
        ("u1", true, None)
    );
    // As long as the old service's tokens lived, and no longer.
    let fortnight = hs256(
        &key,
        None,
        serde_json::json!({"userid": "u1", "exp": now() + 14 * 24 * 3600}),
    );
    assert!(legacy.verify_client_token(&fortnight).is_ok());
    for (what, token, expected) in [
        (
            "expired",
            hs256(
                &key,
                None,
                serde_json::json!({"userid": "u1", "exp": now() - 120}),
            ),
            TokenError::Expired,
        ),
        (
            "an OAuth state token",
            hs256(
                &key,
                None,
                serde_json::json!({"next": "https://a.example/", "provider": "github", "exp": exp}),
            ),
            TokenError::WrongKind,
        ),
        (
            "a client token with more claims",
            hs256(
                &key,
                None,
                serde_json::json!({"userid": "u1", "exp": exp, "iat": 1}),
            ),
            TokenError::WrongKind,
        ),
        (
            "a permission-shaped token",
            hs256(
                &key,
                None,
                serde_json::json!({"userid": "u1", "exp": exp, "service": "s", "permissions": {}}),
            ),
            TokenError::WrongKind,
        ),
        (
            "keyed with the text without its newline",
            hs256(
                &crate::crypto::sha256(private_text.trim_end().as_bytes()),
                None,
                serde_json::json!({"userid": "u1", "exp": exp}),
            ),
            TokenError::Invalid("InvalidSignature".into()),
        ),
        (
            "keyed with the public PEM",
            hs256(
                public_pem.as_bytes(),
                None,
                serde_json::json!({"userid": "u1", "exp": exp}),
            ),
            TokenError::Invalid("InvalidSignature".into()),
        ),
        (
            "expiring far beyond the old service's 14 days",
            hs256(
                &key,
                None,
                serde_json::json!({"userid": "u1", "exp": u64::MAX}),
            ),
            TokenError::Invalid(
                "an old-service token expiring later than that service's tokens lived".into(),
            ),
        ),
        (
            "expiring in 15 days",
            hs256(
                &key,
                None,
                serde_json::json!({"userid": "u1", "exp": now() + 15 * 24 * 3600}),
            ),
            TokenError::Invalid(
                "an old-service token expiring later than that service's tokens lived".into(),
            ),
        ),
        (
            "with a kid",
            hs256(
                &key,
                Some(legacy.keys().kid()),
                serde_json::json!({"userid": "u1", "exp": exp}),
            ),
            TokenError::Algorithm,
        ),
    ] {
        assert_eq!(legacy.verify_client_token(&token), Err(expected), "{what}");
    }
    // Never a permission token, and refused when the setting is off.
    assert!(legacy.verify_permission_token(&old).is_err());
    let (plain, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    let plain = TokenService::new(plain, Duration::from_secs(60), Duration::from_secs(60));
    assert_eq!(plain.verify_client_token(&old), Err(TokenError::Algorithm));
}

mod properties;

#[test]
fn permission_tokens_are_handed_out_again_only_for_the_same_answer_within_the_window() {
    let permissions = |role: &str| -> auth_host_plugin_api::Permissions {
        match serde_json::json!({"role": role}) {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(600))
        .with_permission_token_reuse(Duration::from_secs(2));
    let first = tokens
        .issue_permission_token("u1", "wiki", &permissions("reader"))
        .unwrap();
    // Same user, service and answer: the same token (same iat and exp).
    let again = tokens
        .issue_permission_token("u1", "wiki", &permissions("reader"))
        .unwrap();
    assert_eq!(first, again);
    // Another answer, another user or another service: signed anew.
    for (user, service, role) in [
        ("u1", "wiki", "editor"),
        ("u2", "wiki", "reader"),
        ("u1", "blog", "reader"),
    ] {
        let other = tokens
            .issue_permission_token(user, service, &permissions(role))
            .unwrap();
        assert_ne!(other, first, "{user} {service} {role}");
        assert_eq!(
            tokens.verify_permission_token(&other).unwrap().permissions,
            permissions(role)
        );
    }
    // The permissions changed: the next token says the new ones, not the remembered.
    let changed = tokens
        .issue_permission_token("u1", "wiki", &permissions("editor"))
        .unwrap();
    assert_eq!(
        tokens
            .verify_permission_token(&changed)
            .unwrap()
            .permissions,
        permissions("editor")
    );
    // Once the window has passed: a new one.
    let before = tokens
        .issue_permission_token("u1", "wiki", &permissions("reader"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let after = tokens
        .issue_permission_token("u1", "wiki", &permissions("reader"))
        .unwrap();
    assert_ne!(before, after);
    assert!(
        tokens.verify_permission_token(&after).unwrap().iat
            > tokens.verify_permission_token(&before).unwrap().iat
    );
}

#[test]
fn a_reused_permission_token_keeps_at_least_half_its_lifetime() {
    let reader = match serde_json::json!({"role": "reader"}) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
    // A window longer than half the lifetime (2 s of 4 s) is cut to half.
    let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(4))
        .with_permission_token_reuse(Duration::from_secs(3600));
    let first = tokens
        .issue_permission_token("u1", "wiki", &reader)
        .unwrap();
    assert_eq!(
        first,
        tokens
            .issue_permission_token("u1", "wiki", &reader)
            .unwrap()
    );
    std::thread::sleep(Duration::from_millis(2100));
    let later = tokens
        .issue_permission_token("u1", "wiki", &reader)
        .unwrap();
    assert_ne!(first, later, "not handed out past half its lifetime");
    let claims = tokens.verify_permission_token(&later).unwrap();
    assert_eq!(claims.exp - claims.iat, 4);
}
