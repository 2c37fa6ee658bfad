//! A data directory whose disk fills up (SQLite on a 6 MiB tmpfs): what clients are told,
//! what health says, and that nothing stored is lost.

use crate::common;

use common::ServerProcess;
use common::server::{client, dev_login_at, get_json, params_of};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        mounted.then_some(SmallDisk { dir })
    }

    /// Writes a file until the disk is full; the file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let piece = vec![0u8; 4096];
        while file.write_all(&piece).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.dir.path())
            .status();
    }
}

/// The probe's full disk: with the data directory full, logins are answered 503 "storage
/// full" (they were 500 "internal error"), the login page says so, health reads "degraded"
/// with the audit trail's state (it said "ok"); once room is made, logins work again, health
/// is "ok", and every user stored before is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_told_as_such_and_loses_nothing() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: no tmpfs can be mounted for this test");
        return;
    }
    let disk = SmallDisk::mount("6m").expect("mount a tmpfs (the test runs as root)");
    let server = ServerProcess::start(&[
        ("AUTH_DATA_DIR", disk.dir.path().to_str().unwrap()),
        ("AUTH_DEV_LOGIN", "true"),
        ("EXTERNAL_ADDRESS", "http://127.0.0.1:9"),
        ("AUTH_TOKEN_CACHE_MS", "0"),
    ]);
    let app = "http://127.0.0.1:9/app";
    let before = dev_login_at(&server.base, app, "kept@example.com").await;
    let kept = params_of(&before).remove("jwt").unwrap();
    let filler = disk.fill();

    // Logins write (their state, the user, the event): each is refused for want of room
    // until one is; none is a 500.
    let next: String = url::form_urlencoded::byte_serialize(app.as_bytes()).collect();
    let mut told = Vec::new();
    for n in 0..200 {
        let started = client()
            .get(format!("{}/auth/login/dev?next={next}&n={n}", server.base))
            .send()
            .await
            .unwrap();
        let status = started.status().as_u16();
        assert_ne!(status, 500, "{}", started.text().await.unwrap());
        if status == 503 {
            told.push(started.text().await.unwrap());
            break;
        }
        // Each unanswered state is a row more: the disk fills.
        assert_eq!(status, 302);
    }
    assert!(
        told.iter().any(|body| body.contains("storage full")),
        "no login start was told the storage is full: {told:?}\n{}",
        server.log()
    );
    // An anonymous refusal to put on record fails too: health says so.
    let callback = client()
        .get(format!(
            "{}/auth/oauth_callback?state=junk&code=x",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_ne!(callback.status().as_u16(), 500);
    let (status, health) = get_json(&format!("{}/auth/health", server.base)).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["audit"], "storage full", "{health}");
    // Tokens still verify.
    let (_, check) = get_json(&format!("{}/auth/check?jwt={kept}", server.base)).await;
    assert_eq!(check["authenticated"], true, "{check}");

    std::fs::remove_file(filler).unwrap();
    let after = dev_login_at(&server.base, app, "later@example.com").await;
    assert!(params_of(&after).contains_key("jwt"), "{after}");
    let (_, health) = get_json(&format!("{}/auth/health", server.base)).await;
    assert_eq!(health["status"], "ok", "{health}");
    let again = dev_login_at(&server.base, app, "kept@example.com").await;
    let (_, check) = get_json(&format!(
        "{}/auth/check?jwt={}",
        server.base,
        params_of(&again)["jwt"]
    ))
    .await;
    assert_eq!(check["profile"]["email"], "kept@example.com", "{check}");
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
    drop(disk);
}
