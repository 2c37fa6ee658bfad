//! A worker that burns CPU while it holds no call: its plugin left threads running after
//! answering (one burnt 2.5 CPU-seconds so). The time limit bounds a call; this bounds the
//! time between calls. Each worker is looked at every [`WINDOW`]; a window with no call in
//! flight, none started, and more than [`MAX_IDLE_CPU`] of the worker's CPU time ends the
//! worker (the next call starts a new one, as after a crash).

use std::time::Duration;

/// How often a worker's CPU time is read.
pub(super) const WINDOW: Duration = Duration::from_secs(1);

/// CPU a worker may use in one window without a call (half a core: a plugin's own
/// housekeeping stays far below).
pub(super) const MAX_IDLE_CPU: Duration = Duration::from_millis(500);

/// One look at a worker: its CPU time so far, and its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Look {
    pub cpu: Duration,
    /// Calls started so far.
    pub started: u64,
    /// Calls in flight now.
    pub in_flight: usize,
}

/// Why the worker is to be ended, when the window from `before` to `now` was idle and busy.
pub(super) fn verdict(before: Look, now: Look) -> Option<String> {
    let idle = before.in_flight == 0 && now.in_flight == 0 && before.started == now.started;
    let used = now.cpu.saturating_sub(before.cpu);
    (idle && used > MAX_IDLE_CPU).then(|| {
        format!(
            "used {} ms of CPU in {} ms with no call in flight (at most {} ms): its plugin \
             keeps working between calls",
            used.as_millis(),
            WINDOW.as_millis(),
            MAX_IDLE_CPU.as_millis()
        )
    })
}

/// The CPU time (user and system, all threads) of process `pid`, from `/proc/<pid>/stat`.
pub(super) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its end.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|t| *t > 0)?;
    Some(Duration::from_millis(
        ticks.saturating_mul(1000) / per_second,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(cpu_ms: u64, started: u64, in_flight: usize) -> Look {
        Look {
            cpu: Duration::from_millis(cpu_ms),
            started,
            in_flight,
        }
    }

    #[test]
    fn only_a_busy_window_without_calls_ends_the_worker() {
        assert!(verdict(look(0, 3, 0), look(900, 3, 0)).is_some());
        // Within the allowance.
        assert!(verdict(look(0, 3, 0), look(400, 3, 0)).is_none());
        // A call in flight at either end, or one started and done within the window.
        assert!(verdict(look(0, 3, 1), look(900, 3, 0)).is_none());
        assert!(verdict(look(0, 3, 0), look(900, 3, 1)).is_none());
        assert!(verdict(look(0, 3, 0), look(900, 4, 0)).is_none());
        // A clock that went backwards is no CPU used.
        assert!(verdict(look(900, 3, 0), look(0, 3, 0)).is_none());
    }

    #[test]
    fn this_process_cpu_time_is_read() {
        let start = cpu_time(std::process::id()).unwrap();
        let until = std::time::Instant::now() + Duration::from_millis(200);
        let mut spin = 0u64;
        while std::time::Instant::now() < until {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(cpu_time(std::process::id()).unwrap() > start);
    }
}
