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
    /// Path (unix) sockets to connect to, such as PostgreSQL's.
    #[serde(default)]
    pub unix: Vec<String>,
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
    for (i, path) in targets.unix.iter().enumerate() {
        note(&format!("unix_{i}"), unix_connect(path));
    }
    note("host_rlimit", host_rlimit(host));
    note("host_priority", host_priority(host));
    note("host_affinity", host_affinity(host));
    note("host_scheduler", host_scheduler(host));
    note("host_ioprio", host_ioprio(host));
    note("io_uring", io_uring());
    note("memfd", memfd());
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

fn last_error() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Connects to a path socket.
fn unix_connect(path: &str) -> Result<String, String> {
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| e.to_string())?;
    drop(stream);
    Ok(format!("connected to {path}"))
}

/// The host's limit of open files, set again to what it is: allowed means a plugin could
/// have set it to anything below (or its CPU time to one second).
fn host_rlimit(host: i32) -> Result<String, String> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads into `old`, then writes the same values back.
    unsafe {
        if libc::prlimit(host, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) != 0 {
            return Err(last_error());
        }
        if libc::prlimit(host, libc::RLIMIT_NOFILE, &old, std::ptr::null_mut()) != 0 {
            return Err(last_error());
        }
    }
    Ok(format!("set the host's open files to {}", old.rlim_cur))
}

/// The host's nice value, set again to what it is.
fn host_priority(host: i32) -> Result<String, String> {
    let who = libc::id_t::try_from(host).map_err(|e| e.to_string())?;
    // SAFETY: getpriority/setpriority with integer arguments; errno is cleared first because
    // -1 is a valid nice value.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, who);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(last_error());
        }
        if libc::setpriority(libc::PRIO_PROCESS, who, nice) != 0 {
            return Err(last_error());
        }
        Ok(format!("set the host's nice value to {nice}"))
    }
}

/// The host's CPU affinity, set again to what it is.
fn host_affinity(host: i32) -> Result<String, String> {
    // SAFETY: the mask is plain data, read then written back by the kernel.
    unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(host, size, &mut mask) != 0 {
            return Err(last_error());
        }
        if libc::sched_setaffinity(host, size, &mask) != 0 {
            return Err(last_error());
        }
    }
    Ok("set the host's CPU affinity".into())
}

/// The host's scheduling policy, set again to what it is.
fn host_scheduler(host: i32) -> Result<String, String> {
    // SAFETY: the parameter is plain data, read then written back by the kernel.
    unsafe {
        let policy = libc::sched_getscheduler(host);
        let mut param: libc::sched_param = std::mem::zeroed();
        if policy < 0 || libc::sched_getparam(host, &mut param) != 0 {
            return Err(last_error());
        }
        if libc::sched_setscheduler(host, policy, &param) != 0 {
            return Err(last_error());
        }
        Ok(format!("set the host's scheduling policy to {policy}"))
    }
}

/// The host's I/O priority, set again to what it is.
fn host_ioprio(host: i32) -> Result<String, String> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get/ioprio_set take integers only.
    unsafe {
        let priority = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, host);
        if priority < 0 {
            return Err(last_error());
        }
        if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, host, priority) != 0 {
            return Err(last_error());
        }
        Ok(format!("set the host's I/O priority to {priority}"))
    }
}

/// An io_uring instance, through which sockets could be opened past the filter on `socket`.
fn io_uring() -> Result<String, String> {
    // struct io_uring_params: 120 bytes, zeroed asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup writes into `params`, which has the kernel's size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: closes the descriptor just made.
    unsafe { libc::close(fd as i32) };
    Ok("made an io_uring".into())
}

/// Memory no process is charged for: 64 MiB written into a memfd that is never mapped.
fn memfd() -> Result<String, String> {
    // SAFETY: memfd_create with a valid C string; the file is owned by `file` from then on.
    let fd = unsafe { libc::memfd_create(c"probe".as_ptr(), 0) };
    if fd < 0 {
        return Err(last_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just made and nothing else owns it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let piece = vec![1u8; 1 << 20];
    for written in 0..64 {
        file.write_all(&piece)
            .map_err(|e| format!("{e} after {written} MiB"))?;
    }
    Ok("wrote 64 MiB into a memfd".into())
}
