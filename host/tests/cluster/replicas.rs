//! Replicas: three `auth-host serve` processes on one PostgreSQL database, with no key in
//! the environment, behind HAProxy running `examples/cluster/haproxy.cfg`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::server::{
    Backend, TEST_KEY_SECRETS, TestDatabase, authenticated_at, client, dev_login_across, get_json,
    get_text, metric_value, params_of, postgres_skipped,
};
use crate::common::{PluginDir, ServerProcess, workspace_root};

/// A port of 127.0.0.1 held (bound) until it is handed to what listens on it, outside the
/// range the system picks client ports from, so that nothing else takes it meanwhile.
/// Replicas come back on the same one after a restart.
struct ReservedPort {
    port: u16,
    held: std::sync::Mutex<Option<std::net::TcpListener>>,
}

impl ReservedPort {
    fn new() -> ReservedPort {
        loop {
            let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 10_000) as u16;
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return ReservedPort {
                    port,
                    held: std::sync::Mutex::new(Some(listener)),
                };
            }
        }
    }

    /// The port, let go of for its user to bind right away.
    fn hand_over(&self) -> u16 {
        drop(self.held.lock().unwrap().take());
        self.port
    }
}

struct Cluster {
    database: TestDatabase,
    plugins: PluginDir,
    ports: [ReservedPort; 3],
    replicas: [Option<ServerProcess>; 3],
    front: String,
    extra: Vec<(&'static str, String)>,
    haproxy: Option<std::process::Child>,
    /// HAProxy's statistics (CSV), added by the test beside the shipped configuration.
    stats: String,
    _stats_config: Option<tempfile::NamedTempFile>,
}

impl Cluster {
    async fn start(extra: &[(&'static str, &str)], with_haproxy: bool) -> Cluster {
        let database = TestDatabase::new(Backend::Postgres).await;
        let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
        let front_port = ReservedPort::new();
        let mut cluster = Cluster {
            database,
            plugins,
            ports: [
                ReservedPort::new(),
                ReservedPort::new(),
                ReservedPort::new(),
            ],
            replicas: [None, None, None],
            front: format!("http://127.0.0.1:{}", front_port.port),
            extra: extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            haproxy: None,
            stats: String::new(),
            _stats_config: None,
        };
        // All three at once on a fresh database: one of them makes the first key.
        let started: Vec<ServerProcess> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let cluster = &cluster;
                    scope.spawn(move || cluster.start_replica(i))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, replica) in started.into_iter().enumerate() {
            cluster.replicas[i] = Some(replica);
        }
        if with_haproxy {
            let ports = cluster.ports.each_ref().map(|p| p.port);
            let stats_port = ReservedPort::new();
            cluster.stats = format!("http://127.0.0.1:{}/stats;csv", stats_port.port);
            let stats_config = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(
                stats_config.path(),
                format!(
                    "listen stats\n    bind 127.0.0.1:{}\n    stats enable\n    stats uri /stats\n",
                    stats_port.hand_over()
                ),
            )
            .unwrap();
            cluster.haproxy = Some(start_haproxy(
                front_port.hand_over(),
                ports,
                stats_config.path(),
            ));
            cluster._stats_config = Some(stats_config);
            cluster.wait_until_all_up().await;
        }
        cluster
    }

    fn start_replica(&self, i: usize) -> ServerProcess {
        let listen = format!("127.0.0.1:{}", self.ports[i].hand_over());
        let mut envs: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", &self.database.url),
            ("AUTH_KEY_SECRETS", TEST_KEY_SECRETS),
            ("AUTH_LISTEN", &listen),
            ("EXTERNAL_ADDRESS", &self.front),
            ("AUTH_DEV_LOGIN", "true"),
            ("AUTH_PLUGIN_DIR", self.plugins.path().to_str().unwrap()),
            ("ALLOWED_SERVICES", "example:sample_permission_provider"),
            ("AUTH_TRUSTED_PROXIES", "127.0.0.1"),
            ("AUTH_CLIENT_IP_HEADER", "x-forwarded-for"),
            ("AUTH_MAX_UNFINISHED_LOGINS_PER_CLIENT", "1000"),
        ];
        envs.extend(self.extra.iter().map(|(k, v)| (*k, v.as_str())));
        ServerProcess::start(&envs)
    }

    fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i].port)
    }

    fn replica(&mut self, i: usize) -> &mut ServerProcess {
        self.replicas[i].as_mut().unwrap()
    }

    fn logs(&self) -> String {
        self.replicas
            .iter()
            .flatten()
            .map(ServerProcess::log)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every replica is up and the balancer counts all three in: what its own
    /// statistics say, not a guess at its check timings.
    async fn wait_until_all_up(&self) {
        for i in 0..3 {
            wait_healthy(&self.base(i)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let csv = client()
                .get(&self.stats)
                .send()
                .await
                .ok()
                .map(|answer| answer.text());
            let csv = match csv {
                Some(text) => text.await.unwrap_or_default(),
                None => String::new(),
            };
            // pxname,svname,…; the status is the 18th column.
            let up = csv
                .lines()
                .filter(|line| line.starts_with("replicas,replica"))
                .filter(|line| line.split(',').nth(17) == Some("UP"))
                .count();
            if up == 3 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy never saw all replicas up:\n{csv}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut haproxy) = self.haproxy.take() {
            let _ = haproxy.kill();
            let _ = haproxy.wait();
        }
    }
}

fn start_haproxy(
    front_port: u16,
    ports: [u16; 3],
    stats_config: &std::path::Path,
) -> std::process::Child {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("HAProxy is required for the cluster test: `make test` installs it (apt-get install haproxy)")
        });
    std::process::Command::new(haproxy)
        .args(["-db", "-f"])
        .arg(workspace_root().join("examples/cluster/haproxy.cfg"))
        .arg("-f")
        .arg(stats_config)
        .env("AUTH_FRONT", format!("127.0.0.1:{front_port}"))
        .env("AUTH_REPLICA_1", format!("127.0.0.1:{}", ports[0]))
        .env("AUTH_REPLICA_2", format!("127.0.0.1:{}", ports[1]))
        .env("AUTH_REPLICA_3", format!("127.0.0.1:{}", ports[2]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = client().get(format!("{base}/auth/health")).send().await
            && answer.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs `email` in with each step on another replica; the client token.
async fn login_across(cluster: &Cluster, order: [usize; 3], email: &str) -> String {
    let bases = order.map(|i| cluster.base(i));
    let landing = dev_login_across(
        [&bases[0], &bases[1], &bases[2]],
        &format!("{}/app", cluster.front),
        email,
    )
    .await;
    params_of(&landing)["jwt"].clone()
}

/// Eight clients calling check and authorize through HAProxy until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(front: &str, token: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..8)
            .map(|n| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let check = format!("{front}/auth/check?jwt={token}");
                let authorize = format!("{front}/auth/authorize?jwt={token}&service=example");
                tokio::spawn(async move {
                    // One connection per client, kept alive, as a real front end would.
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let url = if (i + n) % 2 == 0 { &check } else { &authorize };
                        i += 1;
                        let outcome = match http.get(url).send().await {
                            Ok(answer) if answer.status() == 200 => {
                                match answer.json::<Value>().await {
                                    Ok(body)
                                        if body["authenticated"] == true
                                            || body["token"].is_string() =>
                                    {
                                        Ok(())
                                    }
                                    Ok(body) => Err(format!("{url}: {body}")),
                                    Err(e) => Err(format!("{url}: body: {e}")),
                                }
                            }
                            Ok(answer) => Err(format!("{url}: status {}", answer.status())),
                            Err(e) => Err(format!("{url}: {e}")),
                        };
                        match outcome {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(failure) => failures.lock().unwrap().push(failure),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    fn counts(&self) -> (u64, usize) {
        (
            self.ok.load(Ordering::SeqCst),
            self.failures.lock().unwrap().len(),
        )
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_haproxy_share_keys_logins_and_logouts_and_restart_without_loss() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let mut cluster = Cluster::start(
        &[
            // Long enough that only LISTEN/NOTIFY can make a logout show within 100 ms.
            ("AUTH_TOKEN_CACHE_MS", "60000"),
            ("AUTH_MAINTENANCE_INTERVAL_SECS", "1"),
            ("AUTH_SHUTDOWN_DELAY_MS", "1000"),
            ("AUTH_SHUTDOWN_GRACE_MS", "5000"),
        ],
        true,
    )
    .await;

    // One key, made by one replica, served by all three and through HAProxy.
    let logs = cluster.logs();
    assert_eq!(
        logs.matches("created a signing key in the database")
            .count(),
        1,
        "{logs}"
    );
    let pems: BTreeSet<String> =
        bodies_of((0..3).map(|i| cluster.base(i)), "/auth/public-key").await;
    assert_eq!(pems.len(), 1, "{pems:?}");
    assert_eq!(
        &get_text(&format!("{}/auth/public-key", cluster.front)).await,
        pems.iter().next().unwrap()
    );
    assert!(
        !logs.contains("PRIVATE KEY"),
        "private keys never reach the log"
    );

    // A login whose three steps land on three replicas.
    let token = login_across(&cluster, [0, 1, 2], "ada@example.com").await;
    for i in 0..3 {
        assert!(
            authenticated_at(&cluster.base(i), &token).await,
            "replica {i}"
        );
    }

    // A logout on replica 1 is refused by the other two within 100 ms, although each has
    // the token in its cache (60 s).
    let leaving = login_across(&cluster, [2, 0, 1], "lou@example.com").await;
    for i in 0..3 {
        assert!(authenticated_at(&cluster.base(i), &leaving).await);
    }
    let logout = client()
        .get(format!("{}/auth/logout?jwt={leaving}", cluster.base(0)))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success() || logout.status().is_redirection());
    let logged_out = Instant::now();
    let mut refused_after = BTreeMap::new();
    for i in [1, 2] {
        loop {
            if !authenticated_at(&cluster.base(i), &leaving).await {
                refused_after.insert(i, logged_out.elapsed());
                break;
            }
            assert!(
                logged_out.elapsed() < Duration::from_secs(5),
                "replica {i} still accepts a logged-out token"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    eprintln!("logout on replica 1 refused by replicas 2 and 3 after {refused_after:?}");
    for (i, after) in &refused_after {
        assert!(
            *after < Duration::from_millis(100),
            "replica {i}: {after:?}"
        );
    }

    // While a replica cannot hear the others (its LISTEN connection cut), it does not trust
    // its cache: a logout made meanwhile is refused at once all the same.
    let unheard = login_across(&cluster, [1, 2, 0], "uma@example.com").await;
    for i in 0..3 {
        assert!(authenticated_at(&cluster.base(i), &unheard).await);
    }
    let db = cluster.database.connect().await;
    let cut = sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await
    .unwrap();
    assert!(cut.rows_affected() >= 3, "three listeners cut");
    let logout = client()
        .get(format!("{}/auth/logout?jwt={unheard}", cluster.base(0)))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success() || logout.status().is_redirection());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in [1, 2] {
        assert!(
            !authenticated_at(&cluster.base(i), &unheard).await,
            "replica {i}"
        );
    }

    // The purge runs on one replica only: the lease holder.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut runs = Vec::new();
    for i in 0..3 {
        let text = get_text(&format!("{}/auth/metrics", cluster.base(i))).await;
        runs.push(metric_value(&text, "auth_host_maintenance_runs_total"));
    }
    assert_eq!(runs.iter().filter(|r| **r > 0.0).count(), 1, "{runs:?}");

    // A rolling restart of all three under load: nothing fails.
    let load = Load::start(&cluster.front, &token);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let replica = cluster.replica(i);
        replica.terminate();
        // Not ready at once (HAProxy takes it out), while still serving.
        let draining = Instant::now();
        loop {
            let answer = client()
                .get(format!("{}/auth/health", cluster.base(i)))
                .send()
                .await
                .unwrap();
            if answer.status() == 503 {
                assert_eq!(answer.json::<Value>().await.unwrap()["status"], "draining");
                break;
            }
            assert!(
                draining.elapsed() < Duration::from_millis(500),
                "never drained"
            );
        }
        let replica = cluster.replica(i);
        let status = replica
            .wait_exit(Duration::from_secs(15))
            .expect("a replica stops after SIGTERM");
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
        let log = cluster.replicas[i].take().unwrap().stop();
        assert!(log.contains("draining"), "{log}");
        cluster.replicas[i] = Some(cluster.start_replica(i));
        cluster.wait_until_all_up().await;
    }
    let (served, failures) = load.stop().await;
    eprintln!(
        "rolling restart of 3 replicas under 8 clients: {served} requests served, {} failed",
        failures.len()
    );
    assert!(served > 100, "the load ran: {served}");
    assert!(failures.is_empty(), "{failures:#?}");

    // kill -9 of one replica under load: at most the requests it held fail.
    let load = Load::start(&cluster.front, &token);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, _) = load.counts();
    let killed = cluster.replicas[1].take().unwrap();
    let _ = killed.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (served, failures) = load.stop().await;
    eprintln!(
        "kill -9 of one replica under 8 clients: {} requests served after, {} failed",
        served - before,
        failures.len()
    );
    assert!(failures.len() <= 8, "{failures:#?}");
    assert!(served > before, "the others kept serving");
}

/// GETs `path` on every base; the distinct bodies.
async fn bodies_of(bases: impl Iterator<Item = String>, path: &str) -> BTreeSet<String> {
    let mut bodies = BTreeSet::new();
    for base in bases {
        bodies.insert(get_text(&format!("{base}{path}")).await);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_keys_every_two_seconds_all_replicas_agree_and_every_token_verifies() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let cluster = Cluster::start(
        &[
            ("AUTH_KEY_ROTATION_SECS", "2"),
            ("AUTH_CLIENT_TOKEN_LIFETIME_SECS", "60"),
            ("AUTH_PERMISSION_TOKEN_LIFETIME_SECS", "30"),
        ],
        false,
    )
    .await;
    let mut tokens = Vec::new();
    let mut kids = BTreeSet::new();
    let mut published = BTreeSet::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(9) {
        // A token from another replica each round.
        let order = [round % 3, (round + 1) % 3, (round + 2) % 3];
        let token = login_across(&cluster, order, &format!("user{round}@example.com")).await;
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        // A key signs only once it has been in the JWKS for a while (the first one aside).
        if round > 0 && !kids.contains(&kid) {
            assert!(
                published.contains(&kid),
                "round {round}: {kid} signed unpublished"
            );
        }
        kids.insert(kid);
        tokens.push(token);
        // The JWKS is the same on every replica. Each switches within milliseconds of a
        // rotation moment: reading the three across such a moment may differ, so read again
        // (a few times, 20 ms apart) before calling it a disagreement.
        let mut jwks = Vec::new();
        for _attempt in 0..5 {
            jwks.clear();
            for i in 0..3 {
                let url = format!("{}/auth/.well-known/jwks.json", cluster.base(i));
                jwks.push(get_json(&url).await.1);
            }
            if jwks.iter().all(|j| *j == jwks[0]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            jwks.iter().all(|j| *j == jwks[0]),
            "round {round}: {jwks:#?}"
        );
        published.extend(
            jwks[0]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned()),
        );
        // Every token so far verifies on every replica.
        for token in &tokens {
            for i in 0..3 {
                assert!(
                    authenticated_at(&cluster.base(i), token).await,
                    "round {round}, replica {i}"
                );
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "{} tokens signed by {} keys, all verified on 3 replicas",
        tokens.len(),
        kids.len()
    );
    assert!(kids.len() >= 3, "signed by several keys: {kids:?}");
    // One key per rotation: no replica made a key another had made. (Stopped first, so
    // that no key is made between reading the logs and the table.)
    let mut cluster = cluster;
    let logs: String = cluster
        .replicas
        .iter_mut()
        .filter_map(Option::take)
        .map(ServerProcess::stop)
        .collect();
    let created = logs
        .matches("created a signing key in the database")
        .count();
    let db = cluster.database.connect().await;
    let rows = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM signing_keys",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let stored: i64 = rows.try_get("", "n").unwrap();
    assert_eq!(created as i64, stored, "keys made = keys stored");
}

/// Without `PRIVATE_KEY` or `key_secrets`, each replica on PostgreSQL would sign with a key of
/// its own: `serve` refuses, naming what to set; `migrate`, which signs nothing, runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgresql_without_keys_or_secrets_refuses_to_start() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let database = TestDatabase::new(Backend::Postgres).await;
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::common::output_within(
            std::process::Command::new(crate::common::auth_host_bin())
                .args(args)
                .env_clear()
                .env("DATABASE_URL", &database.url)
                .env("AUTH_DATA_DIR", data.path())
                .env("AUTH_LISTEN", "127.0.0.1:0"),
            crate::common::COMMAND_LIMIT,
        )
    };
    let migrate = run(&["migrate"]);
    assert!(migrate.status.success(), "{migrate:?}");
    let serve = run(&["serve"]);
    assert_eq!(serve.status.code(), Some(2), "{serve:?}");
    let said = String::from_utf8_lossy(&serve.stderr);
    assert!(said.contains("key_secrets (AUTH_KEY_SECRETS)"), "{said}");
    assert!(said.contains("PRIVATE_KEY"), "{said}");
    assert!(
        !data.path().join("signing-key.pem").exists(),
        "no key of its own made"
    );
}

/// A client of the balancer, connecting from `address` (any of 127.0.0.0/8), so that
/// HAProxy sees clients apart.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The probe's attacks on the per-client login limit, through `examples/cluster/haproxy.cfg`
/// with `trusted_proxies` = the balancer and `client_ip_header = x-forwarded-for`: a client
/// rotating its own `X-Forwarded-For` gains nothing, its `Forwarded: for=<victim>` locks no
/// one out, and the limit holds across the three replicas the balancer spreads it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_shipped_haproxy_configuration_each_client_gets_its_own_login_limit() {
    if postgres_skipped() {
        return;
    }
    let _alone = crate::alone().await;
    let cluster = Cluster::start(&[("AUTH_MAX_UNFINISHED_LOGINS_PER_CLIENT", "5")], true).await;
    let next: String =
        form_urlencoded::byte_serialize(format!("{}/app", cluster.front).as_bytes()).collect();
    let start = format!("{}/auth/login/dev?next={next}", cluster.front);
    let attacker = client_from("127.0.0.3");
    let mut statuses = Vec::new();
    for i in 0..7 {
        let answer = attacker
            .get(&start)
            .header("x-forwarded-for", format!("10.0.{i}.1"))
            .header("forwarded", "for=127.0.0.4")
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(
        statuses,
        [302, 302, 302, 302, 302, 429, 429],
        "the attacker's own limit"
    );
    // The victim the attacker named, and a bystander, are not locked out.
    for address in ["127.0.0.4", "127.0.0.5"] {
        let answer = client_from(address).get(&start).send().await.unwrap();
        assert_eq!(answer.status(), 302, "{address}");
    }
}
