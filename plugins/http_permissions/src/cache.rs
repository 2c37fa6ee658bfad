//! Answers kept per user and service, bounded in entries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use auth_host_plugin_api::Permissions;

struct Entry {
    /// The request the answer was given for: a changed profile is a different question.
    request: Vec<u8>,
    permissions: Permissions,
    at: Instant,
}

pub struct Cache {
    entries: HashMap<(String, String), Entry>,
    capacity: usize,
    /// Older entries serve nothing.
    keep: Duration,
}

impl Cache {
    pub fn new(capacity: usize, keep: Duration) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity,
            keep,
        }
    }

    /// The answer to `request` for `key`, if it is younger than `within`.
    pub fn get(
        &self,
        key: &(String, String),
        request: &[u8],
        now: Instant,
        within: Duration,
    ) -> Option<Permissions> {
        let entry = self.entries.get(key)?;
        (entry.request == request && now.saturating_duration_since(entry.at) < within)
            .then(|| entry.permissions.clone())
    }

    /// Keeps an answer (unless nothing is kept at all); when full, entries too old to serve
    /// go first, then the oldest.
    pub fn put(
        &mut self,
        key: (String, String),
        request: Vec<u8>,
        permissions: Permissions,
        now: Instant,
    ) {
        if self.capacity == 0 || self.keep.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let keep = self.keep;
            self.entries
                .retain(|_, entry| now.saturating_duration_since(entry.at) < keep);
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.at)
                    .map(|(key, _)| key.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                request,
                permissions,
                at: now,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> (String, String) {
        ("wiki".to_owned(), user.to_owned())
    }

    fn answer(n: i64) -> Permissions {
        let mut permissions = Permissions::new();
        permissions.insert("n".into(), n.into());
        permissions
    }

    #[test]
    fn an_answer_serves_the_same_request_within_its_time() {
        let mut cache = Cache::new(10, Duration::from_secs(60));
        let start = Instant::now();
        cache.put(key("u1"), b"ask".to_vec(), answer(1), start);
        let within = Duration::from_secs(30);
        assert_eq!(
            cache.get(&key("u1"), b"ask", start, within),
            Some(answer(1))
        );
        assert_eq!(
            cache.get(&key("u1"), b"changed profile", start, within),
            None
        );
        assert_eq!(cache.get(&key("u2"), b"ask", start, within), None);
        let later = start + Duration::from_secs(31);
        assert_eq!(cache.get(&key("u1"), b"ask", later, within), None);
        assert_eq!(
            cache.get(&key("u1"), b"ask", later, Duration::from_secs(60)),
            Some(answer(1))
        );
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let mut cache = Cache::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..10u64 {
            let at = start + Duration::from_millis(i);
            cache.put(key(&format!("u{i}")), b"ask".to_vec(), answer(i as i64), at);
            assert!(cache.len() <= 3);
        }
        let now = start + Duration::from_millis(10);
        let within = Duration::from_secs(60);
        // The newest stay.
        assert_eq!(cache.get(&key("u9"), b"ask", now, within), Some(answer(9)));
        assert_eq!(cache.get(&key("u0"), b"ask", now, within), None);
        assert_eq!(Cache::new(0, within).len(), 0);
    }
}
