//! A policy field that holds either a literal or a binding to a flag.
//!
//! In YAML a binding is written `{ flag: <name> }`; anything else is read as the literal. The
//! flag's every possible value is checked against the field's type and range by
//! [`crate::validate`], so an erroneous flag value is caught before it reaches a gateway.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A literal value, or the name of a flag whose value the field takes at request time.
#[derive(Debug, Clone, PartialEq)]
pub enum Bindable<T> {
    /// A fixed value.
    Literal(T),
    /// The value of the named flag, resolved per request.
    Flag(String),
}

impl<T> Bindable<T> {
    /// The flag this field is bound to, if any.
    pub fn flag(&self) -> Option<&str> {
        match self {
            Bindable::Literal(_) => None,
            Bindable::Flag(name) => Some(name),
        }
    }
}

impl<T> From<T> for Bindable<T> {
    fn from(value: T) -> Self {
        Bindable::Literal(value)
    }
}

impl<T: Serialize> Serialize for Bindable<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct FlagRef<'a> {
            flag: &'a str,
        }
        match self {
            Bindable::Literal(v) => v.serialize(s),
            Bindable::Flag(flag) => FlagRef { flag }.serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Bindable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if let serde_json::Value::Object(map) = &value
            && let Some(flag) = map.get("flag")
        {
            if map.len() != 1 {
                return Err(D::Error::custom(
                    "a flag binding is written `{ flag: <name> }` with no other keys",
                ));
            }
            return match flag {
                serde_json::Value::String(name) => Ok(Bindable::Flag(name.clone())),
                _ => Err(D::Error::custom("`flag` must be the name of a flag")),
            };
        }
        T::deserialize(value)
            .map(Bindable::Literal)
            .map_err(D::Error::custom)
    }
}

/// The schema: the literal's, or `{ flag: <name> }`. A generic type's schema is composed
/// from its parameter's (utoipa's derive asks for `ComposeSchema`, which it also derives).
impl<T: utoipa::ToSchema> utoipa::__dev::ComposeSchema for Bindable<T> {
    fn compose(
        generics: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
    ) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let literal = generics.into_iter().next().unwrap_or_else(T::schema);
        let flag = ObjectBuilder::new()
            .property("flag", ObjectBuilder::new().schema_type(Type::String))
            .required("flag");
        OneOfBuilder::new()
            .item(literal)
            .item(flag)
            .description(Some(
                "a literal, or `{ flag: <name> }` to take a flag's value",
            ))
            .into()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for Bindable<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("Bindable_{}", T::name()).into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        T::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_flag_round_trip() {
        let lit: Bindable<u32> = serde_json::from_str("7").unwrap();
        assert_eq!(lit, Bindable::Literal(7));
        let flag: Bindable<u32> = serde_json::from_str(r#"{"flag":"limit"}"#).unwrap();
        assert_eq!(flag, Bindable::Flag("limit".into()));
        assert_eq!(serde_json::to_string(&flag).unwrap(), r#"{"flag":"limit"}"#);
        assert_eq!(serde_json::to_string(&lit).unwrap(), "7");
    }

    #[test]
    fn wrong_literal_type_names_the_expectation() {
        let err = serde_json::from_str::<Bindable<u32>>(r#""ten""#).unwrap_err();
        assert!(err.to_string().contains("expected u32"), "{err}");
        let err = serde_json::from_str::<Bindable<u32>>(r#"{"flag":"a","x":1}"#).unwrap_err();
        assert!(err.to_string().contains("no other keys"), "{err}");
    }
}
