//! A provider built for the test suite that means harm to the host it runs in, in ways
//! short of crashing: what the host's boundaries with an isolated plugin are tested with.
//!
//! Settings: `mode` =
//! - `flood_output`: writes `bytes` bytes with no newline to stdout, then to stderr, then a
//!   line that is not UTF-8 to stderr, then prints an ordinary line; answers
//!   `{"printed": true}` once all that was written.
//! - `spawn_child`: starts `/bin/sleep 600` and leaves it running; answers
//!   `{"child": <its pid>, "worker": <this process' pid>}`.
//! - `forge_log`: writes a JSON log line to stderr, and logs through the host's logger, each
//!   with a message that holds a newline followed by a line like an audit event's (starting
//!   with `FORGED`); answers `{"forged": true}`.
//! - `outlive`: tries to outlive the host: ignores SIGTERM, clears its parent-death signal
//!   and registers an exit handler that never returns; answers `{"worker": <pid>,
//!   "death_signal_cleared": <whether prctl allowed it>}`; every later call never returns
//!   (so that its worker is not ended by reading the end of its pipe either).
//! - `spin_after_answer`: leaves a thread spinning for 30 s and answers `{"worker": <pid>}`
//!   at once.
//! - `probe`: tries to reach the host's secrets, files, network and processes (see
//!   `probes.rs`, with the targets in `probe`); answers what each attempt got.
//!
//! Otherwise it answers `{"ok": true}`.

use std::io::Write;

use auth_host_plugin_api::{
    PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
    serde_json::json,
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    FloodOutput,
    SpawnChild,
    ForgeLog,
    Outlive,
    SpinAfterAnswer,
    Probe,
}

extern "C" fn never_return() {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// What `forge_log` appends after a newline: a line fail2ban would read as a refused login.
const FORGED: &str = "FORGED INFO auth_host::audit: login refused type=\"login.refused\" \
                      client=\"203.0.113.66\" reason=\"state unknown\"";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    probe: probes::Targets,
}

mod probes;

struct HostileProvider {
    settings: Settings,
    context: PluginContext,
}

fn object(value: auth_host_plugin_api::serde_json::Value) -> Result<Permissions, PluginError> {
    match value {
        auth_host_plugin_api::serde_json::Value::Object(map) => Ok(map),
        _ => Err(PluginError::new("not an object")),
    }
}

/// `total` bytes of `x` written in 1 MiB pieces, with no newline.
fn flood(out: &mut impl Write, total: usize) -> std::io::Result<()> {
    let piece = vec![b'x'; 1 << 20];
    let mut left = total;
    while left > 0 {
        let now = left.min(piece.len());
        out.write_all(&piece[..now])?;
        left -= now;
    }
    out.flush()
}

impl PermissionProvider for HostileProvider {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        Ok(HostileProvider {
            settings: context.parse_settings()?,
            context,
        })
    }

    fn get_permissions(
        &self,
        _service: &str,
        _user: &UserInfo,
    ) -> Result<Permissions, PluginError> {
        match self.settings.mode {
            Mode::FloodOutput => {
                let failed = |e: std::io::Error| PluginError::new(format!("writing: {e}"));
                flood(&mut std::io::stdout().lock(), self.settings.bytes).map_err(failed)?;
                flood(&mut std::io::stderr().lock(), self.settings.bytes).map_err(failed)?;
                std::io::stderr()
                    .write_all(b"\n\xff\xfe not UTF-8\n")
                    .map_err(failed)?;
                // Panics (an error for this call) if nobody reads the output any more.
                println!("an ordinary line after the flood");
                object(json!({"printed": true}))
            }
            Mode::SpawnChild => {
                let child = std::process::Command::new("/bin/sleep")
                    .arg("600")
                    .spawn()
                    .map_err(|e| PluginError::new(format!("cannot start a child: {e}")))?;
                object(json!({"child": child.id(), "worker": std::process::id()}))
            }
            Mode::ForgeLog => {
                let line = json!({"level": "INFO", "message": format!("from stderr\n{FORGED}")});
                eprintln!("{line}");
                self.context
                    .logger()
                    .info(format!("from the logger\n{FORGED}\r\u{1b}[2J"));
                object(json!({"forged": true}))
            }
            Mode::Outlive => {
                static PREPARED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if PREPARED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    never_return();
                }
                // SAFETY: signal, prctl and atexit with a handler that touches nothing.
                let cleared = unsafe {
                    libc::signal(libc::SIGTERM, libc::SIG_IGN);
                    libc::atexit(never_return);
                    libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) == 0
                };
                object(json!({"worker": std::process::id(), "death_signal_cleared": cleared}))
            }
            Mode::SpinAfterAnswer => {
                std::thread::spawn(|| {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    let mut spins = 0u64;
                    while std::time::Instant::now() < until {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                });
                object(json!({"worker": std::process::id()}))
            }
            Mode::Probe => object(json!(probes::run(&self.settings.probe))),
        }
    }
}

export_plugin!(permission_provider: HostileProvider);
