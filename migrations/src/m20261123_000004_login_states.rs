//! Logins in progress, in the database so that any replica can finish a login another one
//! started. Each row is single-use and lives 10 minutes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginStates {
    Table,
    /// SHA-256 (hex) of the OAuth `state`; the state itself is never stored.
    StateHash,
    /// SHA-256 (hex) of the browser-binding cookie.
    BrowserHash,
    Provider,
    Next,
    PkceVerifier,
    Nonce,
    /// Unix seconds.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginStates::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(LoginStates::StateHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LoginStates::BrowserHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LoginStates::Provider)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(LoginStates::Next).text().not_null())
                    .col(
                        ColumnDef::new(LoginStates::PkceVerifier)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LoginStates::Nonce)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LoginStates::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("login_states_expires_at")
                    .table(LoginStates::Table)
                    .col(LoginStates::ExpiresAt)
                    .to_owned(),
            )
            .await
    }
}
