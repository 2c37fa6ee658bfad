//! auth-host starts on a database the old Python service created, keeps every row and serves
//! those users; the client tokens the old service issued keep working until they expire.

use crate::common;
use crate::on_both_backends;

use common::server::{Backend, TestDatabase, TestServer};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

/// The table as Flask-SQLAlchemy created it.
fn create_table(backend: Backend) -> String {
    let timestamp = match backend {
        Backend::Sqlite => "DATETIME",
        Backend::Postgres => "TIMESTAMP WITHOUT TIME ZONE",
    };
    format!(
        "CREATE TABLE users (
            id VARCHAR(128) NOT NULL,
            provider_id VARCHAR(128),
            username VARCHAR(128),
            name VARCHAR(128),
            email VARCHAR(128),
            avatar_url VARCHAR(512),
            join_date {timestamp},
            PRIMARY KEY (id),
            UNIQUE (username)
        )"
    )
}

const ROWS: &str = "INSERT INTO users (id, provider_id, username, name, email, avatar_url, join_date) VALUES
    ('5d41402abc4b2a76b9719d911017c592', 'github:1234', 'hello', 'Hello World', 'hello@example.com', 'https://avatars.example/1234', '2017-03-14 09:26:53.589793'),
    ('7d793037a0760186574b0282f2f435e7', 'google:98765', 'world', 'W. Orld', 'world@example.com', NULL, '2016-01-02 03:04:05'),
    ('e99a18c428cb38d5f260853678922e03', NULL, NULL, NULL, 'bare@example.com', NULL, NULL)";

async fn rows(db: &DatabaseConnection) -> Vec<Value> {
    let backend = db.get_database_backend();
    // Dates as text, so that both backends compare alike.
    let date = match backend {
        sea_orm::DbBackend::Postgres => "to_char(join_date, 'YYYY-MM-DD HH24:MI:SS.US')",
        _ => "join_date",
    };
    db.query_all_raw(Statement::from_string(
        backend,
        format!(
            "SELECT id, provider_id, username, name, email, avatar_url, {date} AS join_date \
             FROM users ORDER BY id"
        ),
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        let text = |column: &str| row.try_get::<Option<String>>("", column).unwrap();
        json!([
            text("id"),
            text("provider_id"),
            text("username"),
            text("name"),
            text("email"),
            text("avatar_url"),
            text("join_date")
        ])
    })
    .collect()
}

/// A database laid out and filled by the old service.
async fn old_service_database(backend: Backend) -> (TestDatabase, DatabaseConnection) {
    let database = TestDatabase::new(backend).await;
    let db = database.connect().await;
    let sql_backend = db.get_database_backend();
    db.execute_raw(Statement::from_string(sql_backend, create_table(backend)))
        .await
        .unwrap();
    db.execute_raw(Statement::from_string(sql_backend, ROWS))
        .await
        .unwrap();
    (database, db)
}

async fn get(server: &TestServer, path: &str) -> Value {
    server.get_json(path).await.1
}

async fn serves_the_old_services_users_and_keeps_every_row(backend: Backend) {
    let (database, db) = old_service_database(backend).await;
    let before = rows(&db).await;
    assert_eq!(before.len(), 3);

    let server = TestServer::start_on(database, json!({})).await;
    let hello = "5d41402abc4b2a76b9719d911017c592";
    let token = server.token_for(hello);
    assert_eq!(
        get(&server, &format!("/auth/check?jwt={token}")).await,
        json!({"authenticated": true, "profile": {
            "id": hello, "idhash": hello, "provider_id": "github:1234", "username": "hello",
            "name": "Hello World", "email": "hello@example.com",
            "avatar_url": "https://avatars.example/1234", "join_date": "2017-03-14T09:26:53.589793",
        }})
    );
    // The user with nothing but an id and an email is served too.
    let bare = "e99a18c428cb38d5f260853678922e03";
    let body = get(
        &server,
        &format!("/auth/check?jwt={}", server.token_for(bare)),
    )
    .await;
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["profile"]["username"], Value::Null);
    assert_eq!(body["profile"]["join_date"], Value::Null);

    assert_eq!(
        get(&server, "/auth/resolve?username=WORLD").await,
        json!({"userid": "7d793037a0760186574b0282f2f435e7"})
    );
    assert_eq!(
        get(&server, "/user/get_profile?username=world").await,
        json!({"found": true, "profile": {
            "id": "7d793037a0760186574b0282f2f435e7", "name": "W. Orld",
            "join_date": "2016-01-02T03:04:05", "avatar_url": null,
            "gravatar": format!("{:x}", <md5::Md5 as md5::Digest>::digest(b"world@example.com")),
        }})
    );
    let body = get(
        &server,
        &format!("/auth/authorize?jwt={token}&service=example"),
    )
    .await;
    assert_eq!(
        body["permissions"],
        json!({"provider-token": format!("example-{hello}")})
    );

    // A derived username of an old user can still be replaced once.
    let (_, answer) = server
        .post_json(&format!("/auth/update?jwt={token}&username=hello_again"))
        .await;
    assert_eq!(answer, json!({"success": true}));

    // Every row kept; only the chosen username changed.
    let database = server.stop().await;
    let mut after = rows(&db).await;
    assert_eq!(after.len(), 3);
    assert_eq!(after[0][2], "hello_again");
    after[0][2] = json!("hello");
    assert_eq!(after, before);

    // A second start on the same database changes nothing.
    let server = TestServer::start_on(database, json!({})).await;
    assert_eq!(
        get(&server, "/auth/resolve?username=hello_again").await,
        json!({"userid": hello})
    );
    let _database = server.stop().await;
    assert_eq!(rows(&db).await.len(), 3);
}

async fn starts_even_when_old_usernames_differ_only_in_case(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let db = database.connect().await;
    let sql_backend = db.get_database_backend();
    db.execute_raw(Statement::from_string(sql_backend, create_table(backend)))
        .await
        .unwrap();
    db.execute_raw(Statement::from_string(
        sql_backend,
        "INSERT INTO users (id, username, email) VALUES ('a', 'Sam', 'sam1@example.com'), ('b', 'sam', 'sam2@example.com')",
    ))
    .await
    .unwrap();
    let server = TestServer::start_on(database, json!({})).await;
    assert!(
        !server
            .service
            .store()
            .has_case_insensitive_username_index()
            .await
            .unwrap()
    );
    // auth-host still refuses a new case-insensitive duplicate.
    let other = server.add_user("other@example.com", "other").await;
    let (_, answer) = server
        .post_json(&format!(
            "/auth/update?jwt={}&username=SAM",
            server.token_for(&other.id)
        ))
        .await;
    assert_eq!(
        answer,
        json!({"success": false, "error": "Username already taken"})
    );
    let _database = server.stop().await;
    assert_eq!(rows(&db).await.len(), 3);
}

/// An RSA key pair as `openssl` writes it: (private PEM text, public PEM text).
fn key_pair() -> (String, String) {
    let run = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl is installed");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let private = run(&["genrsa", "-traditional", "2048"], None);
    let public = run(&["rsa", "-pubout"], Some(&private));
    (private, public)
}

/// A token minted by PyJWT exactly as the old service did: HS256 under the SHA-256 of
/// `key_text` (or, `raw`, under `key_text` itself).
fn minted_as_the_old_service(key_text: &str, claims: Value, raw: bool) -> String {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), key_text).unwrap();
    let mut command = std::process::Command::new(common::verifiers_python());
    command
        .arg(common::workspace_root().join("tools/mint_legacy_token.py"))
        .arg(key_file.path())
        .arg(claims.to_string());
    if raw {
        command.arg("--raw-key");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn authenticated(server: &TestServer, token: &str) -> bool {
    get(server, &format!("/auth/check?jwt={token}")).await["authenticated"] == json!(true)
}

async fn users_logged_in_with_the_old_service_stay_logged_in(backend: Backend) {
    let (database, _db) = old_service_database(backend).await;
    // The operator's PRIVATE_KEY, with the trailing newline its value has.
    let (private, public) = key_pair();
    assert!(private.ends_with('\n'));
    let keys = json!({"private_key": private, "public_key": public});
    let server = TestServer::start_on(database, keys.clone()).await;
    let hello = "5d41402abc4b2a76b9719d911017c592";
    let in_14_days = now() + 14 * 24 * 3600;
    let old =
        minted_as_the_old_service(&private, json!({"userid": hello, "exp": in_14_days}), false);
    let header = jsonwebtoken::decode_header(&old).unwrap();
    assert_eq!(
        (header.alg, header.kid),
        (jsonwebtoken::Algorithm::HS256, None)
    );

    // check, authorize and update work with it.
    let body = get(&server, &format!("/auth/check?jwt={old}")).await;
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(body["profile"]["username"], "hello");
    let granted = get(
        &server,
        &format!("/auth/authorize?jwt={old}&service=example"),
    )
    .await;
    assert_eq!(
        granted["permissions"],
        json!({"provider-token": format!("example-{hello}")})
    );
    let permission_token = granted["token"].as_str().unwrap().to_owned();
    let (_, answer) = server
        .post_json(&format!("/auth/update?jwt={old}&username=hello_again"))
        .await;
    assert_eq!(answer, json!({"success": true}));

    // Refused: expired, another key, HS256 keyed with the public PEM, the old service's
    // state tokens, a key text without its newline, and permission tokens.
    let (other_private, _) = key_pair();
    let refused = [
        (
            "expired",
            minted_as_the_old_service(
                &private,
                json!({"userid": hello, "exp": now() - 3600}),
                false,
            ),
        ),
        (
            "another key",
            minted_as_the_old_service(
                &other_private,
                json!({"userid": hello, "exp": in_14_days}),
                false,
            ),
        ),
        (
            "keyed with the public PEM",
            minted_as_the_old_service(&public, json!({"userid": hello, "exp": in_14_days}), true),
        ),
        (
            "keyed with the public PEM's digest",
            minted_as_the_old_service(&public, json!({"userid": hello, "exp": in_14_days}), false),
        ),
        (
            "the text without its newline",
            minted_as_the_old_service(
                private.trim_end(),
                json!({"userid": hello, "exp": in_14_days}),
                false,
            ),
        ),
        (
            "a state token",
            minted_as_the_old_service(
                &private,
                json!({"next": "https://app.example/", "provider": "github", "exp": in_14_days}),
                false,
            ),
        ),
        (
            "a state token naming a user",
            minted_as_the_old_service(
                &private,
                json!({"userid": hello, "next": "https://app.example/", "provider": "github", "exp": in_14_days}),
                false,
            ),
        ),
        ("a permission token", permission_token),
    ];
    for (what, token) in &refused {
        assert!(!authenticated(&server, token).await, "{what}");
        let (_, answer) = server.post_json(&format!("/auth/update?jwt={token}")).await;
        assert_eq!(answer["success"], false, "{what}");
        let body = get(
            &server,
            &format!("/auth/authorize?jwt={token}&service=example"),
        )
        .await;
        assert_eq!(body, json!({"permissions": {}}), "{what}");
    }

    // Operators can see old tokens are still in use.
    let metrics = common::server::get_text(&server.url("/auth/metrics")).await;
    let accepted: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("auth_host_legacy_client_tokens_accepted_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(accepted >= 1.0, "{metrics}");

    // Logout revokes it (it has no jti: by its digest, until its exp).
    let (status, _) = server.post_json(&format!("/auth/logout?jwt={old}")).await;
    assert_eq!(status, 200);
    assert!(!authenticated(&server, &old).await);
    let database = server.stop().await;

    // With the setting off, even a fresh one is refused.
    // (Another exp than the revoked one: HS256 tokens of equal claims are equal.)
    let fresh = minted_as_the_old_service(
        &private,
        json!({"userid": hello, "exp": in_14_days - 1}),
        false,
    );
    let mut off = keys.clone();
    off["legacy_client_tokens"] = json!(false);
    let server = TestServer::start_on(database, off).await;
    assert!(!authenticated(&server, &fresh).await);
    let database = server.stop().await;
    let server = TestServer::start_on(database, keys).await;
    assert!(
        authenticated(&server, &fresh).await,
        "on by default with PRIVATE_KEY"
    );
    let _ = server.stop().await;
}

on_both_backends!(
    users_logged_in_with_the_old_service_stay_logged_in,
    serves_the_old_services_users_and_keeps_every_row,
    starts_even_when_old_usernames_differ_only_in_case,
);

/// The old service's `DATABASE_URL`, as its operators wrote it for SQLAlchemy: auth-host finds
/// the same database (every user there) through each form, relative forms from the working
/// directory the old service ran in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_services_database_urls_reach_the_same_database() {
    let (database, _db) = old_service_database(Backend::Sqlite).await;
    let file = std::path::PathBuf::from(database.url.strip_prefix("sqlite://").unwrap());
    let workdir = file.parent().unwrap().parent().unwrap().to_path_buf();
    let relative = file.strip_prefix(&workdir).unwrap().display().to_string();
    let data = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite:///{relative}"),
        format!(
            "sqlite:////{}",
            file.display().to_string().trim_start_matches('/')
        ),
        format!("sqlite://{relative}"),
        format!("sqlite:{relative}"),
        // What an earlier auth-host release was given: three slashes, an absolute path.
        database.url.clone(),
    ] {
        let mut command = std::process::Command::new(common::auth_host_bin());
        command.current_dir(&workdir);
        let server = common::ServerProcess::start_command(
            command,
            &["serve"],
            &[
                ("DATABASE_URL", url.as_str()),
                ("AUTH_DATA_DIR", data.path().to_str().unwrap()),
                ("AUTH_PLUGIN_DIR", data.path().to_str().unwrap()),
            ],
        );
        let (_, body) =
            common::server::get_json(&format!("{}/auth/resolve?username=hello", server.base)).await;
        assert_eq!(body["userid"], "5d41402abc4b2a76b9719d911017c592", "{url}");
        let log = server.stop();
        assert!(
            log.contains(&format!("SQLite {}", file.display())),
            "{url}: the resolved database is logged\n{log}"
        );
    }
    assert!(
        !workdir.join("auth.db").exists() && !data.path().join("auth-host.db").exists(),
        "no new, empty database was made anywhere"
    );

    // An in-memory database would lose every user at each restart: refused.
    for url in ["sqlite://", "sqlite::memory:"] {
        let output = common::output_within(
            std::process::Command::new(common::auth_host_bin())
                .arg("serve")
                .env_clear()
                .env("DATABASE_URL", url)
                .env("AUTH_DATA_DIR", data.path()),
            common::COMMAND_LIMIT,
        );
        assert_eq!(output.status.code(), Some(2), "{url}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("in-memory SQLite database"), "{url}: {said}");
    }
}

/// SQLAlchemy's PostgreSQL URLs name their driver (`postgresql+psycopg2://`): the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_postgresql_urls_with_a_driver_reach_the_same_database() {
    if common::server::postgres_skipped() {
        return;
    }
    let (database, _db) = old_service_database(Backend::Postgres).await;
    let data = tempfile::tempdir().unwrap();
    let rest = database.url.split_once("://").unwrap().1.to_owned();
    for scheme in [
        "postgresql",
        "postgresql+psycopg2",
        "postgresql+psycopg",
        "postgres",
    ] {
        let url = format!("{scheme}://{rest}");
        let server = common::ServerProcess::start(&[
            ("DATABASE_URL", url.as_str()),
            ("AUTH_KEY_SECRETS", common::server::TEST_KEY_SECRETS),
            ("AUTH_DATA_DIR", data.path().to_str().unwrap()),
            ("AUTH_PLUGIN_DIR", data.path().to_str().unwrap()),
        ]);
        let (_, body) =
            common::server::get_json(&format!("{}/auth/resolve?username=world", server.base)).await;
        assert_eq!(body["userid"], "7d793037a0760186574b0282f2f435e7", "{url}");
        let log = server.stop();
        assert!(log.contains("PostgreSQL postgres://"), "{url}: {log}");
    }
}
