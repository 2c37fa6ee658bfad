//! A real browser for the browser tests: headless Chromium driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`; `make browser-tools` installs
//! them). Each test gets its own chromedriver and browser profile, killed when it ends. A
//! failed test leaves a screenshot and the page's HTML under `target/browser-screenshots/`
//! and prints their paths.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};

/// How long a page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(20);
/// How long one browser test may take in all.
const TEST_LIMIT: Duration = Duration::from_secs(180);
/// Viewport of every test browser (and of the README's screenshots).
const WINDOW: (u32, u32) = (900, 1150);

/// A program the browser tests need: `$<variable>`, else `name` on the PATH.
fn program(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|file| file.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: run `make browser-tools` (`make test` does it), \
             or point {variable} at it"
        )
    })
}

/// A chromedriver of this test, in a process group of its own, so that the browser it
/// starts goes with it.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let binary = program("AUTH_TEST_CHROMEDRIVER", "chromedriver");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut command = Command::new(&binary);
            command
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let mut driver = Driver {
                child: command.spawn().unwrap(),
                url: format!("http://127.0.0.1:{port}"),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if driver.child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                let status = reqwest::get(format!("{}/status", driver.url)).await;
                if status.is_ok_and(|s| s.status().is_success()) {
                    return driver;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            driver.kill();
        }
        panic!("chromedriver ({}) did not start", binary.display());
    }

    fn kill(&mut self) {
        // The whole group: chromedriver and the browser it started.
        let group = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One browser window of a test, over WebDriver.
#[derive(Clone)]
pub struct Page {
    pub client: Client,
}

/// Runs `test` in a fresh headless Chromium. When it fails (or outlasts its time), saves a
/// screenshot and the page's HTML as `target/browser-screenshots/<name>.{png,html}`, prints
/// where, then fails.
pub async fn in_browser<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities(profile.path()))
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver started no browser: {e}"));
    let page = Page {
        client: client.clone(),
    };
    let mut running = tokio::spawn(test(page.clone()));
    let failure: Option<Box<dyn std::any::Any + Send>> =
        match tokio::time::timeout(TEST_LIMIT, &mut running).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) if error.is_panic() => Some(error.into_panic()),
            Ok(Err(error)) => Some(Box::new(format!("the test task ended: {error}"))),
            Err(_) => {
                running.abort();
                Some(Box::new(format!(
                    "{name} did not finish within {TEST_LIMIT:?}"
                )))
            }
        };
    if let Some(failure) = failure {
        page.save_failure(name).await;
        let _ = client.close().await;
        drop(driver);
        std::panic::resume_unwind(failure);
    }
    let _ = client.close().await;
}

fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
    let chromium = program("AUTH_TEST_CHROMIUM", "chromium");
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless=new",
            // Tests run as root in CI, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--force-device-scale-factor=1",
            "--lang=en-US",
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.unwrap()
    }

    /// The element matching the CSS `selector`, once the page has one.
    pub async fn find(&self, selector: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no `{selector}` on {}: {e}", self.url().await),
        }
    }

    /// The element marked `data-testid="<id>"`.
    pub async fn by_testid(&self, id: &str) -> Element {
        self.find(&testid(id)).await
    }

    /// The text of the element marked `id`.
    pub async fn text(&self, id: &str) -> String {
        self.by_testid(id).await.text().await.unwrap()
    }

    /// The element marked `id`, when it is on the page and shown, now.
    async fn shown(&self, id: &str) -> Option<Element> {
        let element = self.client.find(Locator::Css(&testid(id))).await.ok()?;
        element
            .is_displayed()
            .await
            .unwrap_or(false)
            .then_some(element)
    }

    pub async fn is_shown(&self, id: &str) -> bool {
        self.shown(id).await.is_some()
    }

    /// Waits until the element marked `id` is shown with text containing `expected`;
    /// returns it and its whole text.
    async fn wait_until_shown(&self, id: &str, expected: &str) -> (Element, String) {
        let started = Instant::now();
        let mut seen = None;
        while started.elapsed() < WAIT {
            if let Some(element) = self.shown(id).await
                && let Ok(text) = element.text().await
            {
                if text.contains(expected) {
                    return (element, text);
                }
                seen = Some(text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match seen {
            Some(seen) => panic!("`{id}` never showed {expected:?} (last seen: {seen:?})"),
            None => panic!("`{id}` was never shown on {}", self.url().await),
        }
    }

    /// Waits until the element marked `id` is shown with text containing `expected`;
    /// returns its whole text.
    pub async fn wait_for_text(&self, id: &str, expected: &str) -> String {
        self.wait_until_shown(id, expected).await.1
    }

    /// Waits until the element marked `id` is shown.
    pub async fn wait_shown(&self, id: &str) -> Element {
        self.wait_until_shown(id, "").await.0
    }

    pub async fn click(&self, id: &str) {
        self.wait_shown(id).await.click().await.unwrap();
    }

    /// Types `text` into the (emptied) field matching `selector`.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.find(selector).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Runs `script` in the page; its `return` value.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// Saves a screenshot of the window as `path` (PNG).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    async fn save_failure(&self, name: &str) {
        let dir = super::target_dir().join("browser-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let png = dir.join(format!("{name}.png"));
        match self.client.screenshot().await {
            Ok(bytes) if std::fs::write(&png, &bytes).is_ok() => {
                eprintln!("screenshot of the failed test {name}: {}", png.display());
            }
            other => eprintln!("no screenshot of the failed test {name}: {other:?}"),
        }
        if let Ok(source) = self.client.source().await {
            let html = dir.join(format!("{name}.html"));
            if std::fs::write(&html, source).is_ok() {
                eprintln!("its page: {}", html.display());
            }
        }
        if let Ok(url) = self.client.current_url().await {
            eprintln!("its address: {url}");
        }
    }
}

/// Serves `examples/client-app` as a static site on a free port; returns its origin as
/// `http://localhost:<port>`: another site than auth-host on `127.0.0.1`, as a real client
/// app is, so that cookies and CORS are those of a cross-site app.
pub async fn serve_client_app() -> String {
    let dir = super::workspace_root().join("examples/client-app");
    let base = super::serve_local(move |request| {
        let dir = dir.clone();
        async move {
            let (file, content_type) = match request.uri().path() {
                "/" | "/index.html" => ("index.html", "text/html; charset=utf-8"),
                "/app.js" => ("app.js", "text/javascript; charset=utf-8"),
                "/app.css" => ("app.css", "text/css; charset=utf-8"),
                _ => ("", ""),
            };
            let mut response = hyper::Response::new(Full::new(Bytes::new()));
            match std::fs::read(dir.join(file)) {
                Ok(bytes) if !file.is_empty() => {
                    *response.body_mut() = Full::new(Bytes::from(bytes));
                    response
                        .headers_mut()
                        .insert("content-type", content_type.parse().unwrap());
                }
                _ => *response.status_mut() = hyper::StatusCode::NOT_FOUND,
            }
            response
        }
    })
    .await;
    base.replace("127.0.0.1", "localhost")
}
