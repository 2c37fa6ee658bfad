//! A webhook receiver for the `webhook` plugin's tests, over real HTTP on 127.0.0.1. It
//! records every attempt as it arrives, can hold answers back until released, and answers
//! as the test's `Answers` function says. Signatures are checked here with aws-lc, a
//! different HMAC implementation from the plugin's.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::watch;

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    /// 1 for the first attempt at this `id`, 2 for its first retry…
    pub number: usize,
    /// The status this attempt was answered.
    pub status: u16,
}

impl Attempt {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }

    pub fn email(&self) -> String {
        self.json()["data"]["user"]["email"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Checks the signature as Standard Webhooks says: HMAC-SHA256 over
    /// `<id>.<timestamp>.<body>`, base64, any of the space-separated `v1,` entries.
    pub fn signed_with(&self, key: &[u8]) -> bool {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let mut content = format!("{}.{}.", self.id, self.timestamp).into_bytes();
        content.extend_from_slice(self.body.as_bytes());
        let expected = STANDARD.encode(aws_lc_rs::hmac::sign(&key, &content).as_ref());
        self.signature
            .split(' ')
            .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()))
    }
}

/// What to answer: status and JSON body, given the attempt (its `status` not yet set).
pub type Answers = dyn Fn(&Attempt) -> (u16, Value) + Send + Sync;

struct State {
    attempts: Vec<Attempt>,
    answers: Box<Answers>,
}

/// The key the tests sign with, given to the plugin as a Standard Webhooks secret.
pub const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

pub fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

pub struct WebhookReceiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    held: watch::Sender<bool>,
}

fn header(request: &Request<Incoming>, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl WebhookReceiver {
    pub async fn start(answers: impl Fn(&Attempt) -> (u16, Value) + Send + Sync + 'static) -> Self {
        let state = Arc::new(Mutex::new(State {
            attempts: Vec::new(),
            answers: Box::new(answers),
        }));
        let (held, _) = watch::channel(false);
        let (task_state, task_held) = (Arc::clone(&state), held.clone());
        let base = super::serve_local(move |request| {
            let (state, held) = (Arc::clone(&task_state), task_held.subscribe());
            receive(request, state, held)
        })
        .await;
        WebhookReceiver {
            url: format!("{base}/events"),
            state,
            held,
        }
    }

    /// Server settings whose only extension is `webhook`, posting here and signing with
    /// `KEY`; `webhook` is merged over the plugin's settings.
    pub fn server_settings(&self, webhook: Value) -> Value {
        let mut settings = serde_json::json!({
            "url": self.url,
            "secret": secret(),
            "retry_initial_ms": 50,
            "retry_max_ms": 200,
        });
        if let (Value::Object(settings), Value::Object(extra)) = (&mut settings, webhook) {
            settings.extend(extra);
        }
        serde_json::json!({
            "dev_login": true,
            "installed_extensions": "webhook",
            "plugins": {"webhook": settings},
        })
    }

    /// From now on, answers wait until `release`.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Every attempt so far, in arrival order. Held ones show status 0.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.lock().unwrap().attempts.clone()
    }

    /// Waits (up to 10 s) until `done` holds for the attempts so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Attempt]) -> bool) -> Vec<Attempt> {
        super::poll_until(
            Duration::from_secs(10),
            Duration::from_millis(25),
            what,
            || self.attempts(),
            |attempts| done(attempts),
        )
        .await
    }
}

async fn receive(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    mut held: watch::Receiver<bool>,
) -> Response<Full<Bytes>> {
    let mut attempt = Attempt {
        id: header(&request, "webhook-id"),
        timestamp: header(&request, "webhook-timestamp"),
        signature: header(&request, "webhook-signature"),
        content_type: header(&request, "content-type"),
        body: String::new(),
        number: 0,
        status: 0,
    };
    let body = request.into_body().collect().await.unwrap().to_bytes();
    attempt.body = String::from_utf8(body.to_vec()).unwrap();
    let index = {
        let mut state = state.lock().unwrap();
        attempt.number = 1 + state
            .attempts
            .iter()
            .filter(|earlier| earlier.id == attempt.id)
            .count();
        state.attempts.push(attempt.clone());
        state.attempts.len() - 1
    };
    let _ = held.wait_for(|held| !*held).await;
    let (status, body) = {
        let mut state = state.lock().unwrap();
        let answer = (state.answers)(&attempt);
        state.attempts[index].status = answer.0;
        answer
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
