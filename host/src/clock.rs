//! Wall-clock time as tokens and stored rows count it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in Unix seconds, as stored in the database.
pub fn unix_now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// Now, in Unix milliseconds (audit events).
pub fn unix_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How long until the Unix millisecond `at` (zero once it has passed).
pub fn time_until_millis(at: i64) -> std::time::Duration {
    let at = u64::try_from(at)
        .map(std::time::Duration::from_millis)
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    at.saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_until_counts_down_to_a_unix_millisecond_and_never_overflows() {
        assert!(time_until_millis(0).is_zero());
        assert!(time_until_millis(-5).is_zero());
        let soon = time_until_millis(unix_now_millis() + 10_000);
        assert!(
            soon > std::time::Duration::from_secs(8) && soon <= std::time::Duration::from_secs(10)
        );
        assert!(time_until_millis(i64::MAX) > std::time::Duration::from_secs(1 << 30));
    }
}
