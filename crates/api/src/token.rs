//! Tokens: who may call the API.

use rampart_model::EnumName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Role, TokenKind};

/// The role name of a token without a role (a gateway's), in storage and on the wire.
pub const NO_ROLE: &str = "gateway";

/// The body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// `user` (the default) or `gateway`.
    #[serde(default = "user_kind")]
    pub kind: TokenKind,
    /// User tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

fn user_kind() -> TokenKind {
    TokenKind::User
}

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    /// A user token's role: viewer, editor, approver or admin; `None` for a gateway token,
    /// shown as `gateway`.
    #[serde(
        serialize_with = "serialize_role",
        deserialize_with = "deserialize_role"
    )]
    #[schema(value_type = String)]
    pub role: Option<Role>,
    pub created_at_ms: u64,
    pub revoked: bool,
}

impl TokenRecord {
    /// The role's stored and shown name: `gateway` for a token without a role.
    pub fn role_name(&self) -> &'static str {
        role_name(self.role)
    }
}

/// A role's stored and shown name: [`NO_ROLE`] for none.
pub fn role_name(role: Option<Role>) -> &'static str {
    role.map_or(NO_ROLE, Role::as_str)
}

fn serialize_role<S: Serializer>(role: &Option<Role>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_name(*role))
}

fn deserialize_role<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Role>, D::Error> {
    let name = String::deserialize(d)?;
    if name == NO_ROLE {
        return Ok(None);
    }
    rampart_model::parse_name("role", &name)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `POST /v1/tokens`: the token and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    pub token: TokenRecord,
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_token_without_a_role_shows_gateway() {
        let token = TokenRecord {
            id: "tok_1".into(),
            name: "gw".into(),
            kind: TokenKind::Gateway,
            role: None,
            created_at_ms: 1,
            revoked: false,
        };
        let v = serde_json::to_value(&token).unwrap();
        assert_eq!(v["role"], json!("gateway"));
        assert_eq!(serde_json::from_value::<TokenRecord>(v).unwrap(), token);
        let admin = TokenRecord {
            role: Some(Role::Admin),
            ..token
        };
        let v = serde_json::to_value(&admin).unwrap();
        assert_eq!(v["role"], json!("admin"));
        assert_eq!(serde_json::from_value::<TokenRecord>(v).unwrap(), admin);
    }
}
