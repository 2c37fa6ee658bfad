//! Opening one plugin file safely: integrity check, private copy, ABI check.
//!
//! `dlopen` trusts the file completely: a truncated library crashes the process inside the
//! loader (SIGBUS), and so does overwriting a loaded library in place. So the file is read
//! once into memory, checked as a whole ELF shared object for this machine, written to a
//! private copy that nobody else can touch, and only that copy is opened. The copy is
//! unlinked right after opening: the mapping lives on, and the operator's file can be
//! replaced at any time without affecting the running process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibHeader, LibraryError, lib_header_from_path},
    sabi_types::VersionNumber,
};
use auth_host_plugin_api::{API_VERSION, PluginKind, abi::PluginModuleRef};
use object::{Object, ObjectKind, ObjectSection, ObjectSegment};

/// Why a plugin file cannot be used. Each message is one short paragraph for operators;
/// `detail` (when any) goes to the debug log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("no such file")]
    Missing,
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    #[error("not a plugin: {0}")]
    NotALibrary(String),
    #[error("damaged file: {0}; rebuild or copy it again")]
    Damaged(String),
    #[error(
        "not an auth-host plugin: it has no plugin entry point (a plugin crate must call `export_plugin!`)"
    )]
    NoEntryPoint,
    #[error("the system loader refused it: {0}")]
    Open(String),
    #[error("incompatible plugin-api: expected {expected}, found {found}")]
    IncompatibleApi {
        expected: String,
        found: String,
        detail: String,
    },
    #[error(
        "built with panic = \"abort\": a panic in it would end auth-host; build it with panic = \"unwind\" (the default)"
    )]
    AbortsOnPanic,
    #[error("it is a {found}, but it is named as a {expected}", found = .found.label(), expected = .expected.label())]
    WrongKind {
        expected: PluginKind,
        found: PluginKind,
    },
    #[error("failed to start: {0}")]
    Create(String),
}

impl LoadError {
    /// Long diagnostics (abi_stable's full layout comparison) for the debug log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            LoadError::IncompatibleApi { detail, .. } if !detail.is_empty() => Some(detail),
            _ => None,
        }
    }
}

/// An opened, checked plugin library. Libraries are never unloaded (code of a plugin may
/// still run on a thread cut off by a time-out), so this is `'static`.
#[derive(Clone, Copy)]
pub struct Library {
    pub module: PluginModuleRef,
    pub kind: PluginKind,
    pub name: &'static str,
    pub version: &'static str,
    /// The plugin-api version the plugin was built against.
    pub api_version: &'static str,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// The file name of plugin `name` on this platform.
pub fn file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The largest plugin file read; a shared library is a few MiB, a debug build some tens.
const MAX_PLUGIN_BYTES: u64 = 256 * 1024 * 1024;

/// The bytes of the plugin file at `path`: a regular file (a symbolic link to one is fine)
/// of at most [`MAX_PLUGIN_BYTES`]. A device or FIFO is refused before it is opened, since
/// reading one could block or never end.
fn read_plugin_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing,
        _ => LoadError::Unreadable(e.to_string()),
    };
    let check = |metadata: std::fs::Metadata| {
        if !metadata.is_file() {
            return Err(LoadError::Unreadable(
                "not a regular file (a directory, device or FIFO)".into(),
            ));
        }
        if metadata.len() > MAX_PLUGIN_BYTES {
            return Err(LoadError::Unreadable(format!(
                "{} bytes, more than the {MAX_PLUGIN_BYTES} a plugin may have",
                metadata.len()
            )));
        }
        Ok(metadata.len())
    };
    check(std::fs::metadata(path).map_err(unreadable)?)?;
    let file = std::fs::File::open(path).map_err(unreadable)?;
    // The file may have changed between the two looks: the open one is what counts.
    let length = check(file.metadata().map_err(unreadable)?)?;
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    file.take(MAX_PLUGIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        return Err(LoadError::Unreadable("grew while it was read".into()));
    }
    Ok(bytes)
}

/// Reads, checks and opens the plugin file at `path`.
pub fn open(path: &Path) -> Result<Library, LoadError> {
    let bytes = read_plugin_file(path)?;
    check_shared_object(&bytes)?;
    // The same bytes were opened before (another alias, or a reload of an unchanged file):
    // that library serves again. A changed file has other bytes, so it is opened anew.
    let key = crate::crypto::sha256(&bytes);
    if let Some(library) = opened()
        .lock()
        .ok()
        .and_then(|known| known.get(&key).copied())
    {
        return Ok(library);
    }
    let library = open_bytes(path, &bytes)?;
    if let Ok(mut known) = opened().lock() {
        known.insert(key, library);
    }
    Ok(library)
}

/// Libraries opened so far, by the SHA-256 of their bytes. Libraries are never unloaded, so
/// this only saves mapping the same code twice.
fn opened() -> &'static std::sync::Mutex<std::collections::HashMap<[u8; 32], Library>> {
    static OPENED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<[u8; 32], Library>>,
    > = std::sync::OnceLock::new();
    OPENED.get_or_init(Default::default)
}

fn open_bytes(path: &Path, bytes: &[u8]) -> Result<Library, LoadError> {
    let copy = PrivateCopy::write(path, bytes)?;
    let library = open_copy(copy.path());
    drop(copy);
    library
}

/// Reads and checks the plugin file at `path` and writes the private copy to open: what the
/// host does for a worker, which then opens the copy ([`open_copy`]) inside its sandbox and
/// never writes a file itself.
pub fn private_copy(path: &Path) -> Result<PrivateCopy, LoadError> {
    let bytes = read_plugin_file(path)?;
    check_shared_object(&bytes)?;
    PrivateCopy::write(path, &bytes)
}

/// Opens a private copy made from checked bytes, and checks its ABI.
pub fn open_copy(copy: &Path) -> Result<Library, LoadError> {
    if !copy.exists() {
        return Err(LoadError::Missing);
    }
    let header = lib_header_from_path(copy).map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => LoadError::NoEntryPoint,
        LibraryError::InvalidAbiHeader(_) => LoadError::IncompatibleApi {
            expected: format!("abi_stable 0.11 (plugin-api {API_VERSION})"),
            found: "a plugin built with another abi_stable version".into(),
            detail: String::new(),
        },
        other => LoadError::Open(first_line(&other.to_string())),
    })?;
    let module = root_module(header)?;
    if !module.unwinds() {
        return Err(LoadError::AbortsOnPanic);
    }
    Ok(Library {
        module,
        kind: module.kind(),
        name: module.name().as_str(),
        version: module.version().as_str(),
        api_version: header.version_strings().version.as_str(),
    })
}

/// Checks that the bytes are a whole ELF shared object for this machine, so that `dlopen`
/// never maps past the end of a truncated file.
fn check_shared_object(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoadError::NotALibrary("not an ELF shared library".into()));
    }
    let file = object::File::parse(bytes)
        .map_err(|e| LoadError::Damaged(format!("unreadable ELF headers ({e})")))?;
    if file.kind() != ObjectKind::Dynamic {
        return Err(LoadError::NotALibrary(format!(
            "an ELF file of kind {:?}, not a shared library",
            file.kind()
        )));
    }
    let expected = host_architecture();
    if Some(file.architecture()) != expected {
        return Err(LoadError::NotALibrary(format!(
            "built for {:?}, this machine is {}",
            file.architecture(),
            std::env::consts::ARCH
        )));
    }
    let size = bytes.len() as u64;
    for segment in file.segments() {
        let (offset, length) = segment.file_range();
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(LoadError::Damaged(format!(
                "a segment ends at byte {}, past the end of the file ({size} bytes): the file is truncated",
                offset.saturating_add(length)
            )));
        }
    }
    for section in file.sections() {
        if let Some((offset, length)) = section.file_range()
            && offset.checked_add(length).is_none_or(|end| end > size)
        {
            return Err(LoadError::Damaged(format!(
                "section {} ends past the end of the file ({size} bytes): the file is truncated",
                section.name().unwrap_or("?")
            )));
        }
    }
    Ok(())
}

fn host_architecture() -> Option<object::Architecture> {
    use object::Architecture as A;
    match std::env::consts::ARCH {
        "x86_64" => Some(A::X86_64),
        "aarch64" => Some(A::Aarch64),
        "x86" => Some(A::I386),
        "arm" => Some(A::Arm),
        "riscv64" => Some(A::Riscv64),
        _ => None,
    }
}

/// Checks the plugin's interface against ours and returns its root module.
///
/// abi_stable lets the *loader* be older than the library (the library may have appended
/// fields the loader ignores). We also accept the reverse, a plugin built against an older
/// 1.x layout: it is then the plugin's layout that must be a prefix of ours, and the fields it
/// lacks read as `None` through their `Option` accessors.
fn root_module(header: &'static LibHeader) -> Result<PluginModuleRef, LoadError> {
    let found = header.version_strings();
    let found_version = VersionNumber::new(found).map_err(|e| LoadError::IncompatibleApi {
        expected: format!("plugin-api {API_VERSION}"),
        found: format!("an unreadable version `{}`", found.version),
        detail: e.to_string(),
    })?;
    let ours =
        VersionNumber::new(<PluginModuleRef as abi_stable::library::RootModule>::VERSION_STRINGS)
            .map_err(|e| LoadError::Open(e.to_string()))?;
    let incompatible = |detail: String| LoadError::IncompatibleApi {
        expected: format!(
            "plugin-api {}.x (this auth-host has {API_VERSION})",
            ours.major
        ),
        found: format!("plugin-api {}", found.version),
        detail,
    };
    if found_version.major != ours.major {
        return Err(incompatible(String::new()));
    }
    let Some(theirs) = header.layout() else {
        return Err(incompatible(
            "the plugin was exported without its layout".into(),
        ));
    };
    let ours_layout = <PluginModuleRef as StableAbi>::LAYOUT;
    let plugin_is_older = found_version.minor < ours.minor;
    let checked = if plugin_is_older {
        check_layout_compatibility(theirs, ours_layout)
    } else {
        check_layout_compatibility(ours_layout, theirs)
    };
    if let Err(errors) = checked {
        let full = errors.to_string();
        let summary = summarize_layout_errors(&full, plugin_is_older);
        return Err(LoadError::IncompatibleApi {
            expected: format!("plugin-api {API_VERSION} layout"),
            found: format!(
                "plugin-api {} with a different layout ({summary})",
                found.version
            ),
            detail: full,
        });
    }
    // SAFETY: the layout was checked just above, in the direction that fits the versions.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }
        .map_err(|e| incompatible(e.to_string()))
}

/// abi_stable's report is about 150 lines; operators need its `Error:` lines with the
/// expected and found values. `swapped` when the check compared the plugin's layout as the
/// expected one, so that "expected" always means this host's.
fn summarize_layout_errors(report: &str, swapped: bool) -> String {
    let mut parts = Vec::new();
    let mut lines = report.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(error) = line.strip_prefix("Error:") else {
            continue;
        };
        #[derive(PartialEq)]
        enum Reading {
            Nothing,
            Expected,
            Found,
        }
        let (mut expected, mut found) = (None, None);
        let mut reading = Reading::Nothing;
        for line in lines.by_ref() {
            match line {
                "Expected:" => reading = Reading::Expected,
                "Found:" => reading = Reading::Found,
                "" if found.is_some() => break,
                "" => {}
                value if reading == Reading::Expected && expected.is_none() => {
                    expected = Some(value)
                }
                value if reading == Reading::Found && found.is_none() => found = Some(value),
                _ => {}
            }
        }
        if swapped {
            std::mem::swap(&mut expected, &mut found);
        }
        parts.push(format!(
            "{error}: expected {}, found {}",
            expected.unwrap_or("?"),
            found.unwrap_or("?")
        ));
        if parts.len() == 3 {
            break;
        }
    }
    if parts.is_empty() {
        "see the debug log for the full comparison".into()
    } else {
        parts.join("; ")
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// A copy of a plugin file in a directory only this process can write (others may read it:
/// a worker running as `plugin_user` opens it), removed on drop.
pub struct PrivateCopy {
    // Dropping the directory removes it and the copy inside.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PrivateCopy {
    fn write(original: &Path, bytes: &[u8]) -> Result<Self, LoadError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let failed = |e: std::io::Error| {
            LoadError::Unreadable(format!("cannot make a private copy to load: {e}"))
        };
        let dir = tempfile::Builder::new()
            .prefix("auth-host-plugin-")
            .tempdir()
            .map_err(failed)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(failed)?;
        }
        // A distinct path per load, so that the system loader never reuses an older mapping
        // of another version of the same file.
        let file_name = original
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin.so".into());
        let path = dir.path().join(format!(
            "{}-{file_name}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // No fsync: the copy is opened at once and never needed after a crash.
        let mut file = std::fs::File::create(&path).map_err(failed)?;
        file.write_all(bytes).map_err(failed)?;
        Ok(PrivateCopy { _dir: dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_a_library() {
        let error = check_shared_object(b"hello, I am not a plugin\n").unwrap_err();
        assert_eq!(
            error,
            LoadError::NotALibrary("not an ELF shared library".into())
        );
    }

    #[test]
    fn summary_keeps_error_expected_and_found() {
        let report = "Compared <this>:\n  lots\n\nError:too many fields\nExpected:\n    10\nFound:\n    9\n\nmore noise\nError:unexpected field\nExpected:\n    get_permissions\nFound:\n    get_perms\n\n";
        assert_eq!(
            summarize_layout_errors(report, false),
            "too many fields: expected 10, found 9; unexpected field: expected get_permissions, found get_perms"
        );
        assert!(
            summarize_layout_errors(report, true)
                .starts_with("too many fields: expected 9, found 10")
        );
    }
}
