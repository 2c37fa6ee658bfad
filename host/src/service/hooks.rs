//! Running the extensions' lifecycle hooks, in `INSTALLED_EXTENSIONS` order.

use crate::plugins::HookDecision;
use crate::plugins::calls::Call;
use crate::users::{User, user_info, validate_username};

use super::AuthService;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    NewUser,
    Login,
    Logout,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::NewUser => "on_new_user",
            Hook::Login => "on_user_login",
            Hook::Logout => "on_user_logout",
        }
    }
}

/// A login a hook refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal(pub String);

impl AuthService {
    /// Runs `hook` of every extension in order, counting each call. Login hooks: amendments
    /// apply to `user` as they come, and the first refusal — or failure: fail closed — ends
    /// it. Logout cannot be refused: a failure is only reported, and every extension is told.
    pub(super) async fn run_hook(&self, hook: Hook, user: &mut User) -> Result<(), Refusal> {
        let plugins = self.plugins();
        for extension in plugins.extensions() {
            let call = match hook {
                Hook::NewUser => Call::NewUser,
                Hook::Login => Call::Login,
                Hook::Logout => Call::Logout,
            };
            let started = std::time::Instant::now();
            let answer = extension.hook(call, &user_info(user)).await;
            self.count_plugin_call(extension.alias(), started.elapsed(), &answer);
            let alias = extension.alias();
            match answer {
                Ok(HookDecision::Continue) => {}
                Ok(HookDecision::Amend(amendment)) => {
                    if let Some(name) = amendment.name {
                        user.name = Some(name);
                    }
                    if let Some(avatar) = amendment.avatar_url {
                        user.avatar_url = Some(avatar);
                    }
                    if let Some(username) = amendment.username {
                        match validate_username(&username) {
                            Ok(()) => user.username = Some(username),
                            Err(reason) => tracing::warn!(
                                extension = alias,
                                "ignored an amended username: {reason}"
                            ),
                        }
                    }
                }
                Ok(HookDecision::Refuse(reason)) => {
                    tracing::info!(extension = alias, hook = hook.name(), %reason, "login refused");
                    return Err(Refusal(format!("Login refused: {reason}")));
                }
                Err(error) if hook == Hook::Logout => {
                    tracing::warn!(%error, "on_user_logout failed");
                }
                Err(error) => {
                    tracing::warn!(hook = hook.name(), %error, "login hook failed; refusing the login");
                    return Err(Refusal("Login refused: an extension failed".into()));
                }
            }
        }
        Ok(())
    }
}
