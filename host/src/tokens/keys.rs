//! Keys: the signing key pair (from `PRIVATE_KEY`/`PUBLIC_KEY`, the database or the data
//! directory), optional ES256/EdDSA keys for client tokens and for permission tokens, older
//! public keys still accepted, and the JWKS that publishes them.
//!
//! Verification pins the algorithm: a token is checked only against the key named by its
//! `kid` (or, for tokens the old service issued without one, the current key) and only with
//! that key's algorithm, so `alg: none`, HMAC tokens signed with the public key and tokens of
//! unknown keys are all refused.

use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;

use super::signing::Signer;
use super::{TokenError, TokenKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read or write the key in the data directory: {0}")]
    Io(String),
}

/// The algorithms tokens may be signed with (`client_token_algorithm`,
/// `permission_token_algorithm`). RS256 is the main key pair's, the one `/auth/public-key`
/// serves to services that pin a PEM; the others are published in the JWKS only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum TokenAlgorithm {
    #[default]
    RS256,
    /// ECDSA P-256: about 10× faster to sign than RSA-2048, slower to verify.
    ES256,
    /// Ed25519: about 5× faster to sign than RSA-2048.
    EdDSA,
}

impl TokenAlgorithm {
    pub(super) fn jwt(self) -> Algorithm {
        match self {
            TokenAlgorithm::RS256 => Algorithm::RS256,
            TokenAlgorithm::ES256 => Algorithm::ES256,
            TokenAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The file its key pair for tokens of `kind` is kept in, in the data directory.
    pub(super) fn key_file(self, kind: TokenKind) -> &'static str {
        match (self, kind) {
            (TokenAlgorithm::RS256, _) => PRIVATE_KEY_FILE,
            (TokenAlgorithm::ES256, TokenKind::Client) => "client-token-key-es256.pem",
            (TokenAlgorithm::EdDSA, TokenKind::Client) => "client-token-key-ed25519.pem",
            (TokenAlgorithm::ES256, TokenKind::Permission) => "permission-token-key-es256.pem",
            (TokenAlgorithm::EdDSA, TokenKind::Permission) => "permission-token-key-ed25519.pem",
        }
    }

    /// A new private key, PKCS#8 DER.
    fn generate(self) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Invalid(format!("cannot generate a {self:?} key"));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok(match self {
            TokenAlgorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                pair.as_der().map_err(failed)?.as_ref().to_vec()
            }
            TokenAlgorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(failed)?
            .as_ref()
            .to_vec(),
            TokenAlgorithm::EdDSA => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        })
    }
}

/// Clock difference tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 30;

pub(super) const PRIVATE_KEY_FILE: &str = "signing-key.pem";

/// A public key tokens may be verified with.
struct VerifyingKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
    jwk: Jwk,
}

/// The signing key pair, plus older public keys still accepted during a rotation.
pub struct KeySet {
    kid: String,
    signer: Signer,
    /// The client-token key, when client tokens use another algorithm than RS256.
    client_signer: Option<Signer>,
    /// The permission-token key, when permission tokens use another algorithm than RS256.
    permission_signer: Option<Signer>,
    public_pem: String,
    verifying: Vec<VerifyingKey>,
    /// The old service's client-token key, while its tokens are still accepted.
    legacy: Option<DecodingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// From PEM texts (`PRIVATE_KEY` / `PUBLIC_KEY`), checking that they belong together.
    /// `previous` are public keys of earlier key pairs, still accepted for verification.
    pub fn from_pem(
        private_pem: &str,
        public_pem: &str,
        previous: &[String],
    ) -> Result<KeySet, KeyError> {
        let current = verifying_key(public_pem, "public_key")?;
        let keys = KeySet {
            kid: current.kid.clone(),
            signer: Signer::new(private_pem, &current.kid, TokenAlgorithm::RS256)?,
            client_signer: None,
            permission_signer: None,
            public_pem: public_pem.trim().to_owned() + "\n",
            verifying: vec![current],
            legacy: None,
        }
        .with_previous(previous)?;
        // A signature made with the private key must verify with the public one.
        let probe = keys
            .sign(
                TokenKind::Permission,
                &serde_json::json!({"probe": true, "exp": u64::MAX / 2}),
            )
            .map_err(|e| KeyError::Invalid(format!("private_key: cannot sign ({e})")))?;
        keys.verify::<serde_json::Value>(&probe, false)
            .map_err(|_| KeyError::Invalid("public_key does not belong to private_key".into()))?;
        Ok(keys)
    }

    /// The key pair kept in the data directory, made there on first start. Also says
    /// whether it was just made.
    pub fn from_data_dir(dir: &Path, previous: &[String]) -> Result<(KeySet, bool), KeyError> {
        let (private_pem, created) = kept_key(dir, TokenAlgorithm::RS256, TokenKind::Permission)?;
        let public_pem = rsa_public_pem(&private_pem, &dir.join(PRIVATE_KEY_FILE).display())?;
        Ok((
            KeySet::from_pem(&private_pem, &public_pem, previous)?,
            created,
        ))
    }

    /// Signs tokens of `kind` with `algorithm`, using `private_pem` (PKCS#8), or the key
    /// pair kept in `data_dir` (made on first use) when none is given. RS256 keeps the main
    /// key.
    pub fn with_algorithm(
        mut self,
        kind: TokenKind,
        algorithm: TokenAlgorithm,
        private_pem: Option<&str>,
        data_dir: &Path,
    ) -> Result<KeySet, KeyError> {
        if algorithm == TokenAlgorithm::RS256 {
            return Ok(self);
        }
        let pem_text = match private_pem {
            Some(text) => text.to_owned(),
            None => kept_key(data_dir, algorithm, kind)?.0,
        };
        let setting = match kind {
            TokenKind::Client => "client_token_private_key",
            TokenKind::Permission => "permission_token_private_key",
        };
        let der = pem_contents(&pem_text, &setting)?;
        let invalid = |e: String| KeyError::Invalid(format!("{setting}: {e}"));
        let mut jwk = match algorithm {
            TokenAlgorithm::ES256 => Jwk::from_encoding_key(
                &jsonwebtoken::EncodingKey::from_ec_der(&der),
                Algorithm::ES256,
            )
            .map_err(|e| invalid(e.to_string()))?,
            // jsonwebtoken reads only PKCS#8 v1 Ed25519 keys: build the JWK from the public
            // key, so that v2 keys work too.
            _ => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|e| invalid(e.to_string()))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                serde_json::from_value(
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"}),
                )
                .map_err(|e| invalid(e.to_string()))?
            }
        };
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let signer = Some(Signer::new(&pem_text, &kid, algorithm)?);
        match kind {
            TokenKind::Client => self.client_signer = signer,
            TokenKind::Permission => self.permission_signer = signer,
        }
        // Both kinds may be given the same key: it is published once.
        if self.verifying.iter().all(|k| k.kid != kid) {
            self.verifying.push(VerifyingKey {
                kid,
                algorithm: algorithm.jwt(),
                key,
                jwk,
            });
        }
        Ok(self)
    }

    /// Also accepts the old service's client tokens: HS256 under the SHA-256 of the
    /// `PRIVATE_KEY` text exactly as configured (as PyJWT was handed it).
    pub fn with_legacy_client_tokens(mut self, private_key_text: &str) -> KeySet {
        let secret = crate::crypto::sha256(private_key_text.as_bytes());
        self.legacy = Some(DecodingKey::from_secret(&secret));
        self
    }

    fn with_previous(mut self, previous: &[String]) -> Result<KeySet, KeyError> {
        for (i, pem_text) in previous.iter().enumerate() {
            let key = verifying_key(pem_text, &format!("previous_public_keys[{i}]"))?;
            if self.verifying.iter().all(|k| k.kid != key.kid) {
                self.verifying.push(key);
            }
        }
        Ok(self)
    }

    /// The current public key, PEM (what `/auth/public-key` serves).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The `kid` of the main (RS256) key pair.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `kid` tokens of `kind` are signed under.
    pub fn signing_kid(&self, kind: TokenKind) -> &str {
        self.signer_for(kind).kid()
    }

    fn signer_for(&self, kind: TokenKind) -> &Signer {
        let own = match kind {
            TokenKind::Client => &self.client_signer,
            TokenKind::Permission => &self.permission_signer,
        };
        own.as_ref().unwrap_or(&self.signer)
    }

    /// Every public key tokens verify with, as a JWK set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.verifying.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Signs a token of `kind` with that kind's key (the RS256 key pair unless another
    /// algorithm was chosen for it).
    pub(super) fn sign<T: Serialize>(&self, kind: TokenKind, claims: &T) -> Result<String, String> {
        let signer = self.signer_for(kind);
        let span = tracing::debug_span!("sign token", token.kind = ?kind, token.kid = signer.kid());
        let _signing = span.enter();
        signer.sign(kind, claims)
    }

    /// The header and claims of a token whose signature, key and expiry check out.
    /// The header and claims of a token whose signature, key and expiry check out, and
    /// which key that was. The old service's HS256 key is tried only when `legacy` is asked
    /// for (client tokens), for tokens without `kid`, and only with HS256.
    pub(super) fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        legacy: bool,
    ) -> Result<(SignedBy, jsonwebtoken::TokenData<T>), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if legacy
            && header.kid.is_none()
            && header.alg == Algorithm::HS256
            && let Some(key) = &self.legacy
        {
            return decode(token, key, Algorithm::HS256).map(|data| (SignedBy::Legacy, data));
        }
        let key = match &header.kid {
            Some(kid) => self
                .verifying
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or(TokenError::UnknownKey)?,
            // Tokens signed without `kid` verify with the current key.
            None => self.verifying.first().ok_or(TokenError::UnknownKey)?,
        };
        if header.alg != key.algorithm {
            return Err(TokenError::Algorithm);
        }
        decode(token, &key.key, key.algorithm).map(|data| (SignedBy::Current, data))
    }
}

/// Which key a token was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignedBy {
    /// One of auth-host's keys (the JWKS).
    Current,
    /// The old service's client-token key (HS256 with the SHA-256 of `PRIVATE_KEY`).
    Legacy,
}

fn decode<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
) -> Result<jsonwebtoken::TokenData<T>, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.validate_aud = false;
    validation.leeway = LEEWAY_SECS;
    jsonwebtoken::decode::<T>(token, key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
        other => TokenError::Invalid(format!("{other:?}")),
    })
}

fn verifying_key(pem_text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let key = DecodingKey::from_rsa_pem(pem_text.as_bytes())
        .map_err(|e| KeyError::Invalid(format!("{what}: not an RSA public key in PEM ({e})")))?;
    let mut jwk = Jwk::from_decoding_key(&key, Some(Algorithm::RS256))
        .map_err(|e| KeyError::Invalid(format!("{what}: {e}")))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyError::Invalid(format!("{what}: {e}")))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    Ok(VerifyingKey {
        kid,
        algorithm: Algorithm::RS256,
        key,
        jwk,
    })
}

/// A new RSA-2048 key pair: private key (PKCS#8 PEM), public key (PEM) and its `kid`.
pub fn new_rsa_key_pair() -> Result<(String, String, String), KeyError> {
    let private_pem = pem_text("PRIVATE KEY", TokenAlgorithm::RS256.generate()?);
    let public_pem = rsa_public_pem(&private_pem, &"a new key")?;
    let kid = verifying_key(&public_pem, "a new key")?.kid;
    Ok((private_pem, public_pem, kid))
}

/// The `kid` of an RSA public key (PEM): its RFC 7638 thumbprint.
pub fn rsa_kid(public_pem: &str) -> Result<String, KeyError> {
    Ok(verifying_key(public_pem, "public key")?.kid)
}

/// The `kid` of the public half of an RSA private key (PKCS#8 PEM).
pub fn rsa_kid_of_private(private_pem: &str) -> Result<String, KeyError> {
    rsa_kid(&rsa_public_pem(private_pem, &"private key")?)
}

/// The public key (PEM) of an RSA private key (PKCS#8 PEM); `what` names it in errors.
fn rsa_public_pem(private_pem: &str, what: &dyn std::fmt::Display) -> Result<String, KeyError> {
    let pair = RsaKeyPair::from_pkcs8(&pem_contents(private_pem, what)?)
        .map_err(|e| KeyError::Invalid(format!("{what}: not an RSA key ({e})")))?;
    let public_der = pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Invalid("cannot encode the public key".into()))?;
    Ok(pem_text("PUBLIC KEY", public_der.as_ref().to_vec()))
}

/// The private key of `algorithm` for tokens of `kind` kept in `dir` (PEM text), made and
/// written there (mode 0600) when absent; and whether it was just made.
fn kept_key(
    dir: &Path,
    algorithm: TokenAlgorithm,
    kind: TokenKind,
) -> Result<(String, bool), KeyError> {
    let path = dir.join(algorithm.key_file(kind));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = pem_text("PRIVATE KEY", algorithm.generate()?);
            crate::private_files::write_new(&path, &text)
                .map_err(|e| KeyError::Io(e.to_string()))?;
            Ok((text, true))
        }
        Err(e) => Err(KeyError::Io(format!("{}: {e}", path.display()))),
    }
}

/// The DER inside PEM text; `what` names it in the error.
fn pem_contents(text: &str, what: &dyn std::fmt::Display) -> Result<Vec<u8>, KeyError> {
    pem::parse(text)
        .map(|parsed| parsed.contents().to_vec())
        .map_err(|e| KeyError::Invalid(format!("{what}: not PEM ({e})")))
}

/// PEM with `\n` line endings (the `pem` crate writes `\r\n` by default).
pub(super) fn pem_text(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
