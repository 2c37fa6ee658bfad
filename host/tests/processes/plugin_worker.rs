//! `auth-host plugin-worker`: one alias of one plugin file in a process of its own, spoken to
//! over stdin/stdout with the worker protocol.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use auth_host::plugins::isolation::protocol::{
    Answer, Call, Hello, Request, Response, Setup, read_frame, write_frame,
};
use common::PluginDir;

fn worker(dir: &PluginDir, alias: &str, name: &str, kind: &str) -> std::process::Child {
    Command::new(common::auth_host_bin())
        .args(["plugin-worker", "--alias", alias, "--kind", kind, "--file"])
        .arg(dir.file_of(name))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn setup(settings: &str) -> Vec<u8> {
    Setup {
        timeout_ms: 5000,
        threads: 4,
        settings: settings.into(),
        // Every layer, as the host asks by default.
        sandbox: r#"{"mode": "strict"}"#.into(),
    }
    .frame()
}

const USER: &str = r#"{"id":"u1","provider_id":null,"username":"ada","name":null,"email":"ada@example.com","avatar_url":null,"join_date":null}"#;

#[test]
fn a_worker_answers_calls_like_the_plugin_in_process() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider", "test_extension"]);
    let mut child = worker(&dir, "example", "sample_permission_provider", "provider");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    write_frame(&mut stdin, &setup("{}")).unwrap();
    let hello = Hello::parse(&read_frame(&mut stdout).unwrap().unwrap()).unwrap();
    let Hello::Ready(summary) = hello else {
        panic!("{hello:?}")
    };
    assert!(
        summary.contains("\"name\":\"sample_permission_provider\""),
        "{summary}"
    );
    // Several calls in flight at once, answered by id.
    for id in [10, 11, 12] {
        let request = Request {
            id,
            call: Call::Permissions,
            service: "example".into(),
            user: USER.into(),
        };
        write_frame(&mut stdin, &request.frame()).unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = Response::parse(&read_frame(&mut stdout).unwrap().unwrap()).unwrap();
        assert_eq!(response.answer, Answer::Permissions);
        assert_eq!(response.text, r#"{"provider-token":"example-u1"}"#);
        ids.push(response.id);
    }
    ids.sort_unstable();
    assert_eq!(ids, [10, 11, 12]);
    // Closing stdin ends the worker cleanly.
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_worker_that_cannot_load_its_plugin_says_why() {
    let dir = PluginDir::with_workspace_plugins(&["sample_extension"]);
    for (name, kind, reason) in [
        ("nothing", "provider", "no such file"),
        (
            "sample_extension",
            "provider",
            "it is a lifecycle extension, but it is named as a permission provider",
        ),
    ] {
        let mut child = worker(&dir, "x", name, kind);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&setup("{}")).unwrap();
        let hello =
            Hello::parse(&read_frame(child.stdout.as_mut().unwrap()).unwrap().unwrap()).unwrap();
        assert_eq!(hello, Hello::Failed(reason.into()), "{name}");
        assert_eq!(child.wait().unwrap().code(), Some(3));
    }
}

#[test]
fn what_a_plugin_prints_goes_to_the_log_not_into_the_pipe() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider"]);
    let mut child = worker(&dir, "test", "test_provider", "provider");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    write_frame(&mut stdin, &setup("{}")).unwrap();
    assert!(matches!(
        Hello::parse(&read_frame(&mut stdout).unwrap().unwrap()).unwrap(),
        Hello::Ready(_)
    ));
    let user = USER.replace("\"u1\"", "\"print\"");
    let request = Request {
        id: 1,
        call: Call::Permissions,
        service: "test".into(),
        user,
    };
    write_frame(&mut stdin, &request.frame()).unwrap();
    let response = Response::parse(&read_frame(&mut stdout).unwrap().unwrap()).unwrap();
    assert_eq!(response.answer, Answer::Permissions, "{response:?}");
    assert!(response.text.contains("\"user\":\"print\""), "{response:?}");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("printed by the test provider"), "{log}");
}
