//! Where the signing keys come from, and the settings of keys kept in the database
//! (several replicas on one PostgreSQL database).

use super::*;
use crate::tokens::{LEEWAY_SECS, MIN_SECRET_CHARS};

/// Where the signing keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// `PRIVATE_KEY` / `PUBLIC_KEY` (what the old service used; they win when given).
    Environment {
        private: &'a Secret,
        public: &'a str,
    },
    /// The database, private parts sealed under `key_secrets`: shared by every replica,
    /// rotated every `key_rotation_secs`.
    Database,
    /// A key pair made on first start in the data directory (one process on SQLite).
    DataDirectory,
}

/// Why a server on PostgreSQL without key settings does not start (commands that sign
/// nothing, such as `migrate`, still run).
pub const NO_KEY_SOURCE: &str = "with PostgreSQL, set key_secrets (AUTH_KEY_SECRETS) to keep \
    the keys in the database, shared by every replica, or set PRIVATE_KEY and PUBLIC_KEY; \
    otherwise each replica would sign with a key of its own";

/// More keys than this in the JWKS at once means a rotation too fast for the token lifetimes.
const MAX_PUBLISHED_KEYS: u64 = 64;

impl Config {
    /// Where the signing keys come from; `None` when nothing says (PostgreSQL with neither
    /// keys nor secrets: each replica would make a key of its own).
    pub fn key_source(&self) -> Option<KeySource<'_>> {
        if let (Some(private), Some(public)) = (&self.private_key, &self.public_key) {
            Some(KeySource::Environment { private, public })
        } else if self.key_secrets.is_some() {
            Some(KeySource::Database)
        } else if self.database_url().starts_with("sqlite:") {
            Some(KeySource::DataDirectory)
        } else {
            None
        }
    }

    /// `key_secrets`, first (the one sealing) first.
    pub fn key_secrets(&self) -> Vec<&str> {
        self.key_secrets
            .as_ref()
            .map(|secrets| {
                secrets
                    .expose()
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How long after a key stops signing its tokens may still verify.
    pub fn key_verify_secs(&self) -> u64 {
        self.client_token_lifetime_secs
            .max(self.permission_token_lifetime_secs)
            .saturating_add(LEEWAY_SECS)
    }

    pub(super) fn key_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.key_secrets.is_some() {
            let secrets = self.key_secrets();
            if secrets.is_empty() {
                problems.push("key_secrets (AUTH_KEY_SECRETS): no secret given".to_owned());
            }
            for (i, secret) in secrets.iter().enumerate() {
                if secret.chars().count() < MIN_SECRET_CHARS {
                    problems.push(format!(
                        "key_secrets (AUTH_KEY_SECRETS): secret {} of {} is shorter than \
                         {MIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 32`)",
                        i + 1,
                        secrets.len()
                    ));
                }
            }
            let own_keys = [
                (
                    "client",
                    self.client_token_algorithm,
                    self.client_token_private_key.is_some(),
                ),
                (
                    "permission",
                    self.permission_token_algorithm,
                    self.permission_token_private_key.is_some(),
                ),
            ];
            for (kind, algorithm, given) in own_keys {
                if self.key_source() == Some(KeySource::Database)
                    && algorithm != TokenAlgorithm::RS256
                    && !given
                {
                    problems.push(format!(
                        "{kind}_token_private_key: required with {kind}_token_algorithm other \
                         than RS256 when the keys live in the database, so that every replica \
                         signs {kind} tokens with the same key"
                    ));
                }
            }
        }
        if let Some(published) = self
            .key_verify_secs()
            .checked_div(self.key_rotation_secs)
            .map(|n| n + 3)
        {
            if self.key_source() != Some(KeySource::Database) {
                problems.push(
                    "key_rotation_secs (AUTH_KEY_ROTATION_SECS): rotation needs the keys in the \
                     database: set key_secrets and leave PRIVATE_KEY/PUBLIC_KEY unset"
                        .to_owned(),
                );
            }
            if published > MAX_PUBLISHED_KEYS {
                problems.push(format!(
                    "key_rotation_secs (AUTH_KEY_ROTATION_SECS): {} s with tokens living up to \
                     {} s would publish about {published} keys at once (at most \
                     {MAX_PUBLISHED_KEYS}); rotate less often or shorten the token lifetimes",
                    self.key_rotation_secs,
                    self.key_verify_secs()
                ));
            }
        }
        problems
    }
}
