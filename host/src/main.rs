//! The `auth-host` command.

use std::path::PathBuf;
use std::process::ExitCode;

use auth_host::app::{self, StartupError};
use auth_host::config::Config;
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
        auth_host::logging::init(auth_host::config::LogFormat::Json);
        let kind = match kind.as_str() {
            "provider" => auth_host_plugin_api::PluginKind::PermissionProvider,
            "extension" => auth_host_plugin_api::PluginKind::LifecycleExtension,
            other => {
                eprintln!("--kind: expected provider or extension, found `{other}`");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let status = plugins::isolation::worker::run(alias, file, kind);
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
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
    auth_host::logging::init(config.log_format);
    if let Command::Plugins {
        command: PluginsCommand::Check { files },
    } = &cli.command
    {
        let code = check_plugins(&config, files);
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
    let (keys, _) = app::load_keys(config, &store, Default::default()).await?;
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
            for user in &users {
                println!(
                    "{:<32}  {:<24}  {:<32}  {}",
                    user.id,
                    user.username.as_deref().unwrap_or("-"),
                    user.email.as_deref().unwrap_or("-"),
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
            if store_call(config, store.delete_user(&id).await)? {
                println!("deleted user `{id}`");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no user with id `{id}`");
                Ok(ExitCode::FAILURE)
            }
        }
    }
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
