//! Signing JWS (compact) with a private key parsed once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::Serialize;

use super::{KeyError, TokenAlgorithm, TokenKind};

enum SigningKey {
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

/// Signs JWS (compact). jsonwebtoken parses the private key again for every signature;
/// this parses it once, and encodes the (constant) header once.
pub(super) struct Signer {
    key: SigningKey,
    kid: String,
    /// base64url of the JOSE header of client tokens, then of permission tokens, each
    /// with its `.`.
    headers: [String; 2],
    rng: aws_lc_rs::rand::SystemRandom,
}

impl Signer {
    pub(super) fn new(
        private_pem: &str,
        kid: &str,
        algorithm: TokenAlgorithm,
    ) -> Result<Signer, KeyError> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
        };
        let invalid = |why: String| KeyError::Invalid(format!("private_key: {why}"));
        let parsed = pem::parse(private_pem).map_err(|e| invalid(format!("not PEM ({e})")))?;
        let der = parsed.contents();
        let key = match (algorithm, parsed.tag()) {
            (TokenAlgorithm::RS256, "RSA PRIVATE KEY") => {
                RsaKeyPair::from_der(der).map(SigningKey::Rsa)
            }
            (TokenAlgorithm::RS256, "PRIVATE KEY") => {
                RsaKeyPair::from_pkcs8(der).map(SigningKey::Rsa)
            }
            (TokenAlgorithm::ES256, "PRIVATE KEY") => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map(SigningKey::Ecdsa)
            }
            (TokenAlgorithm::EdDSA, "PRIVATE KEY") => {
                Ed25519KeyPair::from_pkcs8(der).map(SigningKey::Ed25519)
            }
            (algorithm, tag) => {
                return Err(invalid(format!(
                    "a PEM `{tag}` is not a {algorithm:?} private key"
                )));
            }
        }
        .map_err(|e| invalid(format!("not a {algorithm:?} private key ({e})")))?;
        let header = |kind: TokenKind| -> Result<String, KeyError> {
            let header = Header {
                kid: Some(kid.to_owned()),
                typ: Some(kind.typ().to_owned()),
                ..Header::new(algorithm.jwt())
            };
            let header = serde_json::to_vec(&header).map_err(|e| invalid(e.to_string()))?;
            Ok(format!("{}.", URL_SAFE_NO_PAD.encode(header)))
        };
        Ok(Signer {
            key,
            kid: kid.to_owned(),
            headers: [header(TokenKind::Client)?, header(TokenKind::Permission)?],
            rng: aws_lc_rs::rand::SystemRandom::new(),
        })
    }

    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn sign<T: Serialize>(&self, kind: TokenKind, claims: &T) -> Result<String, String> {
        let header = match kind {
            TokenKind::Client => &self.headers[0],
            TokenKind::Permission => &self.headers[1],
        };
        let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let mut token = String::with_capacity(header.len() + claims.len() * 2 + 350);
        token.push_str(header);
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let failed = |_| "signing failed".to_owned();
        let signature: Vec<u8> = match &self.key {
            SigningKey::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    token.as_bytes(),
                    &mut signature,
                )
                .map_err(failed)?;
                signature
            }
            SigningKey::Ecdsa(key) => key
                .sign(&self.rng, token.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningKey::Ed25519(key) => key.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}
