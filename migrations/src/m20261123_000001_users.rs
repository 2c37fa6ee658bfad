//! The old service's `users` table, column for column. Created only if absent.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    ProviderId,
    Username,
    Name,
    Email,
    AvatarUrl,
    JoinDate,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    // md5 hex of the email
                    .col(
                        ColumnDef::new(Users::Id)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Users::ProviderId).string_len(128).null())
                    .col(
                        ColumnDef::new(Users::Username)
                            .string_len(128)
                            .null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::Name).string_len(128).null())
                    .col(ColumnDef::new(Users::Email).string_len(128).null())
                    .col(ColumnDef::new(Users::AvatarUrl).string_len(512).null())
                    .col(ColumnDef::new(Users::JoinDate).date_time().null())
                    .to_owned(),
            )
            .await
    }
}
