//! `cedar_permissions`: permissions as Cedar policies (<https://www.cedarpolicy.com/>).
//!
//! ```toml
//! ALLOWED_SERVICES = "wiki:cedar_permissions"
//!
//! [plugins.wiki]
//! policies = "/etc/auth-host/wiki.cedar"
//! actions = ["read", "write", "admin"]
//! schema = "/etc/auth-host/wiki.cedarschema"       # optional: policies are validated against it
//! entities = "/etc/auth-host/wiki-entities.json"   # optional: groups and other entities
//! read_paths = ["/etc/auth-host"]                  # isolated and sandboxed: where the files are
//! ```
//!
//! For each declared action, one Cedar request: the principal `User::"<user id>"` with the
//! attributes `id`, and when known `email` and `email_domain` (both lower-cased, so that
//! `like "*@example.org"` matches `Ada@Example.org`), `username`, `name` and `provider`
//! (`github` of `github:1234`); the action `Action::"<action>"`; the resource
//! `Service::"<service>"`. A user may also be listed in the entities file (to put them in a
//! group: `"parents"`): the request's attributes are laid over the file's, and the file's
//! parents kept.
//!
//! Usernames are chosen by the users themselves, first come first served: never make one an
//! authority (`principal.username == "admin"` is whoever took `admin` first). Decide on the
//! id, or on an email domain the login provider vouches for. The permissions object says, for each action, whether
//! the policies permit it: `{"read": true, "write": false, "admin": false}`. As in Cedar,
//! nothing is permitted unless a policy permits it, and a `forbid` that applies wins.
//!
//! ```cedar
//! permit (principal, action == Action::"read", resource);
//! permit (principal, action == Action::"write", resource)
//!   when { principal has email && principal.email like "*@example.org" };
//! forbid (principal == User::"5d41402abc4b2a76b9719d911017c592", action, resource);
//! ```
//!
//! A policy file that does not parse, a schema that does not, policies that do not validate
//! against the schema, or an action the schema does not declare stop the load with the file,
//! the line and the reason. The files are read at load: a plugin reload (SIGHUP, or
//! `/admin/reload`) picks up changed policies.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use auth_host_plugin_api::{
    PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    policies: PathBuf,
    actions: Vec<String>,
    #[serde(default)]
    schema: Option<PathBuf>,
    #[serde(default)]
    entities: Option<PathBuf>,
}

struct CedarPermissions {
    policies: PolicySet,
    entities: Entities,
    schema: Option<Schema>,
    /// The declared actions, each with its Cedar uid.
    actions: Vec<(String, EntityUid)>,
    authorizer: Authorizer,
}

impl PermissionProvider for CedarPermissions {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        if settings.actions.is_empty() {
            return Err(PluginError::new(
                "actions: declare at least one action (e.g. [\"read\", \"write\"])",
            ));
        }
        let schema = settings
            .schema
            .as_deref()
            .map(|file| {
                let text = read(file)?;
                Schema::from_cedarschema_str(&text)
                    .map(|(schema, _warnings)| schema)
                    .map_err(|error| PluginError::new(located(file, &text, &error)))
            })
            .transpose()?;
        let text = read(&settings.policies)?;
        let policies = PolicySet::from_str(&text)
            .map_err(|error| PluginError::new(located(&settings.policies, &text, &error)))?;
        if let Some(schema) = &schema {
            let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
            if let Some(error) = result.validation_errors().next() {
                return Err(PluginError::new(located(&settings.policies, &text, error)));
            }
        }
        let entities = match &settings.entities {
            Some(file) => {
                let text = read(file)?;
                Entities::from_json_str(&text, schema.as_ref())
                    .map_err(|error| PluginError::new(located(file, &text, &error)))?
            }
            None => Entities::empty(),
        };
        let actions = settings
            .actions
            .iter()
            .map(|action| Ok((action.clone(), uid("Action", action)?)))
            .collect::<Result<Vec<_>, PluginError>>()?;
        let plugin = CedarPermissions {
            policies,
            entities,
            schema,
            actions,
            authorizer: Authorizer::new(),
        };
        // Every declared action must make a valid request (with a schema: one it declares
        // for users on services).
        plugin.ask(context.alias(), &UserInfo::default())?;
        context.logger().info(format_args!(
            "{} policies from {}, actions {}",
            plugin.policies.policies().count(),
            settings.policies.display(),
            settings.actions.join(", ")
        ));
        Ok(plugin)
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        self.ask(service, user)
    }
}

impl CedarPermissions {
    fn ask(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        let principal = uid("User", &user.id)?;
        let resource = uid("Service", service)?;
        // A user the entities file lists keeps its parents (groups) and attributes, under
        // this request's.
        let (mut attributes_of_user, parents) = match self.entities.get(&principal) {
            Some(listed) => {
                let (_, attributes, parents) = listed.clone().into_inner();
                (attributes, parents)
            }
            None => (HashMap::new(), HashSet::new()),
        };
        attributes_of_user.extend(attributes(user));
        let user_entity = Entity::new(principal.clone(), attributes_of_user, parents)
            .map_err(|e| PluginError::new(format!("user {}: {e}", user.id)))?;
        // The user's attributes are this request's; the file's entities stay as loaded.
        let entities = self
            .entities
            .clone()
            .upsert_entities([user_entity], None)
            .map_err(|e| PluginError::new(format!("user {}: {e}", user.id)))?;
        let mut permissions = Permissions::new();
        for (name, action) in &self.actions {
            let request = Request::new(
                principal.clone(),
                action.clone(),
                resource.clone(),
                Context::empty(),
                self.schema.as_ref(),
            )
            .map_err(|e| PluginError::new(format!("action `{name}`: {e}")))?;
            let answer = self
                .authorizer
                .is_authorized(&request, &self.policies, &entities);
            permissions.insert(name.clone(), (answer.decision() == Decision::Allow).into());
        }
        Ok(permissions)
    }
}

/// The principal's attributes: what the user record says, and what follows from it.
fn attributes(user: &UserInfo) -> HashMap<String, RestrictedExpression> {
    let mut attributes = HashMap::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            attributes.insert(
                name.to_owned(),
                RestrictedExpression::new_string(value.to_owned()),
            );
        }
    };
    put("id", Some(&user.id));
    let email = user.email.as_deref().map(str::to_lowercase);
    put("email", email.as_deref());
    put("username", user.username.as_deref());
    put("name", user.name.as_deref());
    let provider = user
        .provider_id
        .as_deref()
        .and_then(|id| id.split_once(':'))
        .map(|(provider, _)| provider);
    put("provider", provider);
    let domain = user
        .email
        .as_deref()
        .and_then(|email| email.rsplit_once('@'))
        .map(|(_, domain)| domain.to_ascii_lowercase());
    put("email_domain", domain.as_deref());
    attributes
}

fn uid(entity_type: &str, id: &str) -> Result<EntityUid, PluginError> {
    let type_name = EntityTypeName::from_str(entity_type)
        .map_err(|e| PluginError::new(format!("entity type {entity_type}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}

fn read(file: &Path) -> Result<String, PluginError> {
    std::fs::read_to_string(file)
        .map_err(|e| PluginError::new(format!("cannot read {}: {e}", file.display())))
}

/// `<file>:<line>:<column>: <error>`, the position taken from the diagnostic's first
/// label (Cedar reports parse and validation errors with source spans), then its help.
fn located(file: &Path, text: &str, error: &dyn miette::Diagnostic) -> String {
    let mut message = format!("{}", file.display());
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    if let Some(offset) = offset {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let _ = write!(message, ":{line}:{column}");
    }
    let _ = write!(message, ": {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    if let Some(help) = error.help() {
        let _ = write!(message, " ({help})");
    }
    message
}

export_plugin!(permission_provider: CedarPermissions);
