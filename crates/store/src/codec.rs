//! Between Rust values and columns: ids, secrets, time, numbers, booleans, names and JSON.
//! Reads check what they decode and report [`StoreError::Corrupt`].

use std::fmt;
use std::io::Read as _;
use std::str::FromStr;

use rampart_model::clock::unix_ms;
use rampart_model::{EnumName, parse_name};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use strum::VariantArray;

use crate::{Result, StoreError};

/// A fresh id: `prefix`, `_`, 12 hex digits of the time in milliseconds (so ids sort by
/// creation), then 16 random hex digits.
pub fn new_id(prefix: &str) -> Result<String> {
    let random: [u8; 8] = random_bytes()?;
    Ok(format!(
        "{prefix}_{:012x}{}",
        now_ms().max(0),
        hex::encode(random)
    ))
}

/// The stored form of a token secret: lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(StoreError::Random)?;
    Ok(buf)
}

/// The time as the store's columns hold it.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(unix_ms()).unwrap_or(i64::MAX)
}

/// A number to bind: [`StoreError::Invalid`] if a column cannot hold it.
pub(crate) fn arg_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid {
        reason: format!("{what} {v} is out of range"),
    })
}

/// [`arg_i64`] of an optional number.
pub(crate) fn opt_arg_i64(v: Option<u64>, what: &str) -> Result<Option<i64>> {
    v.map(|v| arg_i64(v, what)).transpose()
}

/// A number read back: it must not be negative.
pub(crate) fn stored_u64(v: i64, column: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(column, format!("negative value {v}")))
}

/// [`stored_u64`] of a nullable column.
pub(crate) fn opt_u64(v: Option<i64>, column: &str) -> Result<Option<u64>> {
    v.map(|v| stored_u64(v, column)).transpose()
}

pub(crate) fn stored_bool(v: i64, column: &str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(corrupt(column, format!("expected 0 or 1, found {other}"))),
    }
}

/// An enum read back by its name (environments, kinds, risks, statuses, roles, actions).
pub(crate) fn stored_name<T>(column: &str, what: &'static str, value: &str) -> Result<T>
where
    T: FromStr + VariantArray + EnumName,
{
    parse_name::<T>(what, value).map_err(|e| corrupt(column, e))
}

/// A value to store as JSON text.
pub(crate) fn json<T: Serialize + ?Sized>(v: &T, what: &str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid {
        reason: format!("cannot encode {what}: {e}"),
    })
}

/// JSON text read back.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: impl Into<String>) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

pub(crate) fn corrupt(what: impl Into<String>, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_prefixed() {
        let a = new_id("chg").unwrap();
        let b = new_id("chg").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("chg_"));
        assert_eq!(a.len(), 4 + 12 + 16);
    }

    #[test]
    fn stored_names_are_checked() {
        use rampart_model::config::Environment;
        assert_eq!(
            stored_name::<Environment>("changes.env", "environment", "prod").unwrap(),
            Environment::Prod
        );
        let err = stored_name::<Environment>("changes.env", "environment", "moon").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what, reason }
                if what == "changes.env" && reason.starts_with("unknown environment `moon`")),
            "{err}"
        );
    }
}
