//! Reloading the plugins without a restart, on SIGHUP or from the admin endpoint
//! (`admin.rs`).

use crate::audit::{AuditEvent, AuditKind, Caller, Outcome};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::ReloadLabels;
use crate::plugins::{LoadOutcome, PluginRegistry, PluginSettings};
use crate::service::AuthService;

/// The aliases in force after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub services: Vec<String>,
    pub extensions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The admin endpoint was called without the admin token; nothing was tried.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The configuration or a plugin was refused; one message per problem.
    #[error("reload refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The loading thread itself failed.
    #[error("reload stopped: {0}")]
    Stopped(String),
}

/// Every load failure's one-line message.
pub fn failure_messages(outcomes: &[LoadOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(LoadOutcome::failure_message)
        .collect()
}

/// Re-reads the configuration (the file auth-host started with, or `AUTH_CONFIG`, and the
/// environment) and loads the plugins it names. Only a complete success replaces the plugins
/// in force; a failure changes nothing and says why. Other settings need a restart.
pub struct PluginReloader {
    service: Arc<AuthService>,
    config_file: Option<PathBuf>,
    /// One reload at a time, so that two cannot finish in the wrong order.
    running: tokio::sync::Mutex<()>,
}

impl PluginReloader {
    pub fn new(service: Arc<AuthService>, config_file: Option<PathBuf>) -> Self {
        PluginReloader {
            service,
            config_file,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Reloads, logging the outcome and counting it in metrics. `cause` says who asked.
    pub async fn reload(&self, cause: &str) -> Result<Reloaded, ReloadError> {
        let _running = self.running.lock().await;
        tracing::info!(cause, "reloading plugins");
        let file = self.config_file.clone();
        let worker_metrics = self.service.metrics().workers.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let config = Config::load(file.as_deref()).map_err(|errors| errors.0)?;
            PluginRegistry::load(&PluginSettings {
                worker_metrics,
                ..PluginSettings::from_config(&config)
            })
            .map_err(|outcomes| failure_messages(&outcomes))
        })
        .await;
        let metrics = self.service.metrics();
        let result = match loaded {
            Ok(Ok(plugins)) => {
                let reloaded = Reloaded {
                    services: plugins.services().into_iter().map(str::to_owned).collect(),
                    extensions: plugins
                        .extensions()
                        .iter()
                        .map(|plugin| plugin.alias().to_owned())
                        .collect(),
                };
                tracing::info!(
                    services = ?reloaded.services,
                    extensions = ?reloaded.extensions,
                    "plugins reloaded"
                );
                self.service.replace_plugins(Arc::new(plugins));
                Ok(reloaded)
            }
            Ok(Err(problems)) => {
                for problem in &problems {
                    tracing::error!("reload: {problem}");
                }
                tracing::error!("reload refused: the plugins in force are unchanged");
                Err(ReloadError::Refused(problems))
            }
            Err(error) => {
                tracing::error!(%error, "reload stopped; the plugins in force are unchanged");
                Err(ReloadError::Stopped(error.to_string()))
            }
        };
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        let event = match &result {
            Ok(reloaded) => {
                AuditEvent::new(AuditKind::PluginsReloaded, Outcome::Success).reason(format!(
                    "{cause}: services {}; extensions {}",
                    reloaded.services.join(", "),
                    reloaded.extensions.join(", ")
                ))
            }
            Err(error) => AuditEvent::new(AuditKind::PluginsReloaded, Outcome::Failure)
                .reason(format!("{cause}: {error}")),
        };
        self.service
            .audit()
            .record_best_effort(event, &Caller::named(cause))
            .await;
        metrics
            .plugin_reloads
            .get_or_create(&ReloadLabels { result: outcome })
            .inc();
        result
    }
}
