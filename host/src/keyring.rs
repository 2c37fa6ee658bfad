//! Signing keys kept in the database, shared by every replica: made once (one replica,
//! under a lock), rotated on a schedule every replica computes alike, sealed at rest.
//!
//! A row is trusted only when it is authenticated under `key_secrets`: its sealed private
//! key opens with the whole row bound in (see [`RowBinding`]), and its `kid` is the
//! thumbprint of its public key. Whoever can write the table but knows no secret cannot
//! publish a key of their own; the rows they write are left out and reported.

use crate::audit::{Audit, AuditEvent, AuditKind, Caller, Outcome};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use crate::clock::{time_until_millis, unix_now_i64};
use crate::config::Config;
use crate::storage::{KeyTransaction, Store, StoreError, StoredKey};
use crate::tokens::{
    KeyError, KeySecrets, KeySet, KeyWindow, Plan, RowBinding, Schedule, new_rsa_key_pair, rsa_kid,
    rsa_kid_of_private,
};

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

/// The stored rows, sorted by what may be done with them.
#[derive(Debug, Default)]
struct Sorted {
    /// Authenticated: may sign, be published and verify.
    trusted: Vec<StoredKey>,
    /// Authenticated, to be sealed again under the first secret, with the whole row bound:
    /// sealed under an older secret (also trusted), or in the format that bound only the
    /// `kid`, whose private key matches its public key (trusted once sealed again).
    to_reseal: Vec<StoredKey>,
    /// Rows not authenticated: generation and why.
    refused: Vec<(i64, String)>,
}

pub struct Keyring {
    store: Store,
    secrets: KeySecrets,
    schedule: Schedule,
    /// Adds to the main key pair what the configuration asks beyond it.
    finish: Box<dyn Fn(KeySet) -> Result<KeySet, KeyError> + Send + Sync>,
    previous_public_keys: Vec<String>,
    in_use: std::sync::Mutex<InUse>,
    /// Unix milliseconds by this machine's clock: when the keys in use change next (see
    /// [`Plan::next_change`]).
    next_change: std::sync::atomic::AtomicI64,
    /// Rows refused at the last look, and this machine's clock ahead of the database's
    /// (metrics).
    gauges: KeyringGauges,
    /// Whether the clock skew is past [`MAX_CLOCK_SKEW_MS`] (warned once per crossing).
    skewed: std::sync::atomic::AtomicBool,
    /// Where made keys and refused rows go on record (none for some commands).
    audit: Option<Audit>,
    /// The refused rows last put on record: a new event only when the number changes.
    refused_on_record: std::sync::atomic::AtomicUsize,
}

/// What the keyring measures at each look.
#[derive(Debug, Clone, Default)]
pub struct KeyringGauges {
    /// Rows not authenticated under `key_secrets`.
    pub refused_rows: Gauge,
    /// Milliseconds this machine's clock is ahead of the database's (negative: behind).
    pub clock_skew_ms: Gauge,
}

/// One reading of the clock keys are scheduled by.
#[derive(Debug, Clone, Copy)]
struct ScheduleClock {
    /// Now, in Unix seconds, by the database's clock (or this machine's, on SQLite).
    schedule_secs: i64,
    /// How far this machine's clock is ahead of it, in milliseconds (negative: behind).
    local_ahead_ms: i64,
}

/// Past this, a replica's clock is said to be off: its tokens' `iat`/`exp` are its own
/// clock's, and a verifier with little leeway refuses tokens from a clock this far ahead.
const MAX_CLOCK_SKEW_MS: i64 = 2_000;

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// `finish` adds what the configuration asks beyond the main key pair (client-token
    /// algorithm); `gauges` are set at each look.
    pub fn new(
        config: &Config,
        store: Store,
        finish: impl Fn(KeySet) -> Result<KeySet, KeyError> + Send + Sync + 'static,
        gauges: KeyringGauges,
        audit: Option<Audit>,
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
            gauges,
            skewed: std::sync::atomic::AtomicBool::new(false),
            audit,
            refused_on_record: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The keys as they stand now, making those missing and sealing again those that need
    /// it; `None` when nothing changed since the last call.
    pub async fn current(&self) -> Result<Option<KeySet>, KeyringError> {
        let mut sorted = self.sort(self.store.signing_keys().await?);
        let mut now = self.now().await?;
        let mut plan = self.plan(&sorted, now.schedule_secs);
        if !plan.missing.is_empty() || !sorted.to_reseal.is_empty() {
            sorted = self.sort(self.repair().await?);
            now = self.now().await?;
            plan = self.plan(&sorted, now.schedule_secs);
        }
        self.report(&sorted.refused);
        self.put_refusals_on_record(&sorted.refused).await;
        // The next change is waited for on this machine's clock: the moment the schedule's
        // clock reaches it, as this one reads it then.
        self.next_change.store(
            plan.next_change.map_or(i64::MAX, |at| {
                at.saturating_mul(1000).saturating_add(now.local_ahead_ms)
            }),
            std::sync::atomic::Ordering::SeqCst,
        );
        let trusted = &sorted.trusted;
        let Some(signing) = plan
            .signing
            .and_then(|g| trusted.iter().find(|k| k.generation == g))
        else {
            return Err(KeyError::Invalid("no signing key in the database".into()).into());
        };
        let published: Vec<&StoredKey> = plan
            .published
            .iter()
            .filter_map(|g| trusted.iter().find(|k| k.generation == *g))
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
            .open(&binding(signing), &signing.sealed_private_key)?;
        let private = String::from_utf8(private.private_key)
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

    /// Sorts rows by whether they are authenticated under `key_secrets`.
    ///
    /// A row in the earlier release's format (its `kid` alone bound) is accepted only during
    /// the upgrade: once any row is bound whole, the upgrade has happened (it seals every
    /// earlier row again at once, under the lock), and an earlier-format row appearing after
    /// that is a copy put back — from a backup, say — to publish an old key again.
    fn sort(&self, stored: Vec<StoredKey>) -> Sorted {
        let mut sorted = Sorted::default();
        let mut earlier_format = Vec::new();
        for key in stored {
            match self.authenticate(&key) {
                Ok(Authenticated::WholeRow) => {
                    if self.secrets.needs_resealing(&key.sealed_private_key) {
                        sorted.to_reseal.push(key.clone());
                    }
                    sorted.trusted.push(key);
                }
                Ok(Authenticated::KidOnly) => earlier_format.push(key),
                Err(why) => sorted.refused.push((key.generation, why)),
            }
        }
        let upgraded = !sorted.trusted.is_empty();
        for key in earlier_format {
            if upgraded {
                sorted.refused.push((
                    key.generation,
                    "sealed in the earlier release's format after the upgrade to whole-row \
                     sealing was done (a copy put back?)"
                        .into(),
                ));
            } else {
                sorted.to_reseal.push(key);
            }
        }
        sorted
    }

    /// Whether a row is what its sealed private key was sealed for. Cheap checks first: a
    /// table filled with junk costs little to sort.
    fn authenticate(&self, key: &StoredKey) -> Result<Authenticated, String> {
        if key.algorithm != "RS256" {
            return Err(format!("algorithm {:?} is not RS256", key.algorithm));
        }
        let opened = self
            .secrets
            .open(&binding(key), &key.sealed_private_key)
            .map_err(|e| e.to_string())?;
        let kid = rsa_kid(&key.public_pem).map_err(|e| e.to_string())?;
        if kid != key.kid {
            return Err("its kid is not the thumbprint of its public key".into());
        }
        if opened.bound_to_row {
            return Ok(Authenticated::WholeRow);
        }
        // Sealed before whole rows were bound: the sealed private key vouches for the public
        // key only if it is its other half.
        let private = String::from_utf8(opened.private_key)
            .map_err(|_| "its private key is not PEM".to_owned())?;
        match rsa_kid_of_private(&private) {
            Ok(of_private) if of_private == key.kid => Ok(Authenticated::KidOnly),
            Ok(_) => Err("its public key is not its private key's".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn plan(&self, sorted: &Sorted, now: i64) -> Plan {
        self.schedule.plan(&windows(&sorted.trusted), now)
    }

    /// Now, in Unix seconds, for the schedule: the database's clock when it has one, so that
    /// every replica agrees whatever its own clock says; this machine's otherwise. The
    /// difference is exported, and warned about once it passes [`MAX_CLOCK_SKEW_MS`] (and
    /// once it is back within).
    async fn now(&self) -> Result<ScheduleClock, StoreError> {
        use std::sync::atomic::Ordering;
        let Some(database) = self.store.database_clock_millis().await? else {
            return Ok(ScheduleClock {
                schedule_secs: unix_now_i64(),
                local_ahead_ms: 0,
            });
        };
        let skew = crate::clock::unix_now_millis().saturating_sub(database);
        self.gauges.clock_skew_ms.set(skew);
        let skewed = skew.abs() > MAX_CLOCK_SKEW_MS;
        if self.skewed.swap(skewed, Ordering::SeqCst) != skewed {
            if skewed {
                tracing::warn!(
                    skew_ms = skew,
                    "this machine's clock differs from the database's by more than \
                     {MAX_CLOCK_SKEW_MS} ms (positive: ahead): keys are scheduled by the \
                     database's clock, but the tokens this replica signs carry its own \
                     (verifiers may refuse them as not yet valid, or as expired); fix its time \
                     synchronisation"
                );
            } else {
                tracing::info!(
                    skew_ms = skew,
                    "this machine's clock agrees with the database's again"
                );
            }
        }
        Ok(ScheduleClock {
            schedule_secs: database.div_euclid(1000),
            local_ahead_ms: skew,
        })
    }

    /// One warning per look, however many rows: a table filled with junk does not fill the
    /// log.
    fn report(&self, refused: &[(i64, String)]) {
        self.gauges
            .refused_rows
            .set(i64::try_from(refused.len()).unwrap_or(i64::MAX));
        if let Some((generation, why)) = refused.first() {
            tracing::warn!(
                refused = refused.len(),
                first_generation = generation,
                first_reason = why.as_str(),
                "signing_keys rows not authenticated under key_secrets: never published, never \
                 used (written by someone without the secret, or sealed under a secret this \
                 replica does not have)"
            );
        }
    }

    /// An audit event when the number of refused rows changes (not one per look).
    async fn put_refusals_on_record(&self, refused: &[(i64, String)]) {
        use std::sync::atomic::Ordering;
        let before = self.refused_on_record.swap(refused.len(), Ordering::SeqCst);
        let (Some(audit), Some((generation, why))) = (&self.audit, refused.first()) else {
            return;
        };
        if before == refused.len() {
            return;
        }
        let event =
            AuditEvent::new(AuditKind::SigningKeyRowsRefused, Outcome::Refused).reason(format!(
                "{} signing_keys rows not authenticated under key_secrets; first: generation \
                 {generation}: {why}",
                refused.len()
            ));
        audit
            .record_best_effort(event, &Caller::named("keyring"))
            .await;
    }

    /// Under the lock: seals again the keys that need it, then makes the keys the schedule
    /// lacks. A replica that waited for the lock finds the work done and does none. The rows
    /// afterwards.
    async fn repair(&self) -> Result<Vec<StoredKey>, KeyringError> {
        let transaction = self.store.lock_signing_keys().await?;
        let sorted = self.sort(transaction.keys().await?);
        let mut trusted = sorted.trusted;
        for key in sorted.to_reseal {
            if self.reseal(&transaction, &key).await? {
                tracing::info!(
                    kid = key.kid,
                    generation = key.generation,
                    "signing key sealed again under the first key secret, bound to its row"
                );
            }
            if trusted.iter().all(|k| k.generation != key.generation) {
                trusted.push(key);
            }
        }
        let now = self.now().await?.schedule_secs;
        let Plan { missing, .. } = self.schedule.plan(&windows(&trusted), now);
        let mut made = Vec::new();
        for window in missing {
            made.push((self.make(&transaction, window).await?, window));
        }
        transaction.commit().await?;
        if let Some(audit) = &self.audit {
            for (kid, window) in made {
                let event = AuditEvent::new(AuditKind::SigningKeyCreated, Outcome::Success).reason(
                    format!(
                        "kid {kid}, generation {}, signs from {}",
                        window.generation,
                        crate::audit::format_time(window.signs_from.saturating_mul(1000))
                    ),
                );
                audit
                    .record_best_effort(event, &Caller::named("keyring"))
                    .await;
            }
        }
        Ok(self.store.signing_keys().await?)
    }

    async fn reseal(
        &self,
        transaction: &KeyTransaction,
        key: &StoredKey,
    ) -> Result<bool, KeyringError> {
        let row = binding(key);
        let plain = self.secrets.open(&row, &key.sealed_private_key)?;
        let resealed = self.secrets.seal(&row, &plain.private_key)?;
        Ok(transaction
            .reseal(key.generation, &key.sealed_private_key, resealed)
            .await?)
    }

    /// Makes the key of `window` and stores it; its kid.
    async fn make(
        &self,
        transaction: &KeyTransaction,
        window: KeyWindow,
    ) -> Result<String, KeyringError> {
        let (private_pem, public_pem, kid) =
            tokio::task::spawn_blocking(new_rsa_key_pair)
                .await
                .map_err(|e| KeyError::Invalid(format!("key generation stopped: {e}")))??;
        let mut key = StoredKey {
            generation: window.generation,
            kid: kid.clone(),
            algorithm: "RS256".into(),
            public_pem,
            sealed_private_key: String::new(),
            signs_from: window.signs_from,
            signs_until: window.signs_until,
            created_at: unix_now_i64(),
        };
        key.sealed_private_key = self.secrets.seal(&binding(&key), private_pem.as_bytes())?;
        if !transaction.insert(key).await? {
            // Under the lock, only a row that is not trusted can hold a generation missing
            // from the trusted ones.
            return Err(KeyError::Invalid(format!(
                "generation {} is taken by a signing_keys row not authenticated under \
                 key_secrets; delete that row",
                window.generation
            ))
            .into());
        }
        tracing::info!(
            kid,
            generation = window.generation,
            signs_from = window.signs_from,
            "created a signing key in the database"
        );
        Ok(kid)
    }

    /// Forgets keys no token can need any more; how many.
    /// Only trusted rows are judged: what is not authenticated is the operator's to look at.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let sorted = self.sort(self.store.signing_keys().await?);
        let plan = self.plan(&sorted, self.now().await?.schedule_secs);
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
                let wait = time_until_millis(next_change).min(every);
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

/// How a row was authenticated.
enum Authenticated {
    /// Its sealed private key opens with the whole row bound in.
    WholeRow,
    /// Sealed in the older format (the `kid` bound only), its private key matching its
    /// public key: trusted once sealed again with the whole row bound.
    KidOnly,
}

/// What a stored row's sealed private key is bound to.
pub fn binding(key: &StoredKey) -> RowBinding<'_> {
    RowBinding {
        generation: key.generation,
        kid: &key.kid,
        algorithm: &key.algorithm,
        public_pem: &key.public_pem,
        signs_from: key.signs_from,
        signs_until: key.signs_until,
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
