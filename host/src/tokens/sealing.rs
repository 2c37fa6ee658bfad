//! Private keys at rest in the database: sealed with AES-256-GCM under `key_secrets`.
//!
//! The first secret seals, every secret opens, so the secret itself can be rotated: put the
//! new one first, restart the replicas (they re-seal every key under it), then drop the old.
//! Each secret's key is derived with HKDF-SHA256; a sealed text names the secret that sealed
//! it by a short digest, and the key's `kid` is bound in as associated data, so a sealed key
//! copied onto another row does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::KeyError;

/// Shorter secrets could be guessed offline from a database dump.
pub const MIN_SECRET_CHARS: usize = 32;

const FORMAT: &str = "v1";
const HKDF_SALT: &[u8] = b"auth-host key_secrets v1";

struct SealingKey {
    id: String,
    key: LessSafeKey,
}

/// The keys derived from `key_secrets`, first one sealing.
pub struct KeySecrets {
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for KeySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeySecrets").field("ids", &ids).finish()
    }
}

impl KeySecrets {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Result<KeySecrets, KeyError> {
        let mut keys = Vec::new();
        for (i, secret) in secrets.into_iter().enumerate() {
            if secret.chars().count() < MIN_SECRET_CHARS {
                return Err(KeyError::Invalid(format!(
                    "key_secrets[{i}]: at least {MIN_SECRET_CHARS} characters expected"
                )));
            }
            let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(secret.as_bytes());
            let derived = prk
                .expand(&[b"seal private keys"], &AES_256_GCM)
                .map_err(|_| KeyError::Invalid("cannot derive a sealing key".into()))?;
            let id = crate::crypto::sha256_hex(&[HKDF_SALT, secret.as_bytes()].concat())[..16]
                .to_owned();
            keys.push(SealingKey {
                id,
                key: LessSafeKey::new(UnboundKey::from(derived)),
            });
        }
        if keys.is_empty() {
            return Err(KeyError::Invalid("key_secrets: no secret given".into()));
        }
        Ok(KeySecrets { keys })
    }

    /// `plain` sealed under the first secret, bound to `kid`.
    pub fn seal(&self, kid: &str, plain: &[u8]) -> Result<String, KeyError> {
        let sealing = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| KeyError::Invalid("no random numbers for a nonce".into()))?;
        let mut sealed = plain.to_vec();
        sealing
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KeyError::Invalid("cannot seal the private key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{FORMAT}.{}.{}",
            sealing.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens a sealed text of the key `kid`.
    pub fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let failed = |why: &str| KeyError::Invalid(format!("signing key {kid}: {why}"));
        let mut parts = sealed.splitn(3, '.');
        let (Some(FORMAT), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(failed("not a sealed key of this version"));
        };
        let sealing = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            failed(&format!(
                "sealed under a secret not in key_secrets (secret id {id})"
            ))
        })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| failed("sealed text is not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(failed("sealed text too short"));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed("bad nonce"))?;
        let mut rest = rest.to_vec();
        let plain = sealing
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut rest)
            .map_err(|_| failed("does not open (altered, or another key's)"))?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` was sealed under another secret than the first one.
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.keys[0].id.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OLD: &str = "an old secret of at least thirty-two characters";
    const NEW: &str = "a new secret, also at least thirty-two characters";

    #[test]
    fn sealed_keys_open_under_any_listed_secret_and_only_for_their_kid() {
        let old = KeySecrets::new([OLD]).unwrap();
        let sealed = old.seal("kid-1", b"private").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(old.open("kid-1", &sealed).unwrap(), b"private");
        assert!(old.open("kid-2", &sealed).is_err(), "bound to its kid");

        let rotated = KeySecrets::new([NEW, OLD]).unwrap();
        assert_eq!(rotated.open("kid-1", &sealed).unwrap(), b"private");
        assert!(rotated.needs_resealing(&sealed));
        let resealed = rotated.seal("kid-1", b"private").unwrap();
        assert!(!rotated.needs_resealing(&resealed));

        let error = KeySecrets::new([NEW])
            .unwrap()
            .open("kid-1", &sealed)
            .unwrap_err();
        assert!(error.to_string().contains("not in key_secrets"), "{error}");

        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(old.open("kid-1", &tampered).is_err());
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(KeySecrets::new(["short"]).is_err());
        assert!(KeySecrets::new(std::iter::empty()).is_err());
    }
}
