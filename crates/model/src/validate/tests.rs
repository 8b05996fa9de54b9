//! One test per rule: each shows the rule rejecting a bad input and accepting a good one.

use super::*;
use crate::config::{PolicyKind, RateLimitPolicy};
use crate::load::from_yaml;

const BASE: &str = r#"
environment: prod
products:
  - name: jira
upstreams:
  - name: jira-app
    endpoints: ["127.0.0.1:8081", "jira.internal:8443"]
    health_check: { path: /healthz }
flags:
  - name: rate
    type: int
    schema: { type: integer, minimum: 1 }
    default: 100
    risk: medium
    owner: team-edge
    rules:
      - name: big
        when: [{ attribute: tenant, op: in, values: [acme] }]
        value: 1000
  - name: access-default
    type: string
    default: allow
    risk: high
    owner: team-sec
policies:
  - id: limit
    rate_limit: { per_second: { flag: rate }, burst: 10, key: tenant }
  - id: gate
    access:
      default: { flag: access-default }
      rules:
        - { action: deny, cidrs: ["192.0.2.0/24"] }
  - id: maint
    static_response: { status: 503, body: down }
routes:
  - id: rest
    product: jira
    match:
      host: jira.example.com
      path: { prefix: /rest/ }
      headers: [{ name: user-agent, value: { regex: "^curl/" } }]
    upstream: jira-app
    policies: [gate, limit]
  - id: web
    product: jira
    match: { path: { prefix: / } }
    upstream: jira-app
    policies: [gate]
"#;

fn base() -> Config {
    from_yaml(BASE).expect("the base config parses")
}

fn errors(c: &Config) -> Vec<ValidationError> {
    errors_declared(c, &DeclaredImpact::default())
}

fn errors_declared(c: &Config, d: &DeclaredImpact) -> Vec<ValidationError> {
    match validate(c, d) {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    }
}

#[track_caller]
fn assert_rejects(c: &Config, rule: Rule, path: &str) {
    let errs = errors(c);
    assert!(
        errs.iter().any(|e| e.rule == rule && e.path == path),
        "expected {rule:?} at {path}, got {errs:#?}"
    );
}

fn policy<'c>(c: &'c mut Config, id: &str) -> &'c mut Policy {
    c.policies.iter_mut().find(|p| p.id == id).unwrap()
}

#[test]
fn base_config_and_example_are_valid() {
    assert_eq!(errors(&base()), vec![]);
    let example: Config = from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap();
    assert_eq!(errors(&example), vec![]);
}

#[test]
fn schema_rule() {
    let mut c = base();
    c.flags[0].default = serde_json::json!(0);
    assert_rejects(&c, Rule::Schema, "flags[0].default");
    c.flags[0].default = serde_json::json!("many");
    assert_rejects(&c, Rule::Schema, "flags[0].default");
    c.flags[0].default = serde_json::json!(5);
    c.flags[0].rules[0].value = serde_json::json!(-3);
    assert_rejects(&c, Rule::Schema, "flags[0].rules[0].value");
    c.flags[0].rules[0].value = serde_json::json!(3);
    c.flags[0].schema = Some(serde_json::json!({ "type": "no-such-type" }));
    assert_rejects(&c, Rule::Schema, "flags[0].schema");
    c.flags[0].schema = Some(serde_json::json!({ "type": "integer" }));
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn binding_type_rule() {
    let mut c = base();
    c.flags[1].default = serde_json::json!("maybe");
    assert_rejects(&c, Rule::Schema, "policies[1].access.default");
    c.flags[1].default = serde_json::json!("deny");
    c.policies[1].kind = match c.policies[1].kind.clone() {
        PolicyKind::Access(mut a) => {
            a.rules.push(crate::config::AccessRule {
                action: Action::Allow,
                cidrs: vec![],
                tenants: vec!["acme".into()],
                headers: vec![],
            });
            PolicyKind::Access(a)
        }
        _ => unreachable!(),
    };
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn reference_rule() {
    let mut c = base();
    c.routes[0].upstream = "nope".into();
    c.routes[0].product = "jiro".into();
    c.routes[0].policies.push("missing".into());
    policy(&mut c, "limit").kind = PolicyKind::RateLimit(RateLimitPolicy {
        per_second: Bindable::Flag("ghost".into()),
        burst: Bindable::Literal(1),
        key: crate::config::RequestKey::Tenant,
    });
    assert_rejects(&c, Rule::Reference, "routes[0].upstream");
    assert_rejects(&c, Rule::Reference, "routes[0].product");
    assert_rejects(&c, Rule::Reference, "routes[0].policies[2]");
    assert_rejects(&c, Rule::Reference, "policies[0].rate_limit.per_second");
    let d = DeclaredImpact {
        changed_percent: 0.0,
        denies_all: vec!["ghost-route".into()],
    };
    let errs = errors_declared(&base(), &d);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].rule, errs[0].path.as_str()),
        (Rule::Reference, "declared_impact.denies_all[0]")
    );
}

#[test]
fn range_rule_on_literals_and_on_every_flag_value() {
    let mut c = base();
    c.upstreams[0].timeouts.connect_ms = 0;
    assert_rejects(&c, Rule::Range, "upstreams[0].timeouts.connect_ms");
    let mut c = base();
    c.upstreams[0].retries.attempts = 9;
    assert_rejects(&c, Rule::Range, "upstreams[0].retries.attempts");
    // An erroneous flag value is caught at the policy field it feeds, even in a targeted rule.
    let mut c = base();
    c.flags[0].schema = None;
    c.flags[0].rules[0].value = serde_json::json!(0);
    let errs = errors(&c);
    let e = errs
        .iter()
        .find(|e| e.path == "policies[0].rate_limit.per_second")
        .unwrap();
    assert_eq!(e.rule, Rule::Range);
    assert!(
        e.message.contains("rule `big` of flag `rate` is 0"),
        "{}",
        e.message
    );
    let mut c = base();
    c.flags[0].rules[0].percentage = Some(crate::flag::Percentage {
        percent: 100.5,
        by: Attribute::Tenant,
    });
    assert_rejects(&c, Rule::Range, "flags[0].rules[0].percentage.percent");
    c.flags[0].rules[0].percentage = Some(crate::flag::Percentage {
        percent: 12.3456,
        by: Attribute::Tenant,
    });
    assert_eq!(errors(&c), vec![]);
    c.flags[0].rules[0].percentage = Some(crate::flag::Percentage {
        percent: 12.34567,
        by: Attribute::Tenant,
    });
    assert_rejects(&c, Rule::Range, "flags[0].rules[0].percentage.percent");
}

#[test]
fn regex_rule() {
    let mut c = base();
    c.routes[0].matcher.headers[0].value = ValueMatch::Regex("(unclosed".into());
    assert_rejects(&c, Rule::Regex, "routes[0].match.headers[0].value.regex");
    c.routes[0].matcher.headers[0].value = ValueMatch::Regex(r"(\w{50}){50}".into());
    assert_rejects(&c, Rule::Regex, "routes[0].match.headers[0].value.regex");
    c.routes[0].matcher.headers[0].value = ValueMatch::Regex("a".repeat(2000));
    assert_rejects(&c, Rule::Regex, "routes[0].match.headers[0].value.regex");
    c.flags[0].rules[0].when[0] = Condition {
        attribute: Attribute::Path,
        op: Op::Matches,
        values: vec![crate::flag::Scalar("[z-a]".into())],
    };
    assert_rejects(&c, Rule::Regex, "flags[0].rules[0].when[0].values[0]");
    let mut c = base();
    c.routes[0].matcher.headers[0].value = ValueMatch::Regex(r"^git/\d+".into());
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn limit_rule() {
    let mut c = base();
    c.routes[1].policies = (0..=LIMITS.max_policies_per_route)
        .map(|i| format!("p{i}"))
        .collect();
    assert_rejects(&c, Rule::Limit, "routes[1].policies");
    let mut c = base();
    c.products[0].description = String::new();
    c.flags[0].owner = "x".repeat(LIMITS.max_string + 1);
    assert_rejects(&c, Rule::Limit, "flags[0].owner");
    let mut c = base();
    c.routes[1].policies = vec!["gate".into(); 1];
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn duplicate_rule() {
    let mut c = base();
    c.routes.push(c.routes[1].clone());
    c.upstreams[0].endpoints.push("127.0.0.1:8081".into());
    c.routes[0].policies.push("gate".into());
    assert_rejects(&c, Rule::Duplicate, "routes[2]");
    assert_rejects(&c, Rule::Duplicate, "upstreams[0].endpoints[2]");
    assert_rejects(&c, Rule::Duplicate, "routes[0].policies[2]");
    let errs = errors(&c);
    let e = errs.iter().find(|e| e.path == "routes[2]").unwrap();
    assert!(
        e.message.contains("already defined at routes[1]"),
        "{}",
        e.message
    );
}

#[test]
fn duplicate_yaml_keys_are_refused_when_loading() {
    let yaml = "environment: prod\nenvironment: dev\n";
    let err = from_yaml::<Config>(yaml).unwrap_err();
    assert!(err.message.contains("duplicate"), "{err}");
}

#[test]
fn format_rule() {
    let mut c = base();
    c.routes[0].matcher.host = Some("Jira.Example.com".into());
    c.upstreams[0].endpoints[0] = "127.0.0.1".into();
    c.upstreams[0].endpoints[1] = "host:0".into();
    c.routes[1].id = "has space".into();
    c.routes[1].matcher.path = PathMatch::Prefix("rest".into());
    assert_rejects(&c, Rule::Format, "routes[0].match.host");
    assert_rejects(&c, Rule::Format, "upstreams[0].endpoints[0]");
    assert_rejects(&c, Rule::Format, "upstreams[0].endpoints[1]");
    assert_rejects(&c, Rule::Format, "routes[1].id");
    assert_rejects(&c, Rule::Format, "routes[1].match.path.prefix");
    let mut c = base();
    c.routes[0].matcher.host = Some("*.example.com".into());
    c.upstreams[0].endpoints[0] = "[::1]:8080".into();
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn api_keys_must_be_stored_hashed() {
    let mut c: Config = from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap();
    let i = c
        .policies
        .iter()
        .position(|p| p.id == "jira-api-key")
        .unwrap();
    if let PolicyKind::Auth(AuthPolicy::ApiKey(k)) = &mut c.policies[i].kind {
        k.keys[0].sha256 = "jira-ci-demo-key".into();
    }
    assert_rejects(
        &c,
        Rule::Format,
        &format!("policies[{i}].auth.api_key.keys[0].sha256"),
    );
}

#[test]
fn denies_all_rule() {
    // A static error response on every request of a route.
    let mut c = base();
    c.routes[0].policies.insert(0, "maint".into());
    assert_rejects(&c, Rule::DeniesAll, "routes[0].policies[0]");
    let d = DeclaredImpact {
        changed_percent: 100.0,
        denies_all: vec!["rest".into()],
    };
    assert_eq!(errors_declared(&c, &d), vec![]);

    // An access default driven by a flag: the erroneous value makes it deny all.
    let mut c = base();
    c.flags[1].default = serde_json::json!("deny");
    assert_rejects(&c, Rule::DeniesAll, "routes[0].policies[0]");
    assert_rejects(&c, Rule::DeniesAll, "routes[1].policies[0]");
    // ... but not when a rule of the flag still allows some requests.
    c.flags[1].rules.push(crate::flag::FlagRule {
        name: "staff".into(),
        when: vec![Condition {
            attribute: Attribute::Tenant,
            op: Op::In,
            values: vec![crate::flag::Scalar("staff".into())],
        }],
        percentage: None,
        value: serde_json::json!("allow"),
    });
    assert_eq!(errors(&c), vec![]);

    // A policy disabled by a flag that is off everywhere does not deny anything.
    let mut c = base();
    c.flags
        .push(from_yaml("{name: m, type: bool, default: false, risk: low, owner: o}").unwrap());
    policy(&mut c, "maint").enabled = Bindable::Flag("m".into());
    c.routes[0].policies.insert(0, "maint".into());
    assert_eq!(errors(&c), vec![]);
}

#[test]
fn product_unreachable_rule() {
    let mut c = base();
    c.products.push(crate::config::Product {
        name: "trello".into(),
        description: String::new(),
    });
    assert_rejects(&c, Rule::ProductUnreachable, "products[1]");

    // Declaring that both routes deny all is allowed per route, but the product still needs one.
    let mut c = base();
    for r in &mut c.routes {
        r.policies.insert(0, "maint".into());
    }
    let d = DeclaredImpact {
        changed_percent: 100.0,
        denies_all: vec!["rest".into(), "web".into()],
    };
    let errs = errors_declared(&c, &d);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        (errs[0].rule, errs[0].path.as_str()),
        (Rule::ProductUnreachable, "products[0]")
    );

    c.routes[1].policies.remove(0);
    let d = DeclaredImpact {
        changed_percent: 50.0,
        denies_all: vec!["rest".into()],
    };
    assert_eq!(errors_declared(&c, &d), vec![]);
}

#[test]
fn all_errors_are_reported_at_once() {
    let mut c = base();
    c.routes[0].upstream = "nope".into();
    c.upstreams[0].timeouts.read_ms = 0;
    c.flags[0].default = serde_json::json!("x");
    c.routes.push(c.routes[1].clone());
    let errs = errors(&c);
    let rules: HashSet<Rule> = errs.iter().map(|e| e.rule).collect();
    assert!(rules.len() >= 4, "{errs:#?}");
}

#[test]
fn scope_percent_is_checked() {
    let scope = StageScope {
        cells: vec![],
        gateways: vec![],
        percent: 101.0,
    };
    assert!(validate_scope("rollouts[0].scope", &scope).is_err());
    let scope = StageScope {
        percent: 0.01,
        ..scope
    };
    assert!(validate_scope("rollouts[0].scope", &scope).is_ok());
}
