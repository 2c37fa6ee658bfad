//! Which of the keys kept in the database signs now, which are published, and which are
//! still to be made: a pure function of the stored keys and the time, so that every replica
//! reading the same rows at the same time agrees.
//!
//! With rotation every `R` seconds, generation `g` signs during `[g·R, (g+1)·R)`. It is
//! published one period before it signs (so a downstream service refreshing its JWKS learns it
//! in time) and until every token it signed has expired. Keys are made two periods ahead, so
//! each replica has read a key from the database well before it is published.
//! Without rotation, the newest key signs for good.

/// When a stored key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWindow {
    pub generation: i64,
    /// Unix seconds.
    pub signs_from: i64,
    /// Unix seconds; `None`: until a newer key takes over.
    pub signs_until: Option<i64>,
}

/// The rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// 0: never rotate.
    pub rotation_secs: u64,
    /// How long after a key stops signing its tokens may still verify: the longest token
    /// lifetime plus the verification leeway.
    pub verify_secs: u64,
}

/// What the stored keys mean at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The generation that signs; `None` until `missing` is made.
    pub signing: Option<i64>,
    /// Generations whose public key is served (the signing one included), oldest first.
    pub published: Vec<i64>,
    /// Keys to make now.
    pub missing: Vec<KeyWindow>,
    /// Generations no token can need any more.
    pub expired: Vec<i64>,
    /// Unix seconds: the next moment the plan changes (a key starts signing, is published or
    /// withdrawn), so that every replica can look again right then.
    pub next_change: Option<i64>,
}

/// Keys made ahead of the one signing, when rotating.
const AHEAD: i64 = 2;

/// Without rotation, a newest key that starts signing at most this far ahead signs now: it
/// was made by a replica whose clock was that much ahead (or read a moment later), and a
/// second key would leave replicas signing with different ones.
const START_LEEWAY_SECS: i64 = 300;

impl Schedule {
    pub fn plan(&self, keys: &[KeyWindow], now: i64) -> Plan {
        let mut keys = keys.to_vec();
        keys.sort_by_key(|k| k.generation);
        let rotation = i64::try_from(self.rotation_secs).unwrap_or(i64::MAX);
        let verify = i64::try_from(self.verify_secs).unwrap_or(i64::MAX);
        // A key without an end signs until the next generation starts.
        let ends: Vec<Option<i64>> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                key.signs_until
                    .or_else(|| keys.get(i + 1).map(|next| next.signs_from))
            })
            .collect();
        let mut plan = Plan::default();
        if rotation > 0 {
            let current = now.div_euclid(rotation);
            for generation in current..=current.saturating_add(AHEAD) {
                if keys.iter().all(|k| k.generation != generation) {
                    plan.missing.push(KeyWindow {
                        generation,
                        signs_from: generation.saturating_mul(rotation),
                        signs_until: Some(generation.saturating_add(1).saturating_mul(rotation)),
                    });
                }
            }
            plan.signing = keys
                .iter()
                .zip(&ends)
                .rev()
                .find(|(k, end)| k.signs_from <= now && end.is_none_or(|end| now < end))
                .map(|(k, _)| k.generation);
        } else {
            plan.signing = keys
                .iter()
                .rev()
                .find(|k| k.signs_from <= now)
                .or_else(|| {
                    keys.last()
                        .filter(|k| k.signs_from <= now.saturating_add(START_LEEWAY_SECS))
                })
                .map(|k| k.generation);
            if plan.signing.is_none() {
                plan.missing.push(KeyWindow {
                    generation: keys.last().map_or(0, |k| k.generation.saturating_add(1)),
                    signs_from: now,
                    signs_until: None,
                });
            }
        }
        let moments = keys.iter().zip(&ends).flat_map(|(key, end)| {
            [
                Some(key.signs_from.saturating_sub(rotation)),
                Some(key.signs_from),
                *end,
                end.map(|end| end.saturating_add(verify)),
            ]
        });
        plan.next_change = moments.flatten().filter(|at| *at > now).min();
        for (key, end) in keys.iter().zip(&ends) {
            let signing = plan.signing == Some(key.generation);
            let announced = key.signs_from.saturating_sub(rotation) <= now;
            let still_needed = end.is_none_or(|end| now < end.saturating_add(verify));
            if signing || (announced && still_needed) {
                plan.published.push(key.generation);
            } else if !still_needed {
                plan.expired.push(key.generation);
            }
        }
        plan
    }

    /// How often a replica reads the keys again: often enough to see a key well before it
    /// is published.
    pub fn refresh_every(&self) -> std::time::Duration {
        use std::time::Duration;
        if self.rotation_secs == 0 {
            return Duration::from_secs(60);
        }
        (Duration::from_secs(self.rotation_secs) / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(generation: i64, rotation: i64) -> KeyWindow {
        KeyWindow {
            generation,
            signs_from: generation * rotation,
            signs_until: Some((generation + 1) * rotation),
        }
    }

    #[test]
    fn without_rotation_the_newest_key_signs_for_good() {
        let schedule = Schedule {
            rotation_secs: 0,
            verify_secs: 100,
        };
        let fresh = schedule.plan(&[], 1_000);
        assert_eq!(fresh.signing, None);
        assert_eq!(
            fresh.missing,
            vec![KeyWindow {
                generation: 0,
                signs_from: 1_000,
                signs_until: None
            }]
        );
        let one = KeyWindow {
            generation: 0,
            signs_from: 1_000,
            signs_until: None,
        };
        let later = schedule.plan(&[one], 1_000_000);
        assert_eq!(later.signing, Some(0));
        assert_eq!(later.published, vec![0]);
        assert!(later.missing.is_empty());
    }

    /// The first key, made by a replica whose clock is ahead, seen by one whose clock is 2 s
    /// behind: it signs there too, and no second key is made (one was, and the replicas
    /// served different keys until their next refresh). Far ahead, it is not trusted to sign.
    #[test]
    fn without_rotation_a_key_starting_slightly_ahead_signs_and_none_is_made_beside_it() {
        let schedule = Schedule {
            rotation_secs: 0,
            verify_secs: 100,
        };
        let first = KeyWindow {
            generation: 0,
            signs_from: 1_002,
            signs_until: None,
        };
        let behind = schedule.plan(&[first], 1_000);
        assert_eq!(behind.signing, Some(0));
        assert_eq!(behind.published, vec![0]);
        assert!(behind.missing.is_empty(), "{behind:?}");
        let far = schedule.plan(&[first], 1_002 - START_LEEWAY_SECS - 1);
        assert_eq!(far.signing, None);
        assert_eq!(far.missing.len(), 1);
    }

    #[test]
    fn with_rotation_keys_are_made_ahead_published_before_signing_and_kept_while_needed() {
        let schedule = Schedule {
            rotation_secs: 10,
            verify_secs: 25,
        };
        // Fresh database at t=105: generations 10, 11, 12 are to be made.
        let fresh = schedule.plan(&[], 105);
        let made: Vec<i64> = fresh.missing.iter().map(|k| k.generation).collect();
        assert_eq!(made, vec![10, 11, 12]);
        assert_eq!(fresh.missing[0].signs_from, 100);

        let keys: Vec<KeyWindow> = (5..=12).map(|g| window(g, 10)).collect();
        let plan = schedule.plan(&keys, 105);
        assert_eq!(plan.signing, Some(10));
        assert!(plan.missing.is_empty());
        // 7 stopped at 80: 80 + 25 = 105 is past; 8 stopped at 90, 9 at 100: kept. 11 signs
        // from 110: published one period ahead; 12 (from 120) not yet.
        assert_eq!(plan.published, vec![8, 9, 10, 11]);
        assert_eq!(plan.expired, vec![5, 6, 7]);
        // 8 is withdrawn at 90 + 25 = 115, 11 signs from 110: look again at 110.
        assert_eq!(plan.next_change, Some(110));

        // At 110, 11 signs and 13 is to be made.
        let plan = schedule.plan(&keys, 110);
        assert_eq!(plan.signing, Some(11));
        assert_eq!(
            plan.missing
                .iter()
                .map(|k| k.generation)
                .collect::<Vec<_>>(),
            vec![13]
        );
    }

    #[test]
    fn a_key_from_before_rotation_signs_until_the_first_rotated_key_takes_over() {
        let schedule = Schedule {
            rotation_secs: 10,
            verify_secs: 25,
        };
        let old = KeyWindow {
            generation: 0,
            signs_from: 3,
            signs_until: None,
        };
        let keys = [old, window(10, 10), window(11, 10), window(12, 10)];
        let plan = schedule.plan(&keys, 105);
        assert_eq!(plan.signing, Some(10));
        // It stopped at 100 (when generation 10 began): kept until 125.
        assert!(plan.published.contains(&0));
        assert!(schedule.plan(&keys, 126).expired.contains(&0));
    }

    #[test]
    fn refreshes_come_often_enough_to_see_keys_before_they_are_published() {
        let every = |rotation_secs| {
            Schedule {
                rotation_secs,
                verify_secs: 0,
            }
            .refresh_every()
        };
        assert_eq!(every(2), std::time::Duration::from_millis(500));
        assert_eq!(every(0), std::time::Duration::from_secs(60));
        assert_eq!(every(86_400), std::time::Duration::from_secs(60));
    }
}
