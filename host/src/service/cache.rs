//! Client tokens verified recently, with their user: every authenticated request would
//! otherwise verify a signature and read the database. An entry is trusted for at most
//! `ttl` (and never past the token's expiry), so a logout on another replica or a user
//! deleted by another process takes effect within `ttl`; changes made through this replica
//! drop the entries they concern at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::clock::unix_now;
use crate::tokens::ClientClaims;
use crate::users::User;

/// Beyond this many entries, expired ones are dropped, then all if still too many.
const MAX_ENTRIES: usize = 100_000;

pub(super) struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CachedLogin>>,
}

#[derive(Clone)]
struct CachedLogin {
    until: Instant,
    user: User,
    claims: ClientClaims,
}

impl AuthCache {
    pub(super) fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<(User, ClientClaims)> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(token)?;
        (entry.until > Instant::now()).then(|| (entry.user.clone(), entry.claims.clone()))
    }

    pub(super) fn put(&self, token: &str, user: &User, claims: &ClientClaims) {
        if self.ttl.is_zero() {
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
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, e| e.user.id != userid);
        }
    }
}
