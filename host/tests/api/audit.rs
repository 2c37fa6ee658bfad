//! The audit trail: what is on record after logins, refusals, logouts and username changes,
//! with the client and request id; read through `GET /admin/audit`, filtered and paged;
//! purged by age.

use crate::common;

use common::server::{Backend, TestServer, client, dev_login_landing, params_of};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "9d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e";

async fn audit(server: &TestServer, query: &str) -> (u16, Value) {
    let response = client()
        .get(server.url(&format!("/admin/audit?{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn logins_refusals_logouts_and_changes_are_on_record(backend: Backend) {
    // On PostgreSQL the keys live in the database: making the first one is on record too,
    // before anything else.
    let keys_made: &[&str] = match backend {
        Backend::Postgres => &["signing_key.created"],
        Backend::Sqlite => &[],
    };
    let server = TestServer::start_with(
        backend,
        json!({
            "dev_login": true,
            // Refuses logins from refuse.test.
            "installed_extensions": "test_extension",
            "admin_token": ADMIN_TOKEN,
        }),
    )
    .await;
    let app = server.url("/app");

    // A new user, then the same user again.
    let landing = dev_login_landing(&server, &app, "Ada@Example.com").await;
    let token = params_of(&landing)["jwt"].clone();
    dev_login_landing(&server, &app, "Ada@Example.com").await;
    // Refused by the extension.
    let refused = dev_login_landing(&server, &app, "eve@refuse.test").await;
    assert!(params_of(&refused).contains_key("error"), "{refused}");
    // A state never issued.
    let replay = client()
        .get(server.url("/auth/oauth_callback?state=forged&code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    // A username chosen, then logout.
    let (status, answer) = server
        .post_json(&format!("/auth/update?jwt={token}&username=ada_l"))
        .await;
    assert_eq!(
        (status.as_u16(), &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, _) = server.get_json(&format!("/auth/logout?jwt={token}")).await;
    assert_eq!(status.as_u16(), 200);
    // Neither check nor authorize leaves a trace.
    server.get_json(&format!("/auth/check?jwt={token}")).await;

    let (status, page) = audit(&server, "").await;
    assert_eq!(status, 200, "{page}");
    let expected: Vec<&str> = [
        "logout",
        "username.changed",
        "login.refused",
        "login.refused",
        "login.succeeded",
        "login.succeeded",
    ]
    .into_iter()
    .chain(keys_made.iter().copied())
    .collect();
    assert_eq!(types(&page), expected, "{page}");
    if !keys_made.is_empty() {
        let made = &page["events"][6];
        assert_eq!(
            (&made["client"], &made["outcome"]),
            (&json!("keyring"), &json!("success"))
        );
        assert!(
            made["reason"].as_str().unwrap().starts_with("kid "),
            "{made}"
        );
    }
    let events = page["events"].as_array().unwrap();
    let first_login = &events[5];
    let user_id = first_login["user_id"].as_str().unwrap();
    assert_eq!(first_login["email"], "ada@example.com");
    assert_eq!(first_login["provider"], "dev");
    assert_eq!(first_login["outcome"], "success");
    assert_eq!(first_login["reason"], "new user");
    assert_eq!(first_login["client"], "127.0.0.1");
    assert_eq!(first_login["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        first_login["replica"],
        server.service.audit().replica(),
        "{first_login}"
    );
    assert!(first_login["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[4]["reason"], Value::Null);
    let by_extension = &events[3];
    assert_eq!(by_extension["outcome"], "refused");
    assert_eq!(by_extension["email"], "eve@refuse.test");
    assert!(
        by_extension["reason"]
            .as_str()
            .unwrap()
            .contains("not welcome"),
        "{by_extension}"
    );
    assert!(
        events[2]["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("login"),
        "{}",
        events[2]
    );
    assert_eq!(events[1]["reason"], "ada -> ada_l");
    assert_eq!(events[0]["user_id"], user_id);

    // Filters: by email or id, by type, by time; pages through a cursor.
    let (_, mine) = audit(&server, "user=ADA@example.com").await;
    assert_eq!(types(&mine).len(), 4, "{mine}");
    let (_, by_id) = audit(&server, &format!("user={user_id}")).await;
    assert_eq!(types(&by_id), types(&mine));
    let (_, refusals) = audit(&server, "type=login.refused").await;
    assert_eq!(types(&refusals), ["login.refused", "login.refused"]);
    let (_, future) = audit(&server, "since=2100-01-01").await;
    assert_eq!(types(&future).len(), 0);
    let (_, first) = audit(&server, "limit=4").await;
    assert_eq!(types(&first).len(), 4);
    let cursor = first["next"].as_str().unwrap().to_owned();
    let (_, second) = audit(&server, &format!("limit=4&cursor={cursor}")).await;
    assert_eq!(types(&second), expected[4..]);
    assert_eq!(second.get("next"), None, "{second}");

    // Only with the admin token; bad filters are named.
    let anonymous = client()
        .get(server.url("/admin/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    for (query, expected) in [
        ("type=login", "not one of"),
        ("since=yesterday", "not a time"),
        ("limit=0", "from 1 to 1000"),
        ("cursor=x", "not a cursor"),
    ] {
        let (status, body) = audit(&server, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(expected), "{query}: {body}");
    }

    // Retention: events older than the cut are purged, the rest stay.
    let store = server.service.store();
    let now = auth_host::clock::unix_now_millis();
    let old = auth_host::storage::AuditRecord {
        id: 0,
        at: now - 100 * 24 * 3600 * 1000,
        event_type: "logout".into(),
        outcome: "success".into(),
        user_id: Some("old".into()),
        email: None,
        provider: None,
        client: None,
        request_id: None,
        replica: None,
        reason: None,
        count: 1,
    };
    store.append_audit(&old).await.unwrap();
    let purged = store
        .purge_audit(now - 90 * 24 * 3600 * 1000)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let (_, after) = audit(&server, "").await;
    assert_eq!(types(&after), expected);

    // The bound (`audit_max_events`): only the newest events stay, whatever their age.
    assert_eq!(store.bound_audit(100).await.unwrap(), 0);
    let kept = expected.len() - 2;
    let over = store.bound_audit(kept as u64).await.unwrap();
    assert_eq!(over, 2);
    let (_, bounded) = audit(&server, "").await;
    assert_eq!(types(&bounded), expected[..kept].to_vec());
    let _ = server.stop().await;
}

/// "Written before the answer that reports it": when the event cannot be stored, the login
/// is not reported as done (no token reaches the app).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_cannot_be_put_on_record_fails() {
    use sea_orm::ConnectionTrait;
    let server = TestServer::start_with(Backend::Sqlite, json!({"dev_login": true})).await;
    let app = server.url("/app");
    let landing = dev_login_landing(&server, &app, "kept@example.com").await;
    assert!(params_of(&landing).contains_key("jwt"), "{landing}");
    server
        .database()
        .connect()
        .await
        .execute_unprepared("DROP TABLE audit_events")
        .await
        .unwrap();
    let landing = dev_login_landing(&server, &app, "lost@example.com").await;
    let params = params_of(&landing);
    assert!(!params.contains_key("jwt"), "{landing}");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("Login failed: internal error"),
        "{landing}"
    );
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_there_is_no_audit_endpoint() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = client()
        .get(server.url("/admin/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let _ = server.stop().await;
}

/// The probe's flood: 300 callbacks with a state never issued (30 at a time) and 100 logins
/// past the client's limit, from one client. One row per reason, each counting what it stands for
/// once the interval's counts are written (at the end of the interval, or at a stop); a
/// second client gets rows of its own. Without counting, 400 rows.
async fn anonymous_refusals_are_counted_per_client_and_reason(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        json!({
            "dev_login": true,
            "admin_token": ADMIN_TOKEN,
            "max_unfinished_logins_per_client": 1,
        }),
    )
    .await;
    let next = server.url("/app");
    // 30 at a time: refusals that arrive together still make one row.
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..300 {
        let url = server.url(&format!("/auth/oauth_callback?state=junk{i}&code=x"));
        flood.spawn(async move { client().get(url).send().await.unwrap().status() });
        if flood.len() == 30 {
            while let Some(status) = flood.join_next().await {
                assert_eq!(status.unwrap(), 400);
            }
        }
    }
    while let Some(status) = flood.join_next().await {
        assert_eq!(status.unwrap(), 400);
    }
    let start = |n: usize| {
        client()
            .get(server.url(&format!(
                "/auth/login/dev?next={}&n={n}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            )))
            .send()
    };
    // The first login takes the client's one unfinished slot; the rest are limited.
    assert_eq!(start(0).await.unwrap().status(), 302);
    for n in 1..=100 {
        assert_eq!(start(n).await.unwrap().status(), 429);
    }
    let refused = |page: &Value| -> Vec<(String, i64)> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "login.refused")
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_owned(),
                    e["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (_, page) = audit(&server, "limit=500").await;
    let before = refused(&page);
    assert_eq!(before.len(), 2, "one row per reason: {before:#?}");
    assert!(before.iter().all(|(_, count)| *count == 1), "{before:#?}");

    server.service.audit().flush_counted(true).await;
    let (_, page) = audit(&server, "limit=500").await;
    let mut after = refused(&page);
    after.sort_by_key(|(_, count)| *count);
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(after[0].1, 100, "{after:#?}");
    assert!(after[0].0.starts_with("limited"), "{after:#?}");
    assert_eq!(after[1].1, 300, "{after:#?}");
    let _ = server.stop().await;
}

crate::on_both_backends!(
    logins_refusals_logouts_and_changes_are_on_record,
    anonymous_refusals_are_counted_per_client_and_reason,
);
