//! The worker side: `auth-host plugin-worker` loads one plugin file for one alias, says hello,
//! and answers requests from stdin on stdout until stdin closes. It runs the same checks and
//! the same ABI calls as the host does in-process; only the process around them differs, so
//! whatever the plugin does to it (abort, segfault, exit, stack overflow, memory) ends this
//! process and nothing else.

use std::io::BufWriter;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_host_plugin_api::PluginKind;

use super::protocol::{Hello, Request, Response, Setup, read_frame, write_frame};
use super::sandbox::{self, SandboxSpec};
use crate::plugins::calls::Limits;
use crate::plugins::instance::{Plugin, instantiate};
use crate::plugins::library;

/// Exit status when the worker cannot start (the hello says why).
const EXIT_REFUSED: i32 = 3;

/// Runs the worker for `alias` of `file` (the host's checked private copy of the plugin file),
/// which must be a plugin of `kind`. Returns the process' exit status.
pub fn run(alias: &str, file: &Path, kind: PluginKind) -> i32 {
    end_with_the_host();
    let Some(protocol) = protocol_output() else {
        return EXIT_REFUSED;
    };
    let mut stdin = std::io::stdin().lock();
    let stdout = Arc::new(Mutex::new(BufWriter::new(protocol)));
    let send = |frame: Vec<u8>| {
        if let Ok(mut out) = stdout.lock() {
            // The host went away: nothing to answer to; the read loop ends too.
            let _ = write_frame(&mut *out, &frame);
        }
    };
    let setup = match read_frame(&mut stdin).map(|frame| frame.map(|f| Setup::parse(&f))) {
        Ok(Some(Ok(setup))) => setup,
        _ => {
            send(Hello::Failed("the host sent no setup".into()).frame());
            return EXIT_REFUSED;
        }
    };
    // Before the plugin's file is even opened: from here on, its code runs confined.
    let sandbox = serde_json::from_str::<SandboxSpec>(&setup.sandbox)
        .map_err(|e| format!("the host sent no usable sandbox: {e}"))
        .and_then(|spec| sandbox::enter(&spec, file));
    let sandbox = match sandbox {
        Ok(entered) => entered,
        Err(reason) => {
            send(Hello::Failed(format!("sandbox: {reason}")).frame());
            return EXIT_REFUSED;
        }
    };
    let plugin = match start(alias, file, kind, &setup) {
        Ok(plugin) => Arc::new(plugin),
        Err(reason) => {
            send(Hello::Failed(reason).frame());
            return EXIT_REFUSED;
        }
    };
    // A fixed set of threads takes turns reading a request and running it, several calls
    // at once with no hand-over between threads; the host bounds how many it sends and
    // kills a worker whose call runs too long. They are started before the hello, so that a
    // memory limit too small for them refuses the load, saying so, instead of leaving the
    // worker short of threads.
    drop(stdin);
    let mut threads = Vec::new();
    for n in 0..setup.threads.max(1) {
        let (plugin, stdout) = (Arc::clone(&plugin), Arc::clone(&stdout));
        let started = std::thread::Builder::new()
            .name(format!("plugin-call-{n}"))
            .spawn(move || serve_calls(&plugin, &stdout));
        match started {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                send(
                    Hello::Failed(format!(
                        "cannot start call thread {} of {} ({error}): raise \
                         plugin_memory_limit_mb or lower plugin_max_in_flight",
                        n + 1,
                        setup.threads
                    ))
                    .frame(),
                );
                return EXIT_REFUSED;
            }
        }
    }
    let summary = plugin.summary();
    send(
        Hello::Ready(
            serde_json::json!({
                "kind": match summary.kind {
                    PluginKind::PermissionProvider => "provider",
                    PluginKind::LifecycleExtension => "extension",
                },
                "name": summary.name,
                "version": summary.version,
                "api_version": summary.api_version,
                "sandbox": sandbox.to_string(),
            })
            .to_string(),
        )
        .frame(),
    );
    for thread in threads {
        let _ = thread.join();
    }
    // The host closed the pipe: it no longer needs this worker.
    0
}

type Output = Mutex<BufWriter<std::fs::File>>;

/// The kernel sends this worker SIGTERM when the host dies (its parent-death signal, see
/// `lifetime`; SIGKILL once the system-call filter confines it); the worker then ends its
/// whole process group: itself and whatever the plugin started.
fn end_with_the_host() {
    extern "C" fn end_group(_signal: libc::c_int) {
        // SAFETY: kill is async-signal-safe; 0 names this process' own group.
        unsafe {
            libc::kill(0, libc::SIGKILL);
        }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        libc::signal(libc::SIGTERM, end_group as *const () as libc::sighandler_t);
    }
}

/// The pipe the answers go to. Standard output is the host's pipe, but a plugin may print:
/// the pipe is kept on a file descriptor of its own, and fd 1 now writes to stderr, which
/// the host reads into its log. `None` if the descriptors cannot be arranged.
fn protocol_output() -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain descriptor calls on this process' own fds 1 and 2, before any thread
    // starts; the duplicate is owned by the returned File alone.
    unsafe {
        let pipe = libc::dup(1);
        if pipe < 0 || libc::dup2(2, 1) < 0 {
            return None;
        }
        Some(std::fs::File::from_raw_fd(pipe))
    }
}

/// Reads requests (one thread at a time) and answers them, until stdin ends.
fn serve_calls(plugin: &Plugin, stdout: &Output) {
    loop {
        let frame = read_frame(&mut std::io::stdin().lock());
        let request = match frame {
            Ok(Some(frame)) => match Request::parse(&frame) {
                Ok(request) => request,
                Err(error) => {
                    tracing::error!(%error, "the host sent a damaged request; stopping");
                    // SAFETY: _exit ends the process, skipping the plugin's exit handlers.
                    unsafe { libc::_exit(EXIT_REFUSED) }
                }
            },
            // The host closed the pipe: it no longer needs this worker.
            Ok(None) | Err(_) => return,
        };
        let response = answer(plugin, request);
        if let Ok(mut out) = stdout.lock() {
            let _ = write_frame(&mut *out, &response.frame());
        }
    }
}

/// Loads and starts the plugin as the host would in-process.
fn start(alias: &str, file: &Path, kind: PluginKind, setup: &Setup) -> Result<Plugin, String> {
    let library = library::open_copy(file).map_err(|e| e.to_string())?;
    if library.kind != kind {
        return Err(library::LoadError::WrongKind {
            expected: kind,
            found: library.kind,
        }
        .to_string());
    }
    let settings: serde_json::Value =
        serde_json::from_str(&setup.settings).map_err(|e| format!("settings: {e}"))?;
    let limits = Limits {
        call_timeout: Duration::from_millis(setup.timeout_ms),
        max_in_flight: setup.threads.max(1) as usize,
    };
    instantiate(alias, file, library, &settings, limits).map_err(|e| e.to_string())
}

/// Runs one call and says how it went, as the plugin in-process would.
fn answer(plugin: &Plugin, request: Request) -> Response {
    let ran_from_ns = unix_ns();
    let (answer, text) = plugin.answer(request.call, &request.service, &request.user);
    Response {
        id: request.id,
        answer,
        ran_from_ns,
        ran_until_ns: unix_ns(),
        text,
    }
}

/// Now, in Unix nanoseconds (the host reads the same clock).
fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}
