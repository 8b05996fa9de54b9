//! API keys' strength: no key on the denylist in any environment, and in prod only keys
//! minted by rampart (`format: rampart_v1`), whose preimage has 256 random bits
//! ([`crate::apikey`]). Breaking either is [`Rule::WeakCredential`].

use super::*;
use crate::Environment;
use crate::apikey;
use crate::config::KeyFormat;

impl Validator<'_> {
    pub(super) fn api_key_strength(&mut self) {
        let cfg = self.cfg;
        for (p, policy) in cfg.policies.iter().enumerate() {
            let PolicyKind::Auth(AuthPolicy::ApiKey(k)) = &policy.kind else {
                continue;
            };
            for (i, key) in k.keys.iter().enumerate() {
                let kp = format!("policies[{p}].auth.api_key.keys[{i}]");
                if apikey::is_denied(&key.sha256) {
                    self.err(
                        format!("{kp}.sha256"),
                        Rule::WeakCredential,
                        "is the hash of a well-known key (an old demo key or a common word): mint a new one with `rampart apikey new`",
                    );
                }
                if let Some(prefix) = &key.prefix
                    && !valid_prefix(prefix)
                {
                    self.err(
                        format!("{kp}.prefix"),
                        Rule::Format,
                        format!(
                            "must be `rk_` and 1 to {} base62 characters of the key",
                            apikey::SHOWN_BODY_CHARS
                        ),
                    );
                }
                if cfg.environment == Environment::Prod && key.format != Some(KeyFormat::RampartV1)
                {
                    self.err(
                        format!("{kp}.format"),
                        Rule::WeakCredential,
                        "prod API keys must be minted by `rampart apikey new` (format: rampart_v1, 256 random bits): a hash alone cannot show that its key has the 128 bits that keep a leaked hash from a dictionary attack",
                    );
                }
            }
        }
    }
}

fn valid_prefix(p: &str) -> bool {
    p.strip_prefix(apikey::PREFIX).is_some_and(|rest| {
        (1..=apikey::SHOWN_BODY_CHARS).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;
    use crate::load::from_yaml;

    /// The example fleet (prod) with its jira key entry replaced by `key`.
    fn fleet_with(env: Environment, key: ApiKey) -> (Config, usize) {
        let mut c: Config = from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap();
        c.environment = env;
        let i = c
            .policies
            .iter()
            .position(|p| p.id == "jira-api-key")
            .unwrap();
        if let PolicyKind::Auth(AuthPolicy::ApiKey(k)) = &mut c.policies[i].kind {
            k.keys[0] = key;
        }
        (c, i)
    }

    fn entry(key: &str, format: Option<KeyFormat>) -> ApiKey {
        ApiKey {
            id: "k".into(),
            sha256: apikey::sha256_hex(key),
            tenant: None,
            format,
            prefix: None,
        }
    }

    fn weak(c: &Config) -> Vec<String> {
        match validate(c, &crate::DeclaredImpact::default()) {
            Ok(()) => vec![],
            Err(e) => {
                e.0.into_iter()
                    .filter(|e| e.rule == Rule::WeakCredential)
                    .map(|e| e.path)
                    .collect()
            }
        }
    }

    /// A fixed, well-formed key (its randomness is not the point here).
    fn minted() -> String {
        let mut n = 7u8;
        apikey::mint(move || {
            n = n.wrapping_mul(73).wrapping_add(41);
            n
        })
    }

    #[test]
    fn prod_refuses_a_dictionary_word_and_accepts_a_minted_key() {
        for word in ["password", "jira-ci-demo-key", "letmein"] {
            let (c, i) = fleet_with(Environment::Prod, entry(word, None));
            let paths = weak(&c);
            let kp = format!("policies[{i}].auth.api_key.keys[0]");
            assert!(paths.contains(&format!("{kp}.sha256")), "{word}: {paths:?}");
            assert!(paths.contains(&format!("{kp}.format")), "{word}: {paths:?}");
        }
        let (c, _) = fleet_with(
            Environment::Prod,
            entry(&minted(), Some(KeyFormat::RampartV1)),
        );
        assert_eq!(weak(&c), Vec::<String>::new());
        assert!(validate(&c, &crate::DeclaredImpact::default()).is_ok());
    }

    #[test]
    fn prod_refuses_an_unknown_key_that_is_not_declared_minted() {
        // Not on the denylist, but nothing shows its entropy.
        let (c, i) = fleet_with(
            Environment::Prod,
            entry("correct horse battery staple", None),
        );
        assert_eq!(
            weak(&c),
            vec![format!("policies[{i}].auth.api_key.keys[0].format")]
        );
    }

    #[test]
    fn dev_accepts_readable_keys_but_never_denylisted_ones() {
        let (c, _) = fleet_with(Environment::Dev, entry("my-local-test-key", None));
        assert_eq!(weak(&c), Vec::<String>::new());
        let (c, i) = fleet_with(Environment::Staging, entry("changeme", None));
        assert_eq!(
            weak(&c),
            vec![format!("policies[{i}].auth.api_key.keys[0].sha256")]
        );
        // An uppercase hash of a denied key is refused too (and as a format error).
        let mut e = entry("password", None);
        e.sha256 = e.sha256.to_uppercase();
        let (c, _) = fleet_with(Environment::Dev, e);
        assert_eq!(weak(&c).len(), 1);
    }

    #[test]
    fn gateways_run_weak_keys_but_see_them() {
        let (c, _) = fleet_with(Environment::Prod, entry("password", None));
        assert!(crate::validate::validate_runnable(&c).is_ok());
        assert_eq!(crate::validate::weak_credentials(&c).len(), 2);
    }

    #[test]
    fn a_prefix_must_look_like_a_key_start() {
        for (prefix, ok) in [
            ("rk_abc123", true),
            ("rk_a", true),
            ("rk_", false),
            ("rk_abcdefg", false),
            ("sk_abc", false),
            ("rk_ab-c", false),
        ] {
            let mut e = entry(&minted(), Some(KeyFormat::RampartV1));
            e.prefix = Some(prefix.into());
            let (c, _) = fleet_with(Environment::Prod, e);
            assert_eq!(
                validate(&c, &crate::DeclaredImpact::default()).is_ok(),
                ok,
                "{prefix}"
            );
        }
    }
}
