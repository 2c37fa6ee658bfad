//! When a user chose their username (it may be replaced once), and case-insensitive
//! uniqueness of usernames.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::m20261123_000001_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Added {
    UsernameSetAt,
}

/// The unique index on `lower(username)`.
pub const LOWER_USERNAME_INDEX: &str = "users_username_lower_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("users", "username_set_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(ColumnDef::new(Added::UsernameSetAt).date_time().null())
                        .to_owned(),
                )
                .await?;
        }
        // An old database may hold usernames that differ only in case; the index would not
        // build there. auth-host then still refuses new case-insensitive duplicates itself,
        // and the operator is told (see `auth-host migrate`).
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let duplicates = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM (SELECT LOWER(username) FROM users \
                 WHERE username IS NOT NULL GROUP BY LOWER(username) HAVING COUNT(*) > 1) d",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if duplicates == 0 {
            db.execute_unprepared(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {LOWER_USERNAME_INDEX} ON users (LOWER(username))"
            ))
            .await?;
        }
        Ok(())
    }
}
