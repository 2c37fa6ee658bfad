//! The one error type of auth-host's services. The HTTP layer maps each variant to a status
//! and a JSON body (`http::response`); nothing here knows about HTTP.

use crate::plugins::PluginCallError;
use crate::storage::StoreError;
use crate::tokens::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for something that cannot be done as asked (a parameter is
    /// malformed or not allowed); the message says why.
    #[error("{0}")]
    BadRequest(String),
    /// A plugin failed this call (error, panic, time-out, too busy).
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    /// The database failed; details are logged, never shown.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// Signing a token failed; details are logged, never shown.
    #[error("cannot sign a token: {0}")]
    Signing(TokenError),
    /// Anything else that should not happen; details are logged, never shown.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
