//! What replicas tell one another through `NOTIFY` is authenticated: a role that can connect
//! to the database but knows no secret cannot make them forget what they cached.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

use crate::common::PluginDir;
use crate::common::server::{
    Backend, TestDatabase, authenticated_at, client, dev_login_at, get_json, get_text,
    metric_value, params_of, postgres_skipped,
};

/// The probe's attack: a role with no table rights sends `NOTIFY auth_host_changes,
/// 'user:<id>'`. Ignored and counted; an authenticated logout from another replica is still
/// heard at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_without_the_shared_secret_are_ignored_and_counted() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let database = TestDatabase::new(Backend::Postgres).await;
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    // A token cache long enough that only a notification can make a logout show at once.
    let start = || crate::replica_on(&database, &plugins, &[("AUTH_TOKEN_CACHE_MS", "60000")]);
    let (one, two) = (start(), start());
    let landing = dev_login_at(&one.base, "http://127.0.0.1:9/app", "ada@example.com").await;
    let token = params_of(&landing)["jwt"].clone();
    let userid = get_json(&format!("{}/auth/check?jwt={token}", one.base))
        .await
        .1["profile"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A role that may connect, and nothing else.
    let role = format!("notifier_{}", uuid::Uuid::new_v4().simple());
    let admin = database.connect().await;
    admin
        .execute_unprepared(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    let as_role = database.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(as_role, database.url);
    let stranger = sea_orm::Database::connect(&as_role).await.unwrap();
    let no_rights = stranger
        .execute_unprepared("SELECT count(*) FROM users")
        .await;
    assert!(no_rights.is_err(), "the role has no table rights");
    for payload in [
        format!("user:{userid}"),
        format!("AAAAAAAAAAAAAAAAAAAAAA:user:{userid}"),
    ] {
        stranger
            .execute_unprepared(&format!("NOTIFY auth_host_changes, '{payload}'"))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = get_text(&format!("{}/auth/metrics", two.base)).await;
        let refused = metric_value(&metrics, "auth_host_notifications_refused_total");
        if refused == 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "refused: {refused}\n{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(two.log().contains("ignored notifications"), "{}", two.log());

    // What replicas say to one another is still heard: a logout on one is refused by the
    // other at once, though its cache holds the token for a minute.
    assert!(authenticated_at(&two.base, &token).await);
    let logout = client()
        .get(format!("{}/auth/logout?jwt={token}", one.base))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(1);
    while authenticated_at(&two.base, &token).await {
        assert!(Instant::now() < deadline, "the logout was not heard");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stranger);
    let _ = admin
        .execute_unprepared(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}
