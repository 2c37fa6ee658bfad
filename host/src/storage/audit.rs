//! The audit trail's rows: appended, read newest first a page at a time, purged by age.

use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::audit_events;
use super::{Store, StoreError};

/// One event as stored: what happened, to whom, from where, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// Increasing; the cursor of the next page (0 until stored).
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub provider: Option<String>,
    pub client: Option<String>,
    pub request_id: Option<String>,
    pub replica: Option<String>,
    pub reason: Option<String>,
    /// How many times it happened: 1, but for anonymous refusals counted per client, reason
    /// and interval.
    pub count: i64,
}

/// Which events to read; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// A user id or an email (case-insensitive).
    pub user: Option<String>,
    pub event_type: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// Only events older than this id (the previous page's last).
    pub before_id: Option<i64>,
}

impl From<audit_events::Model> for AuditRecord {
    fn from(m: audit_events::Model) -> Self {
        AuditRecord {
            id: m.id,
            at: m.at,
            event_type: m.event_type,
            outcome: m.outcome,
            user_id: m.user_id,
            email: m.email,
            provider: m.provider,
            client: m.client,
            request_id: m.request_id,
            replica: m.replica,
            reason: m.reason,
            count: m.count,
        }
    }
}

impl Store {
    /// Appends one event; its id.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        let row = audit_events::ActiveModel {
            id: ActiveValue::NotSet,
            at: ActiveValue::Set(record.at),
            event_type: ActiveValue::Set(record.event_type.clone()),
            outcome: ActiveValue::Set(record.outcome.clone()),
            user_id: ActiveValue::Set(record.user_id.clone()),
            email: ActiveValue::Set(record.email.clone()),
            provider: ActiveValue::Set(record.provider.clone()),
            client: ActiveValue::Set(record.client.clone()),
            request_id: ActiveValue::Set(record.request_id.clone()),
            replica: ActiveValue::Set(record.replica.clone()),
            reason: ActiveValue::Set(record.reason.clone()),
            count: ActiveValue::Set(record.count),
        };
        Ok(audit_events::Entity::insert(row)
            .exec(&self.db)
            .await?
            .last_insert_id)
    }

    /// Up to `limit` events matching `filter`, newest first.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        use audit_events::Column;
        let mut condition = Condition::all();
        if let Some(user) = &filter.user {
            condition = condition.add(
                Condition::any()
                    .add(Column::UserId.eq(user.as_str()))
                    .add(Column::Email.eq(user.to_lowercase())),
            );
        }
        if let Some(event_type) = &filter.event_type {
            condition = condition.add(Column::EventType.eq(event_type.as_str()));
        }
        if let Some(since) = filter.since {
            condition = condition.add(Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            condition = condition.add(Column::At.lt(until));
        }
        if let Some(before) = filter.before_id {
            condition = condition.add(Column::Id.lt(before));
        }
        Ok(audit_events::Entity::find()
            .filter(condition)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(AuditRecord::from)
            .collect())
    }

    /// Adds `more` to the count of event `id` (a counted anonymous refusal that happened
    /// again).
    pub async fn add_to_audit_count(&self, id: i64, more: i64) -> Result<(), StoreError> {
        audit_events::Entity::update_many()
            .col_expr(
                audit_events::Column::Count,
                sea_orm::sea_query::Expr::col(audit_events::Column::Count).add(more),
            )
            .filter(audit_events::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes the oldest events beyond the newest `keep`; how many went.
    pub async fn bound_audit(&self, keep: u64) -> Result<u64, StoreError> {
        use audit_events::Column;
        // The id of the newest event to delete: the `keep`-th newest's predecessor.
        let first_kept = audit_events::Entity::find()
            .select_only()
            .column(Column::Id)
            .order_by_desc(Column::Id)
            .offset(keep.saturating_sub(1))
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        let Some(first_kept) = first_kept else {
            return Ok(0);
        };
        Ok(audit_events::Entity::delete_many()
            .filter(Column::Id.lt(first_kept))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Deletes the events older than `before` (Unix milliseconds); how many went.
    pub async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        Ok(audit_events::Entity::delete_many()
            .filter(audit_events::Column::At.lt(before))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
