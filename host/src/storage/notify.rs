//! Changes other replicas must hear of at once (a revoked token, a deleted user), sent with
//! PostgreSQL `NOTIFY` and heard with `LISTEN`. SQLite serves one process: nothing to send.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::Store;

const CHANNEL: &str = "auth_host_changes";

/// What the listener hears, or that it cannot hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Listening (again): notifications sent before now may have been missed.
    Listening,
    /// Not listening: notifications are being missed.
    Deaf,
    TokenRevoked(String),
    UserChanged(String),
}

impl Change {
    fn payload(&self) -> Option<String> {
        match self {
            Change::TokenRevoked(id) => Some(format!("token:{id}")),
            Change::UserChanged(id) => Some(format!("user:{id}")),
            Change::Listening | Change::Deaf => None,
        }
    }

    fn parse(payload: &str) -> Option<Change> {
        match payload.split_once(':')? {
            ("token", id) => Some(Change::TokenRevoked(id.to_owned())),
            ("user", id) => Some(Change::UserChanged(id.to_owned())),
            _ => None,
        }
    }
}

/// How long the listener waits before connecting again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

impl Store {
    /// Whether changes are announced between processes (PostgreSQL).
    pub fn announces_changes(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Tells the other replicas (PostgreSQL only), after the change is stored. A failure
    /// is logged, not returned: stored is what counts, and the others' token cache bounds
    /// how late they learn it.
    pub(super) async fn announce(&self, change: Change) {
        let Some(payload) = change.payload().filter(|_| self.announces_changes()) else {
            return;
        };
        let sent = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "cannot tell the other replicas of a change");
        }
    }

    /// Listens for the other replicas' changes until the process ends, handing each to
    /// `heard`; reconnects when the connection drops (saying [`Change::Deaf`] meanwhile).
    /// Does nothing on SQLite.
    pub fn listen_for_changes(&self, heard: impl Fn(Change) + Send + Sync + 'static) {
        if !self.announces_changes() {
            return;
        }
        let pool = self.db.get_postgres_connection_pool().clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match listen(&pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for other replicas' changes");
                        heard(Change::Deaf);
                        tokio::time::sleep(RECONNECT_AFTER).await;
                        continue;
                    }
                };
                heard(Change::Listening);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => {
                            if let Some(change) = Change::parse(notification.payload()) {
                                heard(change);
                            }
                        }
                        Ok(None) | Err(_) => {
                            tracing::warn!("lost the connection listening for changes");
                            heard(Change::Deaf);
                            break;
                        }
                    }
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
    }
}

/// A connection of its own, listening on the channel.
async fn listen(pool: &sea_orm::sqlx::PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
