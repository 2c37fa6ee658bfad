//! The host side of an isolated plugin: one worker process per alias, started with the
//! alias' settings, spoken to over its pipes, replaced when it dies.
//!
//! A worker that dies (any signal or exit) fails only the calls it held, naming the alias and
//! how it ended; the next call starts a new one, after a back-off that grows while it keeps
//! crashing. A call past the time limit kills the worker: nothing of it is left running.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_host_plugin_api::PluginKind;
use tokio::sync::oneshot;

use super::protocol::{Call, Hello, Request, Response, Setup, read_frame, write_frame};
use crate::metrics::{AliasLabels, WorkerExitLabels, WorkerMetrics, WorkerStartLabels};
use crate::plugins::library::LoadError;
use crate::plugins::{PluginCallError, PluginSummary};

/// Crashes within this window count towards the back-off and the crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// So many crashes within the window is a crash loop (reported once, while it lasts).
const CRASH_LOOP: usize = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a worker is started.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub alias: String,
    pub file: PathBuf,
    pub kind: PluginKind,
    /// The alias' settings, as JSON.
    pub settings: String,
    pub call_timeout: Duration,
    pub threads: u32,
    /// Address-space limit of the worker, in bytes (0: none).
    pub memory_limit: u64,
    pub metrics: WorkerMetrics,
}

/// One isolated alias.
pub struct IsolatedPlugin {
    spec: WorkerSpec,
    summary: PluginSummary,
    current: Mutex<Option<Arc<Worker>>>,
    crashes: Mutex<Crashes>,
}

#[derive(Default)]
struct Crashes {
    recent: VecDeque<Instant>,
    last_cause: Option<String>,
    in_loop: bool,
}

/// A running worker process.
struct Worker {
    pid: u32,
    alias: String,
    /// Shared with the answer reader, which reads the exit status once the pipe ends.
    process: Arc<Mutex<Child>>,
    /// Closed (taken) to tell the worker to leave.
    stdin: Mutex<Option<ChildStdin>>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
}

/// Calls awaiting their answer; once the worker is gone, how it ended.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Result<Response, String>>>,
    ended: Option<String>,
}

impl std::fmt::Debug for IsolatedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedPlugin")
            .field("alias", &self.spec.alias)
            .field("file", &self.spec.file)
            .finish_non_exhaustive()
    }
}

impl IsolatedPlugin {
    /// Starts the alias' worker and waits for its hello (blocking, bounded by the call time
    /// limit): a plugin that cannot load is refused here, as it would be in-process.
    pub fn start(spec: WorkerSpec) -> Result<IsolatedPlugin, LoadError> {
        let (worker, summary) = Worker::start(&spec)?;
        spec.metrics
            .starts
            .get_or_create(&WorkerStartLabels {
                alias: spec.alias.clone(),
                reason: "load",
            })
            .inc();
        Ok(IsolatedPlugin {
            spec,
            summary,
            current: Mutex::new(Some(Arc::new(worker))),
            crashes: Mutex::new(Crashes::default()),
        })
    }

    pub fn alias(&self) -> &str {
        &self.spec.alias
    }

    pub fn summary(&self) -> PluginSummary {
        self.summary.clone()
    }

    /// The worker's process id, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.current
            .lock()
            .ok()
            .and_then(|current| current.as_ref().map(|w| w.pid))
    }

    /// Whether the alias keeps crashing (several times a minute).
    pub fn in_crash_loop(&self) -> bool {
        self.crashes.lock().is_ok_and(|c| {
            c.recent
                .iter()
                .filter(|at| at.elapsed() <= CRASH_WINDOW)
                .count()
                >= CRASH_LOOP
        })
    }

    /// One call, answered by the worker (started anew if the last one died).
    pub async fn call(
        &self,
        call: Call,
        service: &str,
        user: String,
    ) -> Result<Response, PluginCallError> {
        let worker = self.worker().await?;
        let (id, answer) = worker.register();
        let request = Request {
            id,
            call,
            service: service.to_owned(),
            user,
        };
        if let Err(cause) = worker.send(&request) {
            return Err(self.crashed(&worker, cause));
        }
        match tokio::time::timeout(self.spec.call_timeout, answer).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(cause))) => Err(self.crashed(&worker, cause)),
            Ok(Err(_)) => Err(self.crashed(&worker, "ended".into())),
            Err(_) => {
                // A real cut-off: the worker and whatever it was running are gone.
                worker.kill();
                self.forget(
                    &worker,
                    format!("killed after {:?}", self.spec.call_timeout),
                );
                Err(PluginCallError::TimedOut {
                    alias: self.spec.alias.clone(),
                    timeout: self.spec.call_timeout,
                })
            }
        }
    }

    /// The running worker, or a new one once the back-off allows.
    async fn worker(&self) -> Result<Arc<Worker>, PluginCallError> {
        if let Some(worker) = self
            .current
            .lock()
            .ok()
            .and_then(|current| current.clone())
            .filter(|worker| worker.alive())
        {
            return Ok(worker);
        }
        if let Some(wait) = self.backoff_left() {
            return Err(PluginCallError::Restarting {
                alias: self.spec.alias.clone(),
                cause: self.last_cause(),
                retry_in: wait,
            });
        }
        let spec = self.spec.clone();
        let started = tokio::task::spawn_blocking(move || Worker::start(&spec))
            .await
            .map_err(|e| e.to_string())
            .and_then(|started| started.map_err(|e| e.to_string()));
        match started {
            Ok((worker, _)) => {
                let worker = Arc::new(worker);
                self.spec
                    .metrics
                    .starts
                    .get_or_create(&WorkerStartLabels {
                        alias: self.spec.alias.clone(),
                        reason: "restart",
                    })
                    .inc();
                tracing::info!(
                    plugin = self.spec.alias,
                    pid = worker.pid,
                    "plugin worker restarted"
                );
                if let Ok(mut current) = self.current.lock() {
                    *current = Some(Arc::clone(&worker));
                }
                Ok(worker)
            }
            Err(reason) => {
                self.note_crash(format!("could not restart: {reason}"));
                Err(PluginCallError::Crashed {
                    alias: self.spec.alias.clone(),
                    cause: format!("could not restart: {reason}"),
                })
            }
        }
    }

    /// The error for calls a dead worker held; the worker is forgotten (once).
    fn crashed(&self, worker: &Arc<Worker>, cause: String) -> PluginCallError {
        self.forget(worker, cause.clone());
        PluginCallError::Crashed {
            alias: self.spec.alias.clone(),
            cause,
        }
    }

    /// Drops `worker` as the current one, counting its end as a crash.
    fn forget(&self, worker: &Arc<Worker>, cause: String) {
        let was_current = self.current.lock().is_ok_and(|mut current| {
            let same = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, worker));
            if same {
                *current = None;
            }
            same
        });
        if was_current {
            tracing::warn!(plugin = self.spec.alias, pid = worker.pid, %cause, "plugin worker ended");
            let kind = if cause.starts_with("killed after") {
                "timeout"
            } else if cause.contains("signal") {
                "signal"
            } else if cause.contains("exited with status") {
                "exit"
            } else {
                "other"
            };
            self.spec
                .metrics
                .exits
                .get_or_create(&WorkerExitLabels {
                    alias: self.spec.alias.clone(),
                    cause: kind,
                })
                .inc();
            self.note_crash(cause);
        }
    }

    fn note_crash(&self, cause: String) {
        let Ok(mut crashes) = self.crashes.lock() else {
            return;
        };
        let now = Instant::now();
        crashes.recent.push_back(now);
        while crashes
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) > CRASH_WINDOW)
        {
            crashes.recent.pop_front();
        }
        crashes.last_cause = Some(cause.clone());
        let in_loop = crashes.recent.len() >= CRASH_LOOP;
        if in_loop && !crashes.in_loop {
            tracing::error!(
                plugin = self.spec.alias,
                crashes = crashes.recent.len(),
                %cause,
                "plugin worker is in a crash loop; restarting it with growing delays"
            );
        }
        crashes.in_loop = in_loop;
        self.spec
            .metrics
            .crash_loop
            .get_or_create(&AliasLabels {
                alias: self.spec.alias.clone(),
            })
            .set(i64::from(in_loop));
    }

    /// How long until the next start is allowed: nothing after one crash, then doubling
    /// from 100 ms with each crash in the window, up to 30 s.
    fn backoff_left(&self) -> Option<Duration> {
        let crashes = self.crashes.lock().ok()?;
        let count = crashes.recent.len();
        let last = crashes.recent.back()?;
        if count < 2 {
            return None;
        }
        let exponent = u32::try_from(count - 2).unwrap_or(u32::MAX).min(16);
        let delay = (Duration::from_millis(100) * 2u32.pow(exponent)).min(MAX_BACKOFF);
        delay
            .checked_sub(last.elapsed())
            .filter(|left| !left.is_zero())
    }

    fn last_cause(&self) -> String {
        self.crashes
            .lock()
            .ok()
            .and_then(|c| c.last_cause.clone())
            .unwrap_or_default()
    }
}

impl Worker {
    /// Spawns `auth-host plugin-worker` for the spec and waits for its hello.
    fn start(spec: &WorkerSpec) -> Result<(Worker, PluginSummary), LoadError> {
        let exe = std::env::current_exe()
            .map_err(|e| LoadError::Create(format!("cannot find the auth-host binary: {e}")))?;
        let mut command = Command::new(exe);
        command
            .arg("plugin-worker")
            .args(["--alias", &spec.alias, "--kind"])
            .arg(match spec.kind {
                PluginKind::PermissionProvider => "provider",
                PluginKind::LifecycleExtension => "extension",
            })
            .arg("--file")
            .arg(&spec.file)
            .env_clear()
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        limit_memory(&mut command, spec.memory_limit);
        let mut child = command
            .spawn()
            .map_err(|e| LoadError::Create(format!("cannot start a worker process: {e}")))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(LoadError::Create("the worker has no pipes".into()));
        };
        forward_log(&spec.alias, stderr);
        let setup = Setup {
            timeout_ms: u64::try_from(spec.call_timeout.as_millis()).unwrap_or(u64::MAX),
            threads: spec.threads,
            settings: spec.settings.clone(),
        };
        let hello = write_frame(&mut stdin, &setup.frame())
            .map_err(|e| e.to_string())
            .and_then(|()| read_hello(stdout, spec.call_timeout + Duration::from_secs(5)));
        let (summary, stdout) = match hello {
            Ok((Hello::Ready(summary), stdout)) => (parse_summary(&summary, spec.kind)?, stdout),
            Ok((Hello::Failed(reason), _)) => {
                let _ = child.wait();
                return Err(LoadError::Create(reason));
            }
            Err(reason) => {
                let _ = child.kill();
                let status = child.wait().map(|s| describe_exit(&s)).unwrap_or_default();
                return Err(LoadError::Create(format!("the worker {status}: {reason}")));
            }
        };
        let worker = Worker {
            pid: child.id(),
            alias: spec.alias.clone(),
            process: Arc::new(Mutex::new(child)),
            stdin: Mutex::new(Some(stdin)),
            pending: Arc::new(Mutex::new(Pending::default())),
            next_id: AtomicU64::new(1),
        };
        worker.read_answers(stdout);
        tracing::info!(
            plugin = spec.alias,
            pid = worker.pid,
            "plugin worker started"
        );
        Ok((worker, summary))
    }

    fn alive(&self) -> bool {
        self.pending.lock().is_ok_and(|p| p.ended.is_none())
    }

    /// A new call id and where its answer will arrive.
    fn register(&self) -> (u64, oneshot::Receiver<Result<Response, String>>) {
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

    /// Writes a request. Frames are small and the worker reads its stdin all the time, so
    /// this does not wait on the worker's calls.
    fn send(&self, request: &Request) -> Result<(), String> {
        let mut stdin = self
            .stdin
            .lock()
            .map_err(|_| "its pipe is unusable".to_owned())?;
        let stdin = stdin.as_mut().ok_or_else(|| "it is retiring".to_owned())?;
        write_frame(stdin, &request.frame()).map_err(|e| format!("its pipe broke ({e})"))
    }

    /// Reads answers on a thread of its own until the worker's stdout ends; then every call
    /// still waiting fails with how the worker ended.
    fn read_answers(&self, stdout: std::process::ChildStdout) {
        let pending = Arc::clone(&self.pending);
        let process = Arc::clone(&self.process);
        let alias = self.alias.clone();
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
                let cause = wait_for_exit(&process);
                if let Ok(mut pending) = pending.lock() {
                    for (_, waiting) in pending.waiting.drain() {
                        let _ = waiting.send(Err(cause.clone()));
                    }
                    pending.ended = Some(cause);
                }
            });
    }

    fn kill(&self) {
        if let Ok(mut process) = self.process.lock() {
            let _ = process.kill();
        }
    }
}

impl Drop for Worker {
    /// Retired (a reload, a stop, a crash) once no call holds it: its stdin is closed, so a
    /// live worker leaves by itself; one that does not within a second is killed. Never
    /// blocks the caller.
    fn drop(&mut self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            drop(stdin.take());
        }
        let process = Arc::clone(&self.process);
        let _ = std::thread::Builder::new()
            .name("plugin-worker-reaper".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(1);
                loop {
                    let Ok(mut child) = process.lock() else {
                        return;
                    };
                    match child.try_wait() {
                        Ok(None) if Instant::now() < deadline => {}
                        Ok(None) => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return;
                        }
                        _ => return,
                    }
                    drop(child);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
    }
}

/// How the worker ended, once its stdout closed: its exit status (waited for up to 2 s; a
/// worker that closed its stdout but lives on is killed).
fn wait_for_exit(process: &Mutex<Child>) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let Ok(mut child) = process.lock() else {
            return "ended".into();
        };
        match child.try_wait() {
            Ok(Some(status)) => return describe_exit(&status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return "stopped answering and was killed".into();
            }
            Ok(None) => {}
            Err(e) => return format!("ended ({e})"),
        }
        drop(child);
        std::thread::sleep(Duration::from_millis(5));
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
    })
}

/// The worker's log lines (JSON, from its stderr) in the host's log, tagged with the alias.
fn forward_log(alias: &str, stderr: std::process::ChildStderr) {
    let alias = alias.to_owned();
    let _ = std::thread::Builder::new()
        .name(format!("plugin-log-{alias}"))
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let event: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"message": line}));
                let message = event["message"].as_str().unwrap_or(&line);
                match event["level"].as_str() {
                    Some("ERROR") => tracing::error!(plugin = alias, worker = true, "{message}"),
                    Some("WARN") => tracing::warn!(plugin = alias, worker = true, "{message}"),
                    Some("DEBUG" | "TRACE") => {
                        tracing::debug!(plugin = alias, worker = true, "{message}")
                    }
                    _ => tracing::info!(plugin = alias, worker = true, "{message}"),
                }
            }
        });
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
