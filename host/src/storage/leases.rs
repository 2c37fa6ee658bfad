//! Leases: a background job runs on the one replica holding its lease, which it keeps by
//! renewing it; when that replica stops, another takes the lease once it has expired.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};

use super::entities::leases;
use super::{Store, StoreError};
use crate::clock::unix_now_i64;

impl Store {
    /// Takes or renews the lease `name` for `holder` until `ttl_secs` from now; `false`
    /// when another holder's lease is still running.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let now = unix_now_i64();
        let mut insert = Query::insert();
        insert
            .into_table(leases::Entity)
            .columns([
                leases::Column::Name,
                leases::Column::Holder,
                leases::Column::ExpiresAt,
            ])
            .values([
                name.into(),
                holder.into(),
                now.saturating_add(ttl_secs).into(),
            ])
            .map_err(|e| StoreError::Config(e.to_string()))?
            .on_conflict(
                OnConflict::column(leases::Column::Name)
                    .update_columns([leases::Column::Holder, leases::Column::ExpiresAt])
                    .action_and_where(
                        Expr::col((leases::Entity, leases::Column::Holder))
                            .eq(holder)
                            .or(Expr::col((leases::Entity, leases::Column::ExpiresAt)).lt(now)),
                    )
                    .to_owned(),
            );
        let result = self.db.execute(&insert).await?;
        Ok(result.rows_affected() == 1)
    }
}
