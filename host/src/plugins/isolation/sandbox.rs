//! The sandbox an isolated worker enters before it opens its plugin: what the plugin's code
//! can reach from then on.
//!
//! In order, each layer needing the one before:
//! 1. not dumpable (no other process of the same user reads its memory), and optionally
//!    another user (`plugin_user`, when auth-host runs as root);
//! 2. every capability dropped (a root worker included: no `CAP_SYS_PTRACE` into the
//!    host's `/proc`, no `CAP_DAC_OVERRIDE` past file modes);
//! 3. limits: no core files, no file grown, a bounded number of open files and processes;
//! 4. no new privileges (no set-uid program gives them back);
//! 5. Landlock: reading only the plugin file, the system's shared libraries and the paths the
//!    operator lists; writing nothing; no TCP unless the alias may use the network; no signals
//!    or abstract sockets outside the sandbox;
//! 6. seccomp: the system calls a permission provider never needs fail with `EPERM` (tracing
//!    and reading other processes, modules, mounts, namespaces, keyrings, new processes and
//!    programs, leaving the process group, io_uring, memfds); calls that change a process'
//!    limits, priority or scheduling only on the worker itself; no socket at all when
//!    offline, only internet (and netlink route) sockets with the network.
//!
//! The host made itself non-dumpable too, so that even a worker that escaped the filter could
//! not read it (see `make_undumpable`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, path_beneath_rules,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use serde::{Deserialize, Serialize};

pub use crate::config::SandboxMode;

/// What a worker's sandbox allows: sent to the worker in its setup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSpec {
    pub mode: SandboxMode,
    /// Read-only paths beyond the plugin file and the system libraries.
    pub read_paths: Vec<PathBuf>,
    /// TCP and other network sockets allowed.
    pub network: bool,
    /// The user and group the worker switches to (auth-host running as root).
    pub user: Option<(u32, u32)>,
}

impl SandboxSpec {
    /// What the operator's settings leave weaker than the sandbox looks: said at every load.
    pub fn weaknesses(&self) -> Vec<&'static str> {
        let mut weaknesses = Vec::new();
        if self.mode == SandboxMode::Off {
            return weaknesses;
        }
        if self.read_paths.iter().any(|path| path.parent().is_none()) {
            weaknesses.push(
                "read_paths names `/`: the plugin may read every file its worker's user can, \
                 auth-host's data directory and configuration among them; list only what it \
                 needs",
            );
        }
        // SAFETY: geteuid has no preconditions.
        if self.user.is_none() && unsafe { libc::geteuid() } == 0 {
            weaknesses.push(
                "auth-host runs as root without plugin_user: the plugin's worker runs as root, \
                 which no process limit binds (the kernel exempts uid 0 from RLIMIT_NPROC); set \
                 plugin_user to a user of its own",
            );
        }
        weaknesses
    }
}

/// What every plugin may read: the dynamic loader's cache and the shared libraries.
const SYSTEM_LIBRARIES: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

/// What a plugin using the network also reads: name resolution and the CA certificates.
const NETWORK_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
];

/// Landlock's interface version the rules are written for (6: signal and abstract-socket
/// scoping).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Open files a sandboxed worker may hold.
const MAX_OPEN_FILES: u64 = 256;
/// Processes (threads included) of the worker's user, as far as the limit can be lowered.
const MAX_PROCESSES: u64 = 4096;

/// Which layers a worker entered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entered {
    /// `sandbox = "off"`: no layer entered.
    pub off: bool,
    pub landlock: String,
    pub seccomp: bool,
    pub user: Option<(u32, u32)>,
    /// Layers the kernel lacked (accepted in `available` mode).
    pub missing: Vec<String>,
}

impl std::fmt::Display for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.off {
            return f.write_str("off");
        }
        write!(
            f,
            "landlock {}, seccomp {}, no capabilities",
            self.landlock,
            if self.seccomp { "on" } else { "off" }
        )?;
        if let Some((uid, gid)) = self.user {
            write!(f, ", uid {uid} gid {gid}")?;
        }
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", self.missing.join(", "))?;
        }
        Ok(())
    }
}

/// The host: no process of the same user (a worker among them) may read its memory,
/// environment or file descriptors through `/proc` or `ptrace`.
pub fn make_undumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Enters the sandbox `spec` describes, for a worker that will open `plugin_file`. Called
/// once, on the worker's only thread, before the plugin is opened: every thread started
/// afterwards inherits it.
pub fn enter(spec: &SandboxSpec, plugin_file: &Path) -> Result<Entered, String> {
    let mut entered = Entered::default();
    if spec.mode == SandboxMode::Off {
        entered.off = true;
        return Ok(entered);
    }
    make_undumpable();
    if let Some((uid, gid)) = spec.user {
        switch_user(uid, gid)?;
        entered.user = Some((uid, gid));
    }
    drop_capabilities()?;
    limit_resources();
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    match restrict_files_and_network(spec, plugin_file)? {
        RulesetStatus::FullyEnforced => entered.landlock = format!("v{}", LANDLOCK_ABI as u8),
        RulesetStatus::PartiallyEnforced => {
            entered.landlock = "partial".into();
            entered.missing.push(format!(
                "Landlock v{} (the kernel has an older one)",
                LANDLOCK_ABI as u8
            ));
        }
        RulesetStatus::NotEnforced => {
            entered.landlock = "unavailable".into();
            entered
                .missing
                .push("Landlock (not in this kernel, or not enabled at boot)".into());
        }
    }
    // Confined by the filter, the worker can start no process to take along when the host
    // dies: its parent-death signal becomes SIGKILL, which nothing in it can catch or ignore
    // and the filter keeps (it refuses `PR_SET_PDEATHSIG`). Without the filter it stays
    // SIGTERM, on which the worker ends its process group (see `lifetime`).
    set_death_signal(libc::SIGKILL);
    match filter_system_calls(spec.network) {
        Ok(()) => entered.seccomp = true,
        Err(error) => {
            set_death_signal(libc::SIGTERM);
            entered.missing.push(format!("seccomp ({error})"));
        }
    }
    if spec.mode == SandboxMode::Strict && !entered.missing.is_empty() {
        return Err(format!(
            "sandbox = \"strict\", but this system lacks {}; set sandbox = \"available\" for \
             this alias to run with the layers there are",
            entered.missing.join(" and ")
        ));
    }
    Ok(entered)
}

fn set_death_signal(signal: libc::c_int) {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0);
    }
}

fn switch_user(uid: u32, gid: u32) -> Result<(), String> {
    // SAFETY: plain credential system calls with integer arguments (and no group list).
    let switched = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(gid, gid, gid) == 0
            && libc::setresuid(uid, uid, uid) == 0
    };
    // SAFETY: getuid/getgid have no preconditions.
    let (now_uid, now_gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if switched && now_uid == uid && now_gid == gid {
        Ok(())
    } else {
        Err(format!(
            "cannot switch to plugin_user {uid}:{gid} ({}); auth-host must run as root for it",
            std::io::Error::last_os_error()
        ))
    }
}

/// Drops every capability: the bounding set (so nothing regains one), ambient, inheritable,
/// permitted and effective.
fn drop_capabilities() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only; a capability number beyond the kernel's
    // last is refused with EINVAL, harmlessly.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        for capability in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let none = [Data::default(); 2];
    // SAFETY: capset reads a version-3 header and two data words, both laid out as the
    // kernel expects and alive for the call.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, none.as_ptr()) };
    if set != 0 {
        return Err(format!(
            "cannot drop capabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut now = [Data::default(); 2];
    // SAFETY: capget writes two data words into `now`, which has room for them.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, now.as_mut_ptr()) };
    if got != 0
        || now
            .iter()
            .any(|d| d.effective | d.permitted | d.inheritable != 0)
    {
        return Err("capabilities remain after dropping them".into());
    }
    Ok(())
}

/// No core files (they would hold whatever the worker read); bounded files and processes.
/// Limits are only lowered: a limit below ours stays.
fn limit_resources() {
    for (resource, wanted) in [
        (libc::RLIMIT_CORE, 0),
        // It writes no file (Landlock), so any file it grows is one to stop.
        (libc::RLIMIT_FSIZE, 0),
        (libc::RLIMIT_NOFILE, MAX_OPEN_FILES),
        (libc::RLIMIT_NPROC, MAX_PROCESSES),
    ] {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write only `current`.
        unsafe {
            if libc::getrlimit(resource, &mut current) != 0 {
                continue;
            }
            let limit = (wanted as libc::rlim_t).min(current.rlim_max);
            let lowered = libc::rlimit {
                rlim_cur: limit.min(current.rlim_cur),
                rlim_max: limit,
            };
            libc::setrlimit(resource, &lowered);
        }
    }
}

fn restrict_files_and_network(
    spec: &SandboxSpec,
    plugin_file: &Path,
) -> Result<RulesetStatus, String> {
    let failed = |e: landlock::RulesetError| format!("Landlock: {e}");
    let mut readable: Vec<PathBuf> = SYSTEM_LIBRARIES.iter().map(PathBuf::from).collect();
    readable.push(plugin_file.to_path_buf());
    readable.extend(spec.read_paths.iter().cloned());
    if spec.network {
        readable.extend(NETWORK_FILES.iter().map(PathBuf::from));
    }
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .map_err(failed)?
        .scope(Scope::from_all(LANDLOCK_ABI))
        .map_err(failed)?;
    if !spec.network {
        // Handled and never granted: no TCP connect or bind.
        ruleset = ruleset
            .handle_access(AccessNet::from_all(LANDLOCK_ABI))
            .map_err(failed)?;
    }
    let status = ruleset
        .create()
        .map_err(failed)?
        .add_rules(path_beneath_rules(
            &readable,
            AccessFs::from_read(LANDLOCK_ABI),
        ))
        .map_err(failed)?
        .restrict_self()
        .map_err(failed)?;
    Ok(status.ruleset)
}

/// System calls that fail with `EPERM` in the worker.
fn denied_calls() -> Vec<libc::c_long> {
    vec![
        // Reading or steering other processes.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        // The kernel, its modules and the machine.
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        // Mounts and namespaces.
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        // Keyrings.
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        // New processes and programs, and leaving the process group the host ends.
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_setsid,
        libc::SYS_setpgid,
        // io_uring opens sockets and files on the kernel's side of the filter
        // (`IORING_OP_SOCKET`), where the rules on `socket` never see them.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Memory charged to no process: a memfd written and never mapped escapes the
        // address-space limit (so does a secret one).
        libc::SYS_memfd_create,
        libc::SYS_memfd_secret,
        // Other processes' memory placement and reclaim.
        libc::SYS_migrate_pages,
        libc::SYS_move_pages,
        libc::SYS_process_madvise,
        libc::SYS_process_mrelease,
    ]
}

/// A rule of the filter: the call is refused when every condition holds.
fn refused_when(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// A condition on argument `index`, read whole (`Qword`) or by its low 32 bits (`Dword`).
fn arg(
    index: u8,
    length: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, String> {
    SeccompCondition::new(index, length, op, value).map_err(|e| e.to_string())
}

/// A condition on the low 32 bits of an argument (the calls below take `int`s and `pid_t`s,
/// whose upper bits a caller may leave as it likes).
fn arg32(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    arg(index, SeccompCmpArgLen::Dword, op, value)
}

/// Calls that name a process and change it — its limits, priority, scheduling, CPUs, I/O
/// priority — refused for any process but the worker itself (0 or its own pid). A worker shares the host's uid unless `plugin_user` says otherwise, and the
/// kernel lets a process change these for every process of its uid: the host included
/// (`prlimit64(host, RLIMIT_CPU, 1)` ends it with SIGXCPU).
fn only_on_itself(rules: &mut BTreeMap<i64, Vec<SeccompRule>>, own_pid: u64) -> Result<(), String> {
    let not_itself = |arg| -> Result<Vec<SeccompCondition>, String> {
        Ok(vec![
            arg32(arg, SeccompCmpOp::Ne, 0)?,
            arg32(arg, SeccompCmpOp::Ne, own_pid)?,
        ])
    };
    for call in [
        libc::SYS_prlimit64,
        libc::SYS_sched_setscheduler,
        libc::SYS_sched_setparam,
        libc::SYS_sched_setattr,
        libc::SYS_sched_setaffinity,
    ] {
        rules.insert(call, vec![refused_when(not_itself(0)?)?]);
    }
    // `setpriority(which, who, nice)` and `ioprio_set(which, who, priority)`: a process group
    // or a user (all of the host's processes) is never the worker alone.
    const IOPRIO_WHO_PROCESS: u64 = 1;
    for (call, process) in [
        (libc::SYS_setpriority, libc::PRIO_PROCESS as u64),
        (libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS),
    ] {
        rules.insert(
            call,
            vec![
                refused_when(vec![arg32(0, SeccompCmpOp::Ne, process)?])?,
                refused_when(not_itself(1)?)?,
            ],
        );
    }
    Ok(())
}

/// Sockets: none at all without the network (not even `AF_UNIX`: a path socket such as
/// PostgreSQL's is reached by `connect`, which Landlock does not govern; the worker talks to
/// the host over its inherited pipes). With it, internet sockets and the netlink route
/// socket the resolver asks for addresses on, still no local ones.
fn sockets(rules: &mut BTreeMap<i64, Vec<SeccompRule>>, network: bool) -> Result<(), String> {
    rules.insert(libc::SYS_socketpair, Vec::new());
    if !network {
        rules.insert(libc::SYS_socket, Vec::new());
        return Ok(());
    }
    let family = |op, family: i32| arg32(0, op, family as u64);
    rules.insert(
        libc::SYS_socket,
        vec![
            refused_when(vec![
                family(SeccompCmpOp::Ne, libc::AF_INET)?,
                family(SeccompCmpOp::Ne, libc::AF_INET6)?,
                family(SeccompCmpOp::Ne, libc::AF_NETLINK)?,
            ])?,
            refused_when(vec![
                family(SeccompCmpOp::Eq, libc::AF_NETLINK)?,
                arg32(2, SeccompCmpOp::Ne, libc::NETLINK_ROUTE as u64)?,
            ])?,
        ],
    );
    Ok(())
}

fn filter_system_calls(network: bool) -> Result<(), String> {
    let arch =
        seccompiler::TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("{e:?}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_calls()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();
    // `clone` only for threads: a new process is refused.
    let clone_thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![refused_when(vec![arg(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(clone_thread),
            0,
        )?])?],
    );
    // SAFETY: getpid has no preconditions.
    let own_pid = u64::try_from(unsafe { libc::getpid() }).map_err(|e| e.to_string())?;
    only_on_itself(&mut rules, own_pid)?;
    // The parent-death signal stays the host's: a worker that cleared it would outlive a
    // host killed outright.
    rules.insert(
        libc::SYS_prctl,
        vec![refused_when(vec![arg32(
            0,
            SeccompCmpOp::Eq,
            libc::PR_SET_PDEATHSIG as u64,
        )?])?],
    );
    sockets(&mut rules, network)?;
    let denied = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    // `clone3` passes its flags in memory, out of the filter's sight: it answers "not
    // implemented", and the C library falls back to `clone`, filtered above.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    for filter in [denied, clone3] {
        let program: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}
