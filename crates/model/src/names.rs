//! Enum names on the wire, from one derive.
//!
//! rampart's enums derive `strum::IntoStaticStr`, `strum::EnumString`, `strum::Display` and
//! `strum::VariantArray` (snake_case, the same names serde uses). This module adds the two things
//! strum leaves out: `as_str()` on every such enum ([`EnumName`]), and a parse error that says
//! what was expected ([`parse_name`], [`UnknownName`]).

use std::str::FromStr;

use strum::VariantArray;

/// `as_str()` for every enum whose names come from `strum::IntoStaticStr`.
pub trait EnumName: Copy {
    /// The name used on the wire and in storage.
    fn as_str(self) -> &'static str;
}

impl<T: Copy> EnumName for T
where
    &'static str: From<T>,
{
    fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A string that names no variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected {expected})")]
pub struct UnknownName {
    /// What was being parsed: "environment", "role", ...
    pub what: &'static str,
    /// The string that matched nothing.
    pub value: String,
    /// Every accepted name, comma-separated.
    pub expected: String,
}

/// Parse `value` as a `T`, or say which names `T` accepts.
pub fn parse_name<T>(what: &'static str, value: &str) -> Result<T, UnknownName>
where
    T: FromStr + VariantArray + EnumName,
{
    T::from_str(value).map_err(|_| UnknownName {
        what,
        value: value.to_owned(),
        expected: T::VARIANTS
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `utoipa::ToSchema` for a type that is a string on the wire (serde `try_from`/`into`
/// `String`): its schema is a string with `description`.
#[macro_export]
macro_rules! string_schema {
    ($ty:ty, $description:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {}
    };
}
