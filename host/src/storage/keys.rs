//! The signing keys replicas share. Rows hold the private key sealed; sealing and choosing
//! keys is the tokens module's business.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::entities::signing_keys;
use super::{ReplicaLock, Store, StoreError};

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub generation: i64,
    pub kid: String,
    pub algorithm: String,
    pub public_pem: String,
    pub sealed_private_key: String,
    pub signs_from: i64,
    pub signs_until: Option<i64>,
    pub created_at: i64,
}

impl From<signing_keys::Model> for StoredKey {
    fn from(m: signing_keys::Model) -> Self {
        StoredKey {
            generation: m.generation,
            kid: m.kid,
            algorithm: m.algorithm,
            public_pem: m.public_pem,
            sealed_private_key: m.sealed_private_key,
            signs_from: m.signs_from,
            signs_until: m.signs_until,
            created_at: m.created_at,
        }
    }
}

/// Keys being made: a transaction that, on PostgreSQL, holds a lock no other replica gets
/// until it ends, so that only one replica makes the keys a fresh database or a rotation
/// needs. The generation's primary key backs it up everywhere.
pub struct KeyTransaction {
    tx: DatabaseTransaction,
}

impl Store {
    /// Every stored signing key, oldest generation first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        keys_in(&self.db).await
    }

    pub async fn lock_signing_keys(&self) -> Result<KeyTransaction, StoreError> {
        Ok(KeyTransaction {
            tx: self.begin_locked(ReplicaLock::SigningKeys).await?,
        })
    }

    /// The database server's clock, in Unix milliseconds (`None` on SQLite: one machine,
    /// one clock). Replicas take "now" for key scheduling from it, so that their own clocks'
    /// skew cannot make them disagree on which key signs, nor make a second first key.
    pub async fn database_clock_millis(&self) -> Result<Option<i64>, StoreError> {
        let backend = self.db.get_database_backend();
        if backend != sea_orm::DbBackend::Postgres {
            return Ok(None);
        }
        let sql = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint AS now_ms";
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(backend, sql))
            .await?;
        Ok(row.map(|r| r.try_get::<i64>("", "now_ms")).transpose()?)
    }

    /// Forgets keys no token can need any more.
    pub async fn delete_signing_keys(&self, generations: &[i64]) -> Result<u64, StoreError> {
        if generations.is_empty() {
            return Ok(0);
        }
        let deleted = signing_keys::Entity::delete_many()
            .filter(signing_keys::Column::Generation.is_in(generations.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

impl KeyTransaction {
    /// The stored keys, as seen under the lock.
    pub async fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        keys_in(&self.tx).await
    }

    /// Replaces a key's sealed private key, unless it changed meanwhile.
    pub async fn reseal(
        &self,
        generation: i64,
        old: &str,
        new: String,
    ) -> Result<bool, StoreError> {
        let updated = signing_keys::Entity::update_many()
            .col_expr(
                signing_keys::Column::SealedPrivateKey,
                sea_orm::sea_query::Expr::val(new),
            )
            .filter(signing_keys::Column::Generation.eq(generation))
            .filter(signing_keys::Column::SealedPrivateKey.eq(old))
            .exec(&self.tx)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Stores a new key; `false` if its generation exists already.
    pub async fn insert(&self, key: StoredKey) -> Result<bool, StoreError> {
        let inserted = signing_keys::Entity::insert(signing_keys::ActiveModel {
            generation: ActiveValue::Set(key.generation),
            kid: ActiveValue::Set(key.kid),
            algorithm: ActiveValue::Set(key.algorithm),
            public_pem: ActiveValue::Set(key.public_pem),
            sealed_private_key: ActiveValue::Set(key.sealed_private_key),
            signs_from: ActiveValue::Set(key.signs_from),
            signs_until: ActiveValue::Set(key.signs_until),
            created_at: ActiveValue::Set(key.created_at),
        })
        .on_conflict(
            OnConflict::column(signing_keys::Column::Generation)
                .do_nothing()
                .to_owned(),
        )
        .exec(&self.tx)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(DbErr::RecordNotInserted) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

async fn keys_in(db: &impl ConnectionTrait) -> Result<Vec<StoredKey>, StoreError> {
    Ok(signing_keys::Entity::find()
        .order_by_asc(signing_keys::Column::Generation)
        .all(db)
        .await?
        .into_iter()
        .map(StoredKey::from)
        .collect())
}
