//! Jobs a replica runs beside serving: keeping its signing keys current, hearing the other
//! replicas' changes, and purging expired rows — that one on one replica at a time, the
//! holder of the maintenance lease.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::audit::{AuditEvent, AuditKind, Caller, Outcome};
use crate::keyring::Keyring;
use crate::service::AuthService;

const MAINTENANCE_LEASE: &str = "maintenance";

/// How often the lease holder purges, how long audit events are kept, and how many at most
/// (0: no bound).
#[derive(Debug, Clone, Copy)]
pub struct Maintenance {
    pub every: Duration,
    pub audit_retention: Duration,
    pub audit_max_events: u64,
}

/// Starts every background job; they end with the process (or when the service is gone).
pub fn start(service: &Arc<AuthService>, keyring: Option<Arc<Keyring>>, maintenance: Maintenance) {
    let replica = service.audit().replica().to_owned();
    tracing::info!(
        replica,
        "replica id (in audit events; holder name of background-job leases)"
    );
    let weak = Arc::downgrade(service);
    service.store().listen_for_changes({
        let weak = weak.clone();
        move |change| {
            if let Some(service) = weak.upgrade() {
                service.heard(change);
            }
        }
    });
    if let Some(keyring) = &keyring {
        let weak = weak.clone();
        Arc::clone(keyring).keep_current(move |keys| {
            if let Some(service) = weak.upgrade() {
                service.metrics().signing_key_changes.inc();
                service
                    .metrics()
                    .signing_key_in_use_since
                    .set(crate::clock::unix_now_i64());
                service.tokens().replace_keys(keys);
            }
        });
    }
    tokio::spawn(watch_crash_loops(weak.clone()));
    tokio::spawn(flush_counted_refusals(weak.clone()));
    tokio::spawn(maintain(weak, keyring, maintenance, replica));
}

/// Adds the anonymous refusals counted in memory to their audit rows as their intervals end.
async fn flush_counted_refusals(service: Weak<AuthService>) {
    let mut ticks = tokio::time::interval(crate::audit::COUNTING_INTERVAL / 6);
    loop {
        ticks.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        service.audit().flush_counted(false).await;
    }
}

/// Puts each isolated plugin's entry into a crash loop on record, once per loop (the
/// supervisors run on threads of their own; this looks every second).
async fn watch_crash_loops(service: Weak<AuthService>) {
    let mut known: Vec<String> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let now: Vec<String> = service
            .plugins()
            .crash_loops()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for alias in now.iter().filter(|alias| !known.contains(alias)) {
            let event = AuditEvent::new(AuditKind::PluginCrashLoop, Outcome::Failure).reason(
                format!("{alias}: its worker keeps crashing; restarted with growing delays"),
            );
            service
                .audit()
                .record_best_effort(event, &Caller::named("supervisor"))
                .await;
        }
        known = now;
    }
}

/// Purges expired login states, revocations, signing keys and audit events past their
/// retention while this replica holds the lease. The lease outlives a few missed rounds, so
/// one slow round does not hand it over.
async fn maintain(
    service: Weak<AuthService>,
    keyring: Option<Arc<Keyring>>,
    maintenance: Maintenance,
    replica: String,
) {
    let every = maintenance.every;
    let lease_secs = i64::try_from(every.as_secs().saturating_mul(3).max(3)).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let store = service.store();
        match store
            .take_lease(MAINTENANCE_LEASE, &replica, lease_secs)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot take the maintenance lease");
                continue;
            }
        }
        let retention = i64::try_from(maintenance.audit_retention.as_millis()).unwrap_or(i64::MAX);
        let purged = match store.purge_expired().await {
            Ok(rows) => store
                .purge_audit(crate::clock::unix_now_millis().saturating_sub(retention))
                .await
                .map(|events| rows + events),
            Err(error) => Err(error),
        };
        // The table's bound, whatever the retention: a flood from many addresses cannot
        // fill the disk the logins need.
        let purged = match (purged, maintenance.audit_max_events) {
            (Ok(rows), max) if max > 0 => store.bound_audit(max).await.map(|over| {
                if over > 0 {
                    tracing::warn!(
                        deleted = over,
                        audit_max_events = max,
                        "the audit trail reached its bound: the oldest events were deleted"
                    );
                }
                rows + over
            }),
            (purged, _) => purged,
        };
        let keys = match &keyring {
            Some(keyring) => keyring.delete_expired().await,
            None => Ok(0),
        };
        match (purged, keys) {
            (Ok(rows), Ok(keys)) => {
                service.metrics().maintenance_runs.inc();
                tracing::debug!(rows, keys, "purged expired rows");
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot purge expired rows");
            }
        }
    }
}
