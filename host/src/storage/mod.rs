//! Storage: users, revoked tokens and logins in progress, on SQLite or PostgreSQL through
//! sea-orm; signing keys (`keys`), leases (`leases`), changes told to other replicas
//! (`notify`), migrations (`schema`). Nothing outside this module sees sea-orm or SQL.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr, Statement, TransactionTrait,
};

use crate::clock::unix_now_i64;
use crate::users::User;

mod audit;
mod entities;
mod keys;
mod leases;
mod notify;
mod redact;
mod schema;
mod url;

pub use audit::{AuditFilter, AuditRecord};
pub use keys::{KeyTransaction, StoredKey};
pub use notify::{Change, ChangeKeys};
pub use redact::redact_url;
pub use url::{ResolvedUrl, resolve_database_url};

use entities::{login_states, revoked_tokens, users};

/// A login in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    pub state_hash: String,
    pub browser_hash: String,
    pub provider: String,
    pub next: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Who started it (see `config::client_key`); none in rows of an earlier release.
    pub client_key: Option<String>,
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
        User {
            id: m.id,
            provider_id: m.provider_id,
            username: m.username,
            name: m.name,
            email: m.email,
            avatar_url: m.avatar_url,
            join_date: m.join_date,
            username_set_at: m.username_set_at,
        }
    }
}

impl From<User> for users::ActiveModel {
    fn from(u: User) -> Self {
        users::ActiveModel {
            id: ActiveValue::Set(u.id),
            provider_id: ActiveValue::Set(u.provider_id),
            username: ActiveValue::Set(u.username),
            name: ActiveValue::Set(u.name),
            email: ActiveValue::Set(u.email),
            avatar_url: ActiveValue::Set(u.avatar_url),
            join_date: ActiveValue::Set(u.join_date),
            username_set_at: ActiveValue::Set(u.username_set_at),
        }
    }
}

impl From<login_states::Model> for LoginState {
    fn from(m: login_states::Model) -> Self {
        LoginState {
            state_hash: m.state_hash,
            browser_hash: m.browser_hash,
            provider: m.provider,
            next: m.next,
            pkce_verifier: m.pkce_verifier,
            nonce: m.nonce,
            expires_at: m.expires_at,
            client_key: m.client_key,
        }
    }
}

impl From<LoginState> for login_states::ActiveModel {
    fn from(s: LoginState) -> Self {
        login_states::ActiveModel {
            state_hash: ActiveValue::Set(s.state_hash),
            browser_hash: ActiveValue::Set(s.browser_hash),
            provider: ActiveValue::Set(s.provider),
            next: ActiveValue::Set(s.next),
            pkce_verifier: ActiveValue::Set(s.pkce_verifier),
            nonce: ActiveValue::Set(s.nonce),
            expires_at: ActiveValue::Set(s.expires_at),
            client_key: ActiveValue::Set(s.client_key),
        }
    }
}

/// The file of a `sqlite://` URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Config(String),
}

/// What a client is told while the database has no room: not an internal error, and worth
/// trying again once an operator has made room.
pub const STORAGE_FULL: &str =
    "storage full: the server cannot store anything right now; try again later";

impl StoreError {
    /// Whether the database cannot be reached right now (as opposed to refusing a
    /// statement): the request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        use sea_orm::sqlx;
        matches!(
            self,
            StoreError::Db(DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        ) || matches!(
            self.driver_error(),
            Some(
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        )
    }

    /// Whether the database refused for want of space (SQLite's "database or disk is full",
    /// PostgreSQL's `disk_full`, 53100): nothing can be stored until room is made, and the
    /// request may succeed then.
    pub fn is_full(&self) -> bool {
        let Some(sea_orm::sqlx::Error::Database(database)) = self.driver_error() else {
            return false;
        };
        let code = database.code().unwrap_or_default();
        // SQLite's code is its primary or extended result code (SQLITE_FULL = 13).
        code == "53100" || code == "13" || database.message().contains("disk is full")
    }

    /// The driver's own error behind a failed statement.
    fn driver_error(&self) -> Option<&sea_orm::sqlx::Error> {
        use sea_orm::RuntimeErr;
        match self {
            StoreError::Db(
                DbErr::Query(RuntimeErr::SqlxError(error))
                | DbErr::Exec(RuntimeErr::SqlxError(error)),
            ) => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// What became of a username choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameChoice {
    Changed,
    AlreadySet,
    Taken,
    UnknownUser,
}

/// Locks every replica on one PostgreSQL database shares, each held until the end of the
/// transaction that took it: replicas doing the same work at once take turns.
#[derive(Debug, Clone, Copy)]
#[repr(i64)]
enum ReplicaLock {
    /// Applying migrations ("authmigr").
    Migrations = 0x6175_7468_6d69_6772,
    /// Making signing keys ("authkeys").
    SigningKeys = 0x6175_7468_6b65_7973,
}

/// How long a request waits for a free database connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Authenticates the changes announced to other replicas (PostgreSQL).
    change_keys: Option<std::sync::Arc<ChangeKeys>>,
}

impl Store {
    /// Connects to `url` (`sqlite://…`, `postgres://…`). A SQLite file is created if missing
    /// and put in WAL mode, so that readers never wait for the writer.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            DbBackend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbBackend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "database_url: unsupported scheme in `{}` (expected sqlite:// or postgres://)",
                redact_url(url)
            )));
        };
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // Statements can carry token ids and emails: never log them.
            .sqlx_logging(false);
        if backend == DbBackend::Sqlite {
            // SQLite gives its -wal and -shm files the database file's mode.
            if let Some(file) = sqlite_file(url) {
                crate::private_files::restrict_file(file).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", file.display()))
                })?;
            }
            options.map_sqlx_sqlite_opts(|o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
            });
        }
        let db = Database::connect(options).await?;
        Ok(Store {
            db,
            change_keys: None,
        })
    }

    /// Announces changes authenticated under `keys`, and hears only those so authenticated.
    pub fn with_change_keys(mut self, keys: ChangeKeys) -> Store {
        self.change_keys = Some(std::sync::Arc::new(keys));
        self
    }

    /// A transaction that first takes `lock` on PostgreSQL (SQLite serves one process).
    async fn begin_locked(&self, lock: ReplicaLock) -> Result<DatabaseTransaction, StoreError> {
        let transaction = self.db.begin().await?;
        if transaction.get_database_backend() == DbBackend::Postgres {
            transaction
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [(lock as i64).into()],
                ))
                .await?;
        }
        Ok(transaction)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(users::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(User::from))
    }

    /// The user with this username, compared case-insensitively.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(users::Entity::find()
            .filter(
                Expr::expr(Func::lower(Expr::col(users::Column::Username)))
                    .eq(Func::lower(Expr::val(username))),
            )
            .one(&self.db)
            .await?
            .map(User::from))
    }

    pub async fn users(&self, limit: u64, offset: u64) -> Result<Vec<User>, StoreError> {
        Ok(users::Entity::find()
            .order_by_asc(users::Column::JoinDate)
            .order_by_asc(users::Column::Id)
            .limit(limit)
            .offset(offset)
            .all(&self.db)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    pub async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(users::Entity::find().count(&self.db).await?)
    }

    pub async fn insert_user(&self, user: User) -> Result<(), StoreError> {
        users::Entity::insert(users::ActiveModel::from(user))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes a user; `false` when there was none.
    pub async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let result = users::Entity::delete_by_id(id.to_owned())
            .exec(&self.db)
            .await?;
        self.announce(Change::UserChanged(id.to_owned())).await;
        Ok(result.rows_affected > 0)
    }

    /// Sets a user-chosen username, once, if no other user has it (in any case). One
    /// statement, so two concurrent choices of one free name cannot both win: the second
    /// sees the first's row, or fails on the unique index.
    pub async fn choose_username(
        &self,
        id: &str,
        username: &str,
    ) -> Result<UsernameChoice, StoreError> {
        let other = Alias::new("other");
        let taken = Query::select()
            .expr(Expr::val(1))
            .from_as(users::Entity, other.clone())
            .and_where(
                Expr::expr(Func::lower(Expr::col((
                    other.clone(),
                    users::Column::Username,
                ))))
                .eq(Func::lower(Expr::val(username))),
            )
            .and_where(Expr::col((other, users::Column::Id)).ne(id))
            .to_owned();
        let now = Utc::now().naive_utc();
        let update = users::Entity::update_many()
            .col_expr(users::Column::Username, Expr::val(username))
            .col_expr(users::Column::UsernameSetAt, Expr::val(now))
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::UsernameSetAt.is_null())
            .filter(Expr::exists(taken).not())
            .exec(&self.db)
            .await;
        match update {
            Ok(result) if result.rows_affected == 1 => Ok(UsernameChoice::Changed),
            Ok(_) => Ok(match self.user(id).await? {
                None => UsernameChoice::UnknownUser,
                Some(user) if user.username_set_at.is_some() => UsernameChoice::AlreadySet,
                Some(_) => UsernameChoice::Taken,
            }),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(UsernameChoice::Taken)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Stores a login in progress.
    pub async fn save_login_state(&self, state: LoginState) -> Result<(), StoreError> {
        login_states::Entity::insert(login_states::ActiveModel::from(state))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Logins `client_key` started that are neither finished nor expired, on every replica;
    /// and when the oldest of them expires (Unix seconds).
    pub async fn unfinished_logins(
        &self,
        client_key: &str,
    ) -> Result<(u64, Option<i64>), StoreError> {
        #[derive(Debug, sea_orm::FromQueryResult)]
        struct Unfinished {
            count: i64,
            oldest: Option<i64>,
        }
        let found = login_states::Entity::find()
            .select_only()
            .column_as(login_states::Column::StateHash.count(), "count")
            .column_as(login_states::Column::ExpiresAt.min(), "oldest")
            .filter(login_states::Column::ClientKey.eq(client_key))
            .filter(login_states::Column::ExpiresAt.gte(unix_now_i64()))
            .into_model::<Unfinished>()
            .one(&self.db)
            .await?;
        Ok(found.map_or((0, None), |f| {
            (u64::try_from(f.count).unwrap_or(0), f.oldest)
        }))
    }

    /// Forgets logins never finished and revocations of tokens that have expired anyway;
    /// how many rows went.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(self
            .delete_expired::<login_states::Entity>(login_states::Column::ExpiresAt)
            .await?
            + self
                .delete_expired::<revoked_tokens::Entity>(revoked_tokens::Column::ExpiresAt)
                .await?)
    }

    /// Deletes the rows of `E` whose `expires_at` (Unix seconds) has passed.
    async fn delete_expired<E: EntityTrait>(
        &self,
        expires_at: E::Column,
    ) -> Result<u64, StoreError> {
        Ok(E::delete_many()
            .filter(expires_at.lt(unix_now_i64()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Takes a login in progress: it is deleted in the same step, so a state is used at
    /// most once even when two callbacks race (only one delete removes the row).
    pub async fn take_login_state(
        &self,
        state_hash: &str,
    ) -> Result<Option<LoginState>, StoreError> {
        let Some(found) = login_states::Entity::find_by_id(state_hash.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let deleted = login_states::Entity::delete_by_id(state_hash.to_owned())
            .exec(&self.db)
            .await?;
        if deleted.rows_affected != 1 {
            return Ok(None);
        }
        Ok(Some(LoginState::from(found)))
    }

    /// Stores a new user under the first free username among `candidates` (compared
    /// case-insensitively); returns the user as stored.
    pub async fn insert_user_with_free_username(
        &self,
        mut user: User,
        candidates: impl Iterator<Item = String>,
    ) -> Result<User, StoreError> {
        let mut first = None;
        for candidate in candidates {
            first.get_or_insert_with(|| candidate.clone());
            if self.user_by_username(&candidate).await?.is_some() {
                continue;
            }
            user.username = Some(candidate);
            match self.insert_user(user.clone()).await {
                Ok(()) => return Ok(user),
                // Taken meanwhile by a concurrent login: try the next one.
                Err(StoreError::Db(error))
                    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                        && self.user(&user.id).await?.is_none() =>
                {
                    continue;
                }
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Config(format!(
            "no free username found for `{}`",
            first.unwrap_or_default()
        )))
    }

    /// Refreshes what a later login brings: provider id, name and avatar (and a username
    /// an extension amended).
    pub async fn refresh_user(&self, user: &User) -> Result<(), StoreError> {
        users::Entity::update_many()
            .col_expr(
                users::Column::ProviderId,
                Expr::val(user.provider_id.clone()),
            )
            .col_expr(users::Column::Name, Expr::val(user.name.clone()))
            .col_expr(users::Column::AvatarUrl, Expr::val(user.avatar_url.clone()))
            .col_expr(users::Column::Username, Expr::val(user.username.clone()))
            .filter(users::Column::Id.eq(user.id.clone()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records a revoked client token until `expires_at` (Unix seconds), and tells the other
    /// replicas.
    pub async fn revoke_token(&self, token_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let inserted = revoked_tokens::Entity::insert(revoked_tokens::ActiveModel {
            token_id: ActiveValue::Set(token_id.to_owned()),
            expires_at: ActiveValue::Set(expires_at),
        })
        .on_conflict(
            OnConflict::column(revoked_tokens::Column::TokenId)
                .do_nothing()
                .to_owned(),
        )
        .exec(&self.db)
        .await;
        match inserted {
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(error) => return Err(error.into()),
        }
        self.announce(Change::TokenRevoked(token_id.to_owned()))
            .await;
        Ok(())
    }

    /// The user, unless the token `token_id` is revoked: one query for what every
    /// authenticated request asks.
    pub async fn user_unless_revoked(
        &self,
        id: &str,
        token_id: &str,
    ) -> Result<Option<User>, StoreError> {
        let revoked = Query::select()
            .expr(Expr::val(1))
            .from(revoked_tokens::Entity)
            .and_where(Expr::col(revoked_tokens::Column::TokenId).eq(token_id))
            .to_owned();
        Ok(users::Entity::find_by_id(id.to_owned())
            .filter(Expr::exists(revoked).not())
            .one(&self.db)
            .await?
            .map(User::from))
    }

    pub async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        Ok(revoked_tokens::Entity::find_by_id(token_id.to_owned())
            .one(&self.db)
            .await?
            .is_some())
    }
}
