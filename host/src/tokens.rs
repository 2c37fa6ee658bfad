//! Signed tokens: client tokens (what a client app holds after login) and permission
//! tokens (what a downstream service verifies offline with our public key).
//!
//! Verification pins the algorithm: a token is checked only against the key named by its
//! `kid` (or, for tokens the old service issued without one, the current key) and only with
//! that key's algorithm, so `alg: none`, HMAC tokens signed with the public key and tokens of
//! unknown keys are all refused.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use auth_host_plugin_api::Permissions;

/// Claims of a client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub userid: String,
    pub iat: u64,
    pub exp: u64,
    /// The id logout revokes. Tokens of the old service have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl ClientClaims {
    /// What a revocation is recorded under: the `jti`, or for a token without one (issued by
    /// the old service) a digest of the whole token.
    pub fn revocation_id(&self, token: &str) -> String {
        match &self.jti {
            Some(jti) => jti.clone(),
            None => {
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
                hex(&digest.as_ref()[..24])
            }
        }
    }
}

/// Claims of a permission token. No `aud` by default: downstream services verify with the
/// public key and RS256 alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionClaims {
    pub userid: String,
    pub permissions: Permissions,
    pub service: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read or write the key in the data directory: {0}")]
    Io(String),
}

/// Why a token was refused. Only logged at debug: a bad token is an ordinary event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("expired")]
    Expired,
}

/// A public key tokens may be verified with.
struct VerifyingKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
    jwk: Jwk,
}

/// The algorithms client tokens may be signed with. Permission tokens are always RS256,
/// which downstream services expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum ClientAlgorithm {
    #[default]
    RS256,
    /// ECDSA P-256: about 10× faster to sign than RSA-2048, slower to verify.
    ES256,
    /// Ed25519: about 5× faster to sign than RSA-2048.
    EdDSA,
}

impl ClientAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            ClientAlgorithm::RS256 => Algorithm::RS256,
            ClientAlgorithm::ES256 => Algorithm::ES256,
            ClientAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The file its key pair is kept in, in the data directory.
    fn key_file(self) -> &'static str {
        match self {
            ClientAlgorithm::RS256 => PRIVATE_KEY_FILE,
            ClientAlgorithm::ES256 => "client-token-key-es256.pem",
            ClientAlgorithm::EdDSA => "client-token-key-ed25519.pem",
        }
    }
}

enum SigningKey {
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

/// Signs JWS (compact). jsonwebtoken parses the private key again for every signature;
/// this parses it once, and encodes the (constant) header once.
struct Signer {
    key: SigningKey,
    /// base64url of the JOSE header, with its `.`.
    header: String,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl Signer {
    fn new(private_pem: &str, kid: &str, algorithm: ClientAlgorithm) -> Result<Signer, KeyError> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
        };
        let invalid = |why: String| KeyError::Invalid(format!("private_key: {why}"));
        let parsed = pem::parse(private_pem).map_err(|e| invalid(format!("not PEM ({e})")))?;
        let der = parsed.contents();
        let key = match (algorithm, parsed.tag()) {
            (ClientAlgorithm::RS256, "RSA PRIVATE KEY") => {
                RsaKeyPair::from_der(der).map(SigningKey::Rsa)
            }
            (ClientAlgorithm::RS256, "PRIVATE KEY") => {
                RsaKeyPair::from_pkcs8(der).map(SigningKey::Rsa)
            }
            (ClientAlgorithm::ES256, "PRIVATE KEY") => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map(SigningKey::Ecdsa)
            }
            (ClientAlgorithm::EdDSA, "PRIVATE KEY") => {
                Ed25519KeyPair::from_pkcs8(der).map(SigningKey::Ed25519)
            }
            (algorithm, tag) => {
                return Err(invalid(format!(
                    "a PEM `{tag}` is not a {algorithm:?} private key"
                )));
            }
        }
        .map_err(|e| invalid(format!("not a {algorithm:?} private key ({e})")))?;
        let header = Header {
            kid: Some(kid.to_owned()),
            ..Header::new(algorithm.jwt())
        };
        let header = serde_json::to_vec(&header).map_err(|e| invalid(e.to_string()))?;
        Ok(Signer {
            key,
            header: format!("{}.", URL_SAFE_NO_PAD.encode(header)),
            rng: aws_lc_rs::rand::SystemRandom::new(),
        })
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let mut token = String::with_capacity(self.header.len() + claims.len() * 2 + 350);
        token.push_str(&self.header);
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

/// The signing key pair, plus older public keys still accepted during a rotation.
pub struct Keys {
    kid: String,
    signer: Signer,
    /// The client-token key, when client tokens use another algorithm than RS256.
    client_signer: Option<Signer>,
    public_pem: String,
    verifying: Vec<VerifyingKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

const PRIVATE_KEY_FILE: &str = "signing-key.pem";

impl Keys {
    /// From PEM texts (`PRIVATE_KEY` / `PUBLIC_KEY`), checking that they belong together.
    /// `previous` are public keys of earlier key pairs, still accepted for verification.
    pub fn from_pem(
        private_pem: &str,
        public_pem: &str,
        previous: &[String],
    ) -> Result<Keys, KeyError> {
        let current = verifying_key(public_pem, "public_key")?;
        let keys = Keys {
            kid: current.kid.clone(),
            signer: Signer::new(private_pem, &current.kid, ClientAlgorithm::RS256)?,
            client_signer: None,
            public_pem: public_pem.trim().to_owned() + "\n",
            verifying: vec![current],
        }
        .with_previous(previous)?;
        // A signature made with the private key must verify with the public one.
        let probe = keys
            .sign(&serde_json::json!({"probe": true, "exp": u64::MAX / 2}))
            .map_err(|e| KeyError::Invalid(format!("private_key: cannot sign ({e})")))?;
        keys.verify::<serde_json::Value>(&probe)
            .map_err(|_| KeyError::Invalid("public_key does not belong to private_key".into()))?;
        Ok(keys)
    }

    /// The key pair kept in the data directory, made there on first start.
    pub fn from_data_dir(dir: &Path, previous: &[String]) -> Result<(Keys, bool), KeyError> {
        let path = dir.join(PRIVATE_KEY_FILE);
        let mut created = false;
        let private_der = match std::fs::read(&path) {
            Ok(pem_bytes) => {
                let parsed = pem::parse(&pem_bytes)
                    .map_err(|e| KeyError::Invalid(format!("{}: not PEM ({e})", path.display())))?;
                parsed.contents().to_vec()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| KeyError::Invalid("cannot generate an RSA key".into()))?;
                let der = pair
                    .as_der()
                    .map_err(|_| KeyError::Invalid("cannot encode the new key".into()))?;
                let text = pem_text("PRIVATE KEY", der.as_ref().to_vec());
                write_private(dir, &path, &text).map_err(|e| KeyError::Io(e.to_string()))?;
                created = true;
                der.as_ref().to_vec()
            }
            Err(e) => return Err(KeyError::Io(format!("{}: {e}", path.display()))),
        };
        let pair = RsaKeyPair::from_pkcs8(&private_der)
            .map_err(|e| KeyError::Invalid(format!("{}: not an RSA key ({e})", path.display())))?;
        let public_der = pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Invalid("cannot encode the public key".into()))?;
        let private_pem = pem_text("PRIVATE KEY", private_der);
        let public_pem = pem_text("PUBLIC KEY", public_der.as_ref().to_vec());
        Ok((
            Keys::from_pem(&private_pem, &public_pem, previous)?,
            created,
        ))
    }

    /// Signs client tokens with `algorithm`, using `private_pem` (PKCS#8), or the key pair
    /// kept in `data_dir` (made on first use) when none is given. RS256 keeps the main key.
    pub fn with_client_algorithm(
        mut self,
        algorithm: ClientAlgorithm,
        private_pem: Option<&str>,
        data_dir: &Path,
    ) -> Result<Keys, KeyError> {
        if algorithm == ClientAlgorithm::RS256 {
            return Ok(self);
        }
        let pem_text = match private_pem {
            Some(text) => text.to_owned(),
            None => {
                let path = data_dir.join(algorithm.key_file());
                match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let rng = aws_lc_rs::rand::SystemRandom::new();
                        let document = match algorithm {
                            ClientAlgorithm::ES256 => {
                                aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                                    &rng,
                                )
                            }
                            _ => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng),
                        }
                        .map_err(|_| KeyError::Invalid("cannot generate a key".into()))?;
                        let text = pem_text("PRIVATE KEY", document.as_ref().to_vec());
                        write_private(data_dir, &path, &text)
                            .map_err(|e| KeyError::Io(e.to_string()))?;
                        text
                    }
                    Err(e) => return Err(KeyError::Io(format!("{}: {e}", path.display()))),
                }
            }
        };
        let der = pem::parse(&pem_text)
            .map_err(|e| KeyError::Invalid(format!("client_token_private_key: not PEM ({e})")))?
            .contents()
            .to_vec();
        let invalid = |e: String| KeyError::Invalid(format!("client_token_private_key: {e}"));
        let mut jwk = match algorithm {
            ClientAlgorithm::ES256 => Jwk::from_encoding_key(
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
        self.client_signer = Some(Signer::new(&pem_text, &kid, algorithm)?);
        self.verifying.push(VerifyingKey {
            kid,
            algorithm: algorithm.jwt(),
            key,
            jwk,
        });
        Ok(self)
    }

    fn with_previous(mut self, previous: &[String]) -> Result<Keys, KeyError> {
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

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Every public key tokens verify with, as a JWK set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.verifying.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        self.signer.sign(claims)
    }

    fn sign_client<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        self.client_signer
            .as_ref()
            .unwrap_or(&self.signer)
            .sign(claims)
    }

    fn verify<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = match &header.kid {
            Some(kid) => self
                .verifying
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or(TokenError::UnknownKey)?,
            // The old service signed without `kid`; such tokens verify with the current key.
            None => self.verifying.first().ok_or(TokenError::UnknownKey)?,
        };
        if header.alg != key.algorithm {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.validate_aud = false;
        validation.leeway = 30;
        jsonwebtoken::decode::<T>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                other => TokenError::Invalid(format!("{other:?}")),
            })
    }
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

/// PEM with `\n` line endings (the `pem` crate writes `\r\n` by default).
fn pem_text(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn write_private(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Issues and verifies tokens.
#[derive(Debug)]
pub struct TokenService {
    keys: Keys,
    client_lifetime: Duration,
    permission_lifetime: Duration,
}

impl TokenService {
    pub fn new(keys: Keys, client_lifetime: Duration, permission_lifetime: Duration) -> Self {
        TokenService {
            keys,
            client_lifetime,
            permission_lifetime,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn issue_client_token(&self, userid: &str) -> Result<(String, ClientClaims), TokenError> {
        let iat = now();
        let claims = ClientClaims {
            userid: userid.to_owned(),
            iat,
            exp: iat + self.client_lifetime.as_secs(),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        let token = self
            .keys
            .sign_client(&claims)
            .map_err(TokenError::Invalid)?;
        Ok((token, claims))
    }

    pub fn verify_client_token(&self, token: &str) -> Result<ClientClaims, TokenError> {
        self.keys.verify(token)
    }

    pub fn issue_permission_token(
        &self,
        userid: &str,
        service: &str,
        permissions: &Permissions,
    ) -> Result<String, TokenError> {
        let iat = now();
        let claims = PermissionClaims {
            userid: userid.to_owned(),
            permissions: permissions.clone(),
            service: service.to_owned(),
            iat,
            exp: iat + self.permission_lifetime.as_secs(),
        };
        self.keys.sign(&claims).map_err(TokenError::Invalid)
    }

    /// For tests and tools: verifies a permission token the way downstream services do.
    pub fn verify_permission_token(&self, token: &str) -> Result<PermissionClaims, TokenError> {
        self.keys.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    fn service() -> TokenService {
        let dir = tempfile::tempdir().unwrap();
        let (keys, created) = Keys::from_data_dir(dir.path(), &[]).unwrap();
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
            .sign(&ClientClaims {
                userid: "u1".into(),
                iat: 1,
                exp: now() - 120,
                jti: None,
            })
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
        let (first, created) = Keys::from_data_dir(dir.path(), &[]).unwrap();
        assert!(created);
        let (second, created) = Keys::from_data_dir(dir.path(), &[]).unwrap();
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
            Keys::from_data_dir(dir.path(), &[old.keys().public_pem().to_owned()]).unwrap();
        let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(tokens.verify_client_token(&old_token).unwrap().userid, "u1");
        assert_eq!(tokens.keys().jwks().keys.len(), 2);
    }

    #[test]
    fn a_public_key_of_another_pair_is_refused_at_load() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        Keys::from_data_dir(a.path(), &[]).unwrap();
        let (other, _) = Keys::from_data_dir(b.path(), &[]).unwrap();
        let private = std::fs::read_to_string(a.path().join(PRIVATE_KEY_FILE)).unwrap();
        let error = Keys::from_pem(&private, other.public_pem(), &[]).unwrap_err();
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
            let keys = Keys::from_pem(private, &public, &[]).unwrap();
            let tokens = TokenService::new(keys, Duration::from_secs(60), Duration::from_secs(60));
            let (token, _) = tokens.issue_client_token("u1").unwrap();
            assert_eq!(tokens.verify_client_token(&token).unwrap().userid, "u1");
        }
    }

    #[test]
    fn client_tokens_can_use_es256_or_eddsa_while_permission_tokens_stay_rs256() {
        for algorithm in [ClientAlgorithm::ES256, ClientAlgorithm::EdDSA] {
            let dir = tempfile::tempdir().unwrap();
            let (keys, _) = Keys::from_data_dir(dir.path(), &[]).unwrap();
            let keys = keys
                .with_client_algorithm(algorithm, None, dir.path())
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
            let (again, _) = Keys::from_data_dir(dir.path(), &[]).unwrap();
            let again = again
                .with_client_algorithm(algorithm, None, dir.path())
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
}
