//! Enum names on the wire, from one derive.
//!
//! rampart's enums are declared with [`wire_enum!`](crate::wire_enum), which derives serde,
//! `utoipa::ToSchema` and `strum::{Display, EnumString, IntoStaticStr, VariantArray}` with the
//! same names for serde and strum (snake_case unless the enum says otherwise). This module adds
//! the two things strum leaves out: `as_str()` on every such enum ([`EnumName`]), and a parse
//! error that says what was expected ([`parse_name`], [`UnknownName`]).

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

/// Declare an enum whose names are on the wire: it derives `Debug`, `Clone`, `Copy`,
/// `PartialEq`, `Eq`, `Hash`, serde's `Serialize` and `Deserialize`, `utoipa::ToSchema`, and
/// strum's `Display`, `EnumString`, `IntoStaticStr` and `VariantArray`, with one naming rule for
/// serde and strum alike: `snake_case`, or the rule given first (`case = "UPPERCASE";`).
/// Doc comments and further attributes (`#[derive(PartialOrd, Ord)]`) pass through. Callers
/// depend on `serde`, `strum` and `utoipa`.
///
/// ```
/// rampart_model::wire_enum! {
///     /// How loud.
///     #[derive(PartialOrd, Ord)]
///     pub enum Volume {
///         Quiet,
///         VeryLoud,
///     }
/// }
/// use rampart_model::EnumName;
/// assert_eq!(Volume::VeryLoud.as_str(), "very_loud");
/// assert!(Volume::Quiet < Volume::VeryLoud);
/// ```
#[macro_export]
macro_rules! wire_enum {
    (case = $case:tt; $(#[$meta:meta])* $vis:vis enum $name:ident $body:tt) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::utoipa::ToSchema,
            ::strum::Display,
            ::strum::EnumString,
            ::strum::IntoStaticStr,
            ::strum::VariantArray,
        )]
        #[serde(rename_all = $case)]
        #[strum(serialize_all = $case)]
        $vis enum $name $body
    };
    ($(#[$meta:meta])* $vis:vis enum $name:ident $body:tt) => {
        $crate::wire_enum! { case = "snake_case"; $(#[$meta])* $vis enum $name $body }
    };
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
