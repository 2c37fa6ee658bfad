//! Client tokens verified recently, with their user: every authenticated request would
//! otherwise verify a signature and read the database. An entry is trusted for at most
//! `ttl` (and never past the token's expiry). Changes made through this replica drop the
//! entries they concern at once; on PostgreSQL so do the other replicas' logouts and user
//! deletions, heard through `LISTEN`. While that listener is down, the cache is neither read
//! nor filled (every request asks the database), so a change is never missed.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::storage::Change;

use crate::clock::unix_now;
use crate::tokens::ClientClaims;
use crate::users::User;

/// Beyond this many entries, expired ones are dropped, then all if still too many.
const MAX_ENTRIES: usize = 100_000;

pub(super) struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CachedLogin>>,
    /// Whether every change made elsewhere reaches [`AuthCache::heard`].
    trusted: AtomicBool,
    /// Counts the changes heard: a login read from the database before a change is not
    /// stored after it (it may be the one the change concerns).
    changes: AtomicU64,
}

#[derive(Clone)]
struct CachedLogin {
    until: Instant,
    user: User,
    claims: ClientClaims,
    revocation_id: String,
}

impl AuthCache {
    /// `trusted`: whether changes made elsewhere are heard from the start (no other
    /// process to hear from).
    pub(super) fn new(ttl: Duration, trusted: bool) -> Self {
        AuthCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
            trusted: AtomicBool::new(trusted),
            changes: AtomicU64::new(0),
        }
    }

    /// Taken before reading the database, handed to [`AuthCache::put`].
    pub(super) fn changes_seen(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// A change made by another replica, or the listener's state.
    pub(super) fn heard(&self, change: &Change) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::TokenRevoked(id) => self.forget_where(|e| &e.revocation_id == id),
            Change::UserChanged(id) => self.forget_user(id),
            Change::Listening => {
                // Whatever was missed while deaf: start afresh.
                self.forget_where(|_| true);
                self.trusted.store(true, Ordering::SeqCst);
            }
            Change::Deaf => {
                if self.trusted.swap(false, Ordering::SeqCst) {
                    tracing::warn!("token cache off until other replicas can be heard again");
                }
                self.forget_where(|_| true);
            }
            Change::Refused => {}
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<(User, ClientClaims)> {
        if self.ttl.is_zero() || !self.trusted.load(Ordering::SeqCst) {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(token)?;
        (entry.until > Instant::now()).then(|| (entry.user.clone(), entry.claims.clone()))
    }

    pub(super) fn put(
        &self,
        token: &str,
        user: &User,
        claims: &ClientClaims,
        revocation_id: String,
        changes_seen: u64,
    ) {
        if self.ttl.is_zero()
            || !self.trusted.load(Ordering::SeqCst)
            || self.changes_seen() != changes_seen
        {
            return;
        }
        let left = Duration::from_secs(claims.exp.saturating_sub(unix_now()));
        let until = Instant::now() + self.ttl.min(left);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                let now = Instant::now();
                entries.retain(|_, e| e.until > now);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                token.to_owned(),
                CachedLogin {
                    until,
                    user: user.clone(),
                    claims: claims.clone(),
                    revocation_id,
                },
            );
        }
    }

    pub(super) fn forget_token(&self, token: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(token);
        }
    }

    pub(super) fn forget_user(&self, userid: &str) {
        self.forget_where(|e| e.user.id == userid);
    }

    fn forget_where(&self, forget: impl Fn(&CachedLogin) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, e| !forget(e));
        }
    }
}
