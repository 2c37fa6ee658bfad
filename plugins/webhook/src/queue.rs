//! Fire-and-forget delivery: a bounded queue drained by one thread of the plugin's own. A
//! failed attempt waits for its retry aside, so the events behind it are not held up.
//!
//! The queue lives in memory. When the host reloads its plugins the old instance is dropped,
//! which closes the queue: its thread still finishes what was queued and the retries under
//! way, then ends. Events still queued when the process stops are lost.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use auth_host_plugin_api::{Logger, PluginError};

use crate::delivery::{Endpoint, Event, Failure};

/// When to try again, and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    first_delay: Duration,
    max_delay: Duration,
    capacity: usize,
}

impl RetryPolicy {
    pub fn new(
        max_attempts: u32,
        first_delay: Duration,
        max_delay: Duration,
        capacity: usize,
    ) -> Result<RetryPolicy, PluginError> {
        if max_attempts == 0 {
            return Err(PluginError::new("max_attempts: must be at least 1"));
        }
        if capacity == 0 {
            return Err(PluginError::new("queue_capacity: must be at least 1"));
        }
        if first_delay > max_delay {
            return Err(PluginError::new(
                "retry_initial_ms: must not exceed retry_max_ms",
            ));
        }
        Ok(RetryPolicy {
            max_attempts,
            first_delay,
            max_delay,
            capacity,
        })
    }

    /// The wait after `attempts` failed attempts: doubling from the first delay, capped.
    fn delay_after(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// The sending side, held by the plugin instance. Dropping it closes the queue.
pub struct Queue {
    sender: SyncSender<Event>,
    logger: Logger,
}

impl Queue {
    pub fn start(
        endpoint: Endpoint,
        policy: RetryPolicy,
        logger: Logger,
    ) -> Result<Queue, PluginError> {
        let (sender, receiver) = sync_channel(policy.capacity);
        let worker = Worker {
            endpoint,
            policy,
            logger: logger.clone(),
            waiting: BinaryHeap::new(),
            order: 0,
        };
        std::thread::Builder::new()
            .name(format!("webhook-{}", logger.alias()))
            .spawn(move || worker.run(receiver))
            .map_err(|e| PluginError::new(format!("cannot start the delivery thread: {e}")))?;
        Ok(Queue { sender, logger })
    }

    /// Queues `event`, never waiting: when the queue is full the event is dropped and logged.
    pub fn push(&self, event: Event) {
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.logger.error(format_args!(
                "{} {}: dropped, the delivery queue is full",
                event.event_type, event.id
            )),
            Err(TrySendError::Disconnected(event)) => self.logger.error(format_args!(
                "{} {}: dropped, the delivery thread has stopped",
                event.event_type, event.id
            )),
        }
    }
}

/// An event whose last attempt failed, waiting for its next.
struct Waiting {
    due: Instant,
    /// Ties on `due` go in arrival order.
    order: u64,
    attempts: u32,
    event: Event,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest due first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

struct Worker {
    endpoint: Endpoint,
    policy: RetryPolicy,
    logger: Logger,
    waiting: BinaryHeap<Waiting>,
    order: u64,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Event>) {
        let mut open = true;
        loop {
            while self
                .waiting
                .peek()
                .is_some_and(|next| next.due <= Instant::now())
            {
                if let Some(next) = self.waiting.pop() {
                    self.attempt(next.event, next.attempts);
                }
            }
            let next_due = self.waiting.peek().map(|next| next.due);
            if !open {
                match next_due {
                    Some(due) => std::thread::sleep(due.saturating_duration_since(Instant::now())),
                    None => return,
                }
                continue;
            }
            let received = match next_due {
                Some(due) => receiver.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(event) => self.attempt(event, 0),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    if !self.waiting.is_empty() {
                        self.logger.info(format_args!(
                            "this instance was unloaded; its thread ends after the {} \
                             retries under way",
                            self.waiting.len()
                        ));
                    }
                }
            }
        }
    }

    /// One more attempt at `event`, which has had `attempts` before.
    fn attempt(&mut self, event: Event, attempts: u32) {
        let attempts = attempts + 1;
        // A panic here must not end the thread and with it every later delivery.
        let outcome = catch_unwind(AssertUnwindSafe(|| self.endpoint.deliver(&event)))
            .unwrap_or_else(|_| Err(Failure::Unreachable("the delivery panicked".into())));
        let failure = match outcome {
            Ok(()) => {
                if attempts > 1 {
                    self.logger.info(format_args!(
                        "{} {}: delivered at attempt {attempts}",
                        event.event_type, event.id
                    ));
                }
                return;
            }
            Err(failure) => failure,
        };
        let (kind, id, max) = (event.event_type, &event.id, self.policy.max_attempts);
        if attempts >= max {
            self.logger.error(format_args!(
                "{kind} {id}: given up after {attempts} attempts: {failure}"
            ));
        } else if self.waiting.len() >= self.policy.capacity {
            self.logger.error(format_args!(
                "{kind} {id}: dropped after attempt {attempts} ({failure}): \
                 {} deliveries already wait for a retry",
                self.waiting.len()
            ));
        } else {
            let delay = self.policy.delay_after(attempts);
            self.logger.warn(format_args!(
                "{kind} {id}: attempt {attempts} of {max} failed ({failure}); \
                 next in {} ms",
                delay.as_millis()
            ));
            self.order += 1;
            self.waiting.push(Waiting {
                due: Instant::now() + delay,
                order: self.order,
                attempts,
                event,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy =
            RetryPolicy::new(20, Duration::from_millis(100), Duration::from_secs(1), 10).unwrap();
        let delays: Vec<u128> = (1..=6).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.delay_after(200), Duration::from_secs(1));
    }

    #[test]
    fn nonsense_policies_are_refused() {
        let ms = Duration::from_millis;
        assert!(RetryPolicy::new(0, ms(1), ms(2), 1).is_err());
        assert!(RetryPolicy::new(1, ms(1), ms(2), 0).is_err());
        assert!(RetryPolicy::new(1, ms(3), ms(2), 1).is_err());
    }
}
