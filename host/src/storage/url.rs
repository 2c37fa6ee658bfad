//! `DATABASE_URL` as the old service took it (any SQLAlchemy connection string) and as
//! auth-host's own releases wrote it (sqlx's forms), resolved to one connection the database
//! driver reads without doubt.
//!
//! - PostgreSQL: `postgres://`, `postgresql://` and SQLAlchemy's `postgresql+<driver>://`
//!   (`psycopg2`, `psycopg`, `pg8000`, `asyncpg`…) all mean the same server.
//! - SQLite: SQLAlchemy reads `sqlite:///auth.db` as relative to the working directory and
//!   `sqlite:////var/lib/auth.db` as absolute; sqlx (and so earlier auth-host releases) read
//!   three slashes as absolute. Where the two readings differ, the one that finds an
//!   existing database wins — a swap never opens a new, empty database beside the old one —
//!   and for a new database SQLAlchemy's reading wins unless only the other one's directory
//!   exists. `sqlite://auth.db` and `sqlite:auth.db` (sqlx's relative forms, which SQLAlchemy
//!   does not accept) stay relative. `sqlite://` alone and `:memory:` (a database that ends
//!   with the process) are refused.

use std::path::{Path, PathBuf};

/// Where the database is, as the driver is to be given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUrl {
    /// The URL handed to the driver.
    pub url: String,
    /// What it was taken to mean, for the start-up log (no secrets: a file path, or the
    /// redacted PostgreSQL URL).
    pub meaning: String,
}

/// Resolves `raw` against the working directory `cwd`.
pub fn resolve_database_url(raw: &str, cwd: &Path) -> Result<ResolvedUrl, String> {
    let raw = raw.trim();
    let (scheme, rest) = raw
        .split_once("://")
        .or_else(|| raw.strip_prefix("sqlite:").map(|rest| ("sqlite:", rest)))
        .ok_or_else(|| format!("database_url: `{}` is not a URL", super::redact_url(raw)))?;
    let driverless = scheme.split('+').next().unwrap_or(scheme);
    match (scheme, driverless) {
        (_, "postgres" | "postgresql") => {
            let url = format!("postgres://{rest}");
            Ok(ResolvedUrl {
                meaning: format!("PostgreSQL {}", super::redact_url(&url)),
                url,
            })
        }
        ("sqlite:", _) => sqlite_file(rest, cwd, false),
        ("sqlite", _) => sqlite_file(rest, cwd, true),
        _ => Err(format!(
            "database_url: unsupported scheme `{scheme}` in `{}` (expected sqlite:///file, \
             sqlite:////absolute/file, postgresql://… or postgresql+<driver>://…)",
            super::redact_url(raw)
        )),
    }
}

/// The SQLite file in `rest` (what follows `sqlite://`, or `sqlite:` when `authority` is
/// false), with its query kept.
fn sqlite_file(rest: &str, cwd: &Path, authority: bool) -> Result<ResolvedUrl, String> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (rest, String::new()),
    };
    if path.is_empty() || path == ":memory:" || path.ends_with("/:memory:") {
        return Err(
            "database_url: an in-memory SQLite database ends with the process (every user \
             lost at each restart); name a file, e.g. sqlite:///auth.db (relative to the \
             working directory) or sqlite:////var/lib/auth-host/auth.db"
                .into(),
        );
    }
    let file = match (authority, path.strip_prefix('/')) {
        // `sqlite:////abs` (SQLAlchemy's absolute form).
        (true, Some(after)) if after.starts_with('/') => PathBuf::from(after),
        // `sqlite:///x`: relative for SQLAlchemy, absolute for sqlx.
        (true, Some(after)) => choose(cwd.join(after), PathBuf::from(path)),
        // `sqlite://x`, `sqlite:x`: relative (sqlx); `sqlite:/abs`: absolute.
        _ => cwd.join(path),
    };
    Ok(ResolvedUrl {
        url: format!("sqlite://{}{query}", file.display()),
        meaning: format!("SQLite {}", file.display()),
    })
}

/// Of SQLAlchemy's reading (`relative`, against the working directory) and sqlx's
/// (`absolute`), the one where the database is; for a new one, SQLAlchemy's, unless only
/// the other's directory exists.
fn choose(relative: PathBuf, absolute: PathBuf) -> PathBuf {
    if relative.is_file() {
        return relative;
    }
    if absolute.is_file() {
        return absolute;
    }
    let dir_exists = |p: &Path| p.parent().is_some_and(Path::is_dir);
    if !dir_exists(&relative) && dir_exists(&absolute) {
        return absolute;
    }
    relative
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolve(raw: &str, cwd: &Path) -> String {
        resolve_database_url(raw, cwd).unwrap().url
    }

    #[test]
    fn postgresql_with_or_without_a_driver_is_one_server() {
        let cwd = Path::new("/nowhere");
        for raw in [
            "postgres://u:pw@db:5432/auth",
            "postgresql://u:pw@db:5432/auth",
            "postgresql+psycopg2://u:pw@db:5432/auth",
            "postgresql+psycopg://u:pw@db:5432/auth",
            "postgresql+pg8000://u:pw@db:5432/auth",
        ] {
            let resolved = resolve_database_url(raw, cwd).unwrap();
            assert_eq!(resolved.url, "postgres://u:pw@db:5432/auth", "{raw}");
            assert!(!resolved.meaning.contains("pw"), "{}", resolved.meaning);
        }
    }

    #[test]
    fn sqlite_paths_mean_what_sqlalchemy_meant_and_an_existing_database_is_found() {
        let cwd = tempfile::tempdir().unwrap();
        let here = cwd.path();
        // SQLAlchemy's forms.
        assert_eq!(
            resolve("sqlite:///auth.db", here),
            format!("sqlite://{}/auth.db", here.display())
        );
        assert_eq!(
            resolve("sqlite:////var/lib/auth.db?mode=rwc", here),
            "sqlite:///var/lib/auth.db?mode=rwc"
        );
        // sqlx's relative forms.
        for raw in ["sqlite://auth.db", "sqlite:auth.db"] {
            assert_eq!(
                resolve(raw, here),
                format!("sqlite://{}/auth.db", here.display())
            );
        }
        // Three slashes naming an existing absolute database (an earlier auth-host's
        // configuration): that database, not a new relative one.
        let elsewhere = tempfile::tempdir().unwrap();
        let existing = elsewhere.path().join("auth.db");
        std::fs::write(&existing, b"").unwrap();
        let three = format!("sqlite://{}", existing.display());
        assert!(three.starts_with("sqlite:///"));
        assert_eq!(
            resolve(&three, here),
            format!("sqlite://{}", existing.display())
        );
        // …unless the relative reading finds one.
        std::fs::create_dir_all(here.join(existing.parent().unwrap().strip_prefix("/").unwrap()))
            .unwrap();
        let relative = here.join(existing.strip_prefix("/").unwrap());
        std::fs::write(&relative, b"").unwrap();
        assert_eq!(
            resolve(&three, here),
            format!("sqlite://{}", relative.display())
        );
    }

    #[test]
    fn memory_and_unknown_schemes_are_refused_with_a_clear_message() {
        let cwd = Path::new("/");
        for raw in [
            "sqlite://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite:///:memory:",
        ] {
            let error = resolve_database_url(raw, cwd).unwrap_err();
            assert!(error.contains("in-memory"), "{raw}: {error}");
        }
        let error = resolve_database_url("mysql://u:secret@db/auth", cwd).unwrap_err();
        assert!(error.contains("unsupported scheme `mysql`"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        assert!(resolve_database_url("auth.db", cwd).is_err());
    }
}
