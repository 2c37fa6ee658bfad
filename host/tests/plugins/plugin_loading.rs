//! The plugin core against real built plugin files.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use auth_host::plugins::{
    HookDecision, LoadOutcome, PluginCallError, PluginRegistry, PluginSettings,
};
use auth_host_plugin_api::{Amendment, PluginKind, UserInfo};
use common::{PluginDir, plugin_settings as settings};
use serde_json::json;

fn user(id: &str) -> UserInfo {
    UserInfo {
        id: id.into(),
        username: Some(format!("{id}-name")),
        email: Some(format!("{id}@example.test")),
        ..UserInfo::default()
    }
}

fn load(settings: &PluginSettings) -> PluginRegistry {
    match PluginRegistry::load(settings) {
        Ok(registry) => registry,
        Err(outcomes) => panic!(
            "load failed: {:?}",
            outcomes
                .iter()
                .filter_map(LoadOutcome::failure_message)
                .collect::<Vec<_>>()
        ),
    }
}

fn permissions(registry: &PluginRegistry, service: &str, userid: &str) -> serde_json::Value {
    let provider = common::in_process(registry.permission_provider(service).unwrap());
    serde_json::Value::Object(provider.get_permissions(service, &user(userid)).unwrap())
}

#[test]
fn two_providers_load_together_with_one_file_under_two_aliases() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider", "test_provider"]);
    let mut settings = settings(
        dir.path(),
        "example:sample_permission_provider;example2:sample_permission_provider;\
         second:test_provider;third:test_provider",
        "",
    );
    settings
        .settings
        .insert("second".into(), json!({"greeting": "hello from second"}));
    settings
        .settings
        .insert("third".into(), json!({"greeting": "hello from third"}));
    let registry = load(&settings);

    assert_eq!(
        registry.services(),
        ["example", "example2", "second", "third"]
    );
    assert_eq!(
        permissions(&registry, "example", "u1"),
        json!({"provider-token": "example-u1"})
    );
    assert_eq!(
        permissions(&registry, "example2", "u1"),
        json!({"provider-token": "example2-u1"})
    );
    // Each alias has its own settings and instance. The file was loaded once (and the same
    // bytes are never mapped twice in a process), so both instances count in one counter
    // of the library: consecutive instance numbers, the same total.
    let second = permissions(&registry, "second", "u2");
    let third = permissions(&registry, "third", "u2");
    let first_instance = second["instance"].as_u64().unwrap();
    assert_eq!(
        second,
        json!({
            "service": "second", "user": "u2", "username": "u2-name",
            "greeting": "hello from second", "instance": first_instance,
            "instances": second["instances"],
        })
    );
    assert_eq!(third["greeting"], "hello from third");
    assert_eq!(third["instance"].as_u64().unwrap(), first_instance + 1);
    assert_eq!(second["instances"], third["instances"]);
    assert!(second["instances"].as_u64().unwrap() > first_instance);

    let second = common::in_process(registry.permission_provider("second").unwrap());
    assert_eq!(second.kind(), PluginKind::PermissionProvider);
    let summary = second.summary();
    assert_eq!(
        (summary.name.as_str(), summary.version.as_str()),
        ("test_provider", "0.3.0")
    );
    assert_eq!(summary.api_version, auth_host_plugin_api::API_VERSION);
    assert!(registry.permission_provider("test_provider").is_none());
}

#[test]
fn a_search_path_takes_each_plugin_from_the_first_directory_that_has_it() {
    // The image's layout: the operator's (mounted) directory first, the bundled plugins after.
    let operators = PluginDir::with_workspace_plugins(&["test_provider"]);
    let bundled =
        PluginDir::with_workspace_plugins(&["sample_permission_provider", "test_provider"]);
    let mut settings = settings(
        operators.path(),
        "example:sample_permission_provider;own:test_provider;gone:nothing",
        "",
    );
    settings.dirs.push(bundled.path().to_path_buf());

    let files: Vec<_> = PluginRegistry::check(&settings)
        .into_iter()
        .map(|outcome| (outcome.alias, outcome.file, outcome.result.is_ok()))
        .collect();
    assert_eq!(
        files,
        [
            // Only in the bundled directory: found there.
            (
                "example".to_string(),
                bundled.file_of("sample_permission_provider"),
                true
            ),
            // In both: the operator's copy wins.
            ("own".to_string(), operators.file_of("test_provider"), true),
            // In neither: reported where the first directory would have it.
            ("gone".to_string(), operators.file_of("nothing"), false),
        ]
    );
}

#[test]
fn a_panicking_call_is_an_error_and_the_next_call_works() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider"]);
    let registry = load(&settings(dir.path(), "p:test_provider", ""));
    let provider = common::in_process(registry.permission_provider("p").unwrap());

    let error = provider.get_permissions("p", &user("panic")).unwrap_err();
    let PluginCallError::Panicked { alias, message } = error else {
        panic!("expected a panic, got {error:?}");
    };
    assert_eq!(alias, "p");
    assert!(
        message.starts_with("asked to panic (at ") && message.contains("test_provider/src/lib.rs"),
        "{message}"
    );
    let error = provider.get_permissions("p", &user("error")).unwrap_err();
    assert_eq!(
        error,
        PluginCallError::Failed {
            alias: "p".into(),
            message: "asked to fail".into()
        }
    );
    // Still alive, still answering.
    assert_eq!(permissions(&registry, "p", "after")["user"], "after");
    for _ in 0..50 {
        assert!(provider.get_permissions("p", &user("panic")).is_err());
    }
    assert_eq!(permissions(&registry, "p", "after")["user"], "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_is_cut_off_and_others_keep_answering() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider", "sample_permission_provider"]);
    let mut settings = settings(
        dir.path(),
        "slow:test_provider;fast:sample_permission_provider",
        "",
    );
    settings.call_timeout = Duration::from_millis(300);
    settings.max_in_flight = 2;
    settings
        .settings
        .insert("slow".into(), json!({"sleep_ms": 2_000}));
    let registry = Arc::new(load(&settings));
    let slow = Arc::clone(registry.permission_provider("slow").unwrap());
    let fast = Arc::clone(registry.permission_provider("fast").unwrap());

    let started = Instant::now();
    let cut_off = slow.get_permissions("slow", &user("sleep")).await;
    assert_eq!(
        cut_off.unwrap_err(),
        PluginCallError::TimedOut {
            alias: "slow".into(),
            timeout: Duration::from_millis(300)
        }
    );
    assert!(started.elapsed() < Duration::from_millis(1_500));

    // While that call still sleeps on its thread, the other service answers.
    let answer = fast.get_permissions("fast", &user("u1")).await.unwrap();
    assert_eq!(answer["provider-token"], "fast-u1");

    // A second hung call fills the slow plugin's in-flight limit (2): the next is refused
    // at once instead of taking another thread.
    let _ = slow.get_permissions("slow", &user("sleep")).await;
    let busy = slow.get_permissions("slow", &user("u1")).await;
    assert_eq!(
        busy.unwrap_err(),
        PluginCallError::Busy {
            alias: "slow".into()
        }
    );

    // Once the sleepers return, the plugin serves again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let answer = slow.get_permissions("slow", &user("u1")).await.unwrap();
    assert_eq!(answer["user"], "u1");
}

/// What is made of an in-process answer (the permission token's signature) runs on the
/// call's blocking thread, not on an async worker, and after the call's in-flight slot is
/// given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn what_is_made_of_an_answer_is_made_off_the_async_worker_after_the_slot_is_freed() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider"]);
    let mut settings = settings(dir.path(), "p:test_provider", "");
    settings.max_in_flight = 1;
    let registry = Arc::new(load(&settings));
    let provider = Arc::clone(registry.permission_provider("p").unwrap());

    // Ticks on the one async worker: were `then` run there, they would stop meanwhile.
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let runtime = tokio::runtime::Handle::current();
    let again = Arc::clone(&provider);
    let (permissions, (ticked, second)) = provider
        .get_permissions_then("p", &user("u1"), move |permissions| {
            assert_eq!(permissions["user"], "u1");
            let before = ticks.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(400));
            let ticked = ticks.load(Ordering::SeqCst) - before;
            // The only slot of the alias is free again: a second call is not refused.
            let second = runtime.block_on(again.get_permissions("p", &user("u2")));
            (ticked, second)
        })
        .await
        .unwrap();
    ticker.abort();
    assert_eq!(permissions["user"], "u1");
    assert!(
        ticked >= 10,
        "the async worker stood still: {ticked} ticks in 400 ms"
    );
    assert_eq!(second.unwrap()["user"], "u2");
}

#[test]
fn extension_hooks_decide_and_a_panicking_hook_is_an_error() {
    let dir = PluginDir::with_workspace_plugins(&["test_extension", "sample_extension"]);
    let registry = load(&settings(
        dir.path(),
        "",
        "first:test_extension;sample_extension",
    ));
    let aliases: Vec<_> = registry.extensions().iter().map(|e| e.alias()).collect();
    assert_eq!(aliases, ["first", "sample_extension"]);
    let extension = common::in_process(&registry.extensions()[0]);
    let with_email = |email: &str| UserInfo {
        id: "u".into(),
        email: Some(email.into()),
        ..UserInfo::default()
    };
    assert_eq!(
        extension.on_new_user(&with_email("a@fine.test")).unwrap(),
        HookDecision::Continue
    );
    assert_eq!(
        extension
            .on_user_login(&with_email("a@refuse.test"))
            .unwrap(),
        HookDecision::Refuse("on_user_login: not welcome".into())
    );
    assert_eq!(
        extension.on_new_user(&with_email("a@amend.test")).unwrap(),
        HookDecision::Amend(Amendment {
            name: Some("Amended by on_new_user".into()),
            ..Amendment::default()
        })
    );
    assert!(matches!(
        extension.on_user_login(&with_email("a@panic.test")),
        Err(PluginCallError::Panicked { .. })
    ));
    extension
        .on_user_logout(&with_email("a@fine.test"))
        .unwrap();
    let sample = common::in_process(&registry.extensions()[1]);
    assert_eq!(
        sample.on_user_login(&with_email("a@refuse.test")).unwrap(),
        HookDecision::Continue
    );
}

#[test]
fn settings_a_plugin_refuses_stop_its_load() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider"]);
    let mut settings = settings(dir.path(), "a:test_provider;b:test_provider", "");
    settings
        .settings
        .insert("a".into(), json!({"refuse_to_start": true}));
    settings
        .settings
        .insert("b".into(), json!({"colour": "blue"}));
    let outcomes = PluginRegistry::load(&settings).unwrap_err();
    let messages: Vec<_> = outcomes
        .iter()
        .filter_map(LoadOutcome::failure_message)
        .collect();
    let file = dir.file_of("test_provider");
    assert_eq!(
        messages,
        [
            format!(
                "service `a`: cannot load {}: failed to start: refuse_to_start is set",
                file.display()
            ),
            format!(
                "service `b`: cannot load {}: failed to start: invalid settings: unknown field `colour`, expected one of `greeting`, `sleep_ms`, `refuse_to_start`",
                file.display()
            ),
        ]
    );
}
