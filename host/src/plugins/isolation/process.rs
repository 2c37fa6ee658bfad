//! A plugin worker process, seen from the host: started with its setup, its hello awaited,
//! calls written to its stdin and answers read from its stdout by id, its log forwarded,
//! its address space capped, its end (and how it ended) told to the calls it held.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_host_plugin_api::PluginKind;
use tokio::sync::oneshot;

use super::lifetime::{self, GroupLeader};
use super::protocol::{Hello, Request, Response, Setup, read_frame, write_frame};
use crate::metrics::WorkerMetrics;
use crate::plugins::calls::PluginSummary;
use crate::plugins::library::LoadError;

/// How a worker is started.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub alias: String,
    pub file: PathBuf,
    pub kind: PluginKind,
    /// The alias' settings, as JSON.
    pub settings: String,
    /// How the worker is confined.
    pub sandbox: super::sandbox::SandboxSpec,
    pub call_timeout: Duration,
    pub threads: u32,
    /// Address-space limit of the worker, in bytes (0: none).
    pub memory_limit: u64,
    pub metrics: WorkerMetrics,
}

/// A running worker process.
pub(super) struct Worker {
    pub(super) pid: u32,
    alias: String,
    /// Shared with the answer reader, which reads the exit status once the pipe ends.
    process: Arc<Mutex<GroupLeader>>,
    /// Closed (taken) to tell the worker to leave.
    stdin: Mutex<Option<ChildStdin>>,
    pending: Arc<Mutex<Pending>>,
    /// The next call's id: also how many calls were started.
    next_id: Arc<AtomicU64>,
    /// Why the host killed it, when it did; told to `on_exit` in place of the signal.
    killed_because: Arc<Mutex<Option<String>>>,
    /// Set once the host no longer needs it: its end is then no crash.
    retiring: Arc<std::sync::atomic::AtomicBool>,
}

/// Told how a worker ended, when it ended while in service (in a call or idle): not when
/// it was retired.
pub(super) type OnExit = Arc<dyn Fn(u32, &str) + Send + Sync>;

/// Calls awaiting their answer; once the worker is gone, how it ended.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Result<Response, String>>>,
    ended: Option<String>,
}

impl Worker {
    /// Spawns `auth-host plugin-worker` for the spec and waits for its hello.
    pub(super) fn start(
        spec: &WorkerSpec,
        on_exit: OnExit,
    ) -> Result<(Worker, PluginSummary), LoadError> {
        // The host reads, checks and copies the file; the sandboxed worker opens the copy,
        // which lives until the worker has said hello (it is mapped by then).
        let copy = crate::plugins::library::private_copy(&spec.file)?;
        let mut command = Command::new(super::worker_program()?);
        command
            .arg("plugin-worker")
            .args(["--alias", &spec.alias, "--kind"])
            .arg(match spec.kind {
                PluginKind::PermissionProvider => "provider",
                PluginKind::LifecycleExtension => "extension",
            })
            .arg("--file")
            .arg(copy.path())
            .env_clear()
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // glibc gives threads that allocate arenas of their own, each reserving 64 MiB
            // of address space (up to 8 per core), all counted against the memory limit:
            // one arena serves a worker's short calls and keeps it inside a modest limit.
            .env("MALLOC_ARENA_MAX", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        limit_memory(&mut command, spec.memory_limit);
        let mut child = lifetime::spawn(command)
            .map_err(|e| LoadError::Create(format!("cannot start a worker process: {e}")))?;
        let pid = child.id();
        let pipes = child.take_pipes();
        let process = Arc::new(Mutex::new(child));
        let (Some(mut stdin), Some(stdout), Some(stderr)) = pipes else {
            let _ = lifetime::reap_within(&process, Duration::ZERO);
            return Err(LoadError::Create("the worker has no pipes".into()));
        };
        super::worker_log::forward(&spec.alias, stderr);
        let setup = Setup {
            timeout_ms: u64::try_from(spec.call_timeout.as_millis()).unwrap_or(u64::MAX),
            threads: spec.threads,
            settings: spec.settings.clone(),
            sandbox: serde_json::to_string(&spec.sandbox)
                .map_err(|e| LoadError::Create(format!("sandbox: {e}")))?,
        };
        let hello = write_frame(&mut stdin, &setup.frame())
            .map_err(|e| e.to_string())
            .and_then(|()| read_hello(stdout, spec.call_timeout + Duration::from_secs(5)));
        let (summary, stdout) = match hello {
            Ok((Hello::Ready(summary), stdout)) => (parse_summary(&summary, spec.kind)?, stdout),
            Ok((Hello::Failed(reason), _)) => {
                // It leaves by itself after saying why.
                let _ = lifetime::reap_within(&process, Duration::from_secs(2));
                return Err(LoadError::Create(reason));
            }
            Err(reason) => {
                let (status, _) = lifetime::reap_within(&process, Duration::ZERO);
                let status = status.map(|s| describe_exit(&s)).unwrap_or_default();
                return Err(LoadError::Create(format!("the worker {status}: {reason}")));
            }
        };
        let worker = Worker {
            pid,
            alias: spec.alias.clone(),
            process,
            stdin: Mutex::new(Some(stdin)),
            pending: Arc::new(Mutex::new(Pending::default())),
            next_id: Arc::new(AtomicU64::new(1)),
            killed_because: Arc::new(Mutex::new(None)),
            retiring: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        drop(copy);
        worker.read_answers(stdout, on_exit);
        worker.watch_idle_cpu();
        worker.never_block_on_stdin()?;
        if summary.sandbox.contains("missing") {
            // `sandbox = "available"`: the operator accepted it; it is said at every start.
            tracing::warn!(
                plugin = spec.alias,
                sandbox = summary.sandbox,
                "plugin worker runs with a weaker sandbox than auth-host can build"
            );
        }
        tracing::info!(
            plugin = spec.alias,
            pid = worker.pid,
            sandbox = summary.sandbox,
            "plugin worker started"
        );
        Ok((worker, summary))
    }

    pub(super) fn alive(&self) -> bool {
        self.pending.lock().is_ok_and(|p| p.ended.is_none())
    }

    /// A new call id and where its answer will arrive.
    pub(super) fn register(&self) -> (u64, oneshot::Receiver<Result<Response, String>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            match &pending.ended {
                Some(cause) => {
                    let _ = sender.send(Err(cause.clone()));
                }
                None => {
                    pending.waiting.insert(id, sender);
                }
            }
        }
        (id, receiver)
    }

    /// Writes a request, never waiting: the pipe to the worker is non-blocking. A worker
    /// whose threads are all stuck stops reading; once the pipe is full it is given up.
    pub(super) fn send(&self, request: &Request) -> Result<(), String> {
        let mut stdin = self
            .stdin
            .lock()
            .map_err(|_| "its pipe is unusable".to_owned())?;
        let stdin = stdin.as_mut().ok_or_else(|| "it is retiring".to_owned())?;
        write_frame(stdin, &request.frame()).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => "stopped reading its requests".to_owned(),
            _ => format!("its pipe broke ({e})"),
        })
    }

    /// Makes writes to the worker's stdin fail at once instead of waiting for room: a request
    /// is written from an async handler, which must never block.
    fn never_block_on_stdin(&self) -> Result<(), LoadError> {
        use std::os::fd::AsRawFd;
        let stdin = self
            .stdin
            .lock()
            .map_err(|_| LoadError::Create("the worker's pipe is unusable".into()))?;
        let Some(fd) = stdin.as_ref().map(AsRawFd::as_raw_fd) else {
            return Ok(());
        };
        // SAFETY: fcntl on a descriptor this process owns (the pipe held in `stdin`).
        let set = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
        };
        if set {
            Ok(())
        } else {
            Err(LoadError::Create(format!(
                "cannot make the worker's pipe non-blocking: {}",
                std::io::Error::last_os_error()
            )))
        }
    }

    /// Reads answers on a thread of its own until the worker's stdout ends; then every call
    /// still waiting fails with how the worker ended.
    fn read_answers(&self, stdout: std::process::ChildStdout, on_exit: OnExit) {
        let pending = Arc::clone(&self.pending);
        let process = Arc::clone(&self.process);
        let alias = self.alias.clone();
        let (pid, killed_because) = (self.pid, Arc::clone(&self.killed_because));
        let retiring = Arc::clone(&self.retiring);
        let _ = std::thread::Builder::new()
            .name(format!("plugin-worker-{alias}"))
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                while let Ok(Some(frame)) = read_frame(&mut stdout) {
                    match Response::parse(&frame) {
                        Ok(response) => {
                            let waiting = pending
                                .lock()
                                .ok()
                                .and_then(|mut p| p.waiting.remove(&response.id));
                            if let Some(waiting) = waiting {
                                let _ = waiting.send(Ok(response));
                            }
                        }
                        Err(error) => {
                            tracing::error!(plugin = alias, %error, "damaged answer from the worker");
                            break;
                        }
                    }
                }
                let ended = wait_for_exit(&process);
                let cause = killed_because
                    .lock()
                    .ok()
                    .and_then(|mut reason| reason.take())
                    .unwrap_or(ended);
                // Counted before the calls it held fail, so that their callers see the
                // back-off this end adds to.
                if !retiring.load(Ordering::SeqCst) {
                    on_exit(pid, &cause);
                }
                if let Ok(mut pending) = pending.lock() {
                    for (_, waiting) in pending.waiting.drain() {
                        let _ = waiting.send(Err(cause.clone()));
                    }
                    pending.ended = Some(cause);
                }
            });
    }

    /// Ends the worker when it burns CPU while holding no call (see `idle_cpu`), on a thread
    /// of its own that stops when the worker has ended or retired.
    fn watch_idle_cpu(&self) {
        let (pid, alias) = (self.pid, self.alias.clone());
        let (pending, started) = (Arc::clone(&self.pending), Arc::clone(&self.next_id));
        let (killed_because, process) =
            (Arc::clone(&self.killed_because), Arc::clone(&self.process));
        let retiring = Arc::clone(&self.retiring);
        let look = move || -> Option<super::idle_cpu::Look> {
            let in_flight = pending
                .lock()
                .ok()
                .filter(|p| p.ended.is_none())?
                .waiting
                .len();
            Some(super::idle_cpu::Look {
                cpu: super::idle_cpu::cpu_time(pid)?,
                started: started.load(Ordering::SeqCst),
                in_flight,
            })
        };
        let _ = std::thread::Builder::new()
            .name(format!("plugin-cpu-{alias}"))
            .spawn(move || {
                let Some(mut before) = look() else { return };
                loop {
                    std::thread::sleep(super::idle_cpu::WINDOW);
                    if retiring.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(now) = look() else { return };
                    if let Some(reason) = super::idle_cpu::verdict(before, now) {
                        tracing::warn!(plugin = alias, pid, "plugin worker {reason}; ended");
                        end(&killed_because, &process, reason);
                        return;
                    }
                    before = now;
                }
            });
    }

    /// Kills the worker (and what its plugin started); `because` is how its end is told.
    pub(super) fn kill(&self, because: String) {
        end(&self.killed_because, &self.process, because);
    }
}

impl Drop for Worker {
    /// Retired (a reload, a stop, a crash) once no call holds it: its stdin is closed, so a
    /// live worker leaves by itself; one that does not within a second is killed. Never
    /// blocks the caller.
    fn drop(&mut self) {
        // Killed by the host (a time-out, a broken pipe), its end is still told.
        if self
            .killed_because
            .lock()
            .is_ok_and(|reason| reason.is_none())
        {
            self.retiring.store(true, Ordering::SeqCst);
        }
        if let Ok(mut stdin) = self.stdin.lock() {
            drop(stdin.take());
        }
        let process = Arc::clone(&self.process);
        let _ = std::thread::Builder::new()
            .name("plugin-worker-reaper".into())
            .spawn(move || {
                let _ = lifetime::reap_within(&process, Duration::from_secs(1));
            });
    }
}

/// Kills a worker's group, `because` being how its end is told (the first reason given wins).
fn end(killed_because: &Mutex<Option<String>>, process: &Mutex<GroupLeader>, because: String) {
    if let Ok(mut reason) = killed_because.lock() {
        reason.get_or_insert(because);
    }
    if let Ok(mut process) = process.lock() {
        process.kill();
    }
}

/// How the worker ended, once its stdout closed: its exit status (waited for up to 2 s; a
/// worker that closed its stdout but lives on is killed).
fn wait_for_exit(process: &Mutex<GroupLeader>) -> String {
    match lifetime::reap_within(process, Duration::from_secs(2)) {
        (_, true) => "stopped answering and was killed".into(),
        (Ok(status), false) => describe_exit(&status),
        (Err(e), false) => format!("ended ({e})"),
    }
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended".into(),
    }
}

fn read_hello(
    stdout: std::process::ChildStdout,
    within: Duration,
) -> Result<(Hello, std::process::ChildStdout), String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("plugin-worker-hello".into())
        .spawn(move || {
            let mut stdout = stdout;
            let hello = read_frame(&mut stdout);
            let _ = sender.send((hello, stdout));
        });
    match receiver.recv_timeout(within) {
        Ok((Ok(Some(frame)), stdout)) => Hello::parse(&frame)
            .map(|hello| (hello, stdout))
            .map_err(|e| e.to_string()),
        Ok((Ok(None), _)) => Err("ended before saying hello".into()),
        Ok((Err(e), _)) => Err(format!("cannot be read ({e})")),
        Err(_) => Err(format!("said nothing within {within:?}")),
    }
}

fn parse_summary(text: &str, kind: PluginKind) -> Result<PluginSummary, LoadError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| LoadError::Create(format!("the worker's hello is not JSON: {e}")))?;
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    Ok(PluginSummary {
        kind,
        name: field("name"),
        version: field("version"),
        api_version: field("api_version"),
        sandbox: field("sandbox"),
    })
}

/// Caps the worker's address space, so that a plugin that allocates without end fails there.
fn limit_memory(command: &mut Command, bytes: u64) {
    if bytes == 0 {
        return;
    }
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; setrlimit is async-signal-safe and the
    // closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
