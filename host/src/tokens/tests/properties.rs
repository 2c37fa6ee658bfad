//! Property tests: no text, segment or bit flip is a token; the client-token rule holds
//! for any claims.

use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

/// One key pair for every case (RSA generation is slow), with its private PEM.
fn fixture() -> &'static (TokenService, Vec<u8>, String) {
    static FIXTURE: OnceLock<(TokenService, Vec<u8>, String)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = KeySet::from_data_dir(dir.path(), &[]).unwrap();
        let pem = std::fs::read(dir.path().join(PRIVATE_KEY_FILE)).unwrap();
        let tokens = TokenService::new(keys, Duration::from_secs(600), Duration::from_secs(600));
        let (token, _) = tokens.issue_client_token("u1").unwrap();
        (tokens, pem, token)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_text_is_never_a_token(text in "\\PC{0,400}") {
        let (tokens, _, _) = fixture();
        prop_assert!(tokens.verify_client_token(&text).is_err());
        prop_assert!(tokens.verify_permission_token(&text).is_err());
    }

    #[test]
    fn arbitrary_segments_are_never_a_token(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        claims in proptest::collection::vec(any::<u8>(), 0..200),
        signature in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let (tokens, _, _) = fixture();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        );
        prop_assert!(tokens.verify_client_token(&token).is_err());
    }

    /// Any change to a valid token's text makes it invalid.
    #[test]
    fn a_changed_token_never_verifies(at in any::<prop::sample::Index>(), by in 1u8..=255) {
        let (tokens, _, token) = fixture();
        let mut bytes = token.as_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] = bytes[i].wrapping_add(by);
        if let Ok(changed) = String::from_utf8(bytes)
            && changed != *token
            && tokens.verify_client_token(&changed).is_ok()
        {
            // base64url's last character may carry unused bits: only the same bytes
            // may verify.
            let decode = |t: &str| t.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).ok()).collect::<Vec<_>>();
            prop_assert_eq!(decode(&changed), decode(token));
        }
    }

    /// Signed claims are a client token exactly when the rule says so.
    #[test]
    fn the_client_token_rule_holds_for_any_claims(
        typ in proptest::option::of(proptest::sample::select(vec!["JWT", CLIENT_TOKEN_TYPE, "at+jwt", ""])),
        userid in proptest::option::of("[a-f0-9]{1,32}"),
        extra in proptest::sample::subsequence(vec!["service", "permissions", "next", "provider", "jti", "name"], 0..=3),
    ) {
        let (tokens, pem, _) = fixture();
        let mut claims = serde_json::json!({"exp": now() + 600});
        if let Some(userid) = &userid {
            claims["userid"] = userid.clone().into();
        }
        for key in &extra {
            claims[*key] = "x".into();
        }
        let token = sign_rs256(tokens, pem, typ, claims);
        let foreign = extra.iter().any(|k| ["service", "permissions", "next", "provider"].contains(k));
        let kind_ok = match typ {
            Some(CLIENT_TOKEN_TYPE) => true,
            None | Some("JWT") => !foreign,
            _ => false,
        };
        let verdict = tokens.verify_client_token(&token);
        prop_assert_eq!(verdict.is_ok(), kind_ok && userid.is_some(), "{:?}", verdict);
        if !kind_ok {
            prop_assert_eq!(verdict, Err(TokenError::WrongKind));
        }
    }
}
