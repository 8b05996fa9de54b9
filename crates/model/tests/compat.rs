//! State compatibility: snapshots written by released versions load in this one.
//!
//! Each file in `tests/fixtures/` was written once by the version its name gives and is never
//! regenerated. A failure here means this build would refuse, or read differently, a snapshot
//! that gateways may hold on disk as their last known good.

use rampart_model::snapshot::{FORMAT_VERSION, SUPPORTED_FORMATS};
use rampart_model::validate::validate_runnable;
use rampart_model::{Snapshot, SnapshotError};

const FIXTURES: &[(&str, &str, &str)] = &[
    (
        "snapshot-v1-minimal.json",
        include_str!("fixtures/snapshot-v1-minimal.json"),
        "646c50b3",
    ),
    (
        "snapshot-v1-example-fleet.json",
        include_str!("fixtures/snapshot-v1-example-fleet.json"),
        "12f0b612",
    ),
    (
        "snapshot-v1-rollout.json",
        include_str!("fixtures/snapshot-v1-rollout.json"),
        "99f9d005",
    ),
];

#[test]
fn every_fixture_loads_verifies_and_validates() {
    for (name, json, hash_prefix) in FIXTURES {
        let snapshot = Snapshot::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            snapshot.hash().to_string().starts_with(hash_prefix),
            "{name}: {}",
            snapshot.hash()
        );
        assert!(
            SUPPORTED_FORMATS.contains(&snapshot.format_version()),
            "{name}"
        );
        validate_runnable(snapshot.config()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for r in snapshot.rollouts() {
            validate_runnable(&r.candidate).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn this_version_writes_back_what_it_read() {
    // Fields added in later versions must not change the encoding of snapshots that do not
    // use them (skip them when they hold their default), or a re-sealed LKG changes identity.
    for (name, json, _) in FIXTURES {
        let old = Snapshot::from_json(json).unwrap();
        let resealed = Snapshot::new(old.config().clone(), old.rollouts().to_vec());
        assert_eq!(resealed.hash(), old.hash(), "{name}");
    }
    assert_eq!(
        FORMAT_VERSION, 1,
        "a new format needs fixtures of its own, and the old ones kept"
    );
}

#[test]
fn tampering_is_detected() {
    let json = FIXTURES[1]
        .1
        .replacen("\"per_second\": 20", "\"per_second\": 21", 1);
    assert_ne!(json, FIXTURES[1].1);
    match Snapshot::from_json(&json) {
        Err(SnapshotError::HashMismatch { .. }) => {}
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
}

#[test]
fn unknown_format_versions_are_refused_by_name() {
    let json = FIXTURES[0]
        .1
        .replacen("\"format_version\": 1", "\"format_version\": 99", 1);
    let err = Snapshot::from_json(&json).unwrap_err();
    assert!(
        matches!(err, SnapshotError::UnsupportedFormat { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("format_version 99"), "{err}");
}

#[test]
fn garbage_is_a_clear_error() {
    for bad in [
        "",
        "[]",
        "{\"format_version\": 1}",
        "{\"hash\": \"zz\"}",
        "nul",
    ] {
        let err = Snapshot::from_json(bad).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
