//! The host side of an isolated plugin: one worker process per alias, started with the
//! alias' settings, spoken to over its pipes, replaced when it dies.
//!
//! A worker that dies (any signal or exit) fails only the calls it held, naming the alias and
//! how it ended; the next call starts a new one, after a back-off that grows while it keeps
//! crashing. A call past the time limit kills the worker: nothing of it is left running.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::process::WorkerSpec;
use super::process::{OnExit, Worker};
use super::protocol::{Call, Request, Response};
use crate::metrics::{AliasLabels, WorkerExitLabels, WorkerMetrics, WorkerStartLabels};
use crate::plugins::calls::{PluginCallError, PluginSummary};
use crate::plugins::library::LoadError;

/// Crashes within this window count towards the back-off and the crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// So many crashes within the window is a crash loop (reported once, while it lasts).
const CRASH_LOOP: usize = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One isolated alias.
pub struct IsolatedPlugin {
    spec: WorkerSpec,
    summary: PluginSummary,
    current: Mutex<Option<Arc<Worker>>>,
    /// Held while a new worker starts.
    restarting: tokio::sync::Mutex<()>,
    exits: Arc<Exits>,
}

/// How the alias' workers ended: counted when each ends (in a call or idle), for the
/// metrics, the back-off and the crash loop.
struct Exits {
    alias: String,
    metrics: WorkerMetrics,
    crashes: Mutex<Crashes>,
}

#[derive(Default)]
struct Crashes {
    recent: VecDeque<Instant>,
    last_cause: Option<String>,
    in_loop: bool,
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
        let exits = Arc::new(Exits {
            alias: spec.alias.clone(),
            metrics: spec.metrics.clone(),
            crashes: Mutex::new(Crashes::default()),
        });
        let (worker, summary) = Worker::start(&spec, exits.on_exit())?;
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
            restarting: tokio::sync::Mutex::new(()),
            exits,
        })
    }

    pub fn alias(&self) -> &str {
        &self.spec.alias
    }

    pub fn summary(&self) -> PluginSummary {
        self.summary.clone()
    }

    /// Whether the alias keeps crashing (several times a minute).
    pub fn in_crash_loop(&self) -> bool {
        self.exits.crashes.lock().is_ok_and(|c| {
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
            // A part of the frame may be in the pipe: the worker cannot be talked to again.
            worker.kill(cause.clone());
            return Err(self.crashed(&worker, cause));
        }
        match tokio::time::timeout(self.spec.call_timeout, answer).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(cause))) => Err(self.crashed(&worker, cause)),
            Ok(Err(_)) => Err(self.crashed(&worker, "ended".into())),
            Err(_) => {
                // A real cut-off: the worker and whatever it was running are gone.
                worker.kill(format!("killed after {:?}", self.spec.call_timeout));
                self.forget(&worker);
                Err(PluginCallError::TimedOut {
                    alias: self.spec.alias.clone(),
                    timeout: self.spec.call_timeout,
                })
            }
        }
    }

    /// The running worker, or a new one once the back-off allows.
    async fn worker(&self) -> Result<Arc<Worker>, PluginCallError> {
        if let Some(worker) = self.live_worker() {
            return Ok(worker);
        }
        // One restart at a time: calls arriving meanwhile wait for it, then use its worker.
        let _restarting = self.restarting.lock().await;
        if let Some(worker) = self.live_worker() {
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
        let on_exit = self.exits.on_exit();
        let started = tokio::task::spawn_blocking(move || Worker::start(&spec, on_exit))
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
                self.exits
                    .note_crash(format!("could not restart: {reason}"));
                Err(PluginCallError::Crashed {
                    alias: self.spec.alias.clone(),
                    cause: format!("could not restart: {reason}"),
                })
            }
        }
    }

    fn live_worker(&self) -> Option<Arc<Worker>> {
        self.current
            .lock()
            .ok()
            .and_then(|current| current.clone())
            .filter(|worker| worker.alive())
    }

    /// The error for calls a dead worker held; the worker is forgotten.
    fn crashed(&self, worker: &Arc<Worker>, cause: String) -> PluginCallError {
        self.forget(worker);
        PluginCallError::Crashed {
            alias: self.spec.alias.clone(),
            cause,
        }
    }

    /// Drops `worker` as the current one (its end is counted by [`Exits`]).
    fn forget(&self, worker: &Arc<Worker>) {
        if let Ok(mut current) = self.current.lock()
            && current.as_ref().is_some_and(|c| Arc::ptr_eq(c, worker))
        {
            *current = None;
        }
    }

    /// How long until the next start is allowed: nothing after one crash, then doubling
    /// from 100 ms with each crash in the window, up to 30 s.
    fn backoff_left(&self) -> Option<Duration> {
        let crashes = self.exits.crashes.lock().ok()?;
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
        self.exits
            .crashes
            .lock()
            .ok()
            .and_then(|c| c.last_cause.clone())
            .unwrap_or_default()
    }
}

impl Exits {
    fn on_exit(self: &Arc<Self>) -> OnExit {
        let exits = Arc::clone(self);
        Arc::new(move |pid, cause| exits.ended(pid, cause))
    }

    /// A worker in service ended: logged, counted by cause, and noted for the back-off.
    fn ended(&self, pid: u32, cause: &str) {
        tracing::warn!(plugin = self.alias, pid, %cause, "plugin worker ended");
        let kind = if cause.starts_with("killed after") {
            "timeout"
        } else if cause.contains("signal") {
            "signal"
        } else if cause.contains("exited with status") {
            "exit"
        } else {
            "other"
        };
        self.metrics
            .exits
            .get_or_create(&WorkerExitLabels {
                alias: self.alias.clone(),
                cause: kind,
            })
            .inc();
        self.note_crash(cause.to_owned());
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
                plugin = self.alias,
                crashes = crashes.recent.len(),
                %cause,
                "plugin worker is in a crash loop; restarting it with growing delays"
            );
        }
        crashes.in_loop = in_loop;
        self.metrics
            .crash_loop
            .get_or_create(&AliasLabels {
                alias: self.alias.clone(),
            })
            .set(i64::from(in_loop));
    }
}
