//! What tokens say: the claims of client tokens and of permission tokens.

use serde::{Deserialize, Serialize};

use auth_host_plugin_api::Permissions;

use super::TokenError;
use super::keys::SignedBy;
use crate::crypto;

/// The `typ` header of client tokens (RFC 8725 §3.11, explicit typing). Permission tokens
/// never carry it, so one kind cannot pass for the other.
pub const CLIENT_TOKEN_TYPE: &str = "auth-host-client+jwt";

/// Permission tokens keep the plain `typ` downstream verifiers have always seen.
pub const PERMISSION_TOKEN_TYPE: &str = "JWT";

/// All that the old service put in a client token (PyJWT, HS256).
const LEGACY_CLAIMS: &[&str] = &["exp", "userid"];

/// Claims that only other kinds of token carry: permission tokens (`service`,
/// `permissions`) and the old service's OAuth state tokens (`next`, `provider`).
const FOREIGN_CLAIMS: &[&str] = &["service", "permissions", "next", "provider"];

/// The two kinds of token auth-host signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Client,
    Permission,
}

impl TokenKind {
    pub(super) fn typ(self) -> &'static str {
        match self {
            TokenKind::Client => CLIENT_TOKEN_TYPE,
            TokenKind::Permission => PERMISSION_TOKEN_TYPE,
        }
    }
}

/// What a client token is — the one rule, for every endpoint that takes a `jwt`:
/// - auth-host's client tokens carry `typ` [`CLIENT_TOKEN_TYPE`];
/// - client tokens signed before explicit typing (an earlier auth-host) carry `typ` `JWT` or
///   none, and none of the claims of another kind ([`FOREIGN_CLAIMS`]);
/// - the old service's client tokens (HS256 under its key, `SignedBy::Legacy`) carry `typ`
///   `JWT` or none and exactly its claims, `userid` and `exp` ([`LEGACY_CLAIMS`]): its OAuth
///   state tokens, signed with the same key, carry `next` and `provider` instead.
///
/// Anything else — a permission token above all — is not a client token. The signature has
/// been checked already.
pub(super) fn client_claims(
    signed_by: SignedBy,
    typ: Option<&str>,
    claims: serde_json::Map<String, serde_json::Value>,
) -> Result<ClientClaims, TokenError> {
    let untyped = matches!(typ, None | Some(PERMISSION_TOKEN_TYPE));
    let foreign = FOREIGN_CLAIMS.iter().any(|c| claims.contains_key(*c));
    let accepted = match signed_by {
        SignedBy::Current => typ == Some(CLIENT_TOKEN_TYPE) || (untyped && !foreign),
        SignedBy::Legacy => {
            untyped
                && claims.len() == LEGACY_CLAIMS.len()
                && LEGACY_CLAIMS.iter().all(|c| claims.contains_key(*c))
        }
    };
    if !accepted {
        return Err(TokenError::WrongKind);
    }
    let mut parsed: ClientClaims = serde_json::from_value(serde_json::Value::Object(claims))
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    parsed.legacy = signed_by == SignedBy::Legacy;
    Ok(parsed)
}

/// Claims of a client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub userid: String,
    /// Tokens of the old service have none.
    #[serde(default)]
    pub iat: u64,
    pub exp: u64,
    /// The id logout revokes. Tokens of the old service have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Signed by the old service (HS256), not by auth-host.
    #[serde(skip)]
    pub legacy: bool,
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
