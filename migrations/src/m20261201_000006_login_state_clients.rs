//! Who started each login in progress (the client's address, an IPv6 client's /64), so that
//! the limit on unfinished logins per client holds across replicas: every replica counts the
//! same rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginStates {
    Table,
    ClientKey,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("login_states", "client_key").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(LoginStates::Table)
                        .add_column(ColumnDef::new(LoginStates::ClientKey).string_len(64).null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("login_states_client_key")
                    .table(LoginStates::Table)
                    .col(LoginStates::ClientKey)
                    .col(LoginStates::ExpiresAt)
                    .to_owned(),
            )
            .await
    }
}
