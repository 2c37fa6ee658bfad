//! Private keys at rest in the database: sealed with AES-256-GCM under `key_secrets`.
//!
//! The first secret seals, every secret opens, so the secret itself can be rotated: put the
//! new one first, restart the replicas (they re-seal every key under it), then drop the old.
//! Each secret's key is derived with HKDF-SHA256; a sealed text names the secret that sealed
//! it by a short digest. What the sealed key belongs to is bound in as associated data: the
//! whole row (generation, kid, algorithm, public key, validity window) since `v2`, so the
//! seal authenticates the row too — a row written by anyone without a secret does not open,
//! nor does a sealed key copied onto another row or an altered window. `v1` (bound to the
//! `kid` only) is still opened, so that rows made before are upgraded.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::KeyError;

/// Shorter secrets could be guessed offline from a database dump.
pub const MIN_SECRET_CHARS: usize = 32;

/// The sealed-text versions: what the associated data binds.
const V1_KID_ONLY: &str = "v1";
const V2_WHOLE_ROW: &str = "v2";
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

    /// `plain` sealed under the first secret, bound to `row` (see [`RowBinding`]).
    pub fn seal(&self, row: &RowBinding<'_>, plain: &[u8]) -> Result<String, KeyError> {
        let sealing = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| KeyError::Invalid("no random numbers for a nonce".into()))?;
        let mut sealed = plain.to_vec();
        sealing
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.associated_data()),
                &mut sealed,
            )
            .map_err(|_| KeyError::Invalid("cannot seal the private key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{V2_WHOLE_ROW}.{}.{}",
            sealing.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens the sealed private key of `row`: only what was sealed for exactly this row opens.
    pub fn open(&self, row: &RowBinding<'_>, sealed: &str) -> Result<Opened, KeyError> {
        let failed = |why: &str| KeyError::Invalid(format!("signing key {}: {why}", row.kid));
        let mut parts = sealed.splitn(3, '.');
        let (Some(version), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(failed("not a sealed key"));
        };
        let (aad, bound_to_row) = match version {
            V2_WHOLE_ROW => (row.associated_data(), true),
            V1_KID_ONLY => (row.kid.as_bytes().to_vec(), false),
            _ => return Err(failed("not a sealed key of a known version")),
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
            .open_in_place(nonce, Aad::from(aad), &mut rest)
            .map_err(|_| failed("does not open (altered, or sealed for another row)"))?;
        Ok(Opened {
            private_key: plain.to_vec(),
            bound_to_row,
        })
    }

    /// Whether `sealed` was sealed under another secret than the first one, or in the older
    /// format that binds the `kid` only.
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        let mut parts = sealed.split('.');
        parts.next() != Some(V2_WHOLE_ROW) || parts.next() != Some(self.keys[0].id.as_str())
    }
}

/// What a sealed private key is bound to: every column of its row that says what the key is
/// and when it signs (`created_at`, informational only, is left out).
#[derive(Debug, Clone, Copy)]
pub struct RowBinding<'a> {
    pub generation: i64,
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub public_pem: &'a str,
    pub signs_from: i64,
    pub signs_until: Option<i64>,
}

impl RowBinding<'_> {
    /// An unambiguous encoding: a JSON array of the fields, in a fixed order.
    fn associated_data(&self) -> Vec<u8> {
        serde_json::json!([
            "auth-host signing key",
            self.generation,
            self.kid,
            self.algorithm,
            self.public_pem,
            self.signs_from,
            self.signs_until,
        ])
        .to_string()
        .into_bytes()
    }
}

/// A private key opened from its sealed text.
pub struct Opened {
    pub private_key: Vec<u8>,
    /// `false` for the older format, which binds the `kid` only: the rest of the row was not
    /// authenticated by opening it.
    pub bound_to_row: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Opened")
            .field("bound_to_row", &self.bound_to_row)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OLD: &str = "an old secret of at least thirty-two characters";
    const NEW: &str = "a new secret, also at least thirty-two characters";

    fn row(kid: &str) -> RowBinding<'_> {
        RowBinding {
            generation: 3,
            kid,
            algorithm: "RS256",
            public_pem: "-----BEGIN PUBLIC KEY-----\n…",
            signs_from: 1_000,
            signs_until: Some(2_000),
        }
    }

    #[test]
    fn sealed_keys_open_under_any_listed_secret_and_only_for_their_row() {
        let old = KeySecrets::new([OLD]).unwrap();
        let sealed = old.seal(&row("kid-1"), b"private").unwrap();
        assert!(!sealed.contains("private"));
        let opened = old.open(&row("kid-1"), &sealed).unwrap();
        assert_eq!(opened.private_key, b"private");
        assert!(opened.bound_to_row);

        // Every column that says what the key is and when it signs is bound.
        let altered = [
            RowBinding {
                kid: "kid-2",
                ..row("kid-1")
            },
            RowBinding {
                generation: -1,
                ..row("kid-1")
            },
            RowBinding {
                algorithm: "ES256",
                ..row("kid-1")
            },
            RowBinding {
                public_pem: "an attacker's key",
                ..row("kid-1")
            },
            RowBinding {
                signs_from: 0,
                ..row("kid-1")
            },
            RowBinding {
                signs_until: None,
                ..row("kid-1")
            },
        ];
        for other in altered {
            assert!(old.open(&other, &sealed).is_err(), "{other:?}");
        }

        let rotated = KeySecrets::new([NEW, OLD]).unwrap();
        assert_eq!(
            rotated.open(&row("kid-1"), &sealed).unwrap().private_key,
            b"private"
        );
        assert!(rotated.needs_resealing(&sealed));
        let resealed = rotated.seal(&row("kid-1"), b"private").unwrap();
        assert!(!rotated.needs_resealing(&resealed));

        let error = KeySecrets::new([NEW])
            .unwrap()
            .open(&row("kid-1"), &sealed)
            .unwrap_err();
        assert!(error.to_string().contains("not in key_secrets"), "{error}");

        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(old.open(&row("kid-1"), &tampered).is_err());
    }

    /// Rows sealed before whole rows were bound open (bound to their kid only) and are
    /// marked for sealing again; a made-up text naming a real secret does not open.
    #[test]
    fn kid_only_seals_open_as_such_and_need_resealing() {
        let secrets = KeySecrets::new([OLD]).unwrap();
        let id = &secrets.keys[0].id;
        let mut nonce_and_text = vec![7u8; NONCE_LEN];
        let mut body = b"private".to_vec();
        secrets.keys[0]
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([7u8; NONCE_LEN]),
                Aad::from(b"kid-1"),
                &mut body,
            )
            .unwrap();
        nonce_and_text.extend_from_slice(&body);
        let v1 = format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(&nonce_and_text));
        let opened = secrets.open(&row("kid-1"), &v1).unwrap();
        assert_eq!(opened.private_key, b"private");
        assert!(!opened.bound_to_row);
        assert!(secrets.needs_resealing(&v1));
        assert!(secrets.open(&row("kid-2"), &v1).is_err());
        for forged in [
            format!("v1.{id}.AAAA"),
            format!("v2.{id}.AAAA"),
            "v9.x.y".into(),
        ] {
            assert!(secrets.open(&row("kid-1"), &forged).is_err(), "{forged}");
        }
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(KeySecrets::new(["short"]).is_err());
        assert!(KeySecrets::new(std::iter::empty()).is_err());
    }
}
