//! What a user may do in a service: `/auth/authorize`.

use std::sync::Arc;

use auth_host_plugin_api::Permissions;

use crate::error::{Error, Result};
use crate::users::user_info;

use super::AuthService;

/// The answer of `/auth/authorize`.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorization {
    /// No token, a bad one, no service or one not allowed: `{"permissions": {}}`.
    Nothing,
    Granted {
        userid: String,
        service: String,
        permissions: Permissions,
        token: String,
    },
}

impl AuthService {
    /// What the user of `token` may do in `service`, asked of the service's permission
    /// provider plugin, with a signed permission token saying so.
    #[tracing::instrument(level = "debug", skip_all, fields(service = service.unwrap_or_default()))]
    pub async fn authorize(
        &self,
        token: Option<&str>,
        service: Option<&str>,
    ) -> Result<Authorization> {
        let Some(service) = service.filter(|s| !s.is_empty()) else {
            return Ok(Authorization::Nothing);
        };
        let plugins = self.plugins();
        let Some(provider) = plugins.permission_provider(service).cloned() else {
            return Ok(Authorization::Nothing);
        };
        let Some((user, _)) = self.authenticate(token).await? else {
            return Ok(Authorization::Nothing);
        };
        // The token is signed where the plugin answered (off the async workers for an
        // in-process plugin); the call is timed until its answer, not the signature.
        let started = std::time::Instant::now();
        let tokens = Arc::clone(&self.tokens);
        let (userid, signed_for) = (user.id.clone(), service.to_owned());
        // On that thread, the signature's span stays under this request's `authorize`.
        let authorize_span = tracing::Span::current();
        let answer = provider
            .get_permissions_then(service, &user_info(&user), move |permissions| {
                let took = started.elapsed();
                let _in_authorize = authorize_span.enter();
                let token = tokens.issue_permission_token(&userid, &signed_for, permissions);
                (took, token)
            })
            .await;
        let took = match &answer {
            Ok((_, (took, _))) => *took,
            Err(_) => started.elapsed(),
        };
        self.count_plugin_call(provider.alias(), took, &answer);
        let (permissions, (_, token)) = answer.map_err(|error| {
            tracing::warn!(service, %error, "permission provider failed");
            Error::Plugin(error)
        })?;
        let token = token.map_err(Error::Signing)?;
        self.count_token("permission");
        Ok(Authorization::Granted {
            userid: user.id,
            service: service.to_owned(),
            permissions,
            token,
        })
    }
}
