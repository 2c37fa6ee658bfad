//! The audit trail: one row per event an operator may need to answer for (logins and their
//! refusals, logouts, username changes, deletions, reloads, key events), written before the
//! answer that reports the change. Purged after `audit_retention_days`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    /// Increasing: the order events were written in, and the pagination cursor.
    Id,
    /// Unix milliseconds.
    At,
    EventType,
    /// `success`, `refused` or `failure`.
    Outcome,
    UserId,
    Email,
    Provider,
    /// The client's address as the trusted-proxy rules resolved it.
    Client,
    RequestId,
    Replica,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditEvents::At).big_integer().not_null())
                    .col(
                        ColumnDef::new(AuditEvents::EventType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::UserId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::Email).string_len(320).null())
                    .col(ColumnDef::new(AuditEvents::Provider).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::Client).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::RequestId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::Replica).string_len(128).null())
                    .col(ColumnDef::new(AuditEvents::Reason).text().null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("audit_events_at", AuditEvents::At),
            ("audit_events_user", AuditEvents::UserId),
            ("audit_events_type", AuditEvents::EventType),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
