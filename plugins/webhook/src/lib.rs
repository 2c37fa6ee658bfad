//! `webhook`: posts each lifecycle event as JSON to a URL, signed with HMAC-SHA256 the way
//! Standard Webhooks (<https://www.standardwebhooks.com/>) does it, so receivers can verify
//! deliveries with any of its libraries.
//!
//! ```toml
//! INSTALLED_EXTENSIONS = "webhook"
//!
//! [plugins.webhook]
//! url = "https://hooks.example/auth-events"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # or AUTH_PLUGINS__WEBHOOK__SECRET
//! timeout_ms = 2000
//!
//! [plugins.webhook.hooks]
//! on_new_user = "blocking"          # a non-2xx answer refuses the login
//! on_user_login = "fire_and_forget" # queued and retried; never delays the login
//! on_user_logout = "off"
//! ```
//!
//! Each hook is `blocking`, `fire_and_forget` (the default) or `off`. The plugin's README
//! section in the top-level README lists every setting.

mod delivery;
mod queue;

use auth_host_plugin_api::{
    LifecycleExtension, Logger, PluginContext, PluginError, UserInfo, Verdict, export_plugin,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use delivery::{Endpoint, Event, Failure};
use queue::Queue;

// No `Debug`: the secret is in here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    secret: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    allow_http: bool,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_retry_initial_ms")]
    retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    retry_max_ms: u64,
    #[serde(default = "default_queue_capacity")]
    queue_capacity: usize,
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_max_attempts() -> u32 {
    8
}

fn default_retry_initial_ms() -> u64 {
    1_000
}

fn default_retry_max_ms() -> u64 {
    300_000
}

fn default_queue_capacity() -> usize {
    10_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hooks {
    #[serde(default)]
    on_new_user: Mode,
    #[serde(default)]
    on_user_login: Mode,
    #[serde(default)]
    on_user_logout: Mode,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            on_new_user: Mode::FireAndForget,
            on_user_login: Mode::FireAndForget,
            on_user_logout: Mode::FireAndForget,
        }
    }
}

/// How a hook delivers its event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// One attempt within `timeout_ms`, while the login waits; anything but a 2xx refuses it.
    Blocking,
    /// Queued; delivered and retried on a thread of its own.
    #[default]
    FireAndForget,
    Off,
}

/// The three hooks, as named in `[plugins.<alias>.hooks]`, and the event type each posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    NewUser,
    UserLogin,
    UserLogout,
}

impl Hook {
    fn event_type(self) -> &'static str {
        match self {
            Hook::NewUser => "user.new",
            Hook::UserLogin => "user.login",
            Hook::UserLogout => "user.logout",
        }
    }
}

/// How one hook's events go out, resolved from its `Mode` at load.
enum Delivery {
    Off,
    Blocking,
    /// The alias' one queue, shared by its fire-and-forget hooks.
    Queued(Arc<Queue>),
}

struct Webhook {
    new_user: Delivery,
    user_login: Delivery,
    user_logout: Delivery,
    endpoint: Endpoint,
    logger: Logger,
}

impl Webhook {
    /// Delivers or queues `hook`'s event. `Ok(Some(reason))` is a receiver's refusal.
    fn notify(&self, hook: Hook, user: &UserInfo) -> Result<Option<String>, PluginError> {
        let delivery = match hook {
            Hook::NewUser => &self.new_user,
            Hook::UserLogin => &self.user_login,
            Hook::UserLogout => &self.user_logout,
        };
        match delivery {
            Delivery::Off => Ok(None),
            Delivery::Queued(queue) => {
                queue.push(Event::new(hook.event_type(), user)?);
                Ok(None)
            }
            Delivery::Blocking => self.deliver_now(&Event::new(hook.event_type(), user)?),
        }
    }

    /// One attempt while the caller waits.
    fn deliver_now(&self, event: &Event) -> Result<Option<String>, PluginError> {
        match self.endpoint.deliver(event) {
            Ok(()) => Ok(None),
            Err(Failure::Answered { status, reason }) => {
                self.logger.info(format_args!(
                    "{} {}: the receiver answered {status}",
                    event.event_type, event.id
                ));
                Ok(Some(reason.unwrap_or_else(|| {
                    "this login was not accepted".to_owned()
                })))
            }
            Err(failure) => Err(PluginError::new(format!(
                "{} {}: {failure}",
                event.event_type, event.id
            ))),
        }
    }

    fn verdict(&self, hook: Hook, user: &UserInfo) -> Result<Verdict, PluginError> {
        Ok(match self.notify(hook, user)? {
            Some(reason) => Verdict::Refuse(reason),
            None => Verdict::Continue,
        })
    }
}

impl LifecycleExtension for Webhook {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        let logger = context.logger().clone();
        if settings.timeout_ms == 0 {
            return Err(PluginError::new("timeout_ms: must be at least 1"));
        }
        let endpoint = Endpoint::new(
            &settings.url,
            &settings.secret,
            settings.allow_http,
            Duration::from_millis(settings.timeout_ms),
        )?;
        let hooks = &settings.hooks;
        let modes = [hooks.on_new_user, hooks.on_user_login, hooks.on_user_logout];
        if modes.iter().all(|mode| *mode == Mode::Off) {
            logger.warn("every hook is off: nothing will be posted");
        }
        // The queue and its thread start with the first fire-and-forget hook, if any.
        let mut queue: Option<Arc<Queue>> = None;
        let mut delivery = |mode: Mode| -> Result<Delivery, PluginError> {
            Ok(match mode {
                Mode::Off => Delivery::Off,
                Mode::Blocking => Delivery::Blocking,
                Mode::FireAndForget => Delivery::Queued(match &queue {
                    Some(queue) => Arc::clone(queue),
                    None => {
                        let policy = queue::RetryPolicy::new(
                            settings.max_attempts,
                            Duration::from_millis(settings.retry_initial_ms),
                            Duration::from_millis(settings.retry_max_ms),
                            settings.queue_capacity,
                        )?;
                        let started =
                            Arc::new(Queue::start(endpoint.clone(), policy, logger.clone())?);
                        queue = Some(Arc::clone(&started));
                        started
                    }
                }),
            })
        };
        Ok(Webhook {
            new_user: delivery(modes[0])?,
            user_login: delivery(modes[1])?,
            user_logout: delivery(modes[2])?,
            endpoint,
            logger,
        })
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.verdict(Hook::NewUser, user)
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.verdict(Hook::UserLogin, user)
    }

    /// A logout cannot be refused; a blocking receiver's non-2xx is logged as an error.
    fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginError> {
        match self.notify(Hook::UserLogout, user)? {
            Some(_) => Err(PluginError::new(
                "user.logout: the receiver did not accept the event",
            )),
            None => Ok(()),
        }
    }
}

export_plugin!(lifecycle_extension: Webhook);
