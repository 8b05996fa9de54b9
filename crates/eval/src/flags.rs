//! Compiled flags: targeting rules and sticky percentages, evaluated without allocation on the
//! common path.

use std::borrow::Cow;
use std::net::IpAddr;

use rampart_model::Attribute;
use rampart_model::flag::{Condition, Flag, Op};
use serde_json::Value;

use crate::bucket;
use crate::request::RequestMeta;

/// What a flag rule can see: the request, and what evaluation has learned so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub meta: &'a RequestMeta<'a>,
    pub tenant: Option<&'a str>,
    pub route: Option<&'a str>,
    pub product: Option<&'a str>,
}

/// A flag ready to evaluate. Its values are numbered: 0 is the default, `j + 1` is rule `j`'s.
#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub name: Box<str>,
    pub values: Box<[Value]>,
    rules: Box<[CompiledRule]>,
}

#[derive(Debug)]
struct CompiledRule {
    conditions: Box<[CompiledCondition]>,
    percentage: Option<CompiledPercentage>,
}

#[derive(Debug)]
struct CompiledPercentage {
    threshold: u32,
    by: Attribute,
    salt: Box<str>,
}

#[derive(Debug)]
struct CompiledCondition {
    attribute: Attribute,
    test: Test,
}

#[derive(Debug)]
enum Test {
    In(StrSet),
    NotIn(StrSet),
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    Matches(Box<[regex::Regex]>),
    Number(Cmp, f64),
    Semver(Cmp, semver::Version),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, left: &T, right: &T) -> bool {
        match self {
            Cmp::Gt => left > right,
            Cmp::Gte => left >= right,
            Cmp::Lt => left < right,
            Cmp::Lte => left <= right,
        }
    }
}

/// A set of strings: a linear scan when small, a binary search when not.
#[derive(Debug)]
pub(crate) struct StrSet(Box<[Box<str>]>);

impl StrSet {
    pub(crate) fn new<'s>(items: impl Iterator<Item = &'s str>) -> Self {
        let mut v: Vec<Box<str>> = items.map(Box::from).collect();
        v.sort_unstable();
        v.dedup();
        StrSet(v.into_boxed_slice())
    }

    pub(crate) fn contains(&self, s: &str) -> bool {
        if self.0.len() <= 8 {
            self.0.iter().any(|x| &**x == s)
        } else {
            self.0.binary_search_by(|x| (**x).cmp(s)).is_ok()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl CompiledFlag {
    /// Compile a flag that has passed validation. Errors name the rule at fault.
    pub(crate) fn compile(flag: &Flag) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(flag.rules.len());
        for (j, rule) in flag.rules.iter().enumerate() {
            let conditions = rule
                .when
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    compile_condition(c).map_err(|e| format!("rules[{j}].when[{k}]: {e}"))
                })
                .collect::<Result<Box<[_]>, _>>()?;
            let label = if rule.name.is_empty() {
                j.to_string()
            } else {
                rule.name.clone()
            };
            let percentage = rule.percentage.as_ref().map(|p| CompiledPercentage {
                threshold: bucket::threshold(p.percent),
                by: p.by.clone(),
                salt: format!("flag:{}:{label}", flag.name).into(),
            });
            rules.push(CompiledRule {
                conditions,
                percentage,
            });
        }
        Ok(CompiledFlag {
            name: flag.name.as_str().into(),
            values: flag.values().cloned().collect(),
            rules: rules.into(),
        })
    }

    /// The index of the value this request gets.
    pub(crate) fn evaluate(&self, ctx: &Ctx<'_>) -> usize {
        for (j, rule) in self.rules.iter().enumerate() {
            if rule.conditions.iter().all(|c| c.holds(ctx))
                && rule.percentage.as_ref().is_none_or(|p| p.inside(ctx))
            {
                return j + 1;
            }
        }
        0
    }
}

fn compile_condition(c: &Condition) -> Result<CompiledCondition, String> {
    let strs = || c.values.iter().map(|s| Box::from(s.0.as_str())).collect();
    let one = || c.values.first().map(|s| s.0.as_str()).ok_or("no value");
    let cmp = |op| match op {
        Op::Gt => Cmp::Gt,
        Op::Gte | Op::SemverGte => Cmp::Gte,
        Op::Lt | Op::SemverLt => Cmp::Lt,
        _ => Cmp::Lte,
    };
    let test = match c.op {
        Op::In => Test::In(StrSet::new(c.values.iter().map(|s| s.0.as_str()))),
        Op::NotIn => Test::NotIn(StrSet::new(c.values.iter().map(|s| s.0.as_str()))),
        Op::StartsWith => Test::StartsWith(strs()),
        Op::EndsWith => Test::EndsWith(strs()),
        Op::Contains => Test::Contains(strs()),
        Op::Matches => Test::Matches(
            c.values
                .iter()
                .map(|s| rampart_model::validate::compile_regex(&s.0))
                .collect::<Result<_, _>>()?,
        ),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let v = one()?;
            Test::Number(
                cmp(c.op),
                v.parse().map_err(|_| format!("`{v}` is not a number"))?,
            )
        }
        Op::SemverGte | Op::SemverLt => {
            let v = one()?;
            Test::Semver(
                cmp(c.op),
                semver::Version::parse(v).map_err(|e| e.to_string())?,
            )
        }
    };
    Ok(CompiledCondition {
        attribute: c.attribute.clone(),
        test,
    })
}

impl CompiledCondition {
    fn holds(&self, ctx: &Ctx<'_>) -> bool {
        // The gateway's own version is compared without formatting it.
        if let (Attribute::GatewayVersion, Test::Semver(cmp, v)) = (&self.attribute, &self.test) {
            return cmp.holds(&ctx.meta.gateway.version, v);
        }
        let Some(value) = lookup(&self.attribute, ctx) else {
            // An absent attribute is outside every set, so `not_in` holds.
            return matches!(self.test, Test::NotIn(_));
        };
        let value: &str = &value;
        match &self.test {
            Test::In(set) => set.contains(value),
            Test::NotIn(set) => !set.contains(value),
            Test::StartsWith(xs) => xs.iter().any(|x| value.starts_with(&**x)),
            Test::EndsWith(xs) => xs.iter().any(|x| value.ends_with(&**x)),
            Test::Contains(xs) => xs.iter().any(|x| value.contains(&**x)),
            Test::Matches(res) => res.iter().any(|r| r.is_match(value)),
            Test::Number(cmp, n) => value.parse::<f64>().is_ok_and(|v| cmp.holds(&v, n)),
            Test::Semver(cmp, v) => semver::Version::parse(value).is_ok_and(|x| cmp.holds(&x, v)),
        }
    }
}

impl CompiledPercentage {
    fn inside(&self, ctx: &Ctx<'_>) -> bool {
        match sticky_key(&self.by, ctx) {
            Some(key) => bucket::bucket(&self.salt, key.as_bytes()) < self.threshold,
            None => false,
        }
    }
}

/// The bytes a percentage buckets on: an IP by its octets, anything else by its text.
pub(crate) enum StickyKey<'a> {
    Text(Cow<'a, str>),
    V4([u8; 4]),
    V6([u8; 16]),
}

impl StickyKey<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            StickyKey::Text(s) => s.as_bytes(),
            StickyKey::V4(b) => b,
            StickyKey::V6(b) => b,
        }
    }

    pub(crate) fn ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => StickyKey::V4(v4.octets()),
            IpAddr::V6(v6) => StickyKey::V6(v6.octets()),
        }
    }
}

pub(crate) fn sticky_key<'a>(by: &Attribute, ctx: &Ctx<'a>) -> Option<StickyKey<'a>> {
    match by {
        Attribute::ClientIp => Some(StickyKey::ip(ctx.meta.client_ip)),
        other => lookup(other, ctx).map(StickyKey::Text),
    }
}

/// The value of an attribute in this context; borrowed except for the few that are formatted.
pub(crate) fn lookup<'a>(attribute: &Attribute, ctx: &Ctx<'a>) -> Option<Cow<'a, str>> {
    let meta = ctx.meta;
    let borrowed = match attribute {
        Attribute::Tenant => ctx.tenant,
        Attribute::Product => ctx.product,
        Attribute::Route => ctx.route,
        Attribute::Cell => Some(meta.gateway.cell.as_str()),
        Attribute::GatewayId => Some(meta.gateway.id.as_str()),
        Attribute::Method => Some(meta.method),
        Attribute::Path => Some(meta.path),
        Attribute::Header(name) => meta.headers.get(name),
        Attribute::Attr(name) => meta
            .attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v),
        Attribute::GatewayVersion => return Some(Cow::Owned(meta.gateway.version.to_string())),
        Attribute::ClientIp => return Some(Cow::Owned(meta.client_ip.to_string())),
    };
    borrowed.map(Cow::Borrowed)
}
