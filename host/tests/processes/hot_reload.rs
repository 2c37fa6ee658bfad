//! Reload without restart: SIGHUP makes a running auth-host re-read its configuration and
//! plugin directory.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server::client;
use common::{PluginDir, ServerProcess, replace_in};
use serde_json::{Value, json};

/// Builds examples/plugin-template outside the workspace (as an author would), after
/// `patch` edits the provider's source; returns the provider file's bytes.
fn build_template_provider(patch: impl FnOnce(&Path)) -> Vec<u8> {
    std::fs::read(&common::build_plugin_template(patch)["my_provider"]).unwrap()
}

/// A server's data directory, and the configuration file it starts with and re-reads on
/// every reload.
struct Deployment {
    data: tempfile::TempDir,
    config: PathBuf,
    plugin_dir: PathBuf,
}

impl Deployment {
    fn new(plugins: &PluginDir) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("auth-host.toml");
        Deployment {
            data,
            config,
            plugin_dir: plugins.path().to_path_buf(),
        }
    }

    /// Writes the configuration: `plugin_dir`, then `rest` (TOML).
    fn configure(&self, rest: &str) {
        let text = format!("plugin_dir = \"{}\"\n{rest}", self.plugin_dir.display());
        std::fs::write(&self.config, text).unwrap();
    }

    /// `auth-host --config <file> serve` on the data directory.
    fn start(&self) -> ServerProcess {
        ServerProcess::start_with_args(
            &["--config", self.config.to_str().unwrap(), "serve"],
            &[("AUTH_DATA_DIR", self.data.path().to_str().unwrap())],
        )
    }

    /// `auth-host` run as a command on the same data directory; its stdout.
    fn auth_host(&self, args: &[&str]) -> String {
        common::auth_host_command(self.data.path(), args)
    }
}

async fn get(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asks until the answer is `wanted` (a reload is asynchronous), for up to 10 s.
async fn wait_for(url: &str, wanted: &Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(url).await;
        if &body["permissions"] == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "never got {wanted}; last {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_added_replaced_and_kept_by_sighup_without_a_restart() {
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let deployment = Deployment::new(&plugins);
    let write_config = |extra: &str| {
        deployment.configure(&format!(
            "allowed_services = \"example:sample_permission_provider{extra}\"\n\
             [plugins.myservice]\nadmins = [\"ada@example.com\"]\n"
        ));
    };
    write_config("");
    let mut server = deployment.start();
    let ada = deployment.auth_host(&["users", "add", "--email", "ada@example.com"]);
    let token = deployment.auth_host(&["token", "issue", "--userid", &ada]);
    let authorize = format!(
        "{}/auth/authorize?service=myservice&jwt={token}",
        server.base
    );
    assert_eq!(get(&authorize).await.1, json!({"permissions": {}}));
    // No admin_token: there is no admin endpoint.
    let admin = client()
        .post(format!("{}/admin/reload", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 404);

    // /auth/check is asked without a pause all along; not one request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let hammer = {
        let url = format!("{}/auth/check?jwt={token}", server.base);
        let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
        tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => answered.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // 1. The template, built outside the workspace, dropped in and named: SIGHUP.
    let first = build_template_provider(|_| {});
    std::fs::write(plugins.file_of("my_provider"), &first).unwrap();
    write_config(";myservice:my_provider");
    server.hangup();
    wait_for(&authorize, &json!({"admin": true})).await;

    // 2. A new build of the same file: the answers change after the next SIGHUP.
    let second = build_template_provider(|root| {
        replace_in(
            &root.join("provider/src/lib.rs"),
            "permissions.insert(\"admin\".into(), admin.into());",
            "permissions.insert(\"admin\".into(), admin.into());\n        permissions.insert(\"build\".into(), 2.into());",
        );
    });
    assert_ne!(first, second);
    std::fs::write(plugins.file_of("my_provider"), &second).unwrap();
    server.hangup();
    wait_for(&authorize, &json!({"admin": true, "build": 2})).await;

    // 3. A broken replacement is refused; the version in force keeps serving.
    std::fs::write(plugins.file_of("my_provider"), &second[..second.len() / 2]).unwrap();
    server.hangup();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get(&authorize).await.1["permissions"],
        json!({"admin": true, "build": 2})
    );
    let metrics = common::server::get_text(&format!("{}/auth/metrics", server.base)).await;
    assert!(
        metrics.contains("auth_host_plugin_reloads_total{result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("auth_host_plugin_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );

    // 4. An alias taken out of the configuration stops serving.
    std::fs::write(plugins.file_of("my_provider"), &second).unwrap();
    write_config("");
    server.hangup();
    wait_for(&authorize, &json!({})).await;

    stop.store(true, Ordering::Relaxed);
    hammer.await.unwrap();
    assert!(server.is_running(), "the server never restarted");
    let log = server.stop();
    assert!(answered.load(Ordering::Relaxed) > 100);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a request failed during a reload"
    );
    assert!(
        log.contains("reload refused: the plugins in force are unchanged"),
        "{log}"
    );
    assert!(log.contains("damaged file"), "{log}");
}

/// `POST /admin/reload` with the admin token does what SIGHUP does, and answers how it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_reloads_and_says_how_it_went() {
    const ADMIN_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let deployment = Deployment::new(&plugins);
    let write_config = |services: &str| {
        deployment.configure(&format!(
            "allowed_services = \"{services}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"
        ));
    };
    write_config("example:sample_permission_provider");
    let server = deployment.start();
    let ada = deployment.auth_host(&["users", "add", "--email", "ada@example.com"]);
    let token = deployment.auth_host(&["token", "issue", "--userid", &ada]);
    let authorize = format!("{}/auth/authorize?service=added&jwt={token}", server.base);
    let reload_url = format!("{}/admin/reload", server.base);
    let reload = |bearer: Option<&'static str>| {
        let mut request = client().post(&reload_url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, challenge, response.json::<Value>().await.unwrap())
        }
    };

    // Without the token, or with another one: 401, and nothing is reloaded.
    write_config("example:sample_permission_provider;added:sample_permission_provider");
    for bearer in [
        None,
        Some("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6979"),
    ] {
        let (status, challenge, body) = reload(bearer).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"auth-host admin\"")
        );
    }
    let wrong_method = client()
        .get(&reload_url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(get(&authorize).await.1, json!({"permissions": {}}));

    // With it: reloaded before the answer, which lists what is in force.
    let (status, _, body) = reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"reloaded": true, "services": ["added", "example"], "extensions": []})
    );
    assert_eq!(
        get(&authorize).await.1["permissions"],
        json!({"provider-token": format!("added-{ada}")})
    );

    // A configuration naming a missing plugin: 422 with the reason; nothing changes.
    write_config("example:sample_permission_provider;broken:no_such_plugin");
    let (status, _, body) = reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reloaded"], false);
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("broken") && errors.contains("no_such_plugin"),
        "{errors}"
    );
    assert_eq!(
        get(&authorize).await.1["permissions"],
        json!({"provider-token": format!("added-{ada}")})
    );

    let metrics = common::server::get_text(&format!("{}/auth/metrics", server.base)).await;
    assert!(
        metrics.contains("auth_host_plugin_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("auth_host_plugin_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    // Both reloads are on record, with who asked and how each ended.
    let reloads = deployment.auth_host(&["audit", "--json", "--type", "plugins.reloaded"]);
    let reloads: Vec<Value> = reloads
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    assert_eq!(reloads[0]["outcome"], "failure");
    assert!(
        reloads[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("admin endpoint: reload refused"),
        "{}",
        reloads[0]
    );
    assert_eq!(reloads[1]["outcome"], "success");
    assert_eq!(
        reloads[1]["reason"],
        "admin endpoint: services added, example; extensions "
    );
    let log = server.stop();
    assert!(
        log.contains("admin endpoint: missing or wrong bearer token"),
        "{log}"
    );
    assert!(
        !log.contains(ADMIN_TOKEN),
        "the admin token reached the log"
    );
}

/// Load on `/auth/authorize` for 30 s while the plugins are reloaded 20 times: no request
/// may fail. Bounded in time and count; it asserts no speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_under_load_survives_twenty_reloads() {
    let server = authorize_under_load_survives_reloads(30, 20, 1000, "").await;
    let log = server.stop();
    assert!(!log.contains("plugin worker started"), "{log}");
}

/// The same with the reloaded alias isolated: each reload starts a new worker and retires
/// the old one, which is really gone once its calls are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_plugin_reloads_under_load_and_its_old_workers_go() {
    let server =
        authorize_under_load_survives_reloads(15, 10, 300, "isolation = \"process\"\n").await;
    let pids: Vec<u64> = server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "plugin worker started" && event["plugin"] == "second")
        .filter_map(|event| event["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 11, "one worker per load: {pids:?}");
    // Retired workers leave once their calls are done; only the last one runs.
    std::thread::sleep(Duration::from_millis(1500));
    let running = |pid: &u64| Path::new(&format!("/proc/{pid}")).exists();
    let (last, old) = pids.split_last().unwrap();
    assert!(running(last), "the current worker {last} runs");
    for pid in old {
        assert!(!running(pid), "retired worker {pid} still runs");
    }
    let _ = server.stop();
}

/// Load on `/auth/authorize` (an in-process service and `second`, whose settings change
/// each round, with `second_extra` TOML) while the plugins are reloaded `reloads` times
/// over `seconds`: no request may fail. Returns the server, still running.
async fn authorize_under_load_survives_reloads(
    seconds: u64,
    reloads: u32,
    at_least: u64,
    second_extra: &str,
) -> ServerProcess {
    const CLIENTS: usize = 8;
    let plugins =
        PluginDir::with_workspace_plugins(&["sample_permission_provider", "test_provider"]);
    let deployment = Deployment::new(&plugins);
    // Each reload really changes something: the test provider's settings.
    let write_config = |round: u32| {
        deployment.configure(&format!(
            "allowed_services = \"example:sample_permission_provider;second:test_provider\"\n\
             [plugins.second]\ngreeting = \"round {round}\"\n{second_extra}"
        ));
    };
    write_config(0);
    let mut server = deployment.start();
    let user = deployment.auth_host(&["users", "add", "--email", "load@example.com"]);
    let token = deployment.auth_host(&["token", "issue", "--userid", &user]);

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let service = if i % 2 == 0 { "example" } else { "second" };
            let url = format!(
                "{}/auth/authorize?service={service}&jwt={token}",
                server.base
            );
            let (answered, failed) = (answered.clone(), failed.clone());
            tokio::spawn(async move {
                let http = client();
                while Instant::now() < deadline {
                    let ok = match http.get(&url).send().await {
                        Ok(r) if r.status() == 200 => r
                            .json::<Value>()
                            .await
                            .is_ok_and(|b| b["token"].is_string()),
                        _ => false,
                    };
                    if ok {
                        answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let pause = Duration::from_millis(seconds * 1000 / u64::from(reloads + 1));
    for round in 1..=reloads {
        tokio::time::sleep(pause).await;
        write_config(round);
        server.hangup();
    }
    for client in clients {
        client.await.unwrap();
    }
    let (_, body) = get(&format!(
        "{}/auth/authorize?service=second&jwt={token}",
        server.base
    ))
    .await;
    assert_eq!(body["permissions"]["greeting"], format!("round {reloads}"));
    assert!(server.is_running());
    let log = server.log();
    let reloaded = log.matches("plugins reloaded").count();
    assert_eq!(reloaded, reloads as usize, "{log}");
    let answered = answered.load(Ordering::Relaxed);
    eprintln!("{answered} authorizations in {seconds} s across {reloads} reloads");
    assert!(answered > at_least, "{answered}");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a request failed during the reloads"
    );
    server
}

/// A changed Cedar policy file is in force after a reload, and the requests in flight
/// meanwhile all get an answer (the old policies' or the new ones').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cedar_policy_takes_effect_on_reload_under_load_with_no_failed_request() {
    let plugins = PluginDir::with_workspace_plugins(&["cedar_permissions"]);
    let deployment = Deployment::new(&plugins);
    let policies = deployment.data.path().join("wiki.cedar");
    let read_only = "permit (principal, action == Action::\"read\", resource);\n";
    std::fs::write(&policies, read_only).unwrap();
    deployment.configure(&format!(
        "allowed_services = \"wiki:cedar_permissions\"\n\
         [plugins.wiki]\npolicies = \"{}\"\nactions = [\"read\", \"write\"]\n",
        policies.display()
    ));
    let server = deployment.start();
    let ada = deployment.auth_host(&["users", "add", "--email", "ada@example.org"]);
    let token = deployment.auth_host(&["token", "issue", "--userid", &ada]);
    let authorize = Arc::new(format!(
        "{}/auth/authorize?service=wiki&jwt={token}",
        server.base
    ));
    let before = json!({"read": true, "write": false});
    let after = json!({"read": true, "write": true});
    wait_for(&authorize, &before).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed, new_seen) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (authorize, stop) = (Arc::clone(&authorize), Arc::clone(&stop));
            let (answered, failed, new_seen) = (
                Arc::clone(&answered),
                Arc::clone(&failed),
                Arc::clone(&new_seen),
            );
            let (before, after) = (before.clone(), after.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = get(&authorize).await;
                    let permissions = &body["permissions"];
                    if status != 200 || (permissions != &before && permissions != &after) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed: {status} {body}");
                    } else if permissions == &after {
                        new_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        &policies,
        format!("{read_only}permit (principal, action == Action::\"write\", resource)\n  when {{ principal has email && principal.email like \"*@example.org\" }};\n"),
    )
    .unwrap();
    let reloaded_at = answered.load(Ordering::Relaxed);
    server.hangup();
    wait_for(&authorize, &after).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let total = answered.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {total}");
    assert!(
        reloaded_at > 20 && total > reloaded_at + 20,
        "{reloaded_at} then {total}"
    );
    assert!(new_seen.load(Ordering::Relaxed) > 0);
    // And they stay in force.
    assert_eq!(get(&authorize).await.1["permissions"], after);
}
