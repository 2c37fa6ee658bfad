//! A stand-in identity provider for the login tests, over real HTTP on 127.0.0.1: OpenID
//! Connect (discovery, authorize, token, userinfo, JWKS, signed ID tokens) and GitHub's
//! OAuth2 endpoints and REST API. It consents at once, as the user set with `set_*` below.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// Ways to spoil the next ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spoil {
    #[default]
    Nothing,
    WrongAudience,
    WrongNonce,
    BadSignature,
}

/// The OpenID Connect user the next login is.
#[derive(Debug, Clone)]
pub struct OidcUser {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub picture: Option<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
}

#[derive(Default)]
struct State {
    oidc_user: Option<OidcUser>,
    github_user: Value,
    github_emails: Value,
    spoil: Spoil,
    grants: HashMap<String, Grant>,
    /// access token → the OIDC user it was issued for
    access: HashMap<String, OidcUser>,
    authorize_requests: usize,
    counter: u64,
    /// (path, `traceparent`) of each request that carried one.
    traceparents: Vec<(String, String)>,
}

pub struct StandInIdp {
    pub base: String,
    state: Arc<Mutex<State>>,
}

/// Registered clients: id → secret.
pub const CLIENTS: &[(&str, &str)] = &[
    ("google-client", "google-secret"),
    ("corp-client", "corp-secret"),
    ("github-client", "github-secret"),
];

struct Keys {
    kid: String,
    signing: jsonwebtoken::EncodingKey,
    other: jsonwebtoken::EncodingKey,
    jwks: Value,
}

fn make_keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = auth_host::tokens::KeySet::from_data_dir(dir.path(), &[]).unwrap();
    let pem = std::fs::read(dir.path().join("signing-key.pem")).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    auth_host::tokens::KeySet::from_data_dir(other_dir.path(), &[]).unwrap();
    let other_pem = std::fs::read(other_dir.path().join("signing-key.pem")).unwrap();
    Keys {
        kid: keys.kid().to_owned(),
        signing: jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        other: jsonwebtoken::EncodingKey::from_rsa_pem(&other_pem).unwrap(),
        jwks: serde_json::to_value(keys.jwks()).unwrap(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    response
        .headers_mut()
        .insert("location", location.parse().unwrap());
    response
}

fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

impl StandInIdp {
    pub async fn start() -> StandInIdp {
        Self::start_on_host("127.0.0.1").await
    }

    /// Served on 127.0.0.1 and known as `http://<host>:<port>` (its issuer): `localhost`
    /// makes it another site than an auth-host on 127.0.0.1, as a real provider is.
    pub async fn start_on_host(host: &str) -> StandInIdp {
        Self::start_with(host, None).await
    }

    /// Served over TLS with `tls`'s certificate, known as `https://127.0.0.1:<port>`.
    pub async fn start_https(tls: tokio_rustls::TlsAcceptor) -> StandInIdp {
        Self::start_with("127.0.0.1", Some(tls)).await
    }

    async fn start_with(host: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> StandInIdp {
        let state = Arc::new(Mutex::new(State::default()));
        let keys = Arc::new(make_keys());
        let task_state = Arc::clone(&state);
        let base = Arc::new(OnceLock::<String>::new());
        let task_base = Arc::clone(&base);
        let handler = move |request| {
            let (state, keys, base) = (
                Arc::clone(&task_state),
                Arc::clone(&keys),
                Arc::clone(&task_base),
            );
            async move {
                let base = base.get().cloned().unwrap_or_default();
                handle(request, &state, &keys, &base).await
            }
        };
        let served = match tls {
            Some(tls) => super::serve_local_tls(handler, tls).await,
            None => super::serve_local(handler).await,
        }
        .replace("127.0.0.1", host);
        base.set(served.clone()).unwrap();
        StandInIdp {
            base: served,
            state,
        }
    }

    pub fn set_oidc_user(&self, user: OidcUser) {
        self.state.lock().unwrap().oidc_user = Some(user);
    }

    pub fn set_github_user(&self, user: Value, emails: Value) {
        let mut state = self.state.lock().unwrap();
        state.github_user = user;
        state.github_emails = emails;
    }

    pub fn spoil_next_id_token(&self, spoil: Spoil) {
        self.state.lock().unwrap().spoil = spoil;
    }

    /// How many browsers reached the consent page.
    /// (path, `traceparent`) of each request that carried one.
    pub fn traceparents(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().traceparents.clone()
    }

    pub fn authorize_requests(&self) -> usize {
        self.state.lock().unwrap().authorize_requests
    }

    /// Settings of the three providers served here, for `[providers]`.
    pub fn providers(&self) -> Value {
        json!({
            "google": {"client_id": "google-client", "client_secret": "google-secret", "issuer": self.base},
            "corp": {"kind": "oidc", "issuer": self.base, "client_id": "corp-client",
                     "client_secret": "corp-secret", "display_name": "Corp SSO"},
            "github": {"client_id": "github-client", "client_secret": "github-secret",
                       "auth_url": format!("{}/login/oauth/authorize", self.base),
                       "token_url": format!("{}/login/oauth/access_token", self.base),
                       "api_url": format!("{}/api", self.base)},
        })
    }
}

async fn handle(
    request: Request<Incoming>,
    state: &Mutex<State>,
    keys: &Keys,
    base: &str,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if let Some(traceparent) = request.headers().get("traceparent") {
        let traceparent = traceparent.to_str().unwrap_or_default().to_owned();
        state
            .lock()
            .unwrap()
            .traceparents
            .push((path.clone(), traceparent));
    }
    let params = query(request.uri());
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match path.as_str() {
        "/.well-known/openid-configuration" => reply(
            StatusCode::OK,
            json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/userinfo"),
                "jwks_uri": format!("{base}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
        "/jwks" => reply(StatusCode::OK, keys.jwks.clone()),
        "/authorize" | "/login/oauth/authorize" => {
            let mut state = state.lock().unwrap();
            state.authorize_requests += 1;
            let client_id = params.get("client_id").cloned().unwrap_or_default();
            if !CLIENTS.iter().any(|(id, _)| *id == client_id) {
                return reply(StatusCode::BAD_REQUEST, json!({"error": "unknown client"}));
            }
            if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "PKCE S256 required"}),
                );
            }
            state.counter += 1;
            let code = format!("code-{}", state.counter);
            let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
            state.grants.insert(
                code.clone(),
                Grant {
                    client_id,
                    redirect_uri: redirect_uri.clone(),
                    challenge: params.get("code_challenge").cloned().unwrap_or_default(),
                    nonce: params.get("nonce").cloned(),
                },
            );
            let mut target = url::Url::parse(&redirect_uri).unwrap();
            target
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair(
                    "state",
                    params.get("state").map(String::as_str).unwrap_or(""),
                );
            redirect(target.as_str())
        }
        "/token" | "/login/oauth/access_token" => {
            // Client authentication: HTTP Basic (the oauth2 crate's default) or form fields.
            let (client_id, secret) = match authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Basic "))
            {
                Some(encoded) => {
                    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
                    let (id, secret) = decoded.split_once(':').unwrap();
                    let unescape = |s: &str| {
                        form_urlencoded::parse(format!("x={s}").as_bytes())
                            .next()
                            .unwrap()
                            .1
                            .into_owned()
                    };
                    (unescape(id), unescape(secret))
                }
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
            if !CLIENTS
                .iter()
                .any(|(id, s)| *id == client_id && *s == secret)
            {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            }
            let mut state = state.lock().unwrap();
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = state.grants.remove(&code) else {
                return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge
                || grant.client_id != client_id
                || form.get("redirect_uri") != Some(&grant.redirect_uri)
            {
                return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
            }
            let access_token = format!("access-{code}");
            if path == "/login/oauth/access_token" {
                return reply(
                    StatusCode::OK,
                    json!({"access_token": access_token, "token_type": "bearer", "scope": "read:user,user:email"}),
                );
            }
            let user = state.oidc_user.clone().unwrap();
            state.access.insert(access_token.clone(), user.clone());
            let spoil = std::mem::take(&mut state.spoil);
            let mut claims = json!({
                "iss": base,
                "sub": user.sub,
                "aud": if spoil == Spoil::WrongAudience { "someone-else" } else { &client_id },
                "iat": now(),
                "exp": now() + 300,
                "nonce": if spoil == Spoil::WrongNonce { Some("not-the-nonce".to_owned()) } else { grant.nonce },
            });
            if let Some(email) = &user.email {
                claims["email"] = json!(email);
            }
            if let Some(verified) = user.email_verified {
                claims["email_verified"] = json!(verified);
            }
            if let Some(name) = &user.name {
                claims["name"] = json!(name);
            }
            if let Some(picture) = &user.picture {
                claims["picture"] = json!(picture);
            }
            let header = jsonwebtoken::Header {
                kid: Some(keys.kid.clone()),
                ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
            };
            let key = if spoil == Spoil::BadSignature {
                &keys.other
            } else {
                &keys.signing
            };
            let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
            reply(
                StatusCode::OK,
                json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
            )
        }
        "/userinfo" => {
            let state = state.lock().unwrap();
            let token = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "));
            match token.and_then(|t| state.access.get(t)) {
                Some(user) => reply(
                    StatusCode::OK,
                    json!({"sub": user.sub, "email": user.email, "name": user.name}),
                ),
                None => reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"})),
            }
        }
        "/api/user" | "/api/user/emails" => {
            let state = state.lock().unwrap();
            let bearer = authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer access-code-"));
            if !bearer {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Bad credentials"}),
                );
            }
            if path == "/api/user" {
                reply(StatusCode::OK, state.github_user.clone())
            } else {
                reply(StatusCode::OK, state.github_emails.clone())
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}
