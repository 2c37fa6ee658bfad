//! The schema: migrations (under a lock on PostgreSQL, so that replicas may start together
//! on a fresh database) and what start-up checks of it.

use sea_orm::{ConnectionTrait, DbBackend};

use auth_host_migrations::{Migrator, MigratorTrait};

use super::{ReplicaLock, Store, StoreError};

impl Store {
    /// Applies pending migrations; returns the names of those applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return migrate_on(&self.db).await;
        }
        // Replicas starting together on a fresh database would otherwise create the same
        // tables at once; under this lock, the later ones find nothing pending.
        let transaction = self.begin_locked(ReplicaLock::Migrations).await?;
        let applied = migrate_on(&transaction).await?;
        transaction.commit().await?;
        Ok(applied)
    }

    /// Whether usernames are unique case-insensitively at the database level (they are
    /// unless an old database already held usernames differing only in case).
    pub async fn has_case_insensitive_username_index(&self) -> Result<bool, StoreError> {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DbBackend::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'users_username_lower_key'"
            }
            _ => {
                "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = 'users_username_lower_key'"
            }
        };
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(backend, sql))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0)
            > 0)
    }
}

/// Applies pending migrations through `db`; the names of those applied.
async fn migrate_on<'c, C>(db: &'c C) -> Result<Vec<String>, StoreError>
where
    C: ConnectionTrait,
    &'c C: sea_orm::IntoDatabaseExecutor<'c>,
{
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Migrator::up(db, None).await?;
    Ok(pending)
}
