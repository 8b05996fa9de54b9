//! The snapshot: the whole configuration of one environment at one version, content-hashed.
//!
//! # Format and compatibility
//! A snapshot is JSON: `{ "format_version": 1, "config": {..}, "rollouts": [..], "hash": ".." }`.
//! `hash` is the lowercase hex SHA-256 of the canonical encoding of everything else: JSON with
//! object keys sorted by byte order, no insignificant whitespace, numbers as `serde_json`
//! prints them. A snapshot written by any released version must load in every later one; the
//! fixtures under `tests/fixtures/` are checked on every test run.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::flag::Attribute;

/// The snapshot format this version writes.
pub const FORMAT_VERSION: u32 = 1;

/// The formats this version reads.
pub const SUPPORTED_FORMATS: &[u32] = &[1];

/// A SHA-256 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

crate::string_schema!(ContentHash, "64 lowercase hex digits: a SHA-256 digest");

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a content hash is 64 lowercase hex digits, not `{0}`")]
pub struct HashParseError(String);

impl TryFrom<String> for ContentHash {
    type Error = HashParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HashParseError(s));
        }
        hex::decode_to_slice(&s, &mut out).map_err(|_| HashParseError(s))?;
        Ok(ContentHash(out))
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> String {
        h.to_string()
    }
}

/// Which gateways and which share of their requests a rollout stage covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageScope {
    /// Cells in scope; empty means every cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// Gateway ids in scope; empty means every gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// The share of in-scope requests, by sticky bucket, 0 to 100.
    pub percent: f64,
}

/// A candidate configuration live on part of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub id: String,
    /// Salts the sticky bucket, so rollouts are independent of each other.
    pub salt: String,
    /// The attribute whose value is bucketed; requests without it bucket by client IP.
    #[serde(default = "Rollout::default_sticky_key")]
    pub sticky_key: Attribute,
    pub scope: StageScope,
    /// A shadow rollout serves every request with the baseline; gateways evaluate the
    /// candidate beside it for the requests in scope and count the differences.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    pub candidate: Config,
}

impl Rollout {
    fn default_sticky_key() -> Attribute {
        Attribute::Tenant
    }
}

/// What a snapshot hashes: everything but the hash.
#[derive(Serialize)]
struct Content<'a> {
    format_version: u32,
    config: &'a Config,
    #[serde(skip_serializing_if = "<[Rollout]>::is_empty")]
    rollouts: &'a [Rollout],
}

/// The compiled configuration of one environment, as gateways run it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    format_version: u32,
    config: Config,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rollouts: Vec<Rollout>,
    hash: ContentHash,
}

/// The wire form of a snapshot, before its version and hash are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotWire {
    format_version: u32,
    config: Config,
    #[serde(default)]
    rollouts: Vec<Rollout>,
    hash: ContentHash,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON for this format: {0}")]
    Decode(#[from] crate::load::LoadError),
    #[error("snapshot format_version {found} is not one this build reads ({supported:?})")]
    UnsupportedFormat {
        found: u64,
        supported: &'static [u32],
    },
    #[error("snapshot hash mismatch: it says {declared}, its content hashes to {actual}")]
    HashMismatch {
        declared: ContentHash,
        actual: ContentHash,
    },
}

impl Snapshot {
    /// Seal a configuration and its active rollouts into a snapshot of the current format.
    pub fn new(config: Config, rollouts: Vec<Rollout>) -> Snapshot {
        let hash = content_hash(FORMAT_VERSION, &config, &rollouts);
        Snapshot {
            format_version: FORMAT_VERSION,
            config,
            rollouts,
            hash,
        }
    }

    /// Read a snapshot from JSON, checking its format version and hash.
    ///
    /// The hash is checked over the canonical form of the JSON as received, not as this
    /// version would write it back, so a snapshot from an older version verifies even when
    /// later versions have added fields.
    pub fn from_json(json: &str) -> Result<Snapshot, SnapshotError> {
        Snapshot::try_from(crate::load::from_json::<Value>(json)?)
    }

    /// The snapshot as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot always serializes")
    }

    pub fn format_version(&self) -> u32 {
        self.format_version
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn rollouts(&self) -> &[Rollout] {
        &self.rollouts
    }
    pub fn hash(&self) -> ContentHash {
        self.hash
    }
}

impl TryFrom<Value> for Snapshot {
    type Error = SnapshotError;

    fn try_from(mut value: Value) -> Result<Self, Self::Error> {
        // The version decides how to read the rest, so it is checked first.
        if let Some(found) = value.get("format_version").and_then(Value::as_u64)
            && !SUPPORTED_FORMATS.iter().any(|&v| u64::from(v) == found)
        {
            return Err(SnapshotError::UnsupportedFormat {
                found,
                supported: SUPPORTED_FORMATS,
            });
        }
        let declared = value.as_object_mut().and_then(|m| m.remove("hash"));
        let mut canonical = String::with_capacity(16 * 1024);
        canonical_json(&value, &mut canonical);
        let actual = ContentHash(Sha256::digest(canonical.as_bytes()).into());
        if let Some(declared) = declared {
            value
                .as_object_mut()
                .expect("an object, since it had a hash")
                .insert("hash".to_owned(), declared);
        }
        let wire: SnapshotWire = crate::load::from_value(value)?;
        if actual != wire.hash {
            return Err(SnapshotError::HashMismatch {
                declared: wire.hash,
                actual,
            });
        }
        Ok(Snapshot {
            format_version: wire.format_version,
            config: wire.config,
            rollouts: wire.rollouts,
            hash: wire.hash,
        })
    }
}

fn content_hash(format_version: u32, config: &Config, rollouts: &[Rollout]) -> ContentHash {
    let content = Content {
        format_version,
        config,
        rollouts,
    };
    let value = serde_json::to_value(&content).expect("a snapshot always serializes");
    let mut out = String::with_capacity(4096);
    canonical_json(&value, &mut out);
    ContentHash(Sha256::digest(out.as_bytes()).into())
}

/// Write `v` as canonical JSON: keys sorted, no whitespace.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":"s"}],"c":null}}"#).unwrap();
        let mut out = String::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, r#"{"a":{"c":null,"d":[1,{"y":"s","z":0}]},"b":1}"#);
    }

    #[test]
    fn floats_survive_the_round_trip() {
        // Found by fuzzing: without serde_json's exact float parsing, 0.9999999999999999 was
        // read back as 1 and the snapshot failed its own hash check.
        let cfg: Config = crate::load::from_yaml(
            "environment: dev\nflags: [{name: f, type: float, default: 0.9999999999999999, risk: low, owner: o},\n  {name: g, type: json, default: [1.9218432234475398, -12.070162795213857, 5e-324], risk: low, owner: o}]\n",
        )
        .unwrap();
        let snapshot = Snapshot::new(cfg, vec![]);
        let back = Snapshot::from_json(&snapshot.to_json_pretty()).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn hash_parse_refuses_bad_text() {
        assert!(ContentHash::try_from("ab".to_owned()).is_err());
        assert!(ContentHash::try_from("Z".repeat(64)).is_err());
        assert!(ContentHash::try_from("A".repeat(64)).is_err());
        assert!(ContentHash::try_from("a".repeat(64)).is_ok());
    }
}
