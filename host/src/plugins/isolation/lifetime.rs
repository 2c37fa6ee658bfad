//! Worker processes end with the host, and take what their plugin started with them.
//!
//! - Each worker leads a process group of its own, which the plugin's children join: the
//!   host ends a worker by signalling the whole group, before reaping the worker (while the
//!   group id cannot have been reused).
//! - When the host exits, it ends every group still alive ([`end_all`]).
//! - When the host dies without a chance to (SIGKILL, a crash), the kernel sends each worker
//!   its parent-death signal: SIGTERM, on which the worker ends its own group, the processes
//!   its plugin started included. A worker under the system-call filter makes it SIGKILL
//!   itself, which nothing in it can catch or ignore (it cannot have started processes, nor
//!   clear the signal: the filter refuses both; see `sandbox::enter`). The signal follows the
//!   *thread* that started the worker, so workers are started from one thread that lives as
//!   long as the process.
//!
//! A plugin that moves its children to another session (`setsid`) escapes the group: the
//! sandbox's system-call filter is what forbids that.

use std::collections::HashSet;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Worker process ids (each its group's id) not yet reaped.
static LIVE: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Starts `command` as a worker: a group of its own, SIGTERM when the host goes, no
/// descriptor of the host's but its pipes.
pub(super) fn spawn(mut command: Command) -> std::io::Result<GroupLeader> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let host = unsafe { libc::getpid() };
    // SAFETY: runs in the forked child before exec; setpgid, prctl, getppid and _exit are
    // async-signal-safe and the closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The host died between fork and prctl: nobody would send the signal.
            if libc::getppid() != host {
                libc::_exit(1);
            }
            // Nothing of the host's but the three pipes reaches the worker: every other
            // descriptor closes at exec (marked, not closed now, so that the standard
            // library's own exec-error pipe still works until then).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let (answer, answered) = mpsc::channel();
    launcher()
        .lock()
        .map_err(|_| std::io::Error::other("the worker launcher is unusable"))?
        .send((command, answer))
        .map_err(|_| std::io::Error::other("the worker launcher has stopped"))?;
    let child = answered
        .recv()
        .map_err(|_| std::io::Error::other("the worker launcher has stopped"))??;
    if let Ok(mut live) = LIVE.lock() {
        live.get_or_insert_with(HashSet::new).insert(child.id());
    }
    Ok(GroupLeader { child, ended: None })
}

/// The thread every worker is started from, alive as long as the process.
fn launcher() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    LAUNCHER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        let _ = std::thread::Builder::new()
            .name("plugin-worker-launcher".into())
            .spawn(move || {
                for (mut command, answer) in incoming {
                    let _ = answer.send(command.spawn());
                }
            });
        Mutex::new(requests)
    })
}

/// A worker process, the leader of its group. Only this reaps it, so that its group is
/// signalled only while its id cannot have been reused.
pub(super) struct GroupLeader {
    child: Child,
    ended: Option<ExitStatus>,
}

impl GroupLeader {
    pub(super) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its stdin, stdout and stderr, once.
    pub(super) fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (
            self.child.stdin.take(),
            self.child.stdout.take(),
            self.child.stderr.take(),
        )
    }

    /// Ends the group (the worker and what its plugin started) unless the worker was reaped
    /// already; never waits.
    pub(super) fn kill(&mut self) {
        if self.ended.is_none() {
            kill_group(self.child.id());
        }
    }

    /// How the worker ended, once it has: what is left of its group is ended, and the worker
    /// reaped. `None` while it runs.
    pub(super) fn try_reap(&mut self) -> Option<std::io::Result<ExitStatus>> {
        if let Some(status) = self.ended {
            return Some(Ok(status));
        }
        match has_exited(self.child.id()) {
            Some(false) => return None,
            Some(true) => kill_group(self.child.id()),
            // Nothing to wait for, which cannot be while it is unreaped: leave the group be.
            None => {}
        }
        let status = self.child.wait();
        if let Ok(status) = &status {
            self.ended = Some(*status);
        }
        forget(self.child.id());
        Some(status)
    }
}

/// Waits up to `within` for the worker to exit, else kills its group; how it ended, and
/// whether it had to be killed. The lock is held only between looks, so that a kill from
/// elsewhere never waits for this.
pub(super) fn reap_within(
    process: &Mutex<GroupLeader>,
    within: Duration,
) -> (std::io::Result<ExitStatus>, bool) {
    let deadline = Instant::now() + within;
    let mut killed = false;
    loop {
        {
            let Ok(mut leader) = process.lock() else {
                return (Err(std::io::Error::other("unusable")), killed);
            };
            if let Some(status) = leader.try_reap() {
                return (status, killed);
            }
            if !killed && Instant::now() >= deadline {
                leader.kill();
                killed = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends every worker group still alive: the host is exiting.
pub fn end_all() {
    let live = LIVE.lock().ok().and_then(|mut live| live.take());
    for pid in live.into_iter().flatten() {
        kill_group(pid);
    }
}

fn forget(pid: u32) {
    if let Ok(mut live) = LIVE.lock()
        && let Some(live) = live.as_mut()
    {
        live.remove(&pid);
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names the group
        // this worker leads, whose id stays reserved until the worker is reaped.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Whether the worker has exited, leaving it to be reaped (`WNOWAIT`); `None` when there is
/// no such child to wait for.
fn has_exited(pid: u32) -> Option<bool> {
    // SAFETY: waitid writes only into `info`, which lives on this stack frame.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let found = libc::waitid(
            libc::P_PID,
            libc::id_t::from(pid),
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // A child that has not exited leaves `si_pid` at 0.
        (found == 0).then(|| info.si_pid() != 0)
    }
}
