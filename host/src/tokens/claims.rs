//! What tokens say: the claims of client tokens and of permission tokens.

use serde::{Deserialize, Serialize};

use auth_host_plugin_api::Permissions;

use crate::crypto;

/// Claims of a client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub userid: String,
    pub iat: u64,
    pub exp: u64,
    /// The id logout revokes. Tokens of the old service have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl ClientClaims {
    /// What a revocation is recorded under: the `jti`, or for a token without one (issued by
    /// the old service) a digest of the whole token.
    pub fn revocation_id(&self, token: &str) -> String {
        match &self.jti {
            Some(jti) => jti.clone(),
            None => crypto::hex(&crypto::sha256(token.as_bytes())[..24]),
        }
    }
}

/// Claims of a permission token. No `aud` by default: downstream services verify with the
/// public key and RS256 alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionClaims {
    pub userid: String,
    pub permissions: Permissions,
    pub service: String,
    pub iat: u64,
    pub exp: u64,
}
