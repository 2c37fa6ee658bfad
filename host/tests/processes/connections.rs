//! Many connections at once: the server's open-files limit and listen backlog.

use crate::common;

use common::ServerProcess;

/// `auth-host serve` started with the usual soft limit of 1,024 open files (the hard limit
/// left as it is).
fn with_soft_limit_of_1024() -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(common::auth_host_bin());
    // SAFETY: runs in the forked child before exec; getrlimit/setrlimit are
    // async-signal-safe and touch only the local value.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = limit.rlim_max.min(1024);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    command
}

/// The soft and hard "Max open files" of a process.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// The backlog of the socket listening on `port` (`ss`: Send-Q of a listening socket).
fn listen_backlog(port: &str) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port}: {text}"))
}

/// Started with a soft limit of 1,024 open files, the server raises it to the hard limit and
/// says so; 1,100 silent connections then leave a new client served at once (with 1,024,
/// accepting failed and the client waited for seconds). The socket listens with the
/// system's somaxconn, not the runtime's 128.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_do_not_keep_other_clients_waiting() {
    const SILENT: usize = 1100;
    let (_, hard) = open_files_limits(std::process::id());
    if hard < 4096 {
        eprintln!("the hard limit of open files here is {hard}: nothing to raise to");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_command(
        with_soft_limit_of_1024(),
        &["serve"],
        &[("AUTH_DATA_DIR", data.path().to_str().unwrap())],
    );
    assert_eq!(open_files_limits(server.pid()), (hard, hard));
    let log = server.log();
    assert!(log.contains("open files limit"), "{log}");

    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(listen_backlog(&port), somaxconn);

    let address = server.base.trim_start_matches("http://").to_owned();
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        common::server::get_json(&format!("{}/auth/health", server.base)),
    )
    .await;
    let took = started.elapsed();
    drop(silent);
    let (status, body) = answered.unwrap_or_else(|_| {
        panic!(
            "no answer within 2 s beside {SILENT} silent connections\n{}",
            server.log()
        )
    });
    assert_eq!(status, 200, "{body}");
    eprintln!("health answered in {took:?} beside {SILENT} silent connections");
}
