//! Who a request comes from: the tenant's declared sources ([`TenantSettings`]) and the JWT
//! auth policy ([`JwtAuth`]). `settings.trusted_proxies` (in [`crate::config::Settings`])
//! says which peers may speak for a client.
//!
//! The tenant of a request is established by a declared source only: an API key's tenant, a
//! JWT claim, or (when [`TenantSettings::from_trusted_proxy`] is on) the tenant header sent
//! by a trusted proxy. A tenant header a client sends itself is never believed.

use serde::{Deserialize, Serialize};

/// Where the tenant may come from besides credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Believe `settings.tenant_header` when a peer in `settings.trusted_proxies` sends it
    /// (an API key's or JWT's tenant still wins). Off by default: the header is then always
    /// removed before evaluation.
    #[serde(default)]
    pub from_trusted_proxy: bool,
}

impl TenantSettings {
    /// Whether these are the defaults (left out when serialising).
    pub fn is_default(&self) -> bool {
        *self == TenantSettings::default()
    }
}

crate::wire_enum! {
    case = "UPPERCASE";
    /// A JWT signature algorithm a policy accepts. Symmetric (`HS*`) algorithms are not
    /// offered: their secret would travel with the configuration. `none` is never accepted.
    pub enum JwtAlgorithm {
        RS256,
        RS384,
        RS512,
        PS256,
        PS384,
        PS512,
        ES256,
        ES384,
        #[serde(rename = "EdDSA")]
        #[strum(serialize = "EdDSA")]
        EdDSA,
    }
}

/// The kind of key an algorithm needs; the key's type decides which algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    Ec,
    Ed,
}

impl JwtAlgorithm {
    /// The key family this algorithm verifies with.
    pub fn family(self) -> KeyFamily {
        match self {
            JwtAlgorithm::RS256
            | JwtAlgorithm::RS384
            | JwtAlgorithm::RS512
            | JwtAlgorithm::PS256
            | JwtAlgorithm::PS384
            | JwtAlgorithm::PS512 => KeyFamily::Rsa,
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => KeyFamily::Ec,
            JwtAlgorithm::EdDSA => KeyFamily::Ed,
        }
    }
}

/// Bearer JWTs, verified against keys held in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtAuth {
    /// The header carrying `Bearer <token>`.
    #[serde(default = "JwtAuth::default_header")]
    pub header: String,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (the token's `aud` is a string or a list that contains it).
    pub audience: String,
    /// The accepted algorithms; a key verifies only those of its own type.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most [`JwtAuth::MAX_LEEWAY_S`]).
    #[serde(default = "JwtAuth::default_leeway")]
    pub leeway_s: u32,
    /// The verification keys. A token's `kid` selects one; a token without `kid` is accepted
    /// only when there is exactly one key.
    pub keys: Vec<JwtKey>,
    /// The claim (a string) that names the tenant; it overrides the tenant header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
}

impl JwtAuth {
    /// The largest `leeway_s` validation accepts.
    pub const MAX_LEEWAY_S: u32 = 300;
    /// The longest token (in bytes) a gateway will try to verify.
    pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

    fn default_header() -> String {
        "authorization".to_owned()
    }
    fn default_leeway() -> u32 {
        30
    }
}

/// One verification key, with the `kid` tokens name it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    pub kid: String,
    pub material: KeyMaterial,
}

/// Public key material: a PEM (`-----BEGIN PUBLIC KEY-----`, or an RSA public key), or one
/// JSON Web Key (RFC 7517) as an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyMaterial {
    Pem(String),
    #[schema(value_type = Object)]
    Jwk(serde_json::Value),
}

/// A parsed verification key and its family.
pub struct ParsedKey {
    pub family: KeyFamily,
    pub key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

const PRIVATE: &str = "is a private key: give the public key (a private key must never be in \
                       the configuration, which every gateway and the control plane hold)";

impl KeyMaterial {
    /// Parse the key, or say what is wrong with it. Symmetric keys are refused.
    pub fn parse(&self, kid: &str) -> Result<ParsedKey, String> {
        use jsonwebtoken::DecodingKey;
        use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
        match self {
            KeyMaterial::Pem(pem) => {
                if pem.contains("PRIVATE KEY") {
                    return Err(PRIVATE.to_owned());
                }
                let pem = pem.as_bytes();
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    return Ok(ParsedKey {
                        family: KeyFamily::Rsa,
                        key,
                    });
                }
                if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                    return Ok(ParsedKey {
                        family: KeyFamily::Ec,
                        key,
                    });
                }
                DecodingKey::from_ed_pem(pem)
                    .map(|key| ParsedKey {
                        family: KeyFamily::Ed,
                        key,
                    })
                    .map_err(|_| {
                        "is not a PEM RSA, EC or Ed25519 public key (or certificate)".to_owned()
                    })
            }
            KeyMaterial::Jwk(value) => {
                if value.get("d").is_some() {
                    return Err(PRIVATE.to_owned());
                }
                let jwk: Jwk = serde_json::from_value(value.clone())
                    .map_err(|e| format!("is not a JSON Web Key: {e}"))?;
                if let Some(id) = &jwk.common.key_id
                    && id != kid
                {
                    return Err(format!("has kid `{id}`, but the key is listed as `{kid}`"));
                }
                let family = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                    AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
                    AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
                    AlgorithmParameters::OctetKey(_) => {
                        return Err(
                            "is a symmetric (`oct`) key; only public keys are accepted".to_owned()
                        );
                    }
                };
                let key = DecodingKey::from_jwk(&jwk)
                    .map_err(|e| format!("is not a usable public key: {e}"))?;
                Ok(ParsedKey { family, key })
            }
        }
    }
}
