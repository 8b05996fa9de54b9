//! Feature flags: typed variables with a schema, a risk level, targeting rules and sticky
//! percentage rollouts.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::change::Risk;

/// A feature flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FlagType,
    /// A JSON Schema (draft 2020-12 unless `$schema` says otherwise) that every value satisfies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    pub default: Value,
    pub risk: Risk,
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// An infrastructure flag's default must equal its value in the last known good snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
    /// Evaluated in order; the first that matches gives the value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FlagRule>,
}

impl Flag {
    /// Every value the flag can take: the default first, then each rule's, in order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        std::iter::once(&self.default).chain(self.rules.iter().map(|r| &r.value))
    }
}

crate::wire_enum! {
    /// The type of a flag's values.
    pub enum FlagType {
        Bool,
        Int,
        Float,
        String,
        Json,
    }
}

impl FlagType {
    /// Whether `value` has this type.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            FlagType::Bool => value.is_boolean(),
            FlagType::Int => value.is_i64() || value.is_u64(),
            FlagType::Float => value.is_number(),
            FlagType::String => value.is_string(),
            FlagType::Json => true,
        }
    }
}

/// A targeting rule: all conditions hold, and the request falls inside the percentage if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percentage>,
    pub value: Value,
}

/// A sticky percentage of requests, bucketed by an attribute and salted by flag and rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Percentage {
    /// 0 to 100, in steps of 0.0001.
    pub percent: f64,
    /// The attribute whose value is hashed; a request without it is outside.
    #[serde(default = "Percentage::default_by")]
    pub by: Attribute,
}

impl Percentage {
    fn default_by() -> Attribute {
        Attribute::Tenant
    }
}

/// One condition on the evaluation context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub attribute: Attribute,
    pub op: Op,
    pub values: Vec<Scalar>,
}

/// A comparison. Numeric and semver operators take one value; the rest take a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    In,
    NotIn,
    StartsWith,
    EndsWith,
    Contains,
    Matches,
    Gt,
    Gte,
    Lt,
    Lte,
    SemverGte,
    SemverLt,
}

impl Op {
    /// Whether the operator compares against exactly one value.
    pub fn is_single_valued(self) -> bool {
        matches!(
            self,
            Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::SemverGte | Op::SemverLt
        )
    }
}

/// A string, number or boolean from YAML, kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(Scalar(v.to_string())),
            other => Err(D::Error::custom(format_args!(
                "expected a string, number or boolean, found {}",
                json_kind(&other)
            ))),
        }
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// What a condition or a percentage looks at in the evaluation context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Attribute {
    Tenant,
    Product,
    Route,
    Cell,
    GatewayId,
    GatewayVersion,
    Method,
    Path,
    ClientIp,
    /// A request header, written `header.<name>`.
    Header(String),
    /// An arbitrary context attribute, written `attr.<name>`.
    Attr(String),
}

crate::string_schema!(
    Attribute,
    "tenant, product, route, cell, gateway_id, gateway_version, method, path, client_ip, header.<name> or attr.<name>"
);

/// An attribute name that is not one rampart knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown attribute `{0}`: expected tenant, product, route, cell, gateway_id, gateway_version, method, path, client_ip, header.<name> or attr.<name>"
)]
pub struct AttributeError(String);

impl TryFrom<String> for Attribute {
    type Error = AttributeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(match s.as_str() {
            "tenant" => Attribute::Tenant,
            "product" => Attribute::Product,
            "route" => Attribute::Route,
            "cell" => Attribute::Cell,
            "gateway_id" => Attribute::GatewayId,
            "gateway_version" => Attribute::GatewayVersion,
            "method" => Attribute::Method,
            "path" => Attribute::Path,
            "client_ip" => Attribute::ClientIp,
            _ => match s.split_once('.') {
                Some(("header", name)) if !name.is_empty() => {
                    Attribute::Header(name.to_ascii_lowercase())
                }
                Some(("attr", name)) if !name.is_empty() => Attribute::Attr(name.to_owned()),
                _ => return Err(AttributeError(s)),
            },
        })
    }
}

impl From<Attribute> for String {
    fn from(a: Attribute) -> String {
        a.to_string()
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Tenant => f.write_str("tenant"),
            Attribute::Product => f.write_str("product"),
            Attribute::Route => f.write_str("route"),
            Attribute::Cell => f.write_str("cell"),
            Attribute::GatewayId => f.write_str("gateway_id"),
            Attribute::GatewayVersion => f.write_str("gateway_version"),
            Attribute::Method => f.write_str("method"),
            Attribute::Path => f.write_str("path"),
            Attribute::ClientIp => f.write_str("client_ip"),
            Attribute::Header(h) => write!(f, "header.{h}"),
            Attribute::Attr(a) => write!(f, "attr.{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_and_print() {
        for s in ["tenant", "gateway_version", "header.x-plan", "attr.seats"] {
            let a = Attribute::try_from(s.to_owned()).unwrap();
            assert_eq!(a.to_string(), s);
        }
        let err = Attribute::try_from("tenantt".to_owned()).unwrap_err();
        assert!(err.to_string().contains("`tenantt`"));
        assert!(Attribute::try_from("header.".to_owned()).is_err());
    }

    #[test]
    fn scalars_accept_numbers_and_refuse_lists() {
        let s: Vec<Scalar> = serde_json::from_str(r#"["a", 10, true]"#).unwrap();
        assert_eq!(
            s,
            vec![
                Scalar("a".into()),
                Scalar("10".into()),
                Scalar("true".into())
            ]
        );
        assert!(serde_json::from_str::<Scalar>("[1]").is_err());
    }
}
