//! Reading configuration from YAML and JSON, with errors that name the field at fault.

use std::fmt;

use serde::de::DeserializeOwned;

/// A document that could not be read into the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The path of the offending field, like `routes[3].match.path`; empty at the top level.
    pub path: String,
    /// What is wrong there.
    pub message: String,
    /// 1-based line and column, when the parser knows them.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() || self.path == "." {
            "the document"
        } else {
            &self.path
        };
        write!(f, "{at}: {}", self.message)?;
        if let Some((line, column)) = self.location {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// Read `T` from YAML. Duplicate keys, unknown fields and wrong types are errors.
///
/// The text is parsed into a JSON value first (YAML syntax errors carry their line), then
/// into `T` (type errors carry the path of the field).
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, LoadError> {
    // serde_yaml_ng's own value type refuses duplicate keys; serde_json's would keep the last.
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| LoadError {
        path: String::new(),
        location: e.location().map(|l| (l.line(), l.column())),
        message: strip_location(&e.to_string()),
    })?;
    let value = serde_json::to_value(yaml).map_err(|e| LoadError {
        path: String::new(),
        location: None,
        message: format!("not representable as JSON: {e}"),
    })?;
    from_value(value)
}

/// Read `T` from a JSON value, naming the path of the field at fault.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| LoadError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
        location: None,
    })
}

/// Read `T` from JSON. Unknown fields and wrong types are errors.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, LoadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        LoadError {
            location: (inner.line() > 0).then(|| (inner.line(), inner.column())),
            message: strip_location(&inner.to_string()),
            path,
        }
    })?;
    de.end().map_err(|e| LoadError {
        path: String::new(),
        location: Some((e.line(), e.column())),
        message: strip_location(&e.to_string()),
    })?;
    Ok(value)
}

/// Parsers append ` at line L column C`; we report the location separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn unknown_field_names_its_path_and_line() {
        let yaml = "environment: prod\nroutes:\n  - id: a\n    product: p\n    upstream: u\n    match:\n      path: {prefix: /}\n      hots: x\n";
        let err = from_yaml::<Config>(yaml).unwrap_err();
        assert_eq!(err.path, "routes[0].match.hots");
        assert!(err.message.contains("unknown field `hots`"), "{err}");
    }

    #[test]
    fn yaml_syntax_error_has_a_line() {
        let err = from_yaml::<Config>("environment: prod\nroutes: [\n").unwrap_err();
        assert!(err.location.is_some(), "{err}");
    }

    #[test]
    fn wrong_type_in_json_names_its_path() {
        let json = r#"{"environment":"prod","upstreams":[{"name":"u","endpoints":"x"}]}"#;
        let err = from_json::<Config>(json).unwrap_err();
        assert_eq!(err.path, "upstreams[0].endpoints");
        assert!(err.message.contains("expected a sequence"), "{err}");
    }

    #[test]
    fn trailing_json_is_refused() {
        let err = from_json::<Config>(r#"{"environment":"prod"} x"#).unwrap_err();
        assert!(err.message.contains("trailing"), "{err}");
    }
}
