//! What a plugin that means harm tries against the host that loaded it, each attempt
//! reported as `refused: …` or `allowed: …` (with what it got), for the sandbox tests. Shared
//! by `test_hostile_provider` (from `get_permissions`) and `test_hostile_extension` (from a
//! login hook).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// A value the host holds (in its environment and memory); found means read.
    pub secret: String,
    /// Files of the host's to read: its key, its database, its configuration.
    #[serde(default)]
    pub files: Vec<String>,
    /// A TCP listener to connect to.
    #[serde(default)]
    pub tcp: Option<String>,
    /// A file to create (outside /tmp).
    #[serde(default)]
    pub write: Option<String>,
}

/// Every attempt, by name.
pub fn run(targets: &Targets) -> BTreeMap<String, String> {
    // SAFETY: getppid has no preconditions.
    let host = unsafe { libc::getppid() };
    let secret = targets.secret.as_bytes();
    let mut report = BTreeMap::new();
    let mut note = |name: &str, outcome: Result<String, String>| {
        let text = match outcome {
            Ok(got) => format!("allowed: {got}"),
            Err(why) => format!("refused: {why}"),
        };
        report.insert(name.to_owned(), text);
    };
    note(
        "host_environ",
        read_for(&format!("/proc/{host}/environ"), secret),
    );
    note(
        "host_cmdline",
        read_for(&format!("/proc/{host}/cmdline"), b""),
    );
    note("host_mem", scan_memory(host, secret));
    for (i, file) in targets.files.iter().enumerate() {
        note(&format!("file_{i}"), read_for(file, b""));
    }
    note("other_worker", other_worker(host));
    note("ptrace", ptrace(host));
    if let Some(address) = &targets.tcp {
        note(
            "tcp",
            std::net::TcpStream::connect(address)
                .map(|_| format!("connected to {address}"))
                .map_err(|e| e.to_string()),
        );
    }
    if let Some(path) = &targets.write {
        note(
            "write",
            std::fs::File::create(path)
                .and_then(|mut f| f.write_all(b"written by a plugin"))
                .map(|()| format!("wrote {path}"))
                .map_err(|e| e.to_string()),
        );
    }
    note("descriptors", descriptors());
    // SAFETY: getuid has no preconditions.
    note("uid", Ok(format!("uid {}", unsafe { libc::getuid() })));
    note(
        "child",
        std::process::Command::new("/bin/sleep")
            .arg("600")
            .spawn()
            .map(|child| format!("started pid {}", child.id()))
            .map_err(|e| e.to_string()),
    );
    report
}

/// Reads `path`; with a non-empty `secret`, says whether it was in it.
fn read_for(path: &str, secret: &[u8]) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if secret.is_empty() {
        return Ok(format!("{} bytes", bytes.len()));
    }
    let found = bytes.windows(secret.len()).any(|w| w == secret);
    Ok(format!("{} bytes, secret found: {found}", bytes.len()))
}

/// Scans the host's writable memory for the secret.
fn scan_memory(host: i32, secret: &[u8]) -> Result<String, String> {
    let maps = std::fs::read_to_string(format!("/proc/{host}/maps")).map_err(|e| e.to_string())?;
    let mut mem = std::fs::File::open(format!("/proc/{host}/mem")).map_err(|e| e.to_string())?;
    let mut scanned = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut region = vec![0u8; usize::try_from(end - start).unwrap_or(0).min(64 << 20)];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        scanned += region.len();
        if region.windows(secret.len()).any(|w| w == secret) {
            return Ok(format!("secret found after {scanned} bytes"));
        }
    }
    Ok(format!("{scanned} bytes scanned, secret not found"))
}

/// Another plugin worker of the same host: its environment.
fn other_worker(host: i32) -> Result<String, String> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let entries = std::fs::read_dir("/proc").map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let is_sibling = pid != me
            && status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["PPid:", &host.to_string()]);
        if is_sibling {
            return std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| format!("pid {pid}: {} bytes of environment", env.len()))
                .map_err(|e| format!("pid {pid}: {e}"));
        }
    }
    Err("no other worker found".into())
}

fn ptrace(host: i32) -> Result<String, String> {
    // SAFETY: PTRACE_SEIZE with no data; on success the host is detached again at once.
    unsafe {
        if libc::ptrace(libc::PTRACE_SEIZE, host, 0, 0) == 0 {
            libc::ptrace(libc::PTRACE_DETACH, host, 0, 0);
            return Ok("attached to the host".into());
        }
    }
    Err(std::io::Error::last_os_error().to_string())
}

/// Descriptors open beyond standard input, output and error (the worker's answer pipe is
/// one): anything more was inherited from the host.
fn descriptors() -> Result<String, String> {
    let open: Vec<i32> = (3..1024)
        // SAFETY: F_GETFD on any number only asks whether it is an open descriptor.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1)
        .collect();
    Ok(format!("{} open beyond 0-2: {open:?}", open.len()))
}
