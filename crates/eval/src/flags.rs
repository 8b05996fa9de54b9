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
    /// The distinct attributes the rules read; conditions refer to them by index, so each is
    /// looked up at most once per evaluation.
    attributes: Box<[Attribute]>,
}

#[derive(Debug)]
struct CompiledRule {
    conditions: Box<[CompiledCondition]>,
    percentage: Option<CompiledPercentage>,
}

#[derive(Debug)]
struct CompiledPercentage {
    threshold: u32,
    /// `None` buckets by client IP octets; else the slot of the attribute.
    by: Option<usize>,
    salt: bucket::Salt,
}

#[derive(Debug)]
struct CompiledCondition {
    slot: usize,
    /// The gateway's own version, compared without formatting it.
    gateway_version: bool,
    test: Test,
}

/// The attributes a flag memoizes per evaluation; a flag reading more looks the rest up each
/// time it needs them.
const MEMO_SLOTS: usize = 8;

/// Attribute values of one evaluation, by slot: `None` until looked up.
type Memo<'a> = [Option<Val<'a>>; MEMO_SLOTS];

/// An attribute's value, without formatting the two that are not text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Absent,
    Str(&'a str),
    GatewayVersion,
    ClientIp,
}

fn slot_of(attributes: &mut Vec<Attribute>, a: &Attribute) -> usize {
    match attributes.iter().position(|x| x == a) {
        Some(i) => i,
        None => {
            attributes.push(a.clone());
            attributes.len() - 1
        }
    }
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

/// String equality that rejects on length and first byte before comparing the rest, so short
/// mismatches do not pay for a call to `memcmp`.
#[inline(always)]
pub(crate) fn eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.first() != b.first() {
        return false;
    }
    if a.len() <= 24 {
        // A byte loop the optimizer keeps inline; `==` would call `memcmp` for every length.
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        return true;
    }
    a == b
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
            self.0.iter().any(|x| eq(x, s))
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
        let mut attributes = Vec::new();
        for (j, rule) in flag.rules.iter().enumerate() {
            let conditions = rule
                .when
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    compile_condition(c, slot_of(&mut attributes, &c.attribute))
                        .map_err(|e| format!("rules[{j}].when[{k}]: {e}"))
                })
                .collect::<Result<Box<[_]>, _>>()?;
            let label = if rule.name.is_empty() {
                j.to_string()
            } else {
                rule.name.clone()
            };
            let percentage = rule.percentage.as_ref().map(|p| CompiledPercentage {
                threshold: bucket::threshold(p.percent),
                by: (p.by != Attribute::ClientIp).then(|| slot_of(&mut attributes, &p.by)),
                salt: bucket::Salt::new(&format!("flag:{}:{label}", flag.name)),
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
            attributes: attributes.into(),
        })
    }

    /// The index of the value this request gets.
    pub(crate) fn evaluate(&self, ctx: &Ctx<'_>) -> usize {
        let mut memo: Memo<'_> = [None; MEMO_SLOTS];
        let attrs = &self.attributes;
        for (j, rule) in self.rules.iter().enumerate() {
            if rule
                .conditions
                .iter()
                .all(|c| c.holds(ctx, attrs, &mut memo))
                && rule
                    .percentage
                    .as_ref()
                    .is_none_or(|p| p.inside(ctx, attrs, &mut memo))
            {
                return j + 1;
            }
        }
        0
    }
}

fn compile_condition(c: &Condition, slot: usize) -> Result<CompiledCondition, String> {
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
        slot,
        gateway_version: c.attribute == Attribute::GatewayVersion,
        test,
    })
}

/// The value in `slot`, looked up on first use.
#[inline(always)]
fn recall<'a>(memo: &mut Memo<'a>, slot: usize, attrs: &[Attribute], ctx: &Ctx<'a>) -> Val<'a> {
    match memo.get_mut(slot) {
        Some(Some(v)) => *v,
        Some(empty) => *empty.insert(lookup(&attrs[slot], ctx)),
        None => lookup(&attrs[slot], ctx),
    }
}

#[cold]
fn format_val(v: Val<'_>, ctx: &Ctx<'_>) -> String {
    match v {
        Val::GatewayVersion => ctx.meta.gateway.version.to_string(),
        Val::ClientIp => ctx.meta.client_ip.to_string(),
        Val::Absent | Val::Str(_) => String::new(),
    }
}

/// The text of a value, formatting it if it is not text already.
#[inline(always)]
fn text<'a>(v: Val<'a>, ctx: &Ctx<'a>) -> Option<Cow<'a, str>> {
    match v {
        Val::Absent => None,
        Val::Str(s) => Some(Cow::Borrowed(s)),
        Val::GatewayVersion | Val::ClientIp => Some(Cow::Owned(format_val(v, ctx))),
    }
}

impl CompiledCondition {
    fn holds<'a>(&self, ctx: &Ctx<'a>, attrs: &[Attribute], memo: &mut Memo<'a>) -> bool {
        if let (true, Test::Semver(cmp, v)) = (self.gateway_version, &self.test) {
            return cmp.holds(&ctx.meta.gateway.version, v);
        }
        let Some(value) = text(recall(memo, self.slot, attrs, ctx), ctx) else {
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
            Test::Number(cmp, n) => parse_number(value).is_some_and(|v| cmp.holds(&v, n)),
            Test::Semver(cmp, v) => semver_holds(*cmp, value, v),
        }
    }
}

/// A number from request text; plain integers skip the float parser.
#[inline]
fn parse_number(s: &str) -> Option<f64> {
    if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(s.bytes().fold(0u64, |a, b| a * 10 + u64::from(b - b'0')) as f64);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Compare a version from request text with a threshold. Plain `MAJOR.MINOR.PATCH` on both
/// sides compares as a triple; anything else takes the full semver parser, with the same result.
#[inline]
fn semver_holds(cmp: Cmp, value: &str, threshold: &semver::Version) -> bool {
    fn triple(s: &str) -> Option<(u64, u64, u64)> {
        let mut out = [0u64; 3];
        let mut part = 0;
        let mut digits = 0;
        let mut leading_zero = false;
        for b in s.bytes() {
            match b {
                b'0'..=b'9' => {
                    if digits == 1 && leading_zero {
                        return None;
                    }
                    leading_zero = digits == 0 && b == b'0';
                    digits += 1;
                    out[part] = out[part]
                        .checked_mul(10)?
                        .checked_add(u64::from(b - b'0'))?;
                }
                b'.' if digits > 0 && part < 2 => {
                    part += 1;
                    digits = 0;
                }
                _ => return None,
            }
        }
        (part == 2 && digits > 0).then_some((out[0], out[1], out[2]))
    }
    if threshold.pre.is_empty()
        && threshold.build.is_empty()
        && let Some(v) = triple(value)
    {
        return cmp.holds(&v, &(threshold.major, threshold.minor, threshold.patch));
    }
    semver::Version::parse(value).is_ok_and(|v| cmp.holds(&v, threshold))
}

impl CompiledPercentage {
    fn inside<'a>(&self, ctx: &Ctx<'a>, attrs: &[Attribute], memo: &mut Memo<'a>) -> bool {
        let bucket = match self.by {
            None => self
                .salt
                .bucket(StickyKey::ip(ctx.meta.client_ip).as_bytes()),
            Some(slot) => match text(recall(memo, slot, attrs, ctx), ctx) {
                Some(key) => self.salt.bucket(key.as_bytes()),
                None => return false,
            },
        };
        bucket < self.threshold
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
        other => text(lookup(other, ctx), ctx).map(StickyKey::Text),
    }
}

/// The value of an attribute in this context.
#[inline(always)]
pub(crate) fn lookup<'a>(attribute: &Attribute, ctx: &Ctx<'a>) -> Val<'a> {
    let meta = ctx.meta;
    let found = match attribute {
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
            .find(|(k, _)| eq(k, name))
            .map(|(_, v)| *v),
        Attribute::GatewayVersion => return Val::GatewayVersion,
        Attribute::ClientIp => return Val::ClientIp,
    };
    found.map_or(Val::Absent, Val::Str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_semver_agrees_with_the_parser() {
        let thresholds = ["2.0.0", "0.1.0", "1.10.3", "2.0.0-rc.1", "1.0.0+build"];
        let values = [
            "2.0.0",
            "1.9.9",
            "10.0.0",
            "2.0.0-beta",
            "01.2.3",
            "1.2",
            "1.2.3.4",
            "",
            "x.y.z",
            "2.0.0+meta",
            "1.10.3",
            "1.10.03",
            "18446744073709551615.0.0",
        ];
        for t in thresholds {
            let tv = semver::Version::parse(t).unwrap();
            for v in values {
                for cmp in [Cmp::Gt, Cmp::Gte, Cmp::Lt, Cmp::Lte] {
                    let full = semver::Version::parse(v).is_ok_and(|x| cmp.holds(&x, &tv));
                    assert_eq!(semver_holds(cmp, v, &tv), full, "{v} {cmp:?} {t}");
                }
            }
        }
    }

    #[test]
    fn fast_numbers_agree_with_the_parser() {
        for v in [
            "0",
            "250",
            "1000",
            "999999999999999",
            "1e3",
            "-4",
            "2.5",
            "",
            "abc",
            "inf",
            "NaN",
        ] {
            assert_eq!(
                parse_number(v),
                v.parse::<f64>().ok().filter(|x| x.is_finite()),
                "{v}"
            );
        }
    }
}
