//! The `signing_keys` table as a boundary: whoever can write rows but knows no key secret
//! cannot publish a key of their own, and rows sealed by the earlier release keep verifying.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::common::server::{
    Backend, TestDatabase, authenticated_at, dev_login_at, get_json, get_text, metric_value,
    params_of, postgres_skipped,
};
use crate::common::{PluginDir, ServerProcess, auth_host_bin, workspace_root};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A replica on `database`, reading its keys every second (rotation every 4 s).
fn replica(database: &TestDatabase, plugins: &PluginDir) -> ServerProcess {
    crate::replica_on(
        database,
        plugins,
        &[
            ("AUTH_KEY_ROTATION_SECS", "4"),
            ("AUTH_CLIENT_TOKEN_LIFETIME_SECS", "60"),
            ("AUTH_PERMISSION_TOKEN_LIFETIME_SECS", "30"),
        ],
    )
}

/// A token signed with `private_pem` under `kid`, as an attacker holding that key makes it.
fn sign(private_pem: &str, kid: &str, typ: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn client_claims(userid: &str) -> Value {
    json!({"userid": userid, "iat": now(), "exp": now() + 50, "jti": "forged-0123456789"})
}

async fn execute(database: &TestDatabase, sql: String) {
    let db = database.connect().await;
    db.execute_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap();
}

async fn query(database: &TestDatabase, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = database.connect().await;
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
}

async fn jwks_kids(base: &str) -> Vec<String> {
    let (_, jwks) = get_json(&format!("{base}/auth/.well-known/jwks.json")).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn refused_warnings(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("rows not authenticated under key_secrets"))
        .count()
}

/// The probe's attack: a row with the attacker's public key, generation -1, a window covering
/// now and a made-up sealed key naming a real secret. Refused by a running replica and a
/// freshly started one; then 20,000 junk rows cost one warning per look, not one per row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_row_written_without_the_secret_is_never_published_nor_trusted() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let database = TestDatabase::new(Backend::Postgres).await;
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let running = replica(&database, &plugins);
    let landing = dev_login_at(
        &running.base,
        "http://127.0.0.1:9/app",
        "victim@example.com",
    )
    .await;
    let genuine = params_of(&landing)["jwt"].clone();
    let victim = get_json(&format!("{}/auth/check?jwt={genuine}", running.base))
        .await
        .1["profile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The attacker's row, with a secret id copied from a real row.
    let db = database.connect().await;
    let real = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT sealed_private_key FROM signing_keys LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap();
    let real_sealed: String = real.try_get("", "sealed_private_key").unwrap();
    let secret_id = real_sealed.split('.').nth(1).unwrap();
    // The probe's row (format v1), and one in this release's format: each with a key of
    // the attacker's own.
    let mut attackers = Vec::new();
    for (generation, version) in [(-1, "v1"), (-2, "v2")] {
        let (private, public, kid) = auth_host::tokens::new_rsa_key_pair().unwrap();
        execute(
            &database,
            format!(
                "INSERT INTO signing_keys (generation, kid, algorithm, public_pem, \
                 sealed_private_key, signs_from, signs_until, created_at) VALUES \
                 ({generation}, '{kid}', 'RS256', '{public}', '{version}.{secret_id}.AAAA', \
                 {}, {}, {})",
                now() - 60,
                now() + 3600,
                now()
            ),
        )
        .await;
        attackers.push((private, kid));
    }
    let (attacker_private, attacker_kid) = attackers[0].clone();
    let forged = sign(
        &attacker_private,
        &attacker_kid,
        "auth-host-client+jwt",
        &client_claims(&victim),
    );
    let forged_permission = sign(
        &attacker_private,
        &attacker_kid,
        "JWT",
        &json!({"userid": victim, "permissions": {"admin": true}, "service": "example",
                "iat": now(), "exp": now() + 3600}),
    );

    // The running replica has looked at the keys again (every second) and still refuses.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = replica(&database, &plugins);
    for server in [&running, &fresh] {
        let base = &server.base;
        let kids = jwks_kids(base).await;
        for (private, kid) in &attackers {
            assert!(!kids.contains(kid), "{base}");
            let forged = sign(
                private,
                kid,
                "auth-host-client+jwt",
                &client_claims(&victim),
            );
            assert!(!authenticated_at(base, &forged).await, "{base}");
        }
        let (_, authorized) = get_json(&format!(
            "{base}/auth/authorize?jwt={forged}&service=example"
        ))
        .await;
        assert_eq!(authorized, json!({"permissions": {}}), "{base}");
        // A permission token is not a client token, whatever key signed it.
        assert!(!authenticated_at(base, &forged_permission).await, "{base}");
        // What held keeps holding: the genuine token verifies on both.
        assert!(authenticated_at(base, &genuine).await, "{base}");
        let metrics = get_text(&format!("{base}/auth/metrics")).await;
        assert_eq!(
            metric_value(&metrics, "auth_host_signing_key_rows_refused"),
            2.0,
            "{base}"
        );
        let log = server.log();
        assert!(refused_warnings(&log) >= 1, "{log}");
        assert!(
            !log.contains(&attacker_private),
            "private keys never reach the log"
        );
    }

    // 20,000 junk rows: one warning per look naming the count, and the replicas serve on.
    execute(
        &database,
        "INSERT INTO signing_keys (generation, kid, algorithm, public_pem, sealed_private_key, \
         signs_from, signs_until, created_at) SELECT -10 - g, 'junk' || g, 'RS256', 'junk', \
         'v2.' || g || '.AAAA', 0, NULL, 0 FROM generate_series(1, 20000) AS g"
            .into(),
    )
    .await;
    let before = refused_warnings(&running.log());
    let waited = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = running.log();
    let looks = refused_warnings(&log) - before;
    assert!(
        (1..=10).contains(&looks),
        "{looks} warnings in {:?}",
        waited.elapsed()
    );
    assert!(
        log.lines().any(|l| l.contains("\"refused\":20002")),
        "the warning names the count: {log}"
    );
    let metrics = get_text(&format!("{}/auth/metrics", running.base)).await;
    assert_eq!(
        metric_value(&metrics, "auth_host_signing_key_rows_refused"),
        20002.0
    );
    assert!(authenticated_at(&running.base, &genuine).await);
    assert!(!authenticated_at(&running.base, &forged).await);

    // On record: the keys made, and the refused rows each time their number changed (not
    // once a look).
    let events = query(
        &database,
        "SELECT event_type, reason FROM audit_events ORDER BY id",
    )
    .await;
    let of_type = |wanted: &str| -> Vec<String> {
        events
            .iter()
            .filter(|row| row.try_get::<String>("", "event_type").unwrap() == wanted)
            .map(|row| row.try_get::<String>("", "reason").unwrap())
            .collect()
    };
    assert!(!of_type("signing_key.created").is_empty());
    let refused = of_type("signing_key.rows_refused");
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("20002 signing_keys rows")),
        "{refused:?}"
    );
    assert!(
        refused.len() <= 6,
        "one event per change, not per look: {refused:?}"
    );
}

/// A row the earlier release wrote (sealed bound to the kid only): a replica of this release
/// authenticates it once under the lock (its private key is its public key's other half),
/// seals it again with the whole row bound, and the tokens it signed keep verifying. The same
/// row with its public key swapped for an attacker's is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sealed_by_the_earlier_release_keep_verifying_after_the_upgrade() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root().join("host/tests/fixtures/signing-key-row-v1.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let field = |name: &str| fixture[name].as_str().unwrap().to_owned();
    let (kid, public_pem, sealed) = (
        field("kid"),
        field("public_pem"),
        field("sealed_private_key"),
    );
    assert!(
        sealed.starts_with("v1."),
        "the fixture is of the earlier format"
    );

    let database = TestDatabase::new(Backend::Postgres).await;
    let migrated = crate::common::output_within(
        std::process::Command::new(auth_host_bin())
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &database.url),
        crate::common::COMMAND_LIMIT,
    );
    assert!(migrated.status.success(), "{migrated:?}");
    // The earlier release's row, and a copy whose public key (and kid) are an attacker's.
    let (_, attacker_public, attacker_kid) = auth_host::tokens::new_rsa_key_pair().unwrap();
    for (generation, kid, public) in [
        (0, &kid, &public_pem),
        (-1, &attacker_kid, &attacker_public),
    ] {
        execute(
            &database,
            format!(
                "INSERT INTO signing_keys (generation, kid, algorithm, public_pem, \
                 sealed_private_key, signs_from, signs_until, created_at) VALUES \
                 ({generation}, '{kid}', 'RS256', '{public}', '{sealed}', {}, NULL, {})",
                now() - 100,
                now() - 100
            ),
        )
        .await;
    }

    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let server = crate::replica_on(&database, &plugins, &[]);
    let landing = dev_login_at(&server.base, "http://127.0.0.1:9/app", "ada@example.com").await;
    let token = params_of(&landing)["jwt"].clone();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(kid.as_str()),
        "the upgraded key signs"
    );
    let userid = get_json(&format!("{}/auth/check?jwt={token}", server.base))
        .await
        .1["profile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token the earlier release signed with that key.
    let earlier = sign(
        &field("private_pem"),
        &kid,
        "auth-host-client+jwt",
        &client_claims(&userid),
    );
    assert!(authenticated_at(&server.base, &earlier).await);
    let kids = jwks_kids(&server.base).await;
    assert!(
        kids.contains(&kid) && !kids.contains(&attacker_kid),
        "{kids:?}"
    );

    let rows = query(
        &database,
        "SELECT generation, sealed_private_key FROM signing_keys ORDER BY generation",
    )
    .await;
    let sealed_now: Vec<(i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "generation").unwrap(),
                r.try_get("", "sealed_private_key").unwrap(),
            )
        })
        .collect();
    assert!(
        sealed_now[0].1.starts_with("v1."),
        "the swapped row is left as it was"
    );
    assert!(
        sealed_now[1].1.starts_with("v2."),
        "sealed again: {sealed_now:?}"
    );
    let log = server.log();
    assert!(
        log.contains("sealed again under the first key secret"),
        "{log}"
    );
    assert_eq!(
        metric_value(
            &get_text(&format!("{}/auth/metrics", server.base)).await,
            "auth_host_signing_key_rows_refused"
        ),
        1.0
    );

    // Later the key is rotated out: deleted, a new one (sealed whole) signs.
    drop(server);
    execute(
        &database,
        "DELETE FROM signing_keys WHERE generation = 0".into(),
    )
    .await;
    let rotated = crate::replica_on(&database, &plugins, &[]);
    let landing = dev_login_at(&rotated.base, "http://127.0.0.1:9/app", "cy@example.com").await;
    let new_kid = jsonwebtoken::decode_header(&params_of(&landing)["jwt"])
        .unwrap()
        .kid
        .unwrap();
    assert_ne!(new_kid, kid);
    drop(rotated);
    // The earlier release's row put back after the upgrade (from a backup), as the newest
    // generation, which would sign: refused, left as it is, never signing, its kid not
    // published. (It was accepted, sealed again and signed once more.)
    execute(
        &database,
        format!(
            "INSERT INTO signing_keys (generation, kid, algorithm, public_pem, \
             sealed_private_key, signs_from, signs_until, created_at) VALUES \
             (7, '{kid}', 'RS256', '{public_pem}', '{sealed}', {}, NULL, {})",
            now() - 50,
            now() - 50
        ),
    )
    .await;
    let later = crate::replica_on(&database, &plugins, &[]);
    assert_eq!(
        metric_value(
            &get_text(&format!("{}/auth/metrics", later.base)).await,
            "auth_host_signing_key_rows_refused"
        ),
        2.0,
        "{}",
        later.log()
    );
    let put_back = query(
        &database,
        "SELECT sealed_private_key FROM signing_keys WHERE generation = 7",
    )
    .await;
    let sealed_7: String = put_back[0].try_get("", "sealed_private_key").unwrap();
    assert!(sealed_7.starts_with("v1."), "left as it was");
    let landing = dev_login_at(&later.base, "http://127.0.0.1:9/app", "bo@example.com").await;
    let signed_by = jsonwebtoken::decode_header(&params_of(&landing)["jwt"])
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(signed_by, new_kid, "the key of the rotation signs");
    assert!(!jwks_kids(&later.base).await.contains(&kid));
}

/// The fault probe's clock skew: on a fresh database, a replica whose clock is 30 s behind
/// the one that made the first key (run under libfaketime) finds that key starting "in the
/// future". It makes no second key, both replicas serve the same keys and accept each other's
/// tokens, and the skewed one says how far off it is (log and metric). Without scheduling by
/// the database's clock it made a key of its own and the two served different keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_behind_makes_no_second_first_key() {
    if postgres_skipped() {
        return;
    }
    const FAKETIME: &str = "/usr/bin/faketime";
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: `make test-tools` installs it"
    );
    let database = TestDatabase::new(Backend::Postgres).await;
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let on_time = crate::replica_on(&database, &plugins, &[]);
    let mut behind_command = std::process::Command::new(FAKETIME);
    behind_command.args(["-f", "-30s"]).arg(auth_host_bin());
    // Timers keep the real monotonic clock; only the wall clock is 30 s behind.
    let behind = crate::replica_started_by(
        behind_command,
        &database,
        &plugins,
        &[("DONT_FAKE_MONOTONIC", "1")],
    );
    let rows = query(&database, "SELECT generation FROM signing_keys").await;
    assert_eq!(rows.len(), 1, "one first key, made by one replica");
    assert_eq!(
        jwks_kids(&on_time.base).await,
        jwks_kids(&behind.base).await
    );

    for (issuer, verifier) in [(&behind, &on_time), (&on_time, &behind)] {
        let landing = dev_login_at(&issuer.base, "http://127.0.0.1:9/app", "ada@example.com").await;
        let token = params_of(&landing).remove("jwt").unwrap();
        assert!(authenticated_at(&verifier.base, &token).await, "{landing}");
    }
    let metrics = get_text(&format!("{}/auth/metrics", behind.base)).await;
    let skew = metric_value(&metrics, "auth_host_database_clock_skew_milliseconds");
    assert!((-32_000.0..=-28_000.0).contains(&skew), "{skew}");
    let log = behind.log();
    assert!(
        log.contains("this machine's clock differs from the database's"),
        "{log}"
    );
    assert!(!on_time.log().contains("clock differs"));
}
