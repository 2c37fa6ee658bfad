//! Replicas on one database: the signing keys they share (private parts sealed with
//! `key_secrets`), and leases that let one replica at a time run a background job.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    /// One key per generation: the unique key that stops two replicas storing two keys
    /// for one rotation.
    Generation,
    Kid,
    Algorithm,
    PublicPem,
    /// The private key, sealed (AES-256-GCM) under one of `key_secrets`.
    SealedPrivateKey,
    /// Unix seconds: when it starts signing, and when it stops (NULL: until replaced).
    SignsFrom,
    SignsUntil,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Holder,
    /// Unix seconds.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SigningKeys::Generation)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::Kid)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::Algorithm)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SigningKeys::PublicPem).text().not_null())
                    .col(
                        ColumnDef::new(SigningKeys::SealedPrivateKey)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::SignsFrom)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SigningKeys::SignsUntil).big_integer().null())
                    .col(
                        ColumnDef::new(SigningKeys::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Leases::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Leases::Holder).string_len(64).not_null())
                    .col(ColumnDef::new(Leases::ExpiresAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }
}
