//! The one error type of auth-host's services. The HTTP layer maps each variant to a status
//! and a JSON body (`http::response`); nothing here knows about HTTP.

use crate::plugins::PluginCallError;
use crate::storage::StoreError;
use crate::tokens::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be understood (a parameter is malformed).
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// A bearer token was required and not given, or not the right one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("method not allowed")]
    MethodNotAllowed { allowed: &'static [&'static str] },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request took too long")]
    Timeout,
    /// A plugin failed this call (error, panic, time-out, too busy).
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    /// The database failed; details are logged, never shown.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// Signing a token failed; details are logged, never shown.
    #[error("cannot sign a token: {0}")]
    Signing(TokenError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
