//! Request body limits in range: 1 byte to [`MAX_BODY_LIMIT`].

use super::*;
use crate::body::MAX_BODY_LIMIT;

impl Validator<'_> {
    pub(super) fn body_limits(&mut self) {
        let cfg = self.cfg;
        let limits = std::iter::once((
            "settings.requests.max_body_bytes".to_owned(),
            Some(cfg.settings.requests.max_body_bytes),
        ))
        .chain(
            cfg.routes
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("routes[{i}].max_body_bytes"), r.max_body_bytes)),
        );
        for (path, limit) in limits {
            if let Some(n) = limit
                && !(1..=MAX_BODY_LIMIT).contains(&n)
            {
                self.err(
                    path,
                    Rule::Range,
                    format!("must be from 1 to {MAX_BODY_LIMIT} bytes; it is {n}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::from_yaml;

    #[test]
    fn body_limits_out_of_range_are_named() {
        let mut c: Config = from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap();
        c.settings.requests.max_body_bytes = 0;
        c.routes[1].max_body_bytes = Some(MAX_BODY_LIMIT + 1);
        let errs = validate(&c, &crate::DeclaredImpact::default())
            .unwrap_err()
            .0;
        let paths: Vec<_> = errs
            .iter()
            .filter(|e| e.rule == Rule::Range)
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "settings.requests.max_body_bytes",
                "routes[1].max_body_bytes"
            ]
        );
        c.settings.requests.max_body_bytes = 1;
        c.routes[1].max_body_bytes = Some(MAX_BODY_LIMIT);
        assert!(validate(&c, &crate::DeclaredImpact::default()).is_ok());
    }

    #[test]
    fn the_default_keeps_settings_out_of_the_snapshot() {
        let c: Config = from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("requests") && !json.contains("max_body_bytes"));
    }
}
