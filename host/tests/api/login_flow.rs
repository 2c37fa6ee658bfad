//! Logins through a stand-in identity provider over real HTTP: Google, GitHub and a generic
//! OpenID Connect provider, user records, hooks, refusals and logout.

use crate::common;
use crate::on_both_backends;

use common::idp::{OidcUser, Spoil, StandInIdp};
use common::server::{Backend, TestServer, authenticated_at, browser, follow, params_of};
use serde_json::{Value, json};

struct World {
    idp: StandInIdp,
    server: TestServer,
    /// Hook calls recorded by the test extension.
    record: tempfile::NamedTempFile,
}

impl World {
    async fn new(backend: Backend) -> World {
        Self::with(backend, json!({})).await
    }

    async fn with(backend: Backend, extra: Value) -> World {
        Self::with_idp(backend, StandInIdp::start().await, extra).await
    }

    async fn with_idp(backend: Backend, idp: StandInIdp, extra: Value) -> World {
        let record = tempfile::NamedTempFile::new().unwrap();
        let mut settings = json!({
            "providers": idp.providers(),
            "installed_extensions": "audit:test_extension",
            "plugins": {"audit": {"record_to": record.path()}},
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut settings, extra) {
            base.extend(extra);
        }
        let server = TestServer::start_with(backend, settings).await;
        World {
            idp,
            server,
            record,
        }
    }

    fn next(&self) -> String {
        self.server.url("/app/landing?tab=2")
    }

    /// The login URL `/auth/check` offers for `provider`.
    async fn login_url(&self, provider: &str) -> String {
        let (_, body) = self
            .server
            .get_json(&format!(
                "/auth/check?next={}",
                form_urlencoded::byte_serialize(self.next().as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(body["authenticated"], false);
        body["providers"][provider]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no {provider} in {body}"))
            .to_owned()
    }

    /// Logs in with `provider` in a fresh browser; the query of the final `next` URL.
    async fn login(&self, provider: &str) -> std::collections::HashMap<String, String> {
        self.login_in(&browser(), provider).await
    }

    /// Logs in with `provider` in `browser`.
    async fn login_in(
        &self,
        browser: &reqwest::Client,
        provider: &str,
    ) -> std::collections::HashMap<String, String> {
        let landing = follow(browser, &self.login_url(provider).await, &self.next())
            .await
            .unwrap_or_else(|(status, body)| panic!("login ended with {status}: {body}"));
        params_of(&landing)
    }

    async fn profile(&self, token: &str) -> Value {
        let (_, body) = self
            .server
            .get_json(&format!("/auth/check?jwt={token}"))
            .await;
        assert_eq!(body["authenticated"], true, "{body}");
        body["profile"].clone()
    }

    fn hooks(&self) -> Vec<String> {
        std::fs::read_to_string(self.record.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn oidc_user(&self, sub: &str, email: &str, name: &str) {
        self.idp.set_oidc_user(OidcUser {
            sub: sub.into(),
            email: Some(email.into()),
            email_verified: Some(true),
            name: Some(name.into()),
            picture: Some(format!("https://pictures.example/{sub}.png")),
        });
    }
}

fn md5_hex(text: &str) -> String {
    format!("{:x}", <md5::Md5 as md5::Digest>::digest(text.as_bytes()))
}

async fn google_github_and_oidc_logins_end_with_a_working_token(backend: Backend) {
    let world = World::new(backend).await;
    let (_, body) = world.server.get_json("/auth/check").await;
    let providers: Vec<&String> = body["providers"].as_object().unwrap().keys().collect();
    assert_eq!(providers, ["corp", "github", "google"]);
    // What a login button may call each: the `display_name`, or the kind's own name.
    let names: Vec<&Value> = ["corp", "github", "google"]
        .iter()
        .map(|p| &body["providers"][p]["name"])
        .collect();
    assert_eq!(
        names,
        [&json!("Corp SSO"), &json!("GitHub"), &json!("Google")]
    );

    world.oidc_user("g-1", "Grace.Hopper@example.com", "Grace Hopper");
    let landed = world.login("google").await;
    assert_eq!(landed["tab"], "2", "next keeps its own parameters");
    let profile = world.profile(&landed["jwt"]).await;
    assert_eq!(profile["id"], md5_hex("Grace.Hopper@example.com"));
    assert_eq!(profile["username"], "grace.hopper");
    assert_eq!(profile["name"], "Grace Hopper");
    assert_eq!(profile["provider_id"], "google:g-1");
    assert_eq!(profile["avatar_url"], "https://pictures.example/g-1.png");

    world.oidc_user("c-7", "linus@corp.example", "Linus");
    let landed = world.login("corp").await;
    let profile = world.profile(&landed["jwt"]).await;
    assert_eq!(profile["username"], "linus");
    assert_eq!(profile["provider_id"], "corp:c-7");

    world.idp.set_github_user(
        json!({"id": 583231, "login": "Octocat", "name": "The Octocat",
               "email": "octocat@github.example", "avatar_url": "https://avatars.example/583231"}),
        json!([]),
    );
    let landed = world.login("github").await;
    let profile = world.profile(&landed["jwt"]).await;
    assert_eq!(
        profile["username"], "octocat",
        "GitHub's login, lower-cased"
    );
    assert_eq!(profile["email"], "octocat@github.example");
    assert_eq!(profile["provider_id"], "github:583231");

    // The token is a real client token: it authorizes too.
    let (_, answer) = world
        .server
        .get_json(&format!(
            "/auth/authorize?jwt={}&service=example",
            landed["jwt"]
        ))
        .await;
    assert_eq!(answer["userid"], md5_hex("octocat@github.example"));
    let _ = world.server.stop().await;
}

async fn usernames_are_derived_suffixed_and_profiles_refreshed(backend: Backend) {
    let world = World::new(backend).await;
    let mut ids = Vec::new();
    for (i, email) in ["sam@one.example", "Sam@two.example", "sam@three.example"]
        .iter()
        .enumerate()
    {
        world.oidc_user(&format!("s-{i}"), email, "Sam");
        let landed = world.login("google").await;
        let profile = world.profile(&landed["jwt"]).await;
        ids.push(profile["id"].as_str().unwrap().to_owned());
        let expected = ["sam", "sam1", "sam2"][i];
        assert_eq!(profile["username"], expected, "{email}");
    }
    // A later login refreshes provider id, name and avatar, not the username.
    world.idp.set_oidc_user(OidcUser {
        sub: "s-0-new".into(),
        email: Some("sam@one.example".into()),
        email_verified: Some(true),
        name: Some("Samuel".into()),
        picture: Some("https://pictures.example/new.png".into()),
    });
    let landed = world.login("google").await;
    let profile = world.profile(&landed["jwt"]).await;
    assert_eq!(profile["id"], ids[0].as_str());
    assert_eq!(profile["username"], "sam");
    assert_eq!(profile["name"], "Samuel");
    assert_eq!(profile["avatar_url"], "https://pictures.example/new.png");
    assert_eq!(profile["provider_id"], "google:s-0-new");
    assert_eq!(world.server.service.store().count_users().await.unwrap(), 3);
    let _ = world.server.stop().await;
}

async fn githubs_verified_emails_decide_when_none_is_public(backend: Backend) {
    let world = World::new(backend).await;
    let emails = json!([
        {"email": "work@corp.example", "primary": false, "verified": true},
        {"email": "me@home.example", "primary": true, "verified": true},
        {"email": "taken@victim.example", "primary": false, "verified": false},
    ]);
    let github_user =
        json!({"id": 1, "login": "dev", "name": "Dev", "email": null, "avatar_url": null});
    // No user owns any of them: the primary one.
    world
        .idp
        .set_github_user(github_user.clone(), emails.clone());
    let landed = world.login("github").await;
    assert_eq!(
        world.profile(&landed["jwt"]).await["email"],
        "me@home.example"
    );

    // Once a user owns a verified one, that one wins over the primary.
    world.server.add_user("work@corp.example", "worker").await;
    let landed = world.login("github").await;
    let profile = world.profile(&landed["jwt"]).await;
    assert_eq!(profile["email"], "work@corp.example");
    assert_eq!(profile["username"], "worker");

    // An unverified email never counts, even when a user owns it.
    world
        .server
        .add_user("taken@victim.example", "victim")
        .await;
    world.idp.set_github_user(
        json!({"id": 2, "login": "mallory", "email": null}),
        json!([{"email": "taken@victim.example", "primary": true, "verified": false}]),
    );
    let landed = world.login("github").await;
    assert!(!landed.contains_key("jwt"));
    assert_eq!(
        landed["error"],
        "The provider gave no email address for this account"
    );
    let _ = world.server.stop().await;
}

async fn no_email_or_an_unverified_one_gives_no_token(backend: Backend) {
    let world = World::new(backend).await;
    world.idp.set_oidc_user(OidcUser {
        sub: "anon".into(),
        email: None,
        email_verified: None,
        name: Some("Anonymous".into()),
        picture: None,
    });
    let landed = world.login("corp").await;
    assert!(!landed.contains_key("jwt"), "{landed:?}");
    assert_eq!(
        landed["error"],
        "The provider gave no email address for this account"
    );
    world.idp.set_oidc_user(OidcUser {
        sub: "x".into(),
        email: Some("someone@example.com".into()),
        email_verified: Some(false),
        name: None,
        picture: None,
    });
    let landed = world.login("google").await;
    assert!(!landed.contains_key("jwt"));
    assert!(landed["error"].contains("not verified"), "{landed:?}");
    assert_eq!(world.server.service.store().count_users().await.unwrap(), 0);
    let _ = world.server.stop().await;
}

async fn hooks_run_in_order_and_may_refuse(backend: Backend) {
    let world = World::new(backend).await;
    world.oidc_user("h-1", "helen@fine.example", "Helen");
    let first = world.login("google").await;
    let second = world.login("google").await;
    assert!(first.contains_key("jwt") && second.contains_key("jwt"));
    let id = md5_hex("helen@fine.example");
    assert_eq!(
        world.hooks(),
        [
            format!("on_new_user {id} helen@fine.example"),
            format!("on_user_login {id} helen@fine.example"),
            format!("on_user_login {id} helen@fine.example"),
        ],
        "on_new_user once, on_user_login every time"
    );

    // A refusing hook: no token, `next` gets the reason, nothing stored.
    world.oidc_user("r-1", "rita@refuse.test", "Rita");
    let landed = world.login("google").await;
    assert!(!landed.contains_key("jwt"));
    assert_eq!(landed["error"], "Login refused: on_new_user: not welcome");
    assert!(
        world
            .server
            .service
            .store()
            .user(&md5_hex("rita@refuse.test"))
            .await
            .unwrap()
            .is_none()
    );
    // A panicking hook refuses too (fail closed), and stores nothing.
    world.oidc_user("p-1", "pat@panic.test", "Pat");
    let landed = world.login("google").await;
    assert!(!landed.contains_key("jwt"));
    assert_eq!(landed["error"], "Login refused: an extension failed");
    assert!(
        world
            .server
            .service
            .store()
            .user(&md5_hex("pat@panic.test"))
            .await
            .unwrap()
            .is_none()
    );
    // A hook may amend display fields: the last one to speak wins.
    world.oidc_user("a-1", "amy@amend.test", "Amy");
    let landed = world.login("google").await;
    assert_eq!(
        world.profile(&landed["jwt"]).await["name"],
        "Amended by on_user_login"
    );
    let _ = world.server.stop().await;
}

async fn replayed_unbound_expired_and_foreign_logins_are_refused(backend: Backend) {
    let world = World::new(backend).await;
    world.oidc_user("z-1", "zoe@example.com", "Zoe");

    // A `next` on an unlisted origin is refused before any redirect to the provider.
    let response = browser()
        .get(
            world
                .server
                .url("/auth/login/google?next=https://evil.example/steal"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "next is not on an allowed origin (https://evil.example)"
    );
    assert_eq!(world.idp.authorize_requests(), 0);

    // Walk a login up to the callback, by hand.
    let walk_to_callback = |browser: reqwest::Client| {
        let url = world.server.url(&format!(
            "/auth/login/google?next={}",
            form_urlencoded::byte_serialize(world.next().as_bytes()).collect::<String>()
        ));
        let callback_prefix = world.server.url("/auth/oauth_callback");
        async move {
            let callback = follow(&browser, &url, &callback_prefix).await.unwrap();
            (browser, callback)
        }
    };

    // Replayed state: the second use is refused.
    let (first_browser, callback) = walk_to_callback(browser()).await;
    let landing = follow(&first_browser, &callback, &world.next())
        .await
        .unwrap();
    assert!(params_of(&landing).contains_key("jwt"));
    let (status, page) = follow(&first_browser, &callback, &world.next())
        .await
        .unwrap_err();
    assert_eq!(status, 400);
    assert!(page.contains("unknown or was already used"), "{page}");

    // A state without its browser cookie.
    let (_, callback) = walk_to_callback(browser()).await;
    let landing = follow(&browser(), &callback, &world.next()).await.unwrap();
    let landed = params_of(&landing);
    assert!(!landed.contains_key("jwt"));
    assert_eq!(
        landed["error"],
        "the login was started in another browser; start again"
    );

    // An expired state.
    let (expiring_browser, callback) = walk_to_callback(browser()).await;
    let db = world.server.database().connect().await;
    sea_orm::ConnectionTrait::execute_unprepared(&db, "UPDATE login_states SET expires_at = 0")
        .await
        .unwrap();
    let landing = follow(&expiring_browser, &callback, &world.next())
        .await
        .unwrap();
    assert_eq!(
        params_of(&landing)["error"],
        "the login expired; start again"
    );

    // ID tokens with a wrong audience, nonce or signature.
    for (spoil, says) in [
        (Spoil::WrongAudience, "audience"),
        (Spoil::WrongNonce, "nonce"),
        (Spoil::BadSignature, "signature"),
    ] {
        world.idp.spoil_next_id_token(spoil);
        let landed = world.login("google").await;
        assert!(!landed.contains_key("jwt"), "{spoil:?}");
        let error = landed["error"].to_lowercase();
        assert!(
            error.starts_with("google sent an invalid id token") && error.contains(says),
            "{spoil:?}: {error}"
        );
    }
    assert_eq!(world.server.service.store().count_users().await.unwrap(), 1);
    let _ = world.server.stop().await;
}

async fn an_unreachable_provider_fails_only_its_own_logins(backend: Backend) {
    let idp = StandInIdp::start().await;
    let mut providers = idp.providers();
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    providers["corp"]["issuer"] = json!(dead);
    let world = World::with_idp(backend, idp, json!({"providers": providers})).await;
    world.oidc_user("u-1", "uma@example.com", "Uma");
    let landed = world.login("corp").await;
    assert!(!landed.contains_key("jwt"));
    assert!(
        landed["error"].starts_with("Corp SSO is unreachable"),
        "{landed:?}"
    );
    assert!(world.login("google").await.contains_key("jwt"));
    let _ = world.server.stop().await;
}

/// A corporate provider behind a private CA: refused (its certificate is not trusted) until
/// the CA is given in `ca_certificates`; then its logins work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_behind_a_private_ca_is_trusted_once_its_ca_is_given() {
    let ca = common::TestCa::new();
    let world = World::with_idp(
        Backend::Sqlite,
        StandInIdp::start_https(ca.acceptor()).await,
        json!({}),
    )
    .await;
    assert!(world.idp.base.starts_with("https://"));
    world.oidc_user("u-1", "uma@corp.example", "Uma");
    let untrusted = world.login_in(&ca.browser(), "corp").await;
    assert!(!untrusted.contains_key("jwt"), "{untrusted:?}");
    assert!(
        untrusted["error"].starts_with("Corp SSO is unreachable"),
        "{untrusted:?}"
    );
    let _ = world.server.stop().await;

    let world = World::with_idp(
        Backend::Sqlite,
        StandInIdp::start_https(ca.acceptor()).await,
        json!({"ca_certificates": ca.ca_file()}),
    )
    .await;
    world.oidc_user("u-1", "uma@corp.example", "Uma");
    let trusted = world.login_in(&ca.browser(), "corp").await;
    let token = trusted
        .get("jwt")
        .unwrap_or_else(|| panic!("the login works with the CA: {trusted:?}"));
    assert_eq!(world.profile(token).await["email"], "uma@corp.example");
    let _ = world.server.stop().await;
}

async fn logout_revokes_the_token_everywhere(backend: Backend) {
    let world = World::new(backend).await;
    world.oidc_user("l-1", "lou@example.com", "Lou");
    let token = world.login("google").await["jwt"].clone();
    let other_token = world.login("google").await["jwt"].clone();

    // A second auth-host process on the same database, with the same keys (the data
    // directory's on SQLite, the database's on PostgreSQL).
    let data_dir = world.server.data_dir.path().to_str().unwrap().to_owned();
    let mut envs = vec![
        ("DATABASE_URL", world.server.database().url.as_str()),
        ("AUTH_DATA_DIR", data_dir.as_str()),
    ];
    if backend == Backend::Postgres {
        envs.push(("AUTH_KEY_SECRETS", common::server::TEST_KEY_SECRETS));
    }
    let second = common::ServerProcess::start(&envs);
    assert!(authenticated_at(&second.base, &token).await);

    // Logout with an unlisted `next` is refused, and revokes nothing.
    let (status, _) = world
        .server
        .get_json(&format!(
            "/auth/logout?jwt={token}&next=https://evil.example/"
        ))
        .await;
    assert_eq!(status, 400);
    assert!(authenticated_at(&second.base, &token).await);

    let response = browser()
        .get(world.server.url(&format!(
            "/auth/logout?jwt={token}&next={}",
            form_urlencoded::byte_serialize(world.next().as_bytes()).collect::<String>()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], world.next().as_str());

    let (_, body) = world
        .server
        .get_json(&format!("/auth/check?jwt={token}"))
        .await;
    assert_eq!(
        body["authenticated"], false,
        "at once on the replica that logged out"
    );
    // The other replica may trust what it verified for token_cache_ms (default 1 s).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(
        !authenticated_at(&second.base, &token).await,
        "revoked on every replica"
    );
    let (_, body) = world
        .server
        .get_json(&format!("/auth/authorize?jwt={token}&service=example"))
        .await;
    assert_eq!(body, json!({"permissions": {}}));
    // Only that token: the user's other session goes on.
    assert!(authenticated_at(&second.base, &other_token).await);

    // Without `next`, JSON; POST works too.
    let (status, body) = world
        .server
        .post_json(&format!("/auth/logout?jwt={other_token}"))
        .await;
    assert_eq!((status.as_u16(), body), (200, json!({"success": true})));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(!authenticated_at(&second.base, &other_token).await);

    let id = md5_hex("lou@example.com");
    let logouts: Vec<String> = world
        .hooks()
        .into_iter()
        .filter(|line| line.starts_with("on_user_logout"))
        .collect();
    assert_eq!(
        logouts,
        [
            format!("on_user_logout {id} lou@example.com"),
            format!("on_user_logout {id} lou@example.com")
        ]
    );
    second.stop();
    let _ = world.server.stop().await;
}

async fn the_development_login_walks_with_a_form(backend: Backend) {
    let world = World::with(backend, json!({"dev_login": true})).await;
    let browser = browser();
    let start = world.login_url("dev").await;
    let form_url = follow(
        &browser,
        &start,
        &world.server.url("/auth/login/dev?state="),
    )
    .await
    .unwrap();
    let page = browser
        .get(&form_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<form method=post"), "{page}");
    let state = page
        .split("name=state value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let response = browser
        .post(world.server.url("/auth/login/dev"))
        .form(&[
            ("state", state.as_str()),
            ("email", "dev@example.com"),
            ("name", "Dee"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let landing = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(landing.starts_with(&world.next()), "{landing}");
    let profile = world.profile(&params_of(&landing)["jwt"]).await;
    assert_eq!(profile["email"], "dev@example.com");
    assert_eq!(profile["name"], "Dee");
    assert_eq!(profile["username"], "dev");
    // The hooks ran as for any login.
    assert_eq!(world.hooks().len(), 2);
    let _ = world.server.stop().await;

    // Without the setting, there is no such provider.
    let plain = World::new(backend).await;
    let (status, _) = plain.server.get_json("/auth/login/dev").await;
    assert_eq!(status, 404);
    let (_, body) = plain.server.get_json("/auth/check").await;
    assert!(body["providers"].get("dev").is_none());
    let _ = plain.server.stop().await;
}

on_both_backends!(
    the_development_login_walks_with_a_form,
    logout_revokes_the_token_everywhere,
    google_github_and_oidc_logins_end_with_a_working_token,
    usernames_are_derived_suffixed_and_profiles_refreshed,
    githubs_verified_emails_decide_when_none_is_public,
    no_email_or_an_unverified_one_gives_no_token,
    hooks_run_in_order_and_may_refuse,
    replayed_unbound_expired_and_foreign_logins_are_refused,
    an_unreachable_provider_fails_only_its_own_logins,
);
