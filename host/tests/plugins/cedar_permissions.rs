//! The bundled `cedar_permissions` provider: Cedar policies from a file, one answer per
//! declared action.

use crate::common;

use std::path::Path;

use auth_host::plugins::PluginRegistry;
use auth_host_plugin_api::UserInfo;
use serde_json::{Value, json};

const POLICIES: &str = r#"// Everyone reads; example.org writes; one user never does anything.
permit (principal, action == Action::"read", resource);

permit (principal, action == Action::"write", resource)
  when { principal has email && principal.email like "*@example.org" };

permit (principal, action == Action::"admin", resource == Service::"wiki")
  when { principal has provider && principal.provider == "github"
         && principal has email_domain && principal.email_domain == "example.org" };

forbid (principal == User::"banned", action, resource);
"#;

const SCHEMA: &str = r#"entity User = {
  id: String,
  email?: String,
  username?: String,
  name?: String,
  provider?: String,
  email_domain?: String,
};
entity Service;
action read, write, admin appliesTo { principal: User, resource: Service };
"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(policies: &str, schema: Option<&str>) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wiki.cedar"), policies).unwrap();
        if let Some(schema) = schema {
            std::fs::write(dir.path().join("wiki.cedarschema"), schema).unwrap();
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn table(&self, schema: bool) -> Value {
        let mut table = json!({
            "policies": self.path("wiki.cedar"),
            "actions": ["read", "write", "admin"],
        });
        if schema {
            table["schema"] = json!(self.path("wiki.cedarschema"));
        }
        table
    }
}

fn load(plugins: &Path, table: Value) -> Result<PluginRegistry, String> {
    let mut settings = common::plugin_settings(plugins, "wiki:cedar_permissions", "");
    settings.settings.insert("wiki".into(), table);
    PluginRegistry::load(&settings).map_err(|outcomes| {
        outcomes
            .iter()
            .filter_map(|o| o.failure_message())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn user(id: &str, email: Option<&str>, provider_id: Option<&str>) -> UserInfo {
    UserInfo {
        id: id.into(),
        email: email.map(str::to_owned),
        provider_id: provider_id.map(str::to_owned),
        ..UserInfo::default()
    }
}

fn ask(registry: &PluginRegistry, service: &str, user: &UserInfo) -> Value {
    let provider = common::in_process(registry.permission_provider("wiki").unwrap());
    Value::Object(provider.get_permissions(service, user).unwrap())
}

#[test]
fn permits_forbids_and_attribute_conditions() {
    let plugins = common::PluginDir::with_workspace_plugins(&["cedar_permissions"]);
    let files = Files::new(POLICIES, Some(SCHEMA));
    for with_schema in [false, true] {
        let registry = load(plugins.path(), files.table(with_schema)).unwrap();
        let anyone = user("u1", Some("someone@elsewhere.test"), None);
        assert_eq!(
            ask(&registry, "wiki", &anyone),
            json!({"read": true, "write": false, "admin": false})
        );
        // `like` on the email; no email at all is no match, not an error.
        let member = user("u2", Some("ada@example.org"), Some("google:1"));
        assert_eq!(
            ask(&registry, "wiki", &member),
            json!({"read": true, "write": true, "admin": false})
        );
        assert_eq!(
            ask(&registry, "wiki", &user("u3", None, None)),
            json!({"read": true, "write": false, "admin": false})
        );
        // Provider and email domain, on this service only; the email and its domain are
        // lower-cased (`like "*@example.org"` missed `Grace@EXAMPLE.ORG`).
        let admin = user("u4", Some("Grace@EXAMPLE.ORG"), Some("github:42"));
        assert_eq!(
            ask(&registry, "wiki", &admin),
            json!({"read": true, "write": true, "admin": true})
        );
        assert_eq!(
            ask(&registry, "other", &admin),
            json!({"read": true, "write": true, "admin": false})
        );
        // A forbid that applies overrides every permit.
        let banned = user("banned", Some("b@example.org"), Some("github:7"));
        assert_eq!(
            ask(&registry, "wiki", &banned),
            json!({"read": false, "write": false, "admin": false})
        );
    }
}

#[test]
fn policies_that_do_not_parse_or_validate_stop_the_load_with_the_line() {
    let plugins = common::PluginDir::with_workspace_plugins(&["cedar_permissions"]);

    // Syntax: a missing `;` after the second policy (it ends on line 5).
    let broken = POLICIES.replacen(r#"like "*@example.org" };"#, r#"like "*@example.org" }"#, 1);
    let files = Files::new(&broken, None);
    let message = load(plugins.path(), files.table(false)).unwrap_err();
    let file = files.path("wiki.cedar");
    assert!(message.contains(&format!("{file}:")), "{message}");
    let line: usize = message
        .split(&format!("{file}:"))
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|line| line.parse().ok())
        .unwrap_or_else(|| panic!("no line in {message}"));
    assert!((5..=7).contains(&line), "line {line}: {message}");

    // Schema: an attribute users do not have, on line 3.
    let unknown = "permit (principal, action == Action::\"read\", resource)\n  when {\n    principal.department == \"it\" };\n";
    let files = Files::new(unknown, Some(SCHEMA));
    let message = load(plugins.path(), files.table(true)).unwrap_err();
    assert!(
        message.contains(&format!("{}:3:", files.path("wiki.cedar")))
            && message.contains("department"),
        "{message}"
    );
    // The same policy without a schema loads (and never permits).
    let registry = load(plugins.path(), files.table(false)).unwrap();
    assert_eq!(
        ask(&registry, "wiki", &user("u1", None, None)),
        json!({"read": false, "write": false, "admin": false})
    );

    // An action the schema does not declare; a schema that does not parse; no actions.
    let files = Files::new(POLICIES, Some(SCHEMA));
    let mut table = files.table(true);
    table["actions"] = json!(["read", "delete"]);
    let message = load(plugins.path(), table).unwrap_err();
    assert!(message.contains("action `delete`"), "{message}");
    let files = Files::new(POLICIES, Some("entity User = {"));
    let message = load(plugins.path(), files.table(true)).unwrap_err();
    assert!(
        message.contains(&format!("{}:", files.path("wiki.cedarschema"))),
        "{message}"
    );
    let files = Files::new(POLICIES, None);
    let mut table = files.table(false);
    table["actions"] = json!([]);
    let message = load(plugins.path(), table).unwrap_err();
    assert!(message.contains("declare at least one action"), "{message}");
}

/// A user listed in the entities file (here, to be in a group) is asked about with the file's
/// parents and the request's attributes; it was 502 "duplicate entity".
#[test]
fn a_user_listed_in_the_entities_file_keeps_their_groups() {
    let plugins = common::PluginDir::with_workspace_plugins(&["cedar_permissions"]);
    let files = Files::new(
        r#"permit (principal in Group::"editors", action == Action::"write", resource);
permit (principal, action == Action::"read", resource)
  when { principal has email && principal.email like "*@example.org" };
"#,
        None,
    );
    std::fs::write(
        files.dir.path().join("entities.json"),
        r#"[
  {"uid": {"type": "User", "id": "u9"}, "attrs": {"email": "old@elsewhere.test"},
   "parents": [{"type": "Group", "id": "editors"}]},
  {"uid": {"type": "Group", "id": "editors"}, "attrs": {}, "parents": []}
]"#,
    )
    .unwrap();
    let mut table = files.table(false);
    table["entities"] = json!(files.path("entities.json"));
    let registry = load(plugins.path(), table).unwrap();
    let listed = user("u9", Some("Ed@Example.org"), None);
    assert_eq!(
        ask(&registry, "wiki", &listed),
        json!({"read": true, "write": true, "admin": false})
    );
    let other = user("u10", Some("ed@example.org"), None);
    assert_eq!(
        ask(&registry, "wiki", &other),
        json!({"read": true, "write": false, "admin": false})
    );
}
