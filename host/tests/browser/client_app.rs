//! What a user does in the example client app, and what the app must show.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common;
use common::browser::{Page, in_browser, serve_client_app};
use common::idp::{OidcUser, StandInIdp};
use common::server::{Backend, TestServer, authenticated_at};

/// An auth-host that lets the app at `app` call it (CORS) and come back to it (`next`),
/// with `extra` settings.
async fn auth_host_for(app: &str, extra: Value) -> TestServer {
    let mut settings = json!({
        "dev_login": true,
        "cors_origins": app,
        "allowed_redirects": app,
        "installed_extensions": "sample_extension",
    });
    if let (Value::Object(settings), Value::Object(extra)) = (&mut settings, extra) {
        settings.extend(extra);
    }
    TestServer::start_with(Backend::Sqlite, settings).await
}

/// A stranger on another port: records the path and headers of every request it hears
/// (a CORS preflight names the headers the real request would carry) and answers 404.
async fn spy() -> (String, Arc<Mutex<Vec<String>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&heard);
    let base = common::serve_local(move |request| {
        let record = Arc::clone(&record);
        async move {
            let headers: Vec<String> = request
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("")))
                .collect();
            let path = request.uri().path_and_query().map(ToString::to_string);
            record.lock().unwrap().push(format!(
                "{} {}",
                path.unwrap_or_default(),
                headers.join(" ")
            ));
            let mut response = hyper::Response::new(http_body_util::Full::default());
            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
            response
        }
    })
    .await;
    (base, heard)
}

/// The app's address, talking to the auth-host at `auth`.
fn app_url(app: &str, auth: &str) -> String {
    let auth: String = form_urlencoded::byte_serialize(auth.as_bytes()).collect();
    format!("{app}/?auth={auth}")
}

/// The client token the app keeps for this tab, for the auth-host at `auth`.
async fn stored_token(page: &Page, auth: &str) -> Option<String> {
    page.run(&format!(
        "return sessionStorage.getItem('auth-host.jwt@{auth}');"
    ))
    .await
    .as_str()
    .map(str::to_owned)
}

/// Signs in through the development login form, from the app's login button.
async fn dev_login(page: &Page, email: &str, name: &str) {
    let button = page.wait_shown("login-dev").await;
    assert_eq!(
        button.text().await.unwrap(),
        "Log in with Development login"
    );
    button.click().await.unwrap();
    // auth-host's own form, with the email field focused for the keyboard.
    let email_field = page.find("input#email").await;
    assert_eq!(
        page.run("return document.activeElement.id;").await,
        "email",
        "the form starts on its first field"
    );
    email_field.send_keys(email).await.unwrap();
    page.fill("input#name", name).await;
    page.find("button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_example_app_through_the_development_login() {
    let app = serve_client_app().await;
    let server = auth_host_for(&app, json!({})).await;
    let start = app_url(&app, &server.base);
    let screenshots = std::env::var_os("AUTH_SCREENSHOT_DIR").map(std::path::PathBuf::from);
    let base = server.base.clone();
    in_browser(
        "the_example_app_through_the_development_login",
        |page| async move {
            page.goto(&start).await;
            assert_eq!(page.text("auth-base").await, base);
            // Before the login: one button per provider, no profile.
            assert!(!page.is_shown("email").await);
            let button = page.wait_shown("login-dev").await;
            assert!(
                button
                    .attr("href")
                    .await
                    .unwrap()
                    .unwrap()
                    .starts_with(&format!("{base}/auth/login/dev?next=")),
                "the button starts the login at auth-host, with this app as `next`"
            );
            if let Some(dir) = &screenshots {
                button.click().await.unwrap();
                page.find("input#email").await;
                page.screenshot(&dir.join("dev-login.png")).await;
                page.goto(&start).await;
            }

            dev_login(&page, "ada@example.com", "Ada Lovelace").await;

            // Back in the app: the profile, and the token off the address bar.
            page.wait_for_text("email", "ada@example.com").await;
            assert_eq!(page.text("name").await, "Ada Lovelace");
            assert_eq!(page.text("username").await, "ada");
            // No picture from the development login: initials stand in for the avatar.
            assert_eq!(page.find("#initials").await.text().await.unwrap(), "AL");
            assert!(!page.is_shown("avatar").await);
            let url = page.url().await;
            assert!(
                url.query_pairs().all(|(k, _)| k != "jwt"),
                "the token is taken off the address bar: {url}"
            );
            assert_eq!(
                url.query_pairs().find(|(k, _)| k == "auth").unwrap().1,
                base
            );
            let token = stored_token(&page, &base)
                .await
                .expect("the token is kept in sessionStorage");
            assert!(authenticated_at(&base, &token).await);

            // A reload keeps the session.
            page.client.refresh().await.unwrap();
            page.wait_for_text("email", "ada@example.com").await;

            // A link to the app naming another auth-host: the token stays home.
            let (spy, heard) = spy().await;
            page.goto(&app_url(&app, &spy)).await;
            page.wait_for_text("error", "cannot be reached").await;
            let heard = heard.lock().unwrap().clone();
            assert!(
                heard.iter().any(|h| h.starts_with("/auth/check")),
                "{heard:?}"
            );
            assert!(
                heard.iter().all(|h| !h.contains("auth-token")),
                "the token went to another auth-host: {heard:?}"
            );
            page.goto(&start).await;
            page.wait_for_text("email", "ada@example.com").await;

            // The username, chosen once.
            page.fill("[data-testid=new-username]", "countess").await;
            page.click("save-username").await;
            page.wait_for_text("username", "countess").await;
            assert!(
                !page.is_shown("new-username").await,
                "no second choice offered"
            );
            page.client.refresh().await.unwrap();
            page.wait_for_text("username", "countess").await;
            page.fill("[data-testid=new-username]", "ada2").await;
            page.click("save-username").await;
            page.wait_for_text("error", "Cannot modify username, already set")
                .await;
            assert_eq!(page.text("username").await, "countess");

            // Permissions in a service: the provider's answer and the signed token's claims.
            page.fill("[data-testid=service]", "example").await;
            page.click("authorize").await;
            let permissions = page.wait_for_text("permissions", "provider-token").await;
            let permissions: Value = serde_json::from_str(&permissions).unwrap();
            let userid = format!(
                "{:x}",
                <md5::Md5 as md5::Digest>::digest(b"ada@example.com")
            );
            assert_eq!(
                permissions,
                json!({"provider-token": format!("example-{userid}")})
            );
            let claims = page.wait_for_text("claims", "\"service\"").await;
            let claims: Value = serde_json::from_str(&claims).unwrap();
            assert_eq!(claims["userid"], userid);
            assert_eq!(claims["service"], "example");
            assert_eq!(claims["permissions"], permissions);
            assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
            if let Some(dir) = &screenshots {
                page.screenshot(&dir.join("signed-in.png")).await;
            }
            // A service auth-host does not offer: no permissions, no token.
            page.fill("[data-testid=service]", "payroll").await;
            page.click("authorize").await;
            page.wait_for_text("claims", "(no permission token)").await;
            assert_eq!(page.text("permissions").await, "{}");

            // Logout: back to the login buttons, and the token is dead at auth-host too.
            page.click("logout").await;
            page.wait_shown("login-dev").await;
            assert!(!page.is_shown("email").await);
            assert_eq!(stored_token(&page, &base).await, None);
            assert!(
                !authenticated_at(&base, &token).await,
                "logout revoked the token"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn the_example_app_through_an_openid_connect_provider() {
    // Three sites: the app and the provider on `localhost`, auth-host on `127.0.0.1`; the
    // browser carries auth-host's login cookie across the provider's redirect back.
    let idp = StandInIdp::start_on_host("localhost").await;
    idp.set_oidc_user(OidcUser {
        sub: "grace-1".into(),
        email: Some("grace@corp.example".into()),
        email_verified: Some(true),
        name: Some("Grace Hopper".into()),
        picture: Some("https://pictures.example/grace.png".into()),
    });
    let app = serve_client_app().await;
    let server = auth_host_for(&app, json!({"providers": idp.providers()})).await;
    let start = app_url(&app, &server.base);
    in_browser(
        "the_example_app_through_an_openid_connect_provider",
        |page| async move {
            page.goto(&start).await;
            for provider in ["corp", "github", "google", "dev"] {
                page.wait_shown(&format!("login-{provider}")).await;
            }
            let corp = page.by_testid("login-corp").await;
            assert_eq!(corp.text().await.unwrap(), "Log in with Corp SSO");
            corp.click().await.unwrap();
            page.wait_for_text("email", "grace@corp.example").await;
            assert_eq!(page.text("name").await, "Grace Hopper");
            assert_eq!(page.text("username").await, "grace");
            assert!(!page.is_shown("error").await);
            // The provider's picture is the avatar (no initials in its place).
            let avatar = page.by_testid("avatar").await;
            assert_eq!(
                avatar.attr("src").await.unwrap().as_deref(),
                Some("https://pictures.example/grace.png")
            );
            assert!(
                page.find("#initials")
                    .await
                    .attr("hidden")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(page.url().await.query_pairs().all(|(k, _)| k != "jwt"));
        },
    )
    .await;
    assert_eq!(
        idp.authorize_requests(),
        1,
        "the browser went through the provider once"
    );
}

#[tokio::test]
async fn a_login_refused_by_an_extension_is_shown_by_the_app() {
    let app = serve_client_app().await;
    let server = auth_host_for(
        &app,
        json!({
            "installed_extensions": "email_allowlist",
            "plugins": {"email_allowlist": {"domains": ["example.com"]}},
        }),
    )
    .await;
    let start = app_url(&app, &server.base);
    let base = server.base.clone();
    in_browser(
        "a_login_refused_by_an_extension_is_shown_by_the_app",
        |page| async move {
            page.goto(&start).await;
            dev_login(&page, "mallory@elsewhere.test", "Mallory").await;
            let error = page
                .wait_for_text(
                    "error",
                    "mallory@elsewhere.test is not allowed to log in here",
                )
                .await;
            assert!(error.starts_with("Login refused"), "{error}");
            page.wait_shown("login-dev").await;
            assert!(!page.is_shown("email").await, "no profile shown");
            assert_eq!(stored_token(&page, &base).await, None);
            assert!(page.url().await.query_pairs().all(|(k, _)| k != "error"));

            // A login that cannot say where it came from ends on auth-host's own error page,
            // styled (its inline style passes its content security policy) and announced.
            page.goto(&format!("{base}/auth/oauth_callback?state=forged&code=x"))
                .await;
            let alert = page.find("main [role=alert]").await;
            assert!(
                alert
                    .text()
                    .await
                    .unwrap()
                    .contains("this login is unknown or was already used"),
                "{}",
                alert.text().await.unwrap()
            );
            assert_eq!(page.find("h1").await.text().await.unwrap(), "Login failed");
            let radius = page
                .run("return getComputedStyle(document.querySelector('main')).borderRadius;")
                .await;
            assert_eq!(radius, "12px", "the page's style applies");
        },
    )
    .await;
    assert_eq!(server.service.store().count_users().await.unwrap(), 0);
}

/// The probe's attack: a link to a real login whose `next` is the app with `?auth=<attacker>`.
/// The victim logs in at the real auth-host and lands on `app/?auth=EVIL&jwt=<real token>`;
/// the app did not start that login, so it keeps nothing and sends nothing to the attacker.
#[tokio::test]
async fn a_login_link_naming_another_auth_host_hands_it_nothing() {
    let app = serve_client_app().await;
    let server = auth_host_for(&app, json!({})).await;
    let (spy, heard) = spy().await;
    let next: String = form_urlencoded::byte_serialize(app_url(&app, &spy).as_bytes()).collect();
    let link = format!("{}/auth/login/dev?next={next}", server.base);
    let (heard_in, spy_in) = (Arc::clone(&heard), spy.clone());
    in_browser(
        "a_login_link_naming_another_auth_host_hands_it_nothing",
        |page| async move {
            page.goto(&link).await;
            page.fill("input#email", "victim@example.com").await;
            page.find("button[type=submit]")
                .await
                .click()
                .await
                .unwrap();
            let error = page.wait_for_text("error", "cannot be reached").await;
            let url = page.url().await;
            assert!(
                url.query_pairs().all(|(k, _)| k != "jwt"),
                "the token is off the address bar: {url}"
            );
            assert_eq!(stored_token(&page, &spy_in).await, None);
            let heard = heard_in.lock().unwrap().clone();
            assert!(
                heard.iter().any(|h| h.starts_with("/auth/check")),
                "the app did call the host it was given: {heard:?}"
            );
            assert!(
                heard.iter().all(|h| !h.contains("auth-token")),
                "the token went to the attacker's host: {heard:?}"
            );
            assert!(error.contains("its token was not kept"), "{error}");
        },
    )
    .await;
    // The victim's login did happen at the real auth-host; its token simply went nowhere.
    assert_eq!(server.service.store().count_users().await.unwrap(), 1);
}
