//! Flags: their rules, conditions and the values requests can receive.

use super::*;

/// The values of a flag that some request can receive, with where each comes from. Rules after
/// an unconditional one, and then the default, are unreachable.
pub fn reachable_values(flag: &Flag) -> Vec<(&Value, String)> {
    let mut out = Vec::new();
    for (j, rule) in flag.rules.iter().enumerate() {
        out.push((&rule.value, rule_origin(flag, j)));
        let all =
            rule.when.is_empty() && rule.percentage.as_ref().is_none_or(|p| p.percent >= 100.0);
        if all {
            return out;
        }
    }
    out.push((
        &flag.default,
        format!("the default of flag `{}`", flag.name),
    ));
    out
}

pub(super) fn rule_origin(flag: &Flag, j: usize) -> String {
    let rule = &flag.rules[j];
    if rule.name.is_empty() {
        format!("rule {j} of flag `{}`", flag.name)
    } else {
        format!("rule `{}` of flag `{}`", rule.name, flag.name)
    }
}

impl Validator<'_> {
    pub(super) fn flag(&mut self, path: &str, f: &Flag) {
        self.ident(&format!("{path}.name"), &f.name);
        self.string_len(&format!("{path}.owner"), &f.owner);
        if f.owner.trim().is_empty() {
            self.err(
                format!("{path}.owner"),
                Rule::Format,
                "every flag needs an owner",
            );
        }
        self.limit(
            &format!("{path}.rules"),
            f.rules.len(),
            LIMITS.max_rules_per_flag,
        );
        let named = f.rules.iter().filter(|r| !r.name.is_empty());
        self.unique(
            &format!("{path}.rules"),
            named.map(|r| r.name.as_str()),
            "rule",
        );

        let schema = match &f.schema {
            None => None,
            Some(s) => match jsonschema::validator_for(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        format!("{path}.schema"),
                        Rule::Schema,
                        format!("is not a valid JSON Schema: {e}"),
                    );
                    None
                }
            },
        };
        let mut values = vec![(format!("{path}.default"), &f.default)];
        values.extend(
            f.rules
                .iter()
                .enumerate()
                .map(|(j, r)| (format!("{path}.rules[{j}].value"), &r.value)),
        );
        for (vpath, value) in values {
            if !f.kind.admits(value) {
                self.err(
                    &vpath,
                    Rule::Schema,
                    format!(
                        "flag `{}` is of type {}, but this value is {}",
                        f.name,
                        f.kind,
                        crate::flag::json_kind(value)
                    ),
                );
                continue;
            }
            let len = value.to_string().len();
            if len > LIMITS.max_flag_value_bytes {
                self.err(
                    &vpath,
                    Rule::Limit,
                    format!(
                        "is {len} bytes of JSON; the limit is {}",
                        LIMITS.max_flag_value_bytes
                    ),
                );
            }
            if let Some(schema) = &schema {
                for e in schema.iter_errors(value) {
                    let at = e.instance_path.to_string();
                    let at = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at {at}")
                    };
                    self.err(
                        &vpath,
                        Rule::Schema,
                        format!("breaks the flag's schema{at}: {e}"),
                    );
                }
            }
        }
        for (j, rule) in f.rules.iter().enumerate() {
            let rpath = format!("{path}.rules[{j}]");
            self.limit(
                &format!("{rpath}.when"),
                rule.when.len(),
                LIMITS.max_conditions_per_rule,
            );
            for (k, c) in rule.when.iter().enumerate() {
                self.condition(&format!("{rpath}.when[{k}]"), c);
            }
            if let Some(p) = &rule.percentage {
                if !percent_ok(p.percent) {
                    self.err(
                        format!("{rpath}.percentage.percent"),
                        Rule::Range,
                        format!(
                            "{} is not a percentage from 0 to 100 in steps of 0.0001",
                            p.percent
                        ),
                    );
                }
                self.attribute(&format!("{rpath}.percentage.by"), &p.by);
            }
        }
    }

    fn attribute(&mut self, path: &str, a: &Attribute) {
        match a {
            Attribute::Header(h) => self.header_name(path, h),
            Attribute::Attr(name) => self.ident(path, name),
            _ => {}
        }
    }

    fn condition(&mut self, path: &str, c: &Condition) {
        self.attribute(&format!("{path}.attribute"), &c.attribute);
        let vpath = format!("{path}.values");
        self.limit(&vpath, c.values.len(), LIMITS.max_values_per_condition);
        if c.values.is_empty() {
            self.err(&vpath, Rule::Format, "a condition needs at least one value");
            return;
        }
        if c.op.is_single_valued() && c.values.len() != 1 {
            self.err(
                &vpath,
                Rule::Format,
                format!("operator {:?} takes exactly one value", c.op),
            );
        }
        for (k, s) in c.values.iter().enumerate() {
            let p = format!("{vpath}[{k}]");
            if !self.string_len(&p, &s.0) {
                continue;
            }
            match c.op {
                Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                    if !s.0.parse::<f64>().is_ok_and(f64::is_finite) {
                        self.err(p, Rule::Format, format!("`{}` is not a number", s.0));
                    }
                }
                Op::SemverGte | Op::SemverLt => {
                    if let Err(e) = semver::Version::parse(&s.0) {
                        self.err(
                            p,
                            Rule::Format,
                            format!("`{}` is not a semantic version: {e}", s.0),
                        );
                    }
                }
                Op::Matches => {
                    if let Err(m) = compile_regex(&s.0) {
                        self.err(p, Rule::Regex, m);
                    }
                }
                Op::In | Op::NotIn | Op::StartsWith | Op::EndsWith | Op::Contains => {}
            }
        }
    }
}
