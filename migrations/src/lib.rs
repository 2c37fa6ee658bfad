//! auth-host's database migrations, applied in order at start-up and by `auth-host migrate`.
//!
//! The first one creates the old service's `users` table only when it is not there, so that
//! auth-host starts on a database the old service created and keeps every row. Everything
//! auth-host adds lives in new tables or new nullable columns.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_users;
mod m20261123_000002_username_choice;
mod m20261123_000003_revoked_tokens;
mod m20261123_000004_login_states;
mod m20261124_000005_signing_keys_and_leases;
mod m20261201_000006_login_state_clients;
mod m20261201_000007_audit_events;
mod m20261207_000008_audit_event_counts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_users::Migration),
            Box::new(m20261123_000002_username_choice::Migration),
            Box::new(m20261123_000003_revoked_tokens::Migration),
            Box::new(m20261123_000004_login_states::Migration),
            Box::new(m20261124_000005_signing_keys_and_leases::Migration),
            Box::new(m20261201_000006_login_state_clients::Migration),
            Box::new(m20261201_000007_audit_events::Migration),
            Box::new(m20261207_000008_audit_event_counts::Migration),
        ]
    }

    /// Not `seaql_migrations`, so that the name says whose migrations these are.
    fn migration_table_name() -> DynIden {
        "auth_host_migrations".into_iden()
    }
}
