//! Validation of the identity settings (`settings.trusted_proxies`, `settings.tenant`) and
//! of JWT auth policies.

use super::*;
use crate::identity::{JwtAuth, KeyFamily};

/// The most `settings.trusted_proxies` entries.
pub(crate) const MAX_TRUSTED_PROXIES: usize = 256;
/// The most keys of one JWT policy (enough for a rotation's overlap several times over).
pub(crate) const MAX_JWT_KEYS: usize = 16;

impl Validator<'_> {
    pub(super) fn identity_settings(&mut self) {
        let s = &self.cfg.settings;
        self.limit(
            "settings.trusted_proxies",
            s.trusted_proxies.len(),
            MAX_TRUSTED_PROXIES,
        );
        if s.tenant.from_trusted_proxy && s.trusted_proxies.is_empty() {
            self.err(
                "settings.tenant.from_trusted_proxy",
                Rule::Reference,
                "is on, but settings.trusted_proxies is empty: no peer could set the tenant",
            );
        }
    }

    pub(super) fn jwt(&mut self, path: &str, j: &JwtAuth) {
        self.header_name(&format!("{path}.header"), &j.header);
        for (field, v) in [("issuer", &j.issuer), ("audience", &j.audience)] {
            if v.is_empty() {
                self.err(format!("{path}.{field}"), Rule::Format, "must not be empty");
            }
            self.string_len(&format!("{path}.{field}"), v);
        }
        if let Some(c) = &j.tenant_claim {
            if c.is_empty() {
                self.err(
                    format!("{path}.tenant_claim"),
                    Rule::Format,
                    "must not be empty",
                );
            }
            self.string_len(&format!("{path}.tenant_claim"), c);
        }
        if j.leeway_s > JwtAuth::MAX_LEEWAY_S {
            self.err(
                format!("{path}.leeway_s"),
                Rule::Range,
                format!(
                    "is {} s; the clock skew allowed is at most {} s",
                    j.leeway_s,
                    JwtAuth::MAX_LEEWAY_S
                ),
            );
        }
        if j.algorithms.is_empty() {
            self.err(
                format!("{path}.algorithms"),
                Rule::Format,
                "must list at least one algorithm",
            );
        }
        self.unique(
            &format!("{path}.algorithms"),
            j.algorithms.iter().map(|a| a.as_str()),
            "algorithm",
        );
        self.limit(&format!("{path}.keys"), j.keys.len(), MAX_JWT_KEYS);
        self.unique(
            &format!("{path}.keys"),
            j.keys.iter().map(|k| k.kid.as_str()),
            "kid",
        );
        for (i, k) in j.keys.iter().enumerate() {
            let kp = format!("{path}.keys[{i}]");
            if k.kid.is_empty() {
                self.err(format!("{kp}.kid"), Rule::Format, "must not be empty");
            }
            self.string_len(&format!("{kp}.kid"), &k.kid);
            match k.material.parse(&k.kid) {
                Err(e) => self.err(format!("{kp}.material"), Rule::Format, e),
                Ok(parsed) => {
                    if !j.algorithms.iter().any(|a| a.family() == parsed.family) {
                        self.err(
                            format!("{kp}.material"),
                            Rule::Reference,
                            format!(
                                "is {} key, but algorithms lists none for it",
                                family_name(parsed.family)
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn family_name(f: KeyFamily) -> &'static str {
    match f {
        KeyFamily::Rsa => "an RSA",
        KeyFamily::Ec => "an EC",
        KeyFamily::Ed => "an Ed25519",
    }
}
