//! Signing keys kept in the database, shared by every replica: made once (one replica,
//! under a lock), rotated on a schedule every replica computes alike, sealed at rest.

use std::sync::Arc;

use crate::clock::{time_until, unix_now_i64};
use crate::config::Config;
use crate::storage::{Store, StoreError, StoredKey};
use crate::tokens::{KeyError, KeySecrets, KeySet, KeyWindow, Plan, Schedule, new_rsa_key_pair};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the key set in use was built from: rebuilt only when this changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct InUse {
    signing: Option<String>,
    published: Vec<String>,
}

pub struct Keyring {
    store: Store,
    secrets: KeySecrets,
    schedule: Schedule,
    /// Adds to the main key pair what the configuration asks beyond it.
    finish: Box<dyn Fn(KeySet) -> Result<KeySet, KeyError> + Send + Sync>,
    previous_public_keys: Vec<String>,
    in_use: std::sync::Mutex<InUse>,
    /// Unix seconds: when the keys in use change next (see [`Plan::next_change`]).
    next_change: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// `finish` adds what the configuration asks beyond the main key pair (client-token
    /// algorithm).
    pub fn new(
        config: &Config,
        store: Store,
        finish: impl Fn(KeySet) -> Result<KeySet, KeyError> + Send + Sync + 'static,
    ) -> Result<Keyring, KeyError> {
        Ok(Keyring {
            store,
            secrets: KeySecrets::new(config.key_secrets())?,
            schedule: Schedule {
                rotation_secs: config.key_rotation_secs,
                verify_secs: config.key_verify_secs(),
            },
            finish: Box::new(finish),
            previous_public_keys: config.previous_public_keys.clone(),
            in_use: std::sync::Mutex::new(InUse::default()),
            next_change: std::sync::atomic::AtomicI64::new(i64::MAX),
        })
    }

    /// The keys as they stand now, making those missing; `None` when nothing changed since
    /// the last call.
    pub async fn current(&self) -> Result<Option<KeySet>, KeyringError> {
        let mut stored = self.store.signing_keys().await?;
        let mut plan = self.schedule.plan(&windows(&stored), unix_now_i64());
        if !plan.missing.is_empty() {
            stored = self.make_missing().await?;
            plan = self.schedule.plan(&windows(&stored), unix_now_i64());
        }
        self.reseal(&stored).await;
        self.next_change.store(
            plan.next_change.unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
        let Some(signing) = plan
            .signing
            .and_then(|g| stored.iter().find(|k| k.generation == g))
        else {
            return Err(KeyError::Invalid("no signing key in the database".into()).into());
        };
        let published: Vec<&StoredKey> = plan
            .published
            .iter()
            .filter_map(|g| stored.iter().find(|k| k.generation == *g))
            .collect();
        let in_use = InUse {
            signing: Some(signing.kid.clone()),
            published: published.iter().map(|k| k.kid.clone()).collect(),
        };
        if self.in_use.lock().is_ok_and(|now| *now == in_use) {
            return Ok(None);
        }
        let private = self
            .secrets
            .open(&signing.kid, &signing.sealed_private_key)?;
        let private = String::from_utf8(private)
            .map_err(|_| KeyError::Invalid(format!("signing key {}: not PEM", signing.kid)))?;
        let others: Vec<String> = published
            .iter()
            .filter(|k| k.kid != signing.kid)
            .map(|k| k.public_pem.clone())
            .chain(self.previous_public_keys.iter().cloned())
            .collect();
        let keys = (self.finish)(KeySet::from_pem(&private, &signing.public_pem, &others)?)?;
        if let Ok(mut now) = self.in_use.lock() {
            *now = in_use;
        }
        Ok(Some(keys))
    }

    /// Makes the keys the schedule lacks, under the lock: a replica that waited for it
    /// finds them made and makes none.
    async fn make_missing(&self) -> Result<Vec<StoredKey>, KeyringError> {
        let transaction = self.store.lock_signing_keys().await?;
        let stored = transaction.keys().await?;
        let Plan { missing, .. } = self.schedule.plan(&windows(&stored), unix_now_i64());
        for window in missing {
            let (private_pem, public_pem, kid) = tokio::task::spawn_blocking(new_rsa_key_pair)
                .await
                .map_err(|e| KeyError::Invalid(format!("key generation stopped: {e}")))??;
            let sealed = self.secrets.seal(&kid, private_pem.as_bytes())?;
            let stored = transaction
                .insert(StoredKey {
                    generation: window.generation,
                    kid: kid.clone(),
                    algorithm: "RS256".into(),
                    public_pem,
                    sealed_private_key: sealed,
                    signs_from: window.signs_from,
                    signs_until: window.signs_until,
                    created_at: unix_now_i64(),
                })
                .await?;
            if stored {
                tracing::info!(
                    kid,
                    generation = window.generation,
                    signs_from = window.signs_from,
                    "created a signing key in the database"
                );
            }
        }
        transaction.commit().await?;
        Ok(self.store.signing_keys().await?)
    }

    /// Seals again, under the first secret, keys sealed under an older one.
    async fn reseal(&self, stored: &[StoredKey]) {
        for key in stored
            .iter()
            .filter(|k| self.secrets.needs_resealing(&k.sealed_private_key))
        {
            match self.reseal_one(key).await {
                Ok(true) => tracing::info!(
                    kid = key.kid,
                    "signing key sealed again under the first key secret"
                ),
                // Another replica did it first.
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, kid = key.kid, "cannot seal a signing key again")
                }
            }
        }
    }

    async fn reseal_one(&self, key: &StoredKey) -> Result<bool, KeyringError> {
        let plain = self.secrets.open(&key.kid, &key.sealed_private_key)?;
        let resealed = self.secrets.seal(&key.kid, &plain)?;
        Ok(self
            .store
            .reseal_signing_key(key.generation, &key.sealed_private_key, resealed)
            .await?)
    }

    /// Forgets keys no token can need any more; how many.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let stored = self.store.signing_keys().await?;
        let plan = self.schedule.plan(&windows(&stored), unix_now_i64());
        self.store.delete_signing_keys(&plan.expired).await
    }

    /// Reads the keys again every so often and puts changes in use, for as long as the
    /// process runs.
    pub fn keep_current(self: Arc<Self>, tokens: impl Fn(KeySet) + Send + Sync + 'static) {
        let every = self.schedule.refresh_every();
        tokio::spawn(async move {
            loop {
                // Every so often, and right when the keys in use change: replicas switch
                // within milliseconds of one another.
                let next_change = self.next_change.load(std::sync::atomic::Ordering::SeqCst);
                let wait = time_until(next_change).min(every);
                tokio::time::sleep(wait + std::time::Duration::from_millis(1)).await;
                match self.current().await {
                    Ok(Some(keys)) => {
                        tracing::info!(kid = keys.kid(), "signing keys changed");
                        tokens(keys);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.next_change
                            .store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
                        tracing::warn!(%error, "cannot read the signing keys; keeping those in use");
                    }
                }
            }
        });
    }
}

fn windows(stored: &[StoredKey]) -> Vec<KeyWindow> {
    stored
        .iter()
        .map(|k| KeyWindow {
            generation: k.generation,
            signs_from: k.signs_from,
            signs_until: k.signs_until,
        })
        .collect()
}
