//! Logins through a stand-in identity provider over real HTTP: Google, GitHub and a generic
//! OpenID Connect provider, user records, hooks, refusals and logout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::idp::{OidcUser, Spoil, StandInIdp};
use common::server::{Backend, TestServer, browser, follow, params_of};
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
        let idp = StandInIdp::start().await;
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
        let browser = browser();
        let landing = follow(&browser, &self.login_url(provider).await, &self.next())
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

on_both_backends!(google_github_and_oidc_logins_end_with_a_working_token,);
