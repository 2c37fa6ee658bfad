//! Unfinished logins per client. Each started login is stored until it is finished or
//! expires; without a bound, one client could fill the database (and the provider's rate
//! limits) with logins it never finishes. The count is per replica.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many clients tracked, those with nothing unfinished are forgotten.
const MAX_CLIENTS: usize = 100_000;

pub struct LoginLimiter {
    max_per_client: usize,
    lifetime: Duration,
    /// Per client, when each of its unfinished logins expires (oldest first).
    clients: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_per_client: usize, lifetime: Duration) -> Self {
        LoginLimiter {
            max_per_client,
            lifetime,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new login of `client`; when it has too many unfinished, how long until the
    /// oldest expires.
    pub fn start(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut clients) = self.clients.lock() else {
            return Ok(());
        };
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, logins| logins.back().is_some_and(|last| *last > now));
        }
        let logins = clients.entry(client).or_default();
        while logins.front().is_some_and(|expiry| *expiry <= now) {
            logins.pop_front();
        }
        if logins.len() >= self.max_per_client {
            let wait = logins.front().map_or(self.lifetime, |oldest| *oldest - now);
            return Err(wait);
        }
        logins.push_back(now + self.lifetime);
        Ok(())
    }

    /// A login of `client` ended (finished, refused or failed): it no longer counts.
    pub fn finished(&self, client: IpAddr) {
        if let Ok(mut clients) = self.clients.lock()
            && let Some(logins) = clients.get_mut(&client)
        {
            logins.pop_front();
            if logins.is_empty() {
                clients.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_others_theirs() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(600));
        let flood: IpAddr = "203.0.113.7".parse().unwrap();
        let user: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(limiter.start(flood).is_ok());
        assert!(limiter.start(flood).is_ok());
        let wait = limiter.start(flood).unwrap_err();
        assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600));
        assert!(limiter.start(user).is_ok());
        limiter.finished(flood);
        assert!(limiter.start(flood).is_ok());
    }

    #[test]
    fn expired_logins_no_longer_count() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(20));
        let client: IpAddr = "::1".parse().unwrap();
        assert!(limiter.start(client).is_ok());
        assert!(limiter.start(client).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.start(client).is_ok());
    }
}
