//! Route paths against `settings.paths`: requests are matched on their canonical path, so a
//! route whose own path is not canonical could never match.

use super::{Rule, Validator};
use crate::config::PathMatch;
use crate::paths::normalize_path;

impl Validator<'_> {
    pub(super) fn route_paths(&mut self) {
        let cfg = self.cfg;
        let settings = &cfg.settings.paths;
        for (i, r) in cfg.routes.iter().enumerate() {
            let (kind, p) = match &r.matcher.path {
                PathMatch::Prefix(p) => ("prefix", p),
                PathMatch::Exact(p) => ("exact", p),
            };
            // Whether it is a path at all is `http_path`'s to report.
            if !p.starts_with('/') {
                continue;
            }
            let problem = match normalize_path(p, settings) {
                Ok(n) if n.path == p.as_str() => continue,
                Ok(n) => format!(
                    "`{p}` is not a canonical path: requests are normalised to `{}` before \
                     they are matched, so this route could never match it",
                    n.path
                ),
                Err(e) => format!(
                    "`{p}` is not a canonical path: a request with it is refused ({e}; see \
                     settings.paths)"
                ),
            };
            self.err(
                format!("routes[{i}].match.path.{kind}"),
                Rule::Format,
                problem,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::load::from_yaml;
    use crate::validate::{Rule, validate};

    fn fleet(settings: &str, path: &str) -> Config {
        from_yaml(&format!(
            r#"
environment: dev
settings: {{ paths: {{ {settings} }} }}
products: [{{ name: app }}]
upstreams: [{{ name: app, endpoints: ["127.0.0.1:9"] }}]
routes:
  - {{ id: r, product: app, match: {{ path: {path} }}, upstream: app }}
"#
        ))
        .unwrap()
    }

    fn errors(settings: &str, path: &str) -> Vec<String> {
        match validate(&fleet(settings, path), &Default::default()) {
            Ok(()) => vec![],
            Err(e) => {
                e.0.iter()
                    .map(|e| {
                        assert_eq!(e.rule, Rule::Format);
                        e.to_string()
                    })
                    .collect()
            }
        }
    }

    #[test]
    fn route_paths_must_be_canonical() {
        for ok in [
            "{ prefix: / }",
            "{ prefix: /rest/api/ }",
            "{ exact: /a%20b }",
            "{ prefix: /.well-known/ }",
        ] {
            assert_eq!(errors("", ok), Vec::<String>::new(), "{ok}");
        }
        for (path, says) in [
            (
                "{ prefix: /rest//api/ }",
                "routes[0].match.path.prefix: `/rest//api/` is not a canonical path: requests are normalised to `/rest/api/`",
            ),
            (
                "{ exact: /%72est }",
                "routes[0].match.path.exact: `/%72est` is not a canonical path: requests are normalised to `/rest`",
            ),
            ("{ prefix: /a/../admin/ }", "normalised to `/admin/`"),
            (
                "{ prefix: /a%2fb/ }",
                "a request with it is refused (an encoded slash or a backslash at byte 2",
            ),
            ("{ prefix: /a;b/ }", "(a `;` path parameter at byte 2"),
            ("{ prefix: /a%zz/ }", "is not followed by two hex digits"),
        ] {
            let errs = errors("", path);
            assert_eq!(errs.len(), 1, "{path}: {errs:?}");
            assert!(errs[0].contains(says), "{path}: {}", errs[0]);
        }
        // Under other settings, other paths are canonical.
        assert!(errors("merge_slashes: false", "{ prefix: /rest//api/ }").is_empty());
        assert!(errors("escaped_slashes: keep", "{ prefix: /a%2Fb/ }").is_empty());
        let strip = errors("path_parameters: strip", "{ prefix: /a;b/ }");
        assert!(strip[0].contains("normalised to `/a/`"), "{strip:?}");
    }
}
