//! Changes other replicas must hear of at once (a revoked token, a deleted user), sent with
//! PostgreSQL `NOTIFY` and heard with `LISTEN`. SQLite serves one process: nothing to send.
//!
//! Any role that can connect to the database can `NOTIFY` on any channel, so each payload
//! carries a MAC under a key every replica derives from the shared secret (`key_secrets`, or
//! `PRIVATE_KEY`): what is not authenticated is ignored and counted.

use std::time::{Duration, Instant};

use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::Store;

const CHANNEL: &str = "auth_host_changes";

/// What the listener hears, or that it cannot hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Listening (again): notifications sent before now may have been missed.
    Listening,
    /// Not listening: notifications are being missed.
    Deaf,
    TokenRevoked(String),
    UserChanged(String),
    /// A notification that was not authenticated: ignored.
    Refused,
}

impl Change {
    fn payload(&self) -> Option<String> {
        match self {
            Change::TokenRevoked(id) => Some(format!("token:{id}")),
            Change::UserChanged(id) => Some(format!("user:{id}")),
            Change::Listening | Change::Deaf | Change::Refused => None,
        }
    }

    fn parse(payload: &str) -> Option<Change> {
        match payload.split_once(':')? {
            ("token", id) => Some(Change::TokenRevoked(id.to_owned())),
            ("user", id) => Some(Change::UserChanged(id.to_owned())),
            _ => None,
        }
    }
}

/// The keys notifications are authenticated with: derived from each shared secret; the
/// first signs, every one verifies (so that the secret can be rotated).
pub struct ChangeKeys {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for ChangeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeKeys").finish_non_exhaustive()
    }
}

/// Bytes of the MAC kept: 128 bits.
const MAC_BYTES: usize = 16;

impl ChangeKeys {
    /// `None` without any secret.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Option<ChangeKeys> {
        let keys: Vec<hmac::Key> = secrets
            .into_iter()
            .filter_map(|secret| {
                Salt::new(HKDF_SHA256, b"auth-host notifications v1")
                    .extract(secret.as_bytes())
                    .expand(&[b"authenticate NOTIFY payloads"], hmac::HMAC_SHA256)
                    .ok()
                    .map(hmac::Key::from)
            })
            .collect();
        (!keys.is_empty()).then_some(ChangeKeys { keys })
    }

    fn mac(key: &hmac::Key, message: &str) -> String {
        let tag = hmac::sign(key, message.as_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..MAC_BYTES])
    }

    /// `<mac>:<message>`.
    fn sign(&self, message: &str) -> Option<String> {
        let key = self.keys.first()?;
        Some(format!("{}:{message}", Self::mac(key, message)))
    }

    /// The message of a payload whose MAC checks out under one of the keys.
    fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (mac, message) = payload.split_once(':')?;
        self.keys
            .iter()
            .any(|key| {
                crate::crypto::constant_time_eq(Self::mac(key, message).as_bytes(), mac.as_bytes())
            })
            .then_some(message)
    }
}

/// How long the listener waits before connecting again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

impl Store {
    /// Whether changes are announced between processes (PostgreSQL).
    pub fn announces_changes(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Tells the other replicas (PostgreSQL only), after the change is stored. A failure
    /// is logged, not returned: stored is what counts, and the others' token cache bounds
    /// how late they learn it.
    pub(super) async fn announce(&self, change: Change) {
        let Some(message) = change.payload().filter(|_| self.announces_changes()) else {
            return;
        };
        let Some(payload) = self
            .change_keys
            .as_ref()
            .and_then(|keys| keys.sign(&message))
        else {
            tracing::warn!(
                "no shared secret to authenticate a change with; the other replicas learn it when their token cache expires"
            );
            return;
        };
        let sent = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "cannot tell the other replicas of a change");
        }
    }

    /// Listens for the other replicas' changes until the process ends, handing each to
    /// `heard`; reconnects when the connection drops (saying [`Change::Deaf`] meanwhile).
    /// Does nothing on SQLite.
    pub fn listen_for_changes(&self, heard: impl Fn(Change) + Send + Sync + 'static) {
        if !self.announces_changes() {
            return;
        }
        let pool = self.db.get_postgres_connection_pool().clone();
        let keys = self.change_keys.clone();
        tokio::spawn(async move {
            let mut refused = Refusals::default();
            loop {
                let mut listener = match listen(&pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for other replicas' changes");
                        heard(Change::Deaf);
                        tokio::time::sleep(RECONNECT_AFTER).await;
                        continue;
                    }
                };
                heard(Change::Listening);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => {
                            let change = keys
                                .as_deref()
                                .and_then(|keys| keys.open(notification.payload()))
                                .and_then(Change::parse);
                            match change {
                                Some(change) => heard(change),
                                None => {
                                    refused.note();
                                    heard(Change::Refused);
                                }
                            }
                        }
                        Ok(None) | Err(_) => {
                            tracing::warn!("lost the connection listening for changes");
                            heard(Change::Deaf);
                            break;
                        }
                    }
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
    }
}

/// Notifications refused, logged at most once a minute (with how many since).
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn note(&mut self) {
        self.since_logged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                refused = self.since_logged,
                "ignored notifications on {CHANNEL} that are not authenticated (sent by someone \
                 without the shared secret)"
            );
            self.since_logged = 0;
            self.logged_at = Some(Instant::now());
        }
    }
}

/// A connection of its own, listening on the channel.
async fn listen(pool: &sea_orm::sqlx::PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_payloads_authenticated_under_a_shared_secret_are_heard() {
        let keys = ChangeKeys::new(["the shared secret of at least 32 characters"]).unwrap();
        let signed = keys.sign("user:abc").unwrap();
        assert_eq!(keys.open(&signed), Some("user:abc"));
        // What anyone with a connection can send.
        assert_eq!(keys.open("user:abc"), None);
        let other = ChangeKeys::new(["another secret, also of 32 characters"]).unwrap();
        assert_eq!(keys.open(&other.sign("user:abc").unwrap()), None);
        let (mac, _) = signed.split_once(':').unwrap();
        assert_eq!(
            keys.open(&format!("{mac}:user:other")),
            None,
            "bound to the message"
        );
        // Rotation: the new secret first, the old still verifies.
        let rotated = ChangeKeys::new([
            "another secret, also of 32 characters",
            "the shared secret of at least 32 characters",
        ])
        .unwrap();
        assert_eq!(rotated.open(&signed), Some("user:abc"));
        assert!(ChangeKeys::new(std::iter::empty()).is_none());
    }
}
