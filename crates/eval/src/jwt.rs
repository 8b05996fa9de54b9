//! The JWT auth policy, compiled: bearer tokens verified with `jsonwebtoken` against the
//! policy's keys, then `exp`, `nbf` (with the policy's bounded leeway), `iss` and `aud`
//! checked against the request's `now` (so the evaluator reads no clock of its own).
//!
//! The key's type decides the algorithms it verifies: a token is checked against the key its
//! `kid` names, with the policy's allow-list narrowed to that key's family, so an `HS256`
//! token can never be checked against an RSA or EC public key, and `none` is never accepted.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_model::identity::{JwtAlgorithm, JwtAuth};
use serde_json::{Map, Value};

use crate::decision::DenyReason;
use crate::request::RequestMeta;

/// A JWT policy ready to verify tokens.
pub(crate) struct CompiledJwt {
    pub(crate) header: Box<str>,
    issuer: Box<str>,
    audience: Box<str>,
    leeway_s: u64,
    keys: Box<[Verifier]>,
    pub(crate) tenant_claim: Option<Box<str>>,
}

impl std::fmt::Debug for CompiledJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledJwt")
            .field("header", &self.header)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

struct Verifier {
    kid: Box<str>,
    key: DecodingKey,
    /// Signature checks only: the algorithms of this key's family that the policy allows.
    validation: Validation,
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The tenant a valid token names (by the policy's `tenant_claim`), if any.
pub(crate) type Verified = Option<String>;

impl CompiledJwt {
    /// Compile a validated policy; an error names the key.
    pub(crate) fn compile(j: &JwtAuth) -> Result<Self, String> {
        let keys = j
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let parsed = k
                    .material
                    .parse(&k.kid)
                    .map_err(|e| format!("auth.jwt.keys[{i}].material {e}"))?;
                let mut validation = Validation::default();
                validation.algorithms = j
                    .algorithms
                    .iter()
                    .filter(|a| a.family() == parsed.family)
                    .map(|a| algorithm(*a))
                    .collect();
                if validation.algorithms.is_empty() {
                    return Err(format!(
                        "auth.jwt.keys[{i}]: no algorithm of its key type is allowed"
                    ));
                }
                validation.required_spec_claims.clear();
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.validate_aud = false;
                Ok(Verifier {
                    kid: k.kid.as_str().into(),
                    key: parsed.key,
                    validation,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(CompiledJwt {
            header: j.header.as_str().into(),
            issuer: j.issuer.as_str().into(),
            audience: j.audience.as_str().into(),
            leeway_s: u64::from(j.leeway_s.min(JwtAuth::MAX_LEEWAY_S)),
            keys,
            tenant_claim: j.tenant_claim.as_deref().map(Box::from),
        })
    }

    /// Verify the request's bearer token, or say why it is refused.
    pub(crate) fn verify(&self, meta: &RequestMeta<'_>) -> Result<Verified, DenyReason> {
        let value = meta
            .headers
            .get(&self.header)
            .ok_or(DenyReason::MissingToken)?;
        let token = bearer(value).ok_or(DenyReason::InvalidToken)?;
        if token.len() > JwtAuth::MAX_TOKEN_BYTES {
            return Err(DenyReason::InvalidToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| DenyReason::InvalidToken)?;
        let verifier = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| *k.kid == **kid),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or(DenyReason::InvalidToken)?;
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, &verifier.key, &verifier.validation)
                .map_err(|_| DenyReason::InvalidToken)?
                .claims;
        self.check_claims(&claims, meta.now_ms / 1000)?;
        match self.tenant_claim.as_deref().map(|c| claims.get(c)) {
            None | Some(None) => Ok(None),
            Some(Some(Value::String(t))) if !t.is_empty() && t.len() <= 256 => Ok(Some(t.clone())),
            Some(Some(_)) => Err(DenyReason::InvalidToken),
        }
    }

    /// `exp` (required), `nbf`, `iss` and `aud`, at `now` seconds since the epoch.
    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), DenyReason> {
        let time = |name: &str| -> Result<Option<u64>, DenyReason> {
            match claims.get(name) {
                None => Ok(None),
                // A NumericDate may have a fraction; whole seconds are enough here.
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or(DenyReason::InvalidToken),
                Some(_) => Err(DenyReason::InvalidToken),
            }
        };
        let exp = time("exp")?.ok_or(DenyReason::InvalidToken)?;
        if now >= exp.saturating_add(self.leeway_s) {
            return Err(DenyReason::ExpiredToken);
        }
        if let Some(nbf) = time("nbf")?
            && now.saturating_add(self.leeway_s) < nbf
        {
            return Err(DenyReason::TokenNotYetValid);
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if **iss == *self.issuer => {}
            _ => return Err(DenyReason::WrongIssuer),
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => **a == *self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&*self.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(DenyReason::WrongAudience);
        }
        Ok(())
    }
}

/// The token of a `Bearer` credential (the scheme is case-insensitive, RFC 9110 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}
