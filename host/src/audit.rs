//! The audit trail: who logged in, who was refused and why, from where; logouts, username
//! changes, deletions and plugin reloads. Each event is stored (`audit_events`) before the
//! answer that reports it goes out, then logged as one JSON line with the target
//! `auth_host::audit` for log shippers and fail2ban. Reads: `auth-host audit` and
//! `GET /admin/audit`. Not one event per `/auth/check` or `/auth/authorize`: metrics count
//! those.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::unix_now_millis;
use crate::storage::{AuditRecord, Store, StoreError};
use crate::users::User;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    LoginSucceeded,
    LoginRefused,
    Logout,
    UsernameChanged,
    UserDeleted,
    PluginsReloaded,
    /// A signing key made in the database (the first, or the next of a rotation).
    SigningKeyCreated,
    /// `signing_keys` rows not authenticated under `key_secrets` (when their number
    /// changes).
    SigningKeyRowsRefused,
    /// An isolated plugin's worker entered a crash loop.
    PluginCrashLoop,
}

impl AuditKind {
    pub const ALL: [AuditKind; 9] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginRefused,
        AuditKind::Logout,
        AuditKind::UsernameChanged,
        AuditKind::UserDeleted,
        AuditKind::PluginsReloaded,
        AuditKind::SigningKeyCreated,
        AuditKind::SigningKeyRowsRefused,
        AuditKind::PluginCrashLoop,
    ];

    /// The event's `type`, as stored, logged and filtered on.
    pub fn name(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login.succeeded",
            AuditKind::LoginRefused => "login.refused",
            AuditKind::Logout => "logout",
            AuditKind::UsernameChanged => "username.changed",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::PluginsReloaded => "plugins.reloaded",
            AuditKind::SigningKeyCreated => "signing_key.created",
            AuditKind::SigningKeyRowsRefused => "signing_key.rows_refused",
            AuditKind::PluginCrashLoop => "plugin.crash_loop",
        }
    }

    pub fn from_name(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused on purpose: a hook, the allowlist, an unknown or replayed state, a limit.
    Refused,
    /// auth-host or a provider failed.
    Failure,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused => "refused",
            Outcome::Failure => "failure",
        }
    }
}

/// Who asked: the client's address as the trusted-proxy rules resolved it, and the
/// request's id; for commands, `cli` and none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub client: Option<String>,
    pub request_id: Option<String>,
}

impl Caller {
    /// A command run on the server (`auth-host users delete`).
    pub fn command_line() -> Caller {
        Caller::named("cli")
    }

    /// Something of auth-host's own (`keyring`, `supervisor`) or a signal (`SIGHUP`).
    pub fn named(name: &str) -> Caller {
        Caller {
            client: Some(name.to_owned()),
            request_id: None,
        }
    }
}

/// Reasons are shown to operators, and some come from providers or plugins: bounded.
const MAX_REASON_CHARS: usize = 500;

/// One event, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub outcome: Outcome,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub provider: Option<String>,
    pub reason: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            kind,
            outcome,
            user_id: None,
            email: None,
            provider: None,
            reason: None,
        }
    }

    /// About `user`: its id and email, and the provider of its login.
    pub fn user(mut self, user: &User) -> AuditEvent {
        self.user_id = Some(user.id.clone());
        self.email = user.email.as_ref().map(|e| e.to_lowercase());
        if self.provider.is_none() {
            self.provider = user
                .provider_id
                .as_deref()
                .and_then(|id| id.split_once(':'))
                .map(|(provider, _)| provider.to_owned());
        }
        self
    }

    /// About the user `id`, or the record of it when there is one (a user deleted in the
    /// meantime is named by id only).
    pub fn user_or_id(self, user: Option<&User>, id: &str) -> AuditEvent {
        match user {
            Some(user) => self.user(user),
            None => AuditEvent {
                user_id: Some(id.to_owned()),
                ..self
            },
        }
    }

    pub fn email(mut self, email: Option<&str>) -> AuditEvent {
        self.email = email.map(str::to_lowercase);
        self
    }

    pub fn provider(mut self, provider: Option<&str>) -> AuditEvent {
        self.provider = provider.map(str::to_owned);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> AuditEvent {
        let reason: String = reason
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_REASON_CHARS)
            .collect();
        self.reason = Some(reason);
        self
    }
}

/// Stores and logs events, naming this replica.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    replica: String,
    /// Where logins are counted by provider and outcome (a server's metrics).
    logins: Option<LoginCounter>,
    /// Anonymous refusals of the current interval, counted into their first row.
    counted: Arc<Mutex<HashMap<CountedKey, Counted>>>,
    /// Why the last event could not be stored, while no event has been stored since.
    unwritable: Arc<Mutex<Option<&'static str>>>,
}

/// How long one row counts the anonymous refusals of one client for one reason.
pub const COUNTING_INTERVAL: Duration = Duration::from_secs(60);

/// The most (client, reason) pairs counted at once: past it, a refusal is stored as it comes
/// (the table's own bound, `audit_max_events`, still holds).
const MAX_COUNTED: usize = 10_000;

/// A client and the reason it was refused for.
type CountedKey = (String, String);

/// The row an interval's first refusal went to, and the refusals since.
#[derive(Debug, Clone)]
struct Counted {
    /// The row, once stored (`None` while its insert is under way).
    id: Option<i64>,
    since: Instant,
    more: i64,
    event_type: &'static str,
    outcome: &'static str,
}

type LoginCounter = prometheus_client::metrics::family::Family<
    crate::metrics::LoginLabels,
    prometheus_client::metrics::counter::Counter,
>;

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Audit {
    pub fn new(store: Store, replica: String) -> Audit {
        Audit {
            store,
            replica,
            logins: None,
            counted: Arc::default(),
            unwritable: Arc::default(),
        }
    }

    /// Also counts the logins it records in `logins` (`auth_host_logins_total`).
    pub fn counting_logins(mut self, logins: LoginCounter) -> Audit {
        self.logins = Some(logins);
        self
    }

    /// This replica's id (also the holder name of its background-job leases).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Stores `event`, then logs it. An error means it was not stored: the caller must not
    /// report the change as done.
    pub async fn record(&self, event: AuditEvent, caller: &Caller) -> Result<(), StoreError> {
        self.store_and_log(event, caller).await.map(|_| ())
    }

    /// Why events cannot be stored, while the last attempt failed (for `/auth/health`):
    /// "storage full" or "cannot be written" (details are in the log).
    pub fn unwritable(&self) -> Option<&'static str> {
        self.unwritable.lock().ok().and_then(|reason| *reason)
    }

    /// Records a refusal of a caller nobody vouched for (an unknown login state, a client
    /// over its login limit): the first of an interval from one client for one reason is
    /// stored and logged at once, and the ones after it only counted, into that row when
    /// the interval ends ([`Audit::flush_counted`]). One client cannot grow the table by
    /// more than a row per reason and interval.
    pub async fn record_anonymous_refusal(&self, event: AuditEvent, caller: &Caller) {
        let key = (
            caller.client.clone().unwrap_or_default(),
            event.reason.clone().unwrap_or_default(),
        );
        let (event_type, outcome) = (event.kind.name(), event.outcome.name());
        // Decided under one lock, so that refusals arriving together make one row: the first
        // of an interval takes the key (its row still to be stored), the others count into it
        // meanwhile; the interval it ends is written below.
        let decided = self
            .counted
            .lock()
            .ok()
            .map(|mut counted| match counted.get_mut(&key) {
                Some(entry) if entry.id.is_none() || entry.since.elapsed() < COUNTING_INTERVAL => {
                    entry.more = entry.more.saturating_add(1);
                    None
                }
                _ => {
                    let ended = counted.remove(&key);
                    let tracked = counted.len() < MAX_COUNTED;
                    if tracked {
                        let pending = Counted {
                            id: None,
                            since: Instant::now(),
                            more: 0,
                            event_type,
                            outcome,
                        };
                        counted.insert(key.clone(), pending);
                    }
                    Some((ended, tracked))
                }
            });
        let (ended, tracked) = match decided {
            Some(Some(first)) => first,
            Some(None) => {
                self.count_login(event.kind, event.outcome, event.provider.as_deref());
                return;
            }
            // The counts are unusable (a thread panicked holding them): stored as it comes.
            None => return self.record_best_effort(event, caller).await,
        };
        if let Some(ended) = ended {
            self.write_count(key.clone(), ended).await;
        }
        let stored = self.store_and_log(event, caller).await;
        if let Ok(mut counted) = self.counted.lock()
            && tracked
        {
            match &stored {
                Ok(id) => {
                    if let Some(entry) = counted.get_mut(&key) {
                        entry.id = Some(*id);
                    }
                }
                // Nothing to count into: the next refusal tries to store a row again.
                Err(_) => {
                    counted.remove(&key);
                }
            }
        }
        if let Err(error) = stored {
            tracing::error!(%error, r#type = event_type, "cannot store an audit event");
        }
    }

    /// Adds the refusals counted since each row was stored to it, for the intervals that have
    /// ended (`all`: every one, as at a stop), and logs each such sum once.
    pub async fn flush_counted(&self, all: bool) {
        let due: Vec<(CountedKey, Counted)> = match self.counted.lock() {
            Ok(mut counted) => {
                // A row still being stored is never due: its count goes in once it is.
                let keys: Vec<CountedKey> = counted
                    .iter()
                    .filter(|(_, entry)| {
                        entry.id.is_some() && (all || entry.since.elapsed() >= COUNTING_INTERVAL)
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                keys.into_iter()
                    .filter_map(|key| counted.remove(&key).map(|entry| (key, entry)))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (key, entry) in due {
            self.write_count(key, entry).await;
        }
    }

    /// Adds an ended interval's count to its row, and logs the sum once.
    async fn write_count(&self, (client, reason): CountedKey, entry: Counted) {
        let (Some(id), true) = (entry.id, entry.more > 0) else {
            return;
        };
        match self.store.add_to_audit_count(id, entry.more).await {
            Ok(()) => tracing::info!(
                target: "auth_host::audit",
                r#type = entry.event_type,
                outcome = entry.outcome,
                client,
                replica = self.replica,
                reason,
                id,
                count = entry.more.saturating_add(1),
                "audit: counted"
            ),
            Err(error) => tracing::error!(
                %error,
                id,
                more = entry.more,
                "cannot add counted refusals to their audit event"
            ),
        }
    }

    /// Counts a login event in `auth_host_logins_total` (stored or counted in memory).
    fn count_login(&self, kind: AuditKind, outcome: Outcome, provider: Option<&str>) {
        if let Some(logins) = &self.logins
            && matches!(kind, AuditKind::LoginSucceeded | AuditKind::LoginRefused)
        {
            logins
                .get_or_create(&crate::metrics::LoginLabels {
                    provider: provider.unwrap_or("unknown").to_owned(),
                    outcome: outcome.name(),
                })
                .inc();
        }
    }

    /// Stores `event` and logs it; its id.
    async fn store_and_log(&self, event: AuditEvent, caller: &Caller) -> Result<i64, StoreError> {
        let record = AuditRecord {
            id: 0,
            at: unix_now_millis(),
            event_type: event.kind.name().to_owned(),
            outcome: event.outcome.name().to_owned(),
            user_id: event.user_id,
            email: event.email,
            provider: event.provider,
            client: caller.client.clone(),
            request_id: caller.request_id.clone(),
            replica: Some(self.replica.clone()),
            reason: event.reason,
            count: 1,
        };
        let stored = self.store.append_audit(&record).await;
        if let Ok(mut unwritable) = self.unwritable.lock() {
            *unwritable = stored.as_ref().err().map(|error| {
                if error.is_full() {
                    "storage full"
                } else {
                    "cannot be written"
                }
            });
        }
        let id = stored?;
        self.count_login(event.kind, event.outcome, record.provider.as_deref());
        tracing::info!(
            target: "auth_host::audit",
            r#type = record.event_type,
            outcome = record.outcome,
            user_id = record.user_id,
            email = record.email,
            provider = record.provider,
            client = record.client,
            request_id = record.request_id,
            replica = record.replica,
            reason = record.reason,
            "audit"
        );
        Ok(id)
    }

    /// Records an event whose outcome stands whether or not it is stored (a refusal, a
    /// reload already done): a failure to store it is logged, and nothing else changes.
    pub async fn record_best_effort(&self, event: AuditEvent, caller: &Caller) {
        let kind = event.kind.name();
        if let Err(error) = self.record(event, caller).await {
            tracing::error!(%error, r#type = kind, "cannot store an audit event");
        }
    }
}

/// A time given to `--since`/`--until` or `since=`/`until=`: RFC 3339
/// (`2026-12-01T08:00:00Z`), a date (`2026-12-01`, its midnight UTC) or Unix seconds; Unix
/// milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| format!("`{text}`: out of range"));
    }
    Err(format!(
        "`{text}`: not a time (2026-12-01T08:00:00Z, 2026-12-01 or Unix seconds)"
    ))
}

/// A filter from what a reader asked: a user id or email, a type (one of
/// [`AuditKind::ALL`]), a time range.
pub fn filter(
    user: Option<&str>,
    event_type: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<crate::storage::AuditFilter, String> {
    if let Some(event_type) = event_type
        && AuditKind::from_name(event_type).is_none()
    {
        let known: Vec<&str> = AuditKind::ALL.iter().map(|kind| kind.name()).collect();
        return Err(format!(
            "type `{event_type}`: not one of {}",
            known.join(", ")
        ));
    }
    Ok(crate::storage::AuditFilter {
        user: user.filter(|u| !u.is_empty()).map(str::to_owned),
        event_type: event_type.map(str::to_owned),
        since: since.map(parse_time).transpose()?,
        until: until.map(parse_time).transpose()?,
        before_id: None,
    })
}

/// An event as readers get it (`auth-host audit --json`, `GET /admin/audit`): the stored
/// fields and `time`, RFC 3339.
pub fn to_json(record: &AuditRecord) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["time"] = format_time(record.at).into();
    value
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn format_time(at: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_three_forms() {
        assert_eq!(parse_time("2026-12-01T08:00:00Z"), Ok(1_796_112_000_000));
        assert_eq!(
            parse_time("2026-12-01T09:00:00+01:00"),
            Ok(1_796_112_000_000)
        );
        assert_eq!(parse_time("2026-12-01"), Ok(1_796_083_200_000));
        assert_eq!(parse_time("1796112000"), Ok(1_796_112_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("99999999999999999").is_err());
        assert_eq!(format_time(1_796_112_000_000), "2026-12-01T08:00:00.000Z");
    }

    #[test]
    fn only_known_types_are_filtered_on() {
        assert!(filter(None, Some("login.succeeded"), None, None).is_ok());
        let error = filter(None, Some("login"), None, None).unwrap_err();
        assert!(error.contains("login.succeeded, login.refused"), "{error}");
        let reasons =
            AuditEvent::new(AuditKind::Logout, Outcome::Success).reason("a\nb".repeat(400));
        assert_eq!(
            reasons.reason.as_ref().map(|r| r.chars().count()),
            Some(MAX_REASON_CHARS)
        );
        assert!(!reasons.reason.unwrap_or_default().contains('\n'));
    }
}
