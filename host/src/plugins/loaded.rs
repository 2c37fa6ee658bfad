//! One loaded alias, and the one seam its callers use: `get_permissions` and `hook` answer
//! the same way wherever the plugin runs — in this process (a blocking call on the blocking
//! pool, cut off at the time limit) or in a worker process of its own (a request over its
//! pipe). Callers never see which.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use auth_host_plugin_api::{PluginKind, UserInfo};

use super::calls::{Answer, Call, HookDecision, PluginCallError, PluginSummary};
use super::instance::{Plugin, parse_permissions};
use super::isolation::supervisor::IsolatedPlugin;

/// One loaded alias.
#[derive(Debug)]
pub struct LoadedPlugin {
    place: Place,
}

/// Where the alias runs.
#[derive(Debug)]
enum Place {
    InProcess {
        plugin: Arc<Plugin>,
        call_timeout: Duration,
    },
    Isolated {
        plugin: Box<IsolatedPlugin>,
        kind: PluginKind,
        in_flight: Arc<tokio::sync::Semaphore>,
    },
}

impl LoadedPlugin {
    /// An alias in this process; its calls are cut off after `call_timeout`.
    pub fn in_process(plugin: Plugin, call_timeout: Duration) -> LoadedPlugin {
        LoadedPlugin {
            place: Place::InProcess {
                plugin: Arc::new(plugin),
                call_timeout,
            },
        }
    }

    /// An alias in its worker; at most `max_in_flight` calls at once.
    pub fn isolated(plugin: IsolatedPlugin, kind: PluginKind, max_in_flight: usize) -> Self {
        LoadedPlugin {
            place: Place::Isolated {
                plugin: Box::new(plugin),
                kind,
                in_flight: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            },
        }
    }

    pub fn alias(&self) -> &str {
        match &self.place {
            Place::InProcess { plugin, .. } => plugin.alias(),
            Place::Isolated { plugin, .. } => plugin.alias(),
        }
    }

    pub fn kind(&self) -> PluginKind {
        match &self.place {
            Place::InProcess { plugin, .. } => plugin.kind(),
            Place::Isolated { kind, .. } => *kind,
        }
    }

    pub fn summary(&self) -> PluginSummary {
        match &self.place {
            Place::InProcess { plugin, .. } => plugin.summary(),
            Place::Isolated { plugin, .. } => plugin.summary(),
        }
    }

    /// The plugin instance, when the alias runs in this process.
    pub fn instance(&self) -> Option<&Plugin> {
        match &self.place {
            Place::InProcess { plugin, .. } => Some(plugin),
            Place::Isolated { .. } => None,
        }
    }

    /// Whether the alias runs isolated and its worker keeps crashing.
    pub fn in_crash_loop(&self) -> bool {
        match &self.place {
            Place::InProcess { .. } => false,
            Place::Isolated { plugin, .. } => plugin.in_crash_loop(),
        }
    }

    /// The permissions of `user` in `service`.
    pub async fn get_permissions(
        &self,
        service: &str,
        user: &UserInfo,
    ) -> Result<auth_host_plugin_api::Permissions, PluginCallError> {
        let (permissions, ()) = self.get_permissions_then(service, user, |_| ()).await?;
        Ok(permissions)
    }

    /// The permissions of `user` in `service`, and what `then` makes of them, made where the
    /// answer is read: for an in-process plugin, on the blocking thread that called it (its
    /// in-flight slot already given back), so that work as heavy as a signature is not done
    /// on the async workers and costs no second hand-off; for an isolated one, where its
    /// worker's answer arrives. `then` runs only on a valid answer.
    pub async fn get_permissions_then<T: Send + 'static>(
        &self,
        service: &str,
        user: &UserInfo,
        then: impl FnOnce(&auth_host_plugin_api::Permissions) -> T + Send + 'static,
    ) -> Result<(auth_host_plugin_api::Permissions, T), PluginCallError> {
        let read = move |answer: Answer, text: String| match answer {
            Answer::Permissions => parse_permissions(&text).map(|permissions| {
                let made = then(&permissions);
                (permissions, made)
            }),
            // The plugin's message, for `failure`.
            _ => Err(text),
        };
        match self.call(Call::Permissions, service, user, read).await? {
            (Answer::Permissions, read) => read.map_err(|e| self.invalid(e)),
            (other, read) => Err(self.failure((other, read.err().unwrap_or_default()))),
        }
    }

    /// A lifecycle hook (`on_user_logout` always continues).
    pub async fn hook(&self, call: Call, user: &UserInfo) -> Result<HookDecision, PluginCallError> {
        match self.call(call, "", user, |_, text| text).await? {
            (Answer::Continue, _) => Ok(HookDecision::Continue),
            (Answer::Refuse, reason) => Ok(HookDecision::Refuse(reason)),
            (Answer::Amend, text) => serde_json::from_str(&text)
                .map(HookDecision::Amend)
                .map_err(|e| self.invalid(e)),
            other => Err(self.failure(other)),
        }
    }

    /// One call where the alias runs, answered as a worker answers, and what `read` makes
    /// of the answer where it is read; a span of the trace.
    async fn call<R: Send + 'static>(
        &self,
        call: Call,
        service: &str,
        user: &UserInfo,
        read: impl FnOnce(Answer, String) -> R + Send + 'static,
    ) -> Result<(Answer, R), PluginCallError> {
        let span = tracing::debug_span!(
            "plugin call",
            otel.name = format!("plugin {} {call:?}", self.alias()),
            otel.status_code = tracing::field::Empty,
            plugin.alias = self.alias(),
            plugin.call = ?call,
            plugin.isolated = matches!(self.place, Place::Isolated { .. }),
            plugin.outcome = tracing::field::Empty,
        );
        let result = self
            .call_where_it_runs(call, service, user, read)
            .instrument(span.clone())
            .await;
        if !span.is_disabled() {
            match &result {
                Ok((answer, _)) => span.record("plugin.outcome", format!("{answer:?}")),
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("plugin.outcome", error.to_string())
                }
            };
        }
        result
    }

    async fn call_where_it_runs<R: Send + 'static>(
        &self,
        call: Call,
        service: &str,
        user: &UserInfo,
        read: impl FnOnce(Answer, String) -> R + Send + 'static,
    ) -> Result<(Answer, R), PluginCallError> {
        let user = serde_json::to_string(user).map_err(|e| self.invalid(e))?;
        match &self.place {
            Place::InProcess {
                plugin,
                call_timeout,
            } => {
                let service = service.to_owned();
                run_blocking(
                    plugin,
                    *call_timeout,
                    move |plugin| Ok(plugin.answer(call, &service, &user)),
                    move |(answer, text)| (answer, read(answer, text)),
                )
                .await
            }
            Place::Isolated {
                plugin, in_flight, ..
            } => {
                let _permit = Arc::clone(in_flight)
                    .try_acquire_owned()
                    .map_err(|_| self.busy())?;
                let asked = std::time::SystemTime::now();
                let response = plugin.call(call, service, user).await?;
                crate::traces::record_worker_run(
                    self.alias(),
                    asked,
                    response.ran_from_ns,
                    response.ran_until_ns,
                );
                Ok((response.answer, read(response.answer, response.text)))
            }
        }
    }

    fn busy(&self) -> PluginCallError {
        PluginCallError::Busy {
            alias: self.alias().to_owned(),
        }
    }

    fn invalid(&self, message: impl std::fmt::Display) -> PluginCallError {
        PluginCallError::InvalidAnswer {
            alias: self.alias().to_owned(),
            message: message.to_string(),
        }
    }

    /// The error the plugin answered with (or an answer of the wrong kind).
    fn failure(&self, (answer, message): (Answer, String)) -> PluginCallError {
        let alias = self.alias().to_owned();
        match answer {
            Answer::Panicked => PluginCallError::Panicked { alias, message },
            Answer::Failed => PluginCallError::Failed { alias, message },
            Answer::Invalid => PluginCallError::InvalidAnswer { alias, message },
            other => PluginCallError::InvalidAnswer {
                alias,
                message: format!("unexpected answer {other:?} {message}"),
            },
        }
    }
}

/// Runs a blocking call of an in-process plugin on the blocking thread pool, then `after`
/// with its result on the same thread once the call's in-flight slot is given back; both cut
/// off after `call_timeout`. A call that is cut off keeps its thread until it returns, and
/// its slot in the plugin's in-flight limit, so a plugin that hangs cannot exhaust the pool
/// (isolating it is what really stops it).
async fn run_blocking<T, U, F, G>(
    plugin: &Arc<Plugin>,
    call_timeout: Duration,
    call: F,
    after: G,
) -> Result<U, PluginCallError>
where
    U: Send + 'static,
    F: FnOnce(&Plugin) -> Result<T, PluginCallError> + Send + 'static,
    G: FnOnce(T) -> U + Send + 'static,
{
    let alias = plugin.alias().to_owned();
    let permit = Arc::clone(plugin.in_flight())
        .try_acquire_owned()
        .map_err(|_| PluginCallError::Busy {
            alias: alias.clone(),
        })?;
    let task_plugin = Arc::clone(plugin);
    let task = tokio::task::spawn_blocking(move || {
        let answered = {
            let _permit = permit;
            call(&task_plugin)
        };
        answered.map(after)
    });
    match tokio::time::timeout(call_timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(PluginCallError::Panicked {
            alias,
            message: join_error.to_string(),
        }),
        Err(_) => Err(PluginCallError::TimedOut {
            alias,
            timeout: call_timeout,
        }),
    }
}
