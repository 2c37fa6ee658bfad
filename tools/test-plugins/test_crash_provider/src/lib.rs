//! A provider built for the test suite that crashes its whole process on purpose, in ways a
//! panic guard cannot contain: what plugin isolation exists for.
//!
//! Settings: `mode` = `abort`, `null_write`, `exit`, `stack_overflow`, `alloc` (until memory
//! runs out), `loop` (never returns, spinning) or `hang` (never returns, asleep); `while_file`: crash only while this file exists, so
//! that a test can stop the crashes. Otherwise it answers `{"crash": "<mode>", "ok": true}`.

use auth_host_plugin_api::{
    PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
    serde_json::json,
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Abort,
    NullWrite,
    Exit,
    StackOverflow,
    Alloc,
    Loop,
    Hang,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
    #[serde(default)]
    while_file: Option<std::path::PathBuf>,
}

struct CrashProvider {
    settings: Settings,
}

/// Recurses until the stack is gone; `black_box` keeps the compiler from making it a loop
/// (the bound is never reached first).
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if std::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1) + frame[1]
}

fn crash(mode: Mode) {
    match mode {
        Mode::Abort => std::process::abort(),
        Mode::NullWrite => {
            let null = std::hint::black_box(std::ptr::null_mut::<u64>());
            // SAFETY: none; writing through a null pointer is this mode's whole point (SIGSEGV).
            unsafe { null.write_volatile(1) };
        }
        Mode::Exit => std::process::exit(0),
        Mode::StackOverflow => {
            std::hint::black_box(recurse(0));
        }
        Mode::Alloc => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touched, so that the pages are really taken.
                hoard.push(vec![1u8; 64 * 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        Mode::Loop => loop {
            std::hint::spin_loop();
        },
        Mode::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}

impl PermissionProvider for CrashProvider {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        Ok(CrashProvider {
            settings: context.parse_settings()?,
        })
    }

    fn get_permissions(
        &self,
        _service: &str,
        _user: &UserInfo,
    ) -> Result<Permissions, PluginError> {
        let armed = match &self.settings.while_file {
            Some(file) => file.exists(),
            None => true,
        };
        if armed {
            crash(self.settings.mode);
        }
        match json!({"crash": format!("{:?}", self.settings.mode), "ok": true}) {
            auth_host_plugin_api::serde_json::Value::Object(map) => Ok(map),
            _ => Err(PluginError::new("unreachable: json! object")),
        }
    }
}

export_plugin!(permission_provider: CrashProvider);
