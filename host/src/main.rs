//! The `auth-host` command.

use std::path::PathBuf;
use std::process::ExitCode;

use auth_host::app::{self, StartupError};
use auth_host::audit::{Audit, AuditEvent, AuditKind, Caller, Outcome};
use auth_host::config::Config;
use auth_host::logging::one_line;
use auth_host::plugins::{self, PluginRegistry, PluginSettings};
use auth_host::storage::Store;
use auth_host::users::{
    User, iso8601, new_user, user_info, username_candidates, validate_username,
};
use clap::{Parser, Subcommand};

/// `auth-host --version`: the release and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AUTH_HOST_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "auth-host", version = VERSION, about)]
struct Cli {
    /// TOML configuration file (default: $AUTH_CONFIG, if set).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load keys, database and plugins, and serve the HTTP API. Refuses to start if any
    /// of them fails.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Ask a running auth-host whether it is healthy (`GET <url>/auth/health`): exit 0 when
    /// it answers 200, 1 otherwise. For container health checks, with no curl needed.
    Health {
        /// The auth-host's base address.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
    },
    /// Plugin tools.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Token tools.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// User records.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// The audit trail, newest first: logins and refusals, logouts, username changes,
    /// deletions, reloads.
    Audit {
        /// Only this user (an id or an email).
        #[arg(long)]
        user: Option<String>,
        /// Only this type (login.succeeded, login.refused, logout, username.changed,
        /// user.deleted, plugins.reloaded).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// From this time: 2026-12-01T08:00:00Z, 2026-12-01 or Unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// Before this time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Runs one plugin alias in a process of its own, speaking to auth-host over stdin and
    /// stdout (started by auth-host itself for isolated plugins).
    #[command(hide = true)]
    PluginWorker {
        #[arg(long)]
        alias: String,
        #[arg(long)]
        file: PathBuf,
        /// `provider` or `extension`.
        #[arg(long)]
        kind: String,
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
    /// One call of a configured alias through the real loader, in-process or isolated as
    /// configured: a provider is asked for permissions, an extension runs one hook. Prints
    /// the answer and the time it took. Exit status 0 when it answered (or let the login
    /// go on), 1 when it failed or refused, 2 when it could not be loaded.
    Call {
        /// The alias, as named in ALLOWED_SERVICES or INSTALLED_EXTENSIONS.
        alias: String,
        /// The service asked for (a provider; default: the alias).
        #[arg(long)]
        service: Option<String>,
        /// The user, as a plugin receives it: JSON with `id` and any of `username`,
        /// `email`, `name`, `provider_id`, `avatar_url`, `join_date`.
        #[arg(long)]
        user: String,
        /// The hook to run (an extension): `new-user`, `login` or `logout`.
        #[arg(long, value_parser = ["new-user", "login", "logout"])]
        hook: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a client token for an existing user (and nothing else) on stdout.
    Issue {
        #[arg(long)]
        userid: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// List users, oldest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Create a user as a first login would (id = md5 of the email, username derived from
    /// it unless given). Lifecycle hooks do not run. Prints the new user's id.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        username: Option<String>,
    },
    /// Show one user (by id or username) as JSON.
    Show { user: String },
    /// Delete one user by id.
    Delete { id: String },
}

/// Exit status for a configuration (or environment) that cannot be used.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A plugin worker reads no configuration: the host hands it what it needs.
    if let Command::PluginWorker { alias, file, kind } = &cli.command {
        // No traces from a worker: it has no network, and its calls are spans of the host's.
        let _ = auth_host::logging::init(auth_host::config::LogFormat::Json, None);
        let kind = match kind.as_str() {
            "provider" => auth_host_plugin_api::PluginKind::PermissionProvider,
            "extension" => auth_host_plugin_api::PluginKind::LifecycleExtension,
            other => {
                eprintln!("--kind: expected provider or extension, found `{other}`");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let status = plugins::isolation::worker::run(alias, file, kind);
        // Straight out, without the C library's exit handlers: a plugin may have registered
        // one that never returns (`atexit`), to outlive the host that closed its pipe.
        // SAFETY: _exit ends the process; nothing after it runs.
        unsafe { libc::_exit(status) }
    }
    // Nothing of this process — keys, secrets, its environment — is readable by another
    // process of the same user, a plugin worker included.
    plugins::isolation::sandbox::make_undumpable();
    // A health check reads no configuration either: only the address it asks.
    if let Command::Health { url } = &cli.command {
        return health(url);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Traces are for the server; commands only log.
    let tracing = matches!(cli.command, Command::Serve).then_some(&config.tracing);
    let _exporting = match auth_host::logging::init(config.log_format, tracing) {
        Ok(exporting) => exporting,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Command::Plugins {
        command: PluginsCommand::Check { files },
    } = &cli.command
    {
        let code = check_plugins(&config, files);
        plugins::isolation::lifetime::end_all();
        return code;
    }
    if let Command::Plugins {
        command:
            PluginsCommand::Call {
                alias,
                service,
                user,
                hook,
            },
    } = &cli.command
    {
        let code = call_plugin(&config, alias, service.as_deref(), user, hook.as_deref());
        plugins::isolation::lifetime::end_all();
        return code;
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => app::serve(&config, cli.config.as_deref())
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Migrate => app::open_store(&config).await.map(|_| {
                println!("database is up to date");
                ExitCode::SUCCESS
            }),
            Command::Token {
                command: TokenCommand::Issue { userid },
            } => issue_token(&config, &userid).await,
            Command::Users { command } => users(&config, command).await,
            Command::Audit {
                user,
                event_type,
                since,
                until,
                limit,
                json,
            } => {
                let filter = match auth_host::audit::filter(
                    user.as_deref(),
                    event_type.as_deref(),
                    since.as_deref(),
                    until.as_deref(),
                ) {
                    Ok(filter) => filter,
                    Err(message) => {
                        eprintln!("{message}");
                        return Ok(ExitCode::from(EXIT_CONFIG));
                    }
                };
                audit(&config, &filter, limit, json).await
            }
            Command::Plugins { .. } | Command::PluginWorker { .. } | Command::Health { .. } => {
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Whatever ended the command, no plugin worker outlives it.
    plugins::isolation::lifetime::end_all();
    match result {
        Ok(code) => code,
        Err(error) => {
            for line in error.to_string().lines() {
                tracing::error!("{line}");
            }
            if matches!(error, StartupError::Plugins(_)) {
                tracing::error!("not starting: fix or remove the plugins above");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn issue_token(config: &Config, userid: &str) -> Result<ExitCode, StartupError> {
    let store = app::open_store(config).await?;
    let audit = Audit::new(store.clone(), "cli".into());
    let (keys, _) = app::load_keys(config, &store, Default::default(), Some(audit)).await?;
    let tokens = app::token_service(config, keys);
    if store_call(config, store.user(userid).await)?.is_none() {
        eprintln!("no user with id `{userid}`");
        return Ok(ExitCode::FAILURE);
    }
    let (token, _) = tokens
        .issue_client_token(userid)
        .map_err(|e| StartupError::Io(format!("cannot sign: {e}")))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn store_call<T>(
    config: &Config,
    result: Result<T, auth_host::storage::StoreError>,
) -> Result<T, StartupError> {
    result.map_err(|error| StartupError::Storage {
        url: auth_host::storage::redact_url(&config.database_url()),
        error,
    })
}

async fn find_user(
    store: &Store,
    key: &str,
) -> Result<Option<User>, auth_host::storage::StoreError> {
    match store.user(key).await? {
        Some(user) => Ok(Some(user)),
        None => store.user_by_username(key).await,
    }
}

async fn users(config: &Config, command: UsersCommand) -> Result<ExitCode, StartupError> {
    let store = app::open_store(config).await?;
    match command {
        UsersCommand::List { limit, offset } => {
            let users = store_call(config, store.users(limit, offset).await)?;
            println!("{:<32}  {:<24}  {:<32}  JOINED", "ID", "USERNAME", "EMAIL");
            // Stored text came from outside (a provider, a user): printed, never obeyed by
            // the terminal.
            let shown = |v: &Option<String>| one_line(v.as_deref().unwrap_or("-")).into_owned();
            for user in &users {
                println!(
                    "{:<32}  {:<24}  {:<32}  {}",
                    one_line(&user.id),
                    shown(&user.username),
                    shown(&user.email),
                    user.join_date.as_ref().map(iso8601).unwrap_or_default()
                );
            }
            let total = store_call(config, store.count_users().await)?;
            eprintln!("{} of {total} users", users.len());
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Add {
            email,
            name,
            username,
        } => {
            if !email.contains('@') {
                eprintln!("`{email}` is not an email address");
                return Ok(ExitCode::FAILURE);
            }
            let mut user = new_user(&email, None, None, name, None);
            if store_call(config, store.user(&user.id).await)?.is_some() {
                eprintln!(
                    "a user with email `{email}` exists already (id `{}`)",
                    user.id
                );
                return Ok(ExitCode::FAILURE);
            }
            if let Some(username) = username {
                if let Err(reason) = validate_username(&username) {
                    eprintln!("invalid username: {reason}");
                    return Ok(ExitCode::FAILURE);
                }
                user.username = Some(username);
            }
            let base = user.username.clone().unwrap_or_default();
            let stored = store_call(
                config,
                store
                    .insert_user_with_free_username(user, username_candidates(&base))
                    .await,
            )?;
            println!("{}", stored.id);
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Show { user } => match store_call(config, find_user(&store, &user).await)? {
            Some(found) => {
                let text = serde_json::to_string_pretty(&user_info(&found))
                    .map_err(|e| StartupError::Io(e.to_string()))?;
                println!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no user `{user}`");
                Ok(ExitCode::FAILURE)
            }
        },
        UsersCommand::Delete { id } => {
            let user = store_call(config, store.user(&id).await)?;
            if store_call(config, store.delete_user(&id).await)? {
                let event = AuditEvent::new(AuditKind::UserDeleted, Outcome::Success)
                    .user_or_id(user.as_ref(), &id);
                let audit = Audit::new(store.clone(), "cli".into());
                store_call(config, audit.record(event, &Caller::command_line()).await)?;
                println!("deleted user `{id}`");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no user with id `{id}`");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `auth-host audit`: a table (or JSON lines) of the events matching `filter`.
async fn audit(
    config: &Config,
    filter: &auth_host::storage::AuditFilter,
    limit: u64,
    json: bool,
) -> Result<ExitCode, StartupError> {
    let store = app::open_store(config).await?;
    let events = store_call(config, store.audit_events(filter, limit).await)?;
    for event in &events {
        if json {
            println!("{}", auth_host::audit::to_json(event));
        } else {
            let time = auth_host::audit::format_time(event.at);
            // Emails, reasons and clients came from outside: escaped, never obeyed by the
            // terminal.
            let or_dash = |v: &Option<String>| one_line(v.as_deref().unwrap_or("-")).into_owned();
            println!(
                "{time}  {:<16} {:<8} {:<32} {:<28} {:<8} {:<15} {}",
                event.event_type,
                event.outcome,
                or_dash(&event.user_id),
                or_dash(&event.email),
                or_dash(&event.provider),
                or_dash(&event.client),
                match event.count {
                    1 => or_dash(&event.reason),
                    n => format!("(×{n}) {}", or_dash(&event.reason)),
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_plugins(config: &Config, files: &[PathBuf]) -> ExitCode {
    let outcomes = if files.is_empty() {
        let settings = PluginSettings::from_config(config);
        let dirs = std::env::join_paths(&settings.dirs)
            .map(|path| path.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = if settings.dirs.len() == 1 {
            "directory"
        } else {
            "directories"
        };
        println!("plugin {label}: {dirs}");
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
                let isolated = match outcome.isolation {
                    plugins::Isolation::Process => {
                        format!(
                            "isolated in a worker process (sandbox: {}), ",
                            summary.sandbox
                        )
                    }
                    plugins::Isolation::None => String::new(),
                };
                println!(
                    "OK    {role}`{}`: {}, {} {}, plugin-api {}, {isolated}{}",
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

/// `auth-host plugins call`: one call of `alias`, loaded alone as the configuration says.
fn call_plugin(
    config: &Config,
    alias: &str,
    service: Option<&str>,
    user: &str,
    hook: Option<&str>,
) -> ExitCode {
    use auth_host_plugin_api::PluginKind;
    use plugins::calls::Call;
    let refuse = |message: String| {
        eprintln!("{message}");
        ExitCode::from(EXIT_CONFIG)
    };
    let user: auth_host_plugin_api::UserInfo = match serde_json::from_str(user) {
        Ok(user) => user,
        Err(error) => return refuse(format!("--user: not a user ({error})")),
    };
    let Some((settings, kind)) = PluginSettings::from_config(config).only(alias) else {
        return refuse(format!(
            "`{alias}` is named in neither ALLOWED_SERVICES nor INSTALLED_EXTENSIONS"
        ));
    };
    let call = match (kind, hook) {
        (PluginKind::PermissionProvider, None) => Call::Permissions,
        (PluginKind::LifecycleExtension, Some("new-user")) => Call::NewUser,
        (PluginKind::LifecycleExtension, Some("login")) => Call::Login,
        (PluginKind::LifecycleExtension, Some("logout")) => Call::Logout,
        (PluginKind::PermissionProvider, Some(_)) => {
            return refuse(format!(
                "`{alias}` is a permission provider: it has no hooks"
            ));
        }
        (PluginKind::LifecycleExtension, _) => {
            return refuse(format!(
                "`{alias}` is an extension: say which hook with --hook new-user|login|logout"
            ));
        }
    };
    let registry = match PluginRegistry::load(&settings) {
        Ok(registry) => registry,
        Err(outcomes) => {
            return refuse(auth_host::reload::failure_messages(&outcomes).join("\n"));
        }
    };
    let plugin = match kind {
        PluginKind::PermissionProvider => registry.permission_provider(alias),
        PluginKind::LifecycleExtension => registry.extensions().first(),
    };
    let Some(plugin) = plugin.cloned() else {
        return refuse(format!("`{alias}` did not load"));
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let summary = plugin.summary();
    let place = match summary.sandbox.as_str() {
        "" => "in-process".to_owned(),
        sandbox => format!("isolated, sandbox: {sandbox}"),
    };
    let about = format!("`{alias}` ({} {}, {place})", summary.name, summary.version);
    let started = std::time::Instant::now();
    let (outcome, answer) = runtime.block_on(async {
        match call {
            Call::Permissions => {
                let service = service.unwrap_or(alias);
                match plugin.get_permissions(service, &user).await {
                    Ok(permissions) => (
                        Ok(format!("permissions in `{service}`")),
                        serde_json::to_string_pretty(&permissions).ok(),
                    ),
                    Err(error) => (Err(error.to_string()), None),
                }
            }
            hook => match plugin.hook(hook, &user).await {
                Ok(plugins::HookDecision::Continue) => (Ok("continue".to_owned()), None),
                Ok(plugins::HookDecision::Amend(amendment)) => (
                    Ok("continue, amending the profile".to_owned()),
                    serde_json::to_string_pretty(&amendment).ok(),
                ),
                Ok(plugins::HookDecision::Refuse(reason)) => {
                    (Err(format!("refused: {reason}")), None)
                }
                Err(error) => (Err(error.to_string()), None),
            },
        }
    });
    let took = format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    match outcome {
        Ok(what) => {
            println!("{about}: {what} ({took})");
            if let Some(answer) = answer {
                println!("{answer}");
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("{about}: {why} ({took})");
            ExitCode::FAILURE
        }
    }
}

/// `auth-host health`: 0 when `<url>/auth/health` answers 200 within 5 s, 1 otherwise (what
/// it answered, or why not, on stderr).
fn health(url: &str) -> ExitCode {
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let target = format!("{}/auth/health", url.trim_end_matches('/'));
    let answer = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(&target)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, String>((status, body))
    });
    match answer {
        Ok((status, _)) if status == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok((status, body)) => {
            eprintln!("{target}: {status} {body}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{target}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime `builder` makes, with I/O and timers; `None` (said on stderr) when it
/// cannot be started.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            None
        }
    }
}
