//! Permission tokens handed out again (`permission_token_reuse_secs`): within the window, the
//! same user, service and permissions get the token already signed — the plugin is still
//! asked every time, and a change in its answer signs a new one — so that a burst of
//! authorizations costs plugin calls, not signatures. A token is never handed out once half
//! its lifetime has gone, so every receiver gets at least half of it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use auth_host_plugin_api::Permissions;

/// Beyond this many (user, service) pairs remembered, the memory starts afresh.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug)]
struct Signed {
    permissions: Permissions,
    /// The key it was signed with: after a rotation, tokens are signed anew.
    kid: String,
    iat: u64,
    token: String,
}

/// Tokens signed within the window, by user and service.
#[derive(Debug, Default)]
pub(super) struct Reuse {
    window_secs: u64,
    signed: Mutex<HashMap<(String, String), Signed>>,
}

impl Reuse {
    /// Reuse within `window`, and never past half of `lifetime`.
    pub(super) fn new(window: Duration, lifetime: Duration) -> Reuse {
        Reuse {
            window_secs: window.as_secs().min(lifetime.as_secs() / 2),
            signed: Mutex::default(),
        }
    }

    /// The token already signed for exactly these, if it may be handed out again at `now`.
    pub(super) fn get(
        &self,
        userid: &str,
        service: &str,
        permissions: &Permissions,
        kid: &str,
        now: u64,
    ) -> Option<String> {
        if self.window_secs == 0 {
            return None;
        }
        let signed = self.signed.lock().ok()?;
        let found = signed.get(&(userid.to_owned(), service.to_owned()))?;
        let fresh = now.saturating_sub(found.iat) < self.window_secs;
        (fresh && found.kid == kid && found.permissions == *permissions)
            .then(|| found.token.clone())
    }

    /// Remembers a token just signed.
    pub(super) fn put(
        &self,
        userid: &str,
        service: &str,
        permissions: &Permissions,
        kid: &str,
        iat: u64,
        token: &str,
    ) {
        if self.window_secs == 0 {
            return;
        }
        if let Ok(mut signed) = self.signed.lock() {
            if signed.len() >= MAX_REMEMBERED {
                signed.clear();
            }
            signed.insert(
                (userid.to_owned(), service.to_owned()),
                Signed {
                    permissions: permissions.clone(),
                    kid: kid.to_owned(),
                    iat,
                    token: token.to_owned(),
                },
            );
        }
    }
}
