//! The `auth-host` command.

use std::path::PathBuf;
use std::process::ExitCode;

use auth_host::config::Config;
use auth_host::plugins::{self, LoadOutcome, PluginRegistry};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "auth-host", version, about)]
struct Cli {
    /// TOML configuration file (default: $AUTH_CONFIG, if set).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the configured plugins and serve; refuses to start if any plugin fails to load.
    Serve,
    /// Plugin tools.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Load every configured plugin (or only the FILEs given) and report each.
    /// Exit status 0 only when all load.
    Check {
        /// Plugin files to check, named by no configuration yet.
        files: Vec<PathBuf>,
    },
}

/// Exit status for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    auth_host::logging::init(config.log_format);
    match cli.command {
        Command::Serve => serve(&config),
        Command::Plugins {
            command: PluginsCommand::Check { files },
        } => check_plugins(&config, &files),
    }
}

fn serve(config: &Config) -> ExitCode {
    let settings = config.plugin_settings();
    let registry = match PluginRegistry::load(&settings) {
        Ok(registry) => registry,
        Err(outcomes) => {
            for message in outcomes.iter().filter_map(LoadOutcome::failure_message) {
                tracing::error!("{message}");
            }
            tracing::error!("not starting: fix or remove the plugins above");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(
        services = ?registry.services(),
        extensions = registry.extensions().len(),
        plugin_dir = %settings.dir.display(),
        "plugins loaded"
    );
    ExitCode::SUCCESS
}

fn check_plugins(config: &Config, files: &[PathBuf]) -> ExitCode {
    let outcomes = if files.is_empty() {
        let settings = config.plugin_settings();
        println!("plugin directory: {}", settings.dir.display());
        if settings.allowed_services.is_empty() && settings.installed_extensions.is_empty() {
            println!("no plugins named (ALLOWED_SERVICES and INSTALLED_EXTENSIONS are empty)");
        }
        PluginRegistry::check(&settings)
    } else {
        plugins::check_files(files)
    };
    for outcome in &outcomes {
        match (&outcome.result, outcome.failure_message()) {
            (Ok(summary), _) => {
                let role = match outcome.expected_kind {
                    Some(auth_host_plugin_api::PluginKind::PermissionProvider) => "service ",
                    Some(auth_host_plugin_api::PluginKind::LifecycleExtension) => "extension ",
                    None => "",
                };
                println!(
                    "OK    {role}`{}`: {}, {} {}, plugin-api {}, {}",
                    outcome.alias,
                    summary.kind.label(),
                    summary.name,
                    summary.version,
                    summary.api_version,
                    outcome.file.display()
                );
            }
            (Err(_), Some(message)) => println!("FAIL  {message}"),
            (Err(error), None) => println!("FAIL  `{}`: {error}", outcome.alias),
        }
    }
    if outcomes.iter().all(|o| o.result.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
