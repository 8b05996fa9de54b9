//! The hash-chained audit log: pure, no storage.
//!
//! Every change, approval, rejection, withdrawal, application, rollback, login failure, token
//! creation and revocation, and gateway NACK is an [`AuditEntry`]. Entries are numbered from 1
//! without gaps, and each carries the hash of the one before it, so the rows prove their own
//! order: [`seal`] makes the next entry, [`verify`] checks a whole log.
//!
//! # The hash
//!
//! [`entry_hash`] is the lowercase hex SHA-256 of the canonical JSON
//! ([`rampart_model::snapshot::canonical_json`]: keys sorted at every depth, no whitespace) of
//! this object:
//!
//! ```json
//! {"action":"change_submitted","actor":"alice","at_ms":1717400000000,"detail":{...},
//!  "format":"rampart-audit/1","prev_hash":"00…00","seq":1,"subject":"change/42"}
//! ```
//!
//! `format` separates these hashes from any other SHA-256 in rampart. `action` is the entry's
//! wire name ([`AuditAction::as_str`]), so **a variant must never be renamed**: old entries
//! would stop verifying. The first entry has `seq` 1 and `prev_hash` [`GENESIS_HASH`] (64
//! zeros); an empty log's head is `(0, GENESIS_HASH)`. The store should keep `detail` as the
//! exact JSON text (not a type that rewrites numbers), although key order does not matter.
//!
//! # What verification detects, and what it cannot
//!
//! [`verify`] finds, and names the `seq` of:
//!
//! - an edited entry, any field: its stored hash no longer matches its content;
//! - a removed entry, first or in the middle: a gap in `seq` (or, if the rows were renumbered,
//!   a `prev_hash` that does not match);
//! - reordered or duplicated entries: `seq` does not increase by one.
//!
//! It cannot see a **truncated tail** from the rows alone: a log with its last entries deleted
//! is a valid shorter log. Nor can it see a log rewritten from some point on by someone who
//! recomputes every later hash, since the hash has no secret. Both are caught against a head
//! `(seq, hash)` kept somewhere else (printed by `rampart audit verify`, written to another
//! system): [`verify_with_head`] checks that the log still reaches that head, unchanged.
//!
//! `at_ms` is not checked for order: clocks of several control-plane replicas may disagree.

use rampart_model::EnumName;
use rampart_model::snapshot::canonical_json;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The version tag inside every hashed object.
pub const HASH_FORMAT: &str = "rampart-audit/1";

pub use rampart_api::AuditAction;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1 for the first entry, then one more each time.
    pub seq: u64,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Who: a user, a gateway id, or `system` for the control plane itself.
    pub actor: String,
    pub action: AuditAction,
    /// What it is about, such as `change/42` or `token/ci`.
    pub subject: String,
    /// Anything else worth keeping (never a secret).
    pub detail: Value,
    /// The previous entry's `hash`, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// [`entry_hash`] of the fields above.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry's content should have.
    pub fn computed_hash(&self) -> String {
        entry_hash(
            self.seq,
            self.at_ms,
            &self.actor,
            self.action,
            &self.subject,
            &self.detail,
            &self.prev_hash,
        )
    }

    /// This entry as a head: `(seq, hash)`.
    pub fn head(&self) -> (u64, &str) {
        (self.seq, &self.hash)
    }
}

/// The hash of an entry's content: see the module docs for the exact encoding.
pub fn entry_hash(
    seq: u64,
    at_ms: u64,
    actor: &str,
    action: AuditAction,
    subject: &str,
    detail: &Value,
    prev_hash: &str,
) -> String {
    let object = json!({
        "format": HASH_FORMAT,
        "seq": seq,
        "at_ms": at_ms,
        "actor": actor,
        "action": action.as_str(),
        "subject": subject,
        "detail": detail,
        "prev_hash": prev_hash,
    });
    let mut text = String::with_capacity(256);
    canonical_json(&object, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The entry that follows `prev` (or starts the log), sealed with its hash.
pub fn seal(
    prev: Option<&AuditEntry>,
    at_ms: u64,
    actor: impl Into<String>,
    action: AuditAction,
    subject: impl Into<String>,
    detail: Value,
) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut entry = AuditEntry {
        seq,
        at_ms,
        actor: actor.into(),
        action,
        subject: subject.into(),
        detail,
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.computed_hash();
    entry
}

/// What is wrong with a log. Each names the `seq` where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {seq} was edited: its content does not match its hash")]
    Edited { seq: u64 },
    #[error("the log does not start at the beginning: its first entry is {seq}, not 1")]
    MissingStart { seq: u64 },
    #[error("entry {seq} does not link to the start of the log (prev_hash is not genesis)")]
    BadGenesis { seq: u64 },
    #[error("entries are missing after {after}: the next one is {seq}")]
    Gap { after: u64, seq: u64 },
    #[error("entry {seq} comes after {after}: entries are reordered or duplicated")]
    OutOfOrder { after: u64, seq: u64 },
    #[error(
        "entry {seq} does not link to entry {after} (prev_hash mismatch): an entry was removed or replaced"
    )]
    BrokenLink { after: u64, seq: u64 },
    #[error(
        "the log ends at entry {last}, before the expected head {expected}: entries were removed from the end"
    )]
    Truncated { last: u64, expected: u64 },
    #[error("entry {seq} is not the expected head: the log was rewritten")]
    HeadMismatch { seq: u64 },
}

/// Checks a whole log, in `seq` order as stored, from its first entry. An empty log is valid.
/// A truncated tail is not detectable here: see [`verify_with_head`].
pub fn verify(entries: &[AuditEntry]) -> Result<(), ChainError> {
    let mut prev: Option<&AuditEntry> = None;
    for (i, entry) in entries.iter().enumerate() {
        // The entry's own content first, so an edit is named as one, whichever field it hit.
        if entry.computed_hash() != entry.hash {
            return Err(ChainError::Edited { seq: entry.seq });
        }
        match prev {
            None => {
                if entry.seq != 1 {
                    return Err(ChainError::MissingStart { seq: entry.seq });
                }
                if entry.prev_hash != GENESIS_HASH {
                    return Err(ChainError::BadGenesis { seq: entry.seq });
                }
            }
            Some(p) => {
                let after = p.seq;
                if entry.seq <= after {
                    return Err(ChainError::OutOfOrder {
                        after,
                        seq: entry.seq,
                    });
                }
                if entry.seq != after + 1 {
                    // The missing entry further on means a reorder, not a removal.
                    if entries[i..].iter().any(|e| e.seq == after + 1) {
                        return Err(ChainError::OutOfOrder {
                            after,
                            seq: entry.seq,
                        });
                    }
                    return Err(ChainError::Gap {
                        after,
                        seq: entry.seq,
                    });
                }
                if entry.prev_hash != p.hash {
                    return Err(ChainError::BrokenLink {
                        after,
                        seq: entry.seq,
                    });
                }
            }
        }
        prev = Some(entry);
    }
    Ok(())
}

/// [`verify`], and that the log still reaches `expected_head`, a `(seq, hash)` recorded earlier
/// and kept elsewhere, with that very hash there. Entries appended since are fine; an empty
/// log's head is `(0, GENESIS_HASH)`. This detects a truncated tail, and a log rewritten up to
/// the head.
pub fn verify_with_head<H: AsRef<str>>(
    entries: &[AuditEntry],
    expected_head: (u64, H),
) -> Result<(), ChainError> {
    verify(entries)?;
    let (seq, hash) = (expected_head.0, expected_head.1.as_ref());
    if seq == 0 {
        return if hash == GENESIS_HASH {
            Ok(())
        } else {
            Err(ChainError::HeadMismatch { seq })
        };
    }
    let last = entries.last().map_or(0, |e| e.seq);
    if last < seq {
        return Err(ChainError::Truncated {
            last,
            expected: seq,
        });
    }
    // `verify` passed, so entry `seq` sits at index `seq - 1`.
    let at = usize::try_from(seq - 1)
        .ok()
        .and_then(|i| entries.get(i))
        .ok_or(ChainError::Truncated {
            last,
            expected: seq,
        })?;
    if at.hash != hash {
        return Err(ChainError::HeadMismatch { seq });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let action = AuditAction::VARIANTS[(i as usize) % AuditAction::VARIANTS.len()];
            let e = seal(
                out.last(),
                1_717_400_000_000 + i * 1000,
                format!("user{}", i % 3),
                action,
                format!("change/{i}"),
                json!({"i": i, "reason": "test", "nested": {"b": 1.5, "a": [i, null]}}),
            );
            out.push(e);
        }
        out
    }

    #[test]
    fn a_valid_chain_verifies() {
        assert_eq!(verify(&[]), Ok(()));
        assert_eq!(verify_with_head(&[], (0, GENESIS_HASH)), Ok(()));
        let log = chain(20);
        assert_eq!(log[0].seq, 1);
        assert_eq!(log[0].prev_hash, GENESIS_HASH);
        assert_eq!(log[0].hash.len(), 64);
        assert_eq!(verify(&log), Ok(()));
        let (seq, hash) = log.last().unwrap().head();
        assert_eq!(verify_with_head(&log, (seq, hash)), Ok(()));
        // A head recorded earlier: entries appended since are fine.
        assert_eq!(verify_with_head(&log, log[9].head()), Ok(()));
        assert_eq!(verify_with_head(&log, (0, GENESIS_HASH.to_owned())), Ok(()));
        // It survives a trip through JSON (as a store would keep it).
        let back: Vec<AuditEntry> =
            serde_json::from_str(&serde_json::to_string(&log).unwrap()).unwrap();
        assert_eq!(verify(&back), Ok(()));
    }

    #[test]
    fn the_hash_is_the_documented_encoding() {
        let detail = json!({"z": 1, "a": "x"});
        let text = format!(
            r#"{{"action":"change_submitted","actor":"alice","at_ms":5,"detail":{{"a":"x","z":1}},"format":"rampart-audit/1","prev_hash":"{GENESIS_HASH}","seq":1,"subject":"change/1"}}"#
        );
        let want = hex::encode(Sha256::digest(text.as_bytes()));
        let e = seal(
            None,
            5,
            "alice",
            AuditAction::ChangeSubmitted,
            "change/1",
            detail,
        );
        assert_eq!(e.hash, want);
        for &a in AuditAction::VARIANTS {
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
        }
    }

    #[test]
    fn editing_any_field_of_any_entry_is_detected() {
        type Edit = fn(&mut AuditEntry);
        let edits: [(&str, Edit); 8] = [
            ("seq", |e| e.seq += 100),
            ("at_ms", |e| e.at_ms += 1),
            ("actor", |e| e.actor.push('x')),
            ("action", |e| {
                e.action = if e.action == AuditAction::Rollback {
                    AuditAction::LoginFailed
                } else {
                    AuditAction::Rollback
                }
            }),
            ("subject", |e| e.subject = "change/evil".into()),
            ("detail", |e| e.detail["reason"] = json!("other")),
            ("prev_hash", |e| e.prev_hash = "f".repeat(64)),
            ("hash", |e| e.hash = "a".repeat(64)),
        ];
        let log = chain(6);
        for (field, edit) in edits {
            for i in 0..log.len() {
                let mut tampered = log.clone();
                edit(&mut tampered[i]);
                assert_ne!(tampered[i], log[i]);
                let seq = tampered[i].seq;
                assert_eq!(
                    verify(&tampered),
                    Err(ChainError::Edited { seq }),
                    "{field} of entry {i}"
                );
            }
        }
        // Even an edit that leaves the JSON meaning alone but changes a value's type.
        let mut tampered = log.clone();
        tampered[2].detail["i"] = json!(2.0);
        assert_eq!(verify(&tampered), Err(ChainError::Edited { seq: 3 }));
    }

    /// What [`verify`] says of a chain whose link from `after` to `seq` is broken.
    fn broken_link(after: u64, seq: u64) -> Result<(), ChainError> {
        Err(ChainError::BrokenLink { after, seq })
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_link() {
        let mut log = chain(6);
        log[2].actor = "mallory".into();
        log[2].hash = log[2].computed_hash();
        assert_eq!(verify(&log), broken_link(3, 4));
    }

    /// What [`verify`] says of a copy of `log` with `edit` made to it.
    fn verify_edited(
        log: &[AuditEntry],
        edit: impl FnOnce(&mut Vec<AuditEntry>),
    ) -> Result<(), ChainError> {
        let mut copy = log.to_vec();
        edit(&mut copy);
        verify(&copy)
    }

    #[test]
    fn removing_an_entry_is_detected() {
        let log = chain(6);
        for i in 1..log.len() - 1 {
            let (after, seq) = (log[i].seq - 1, log[i].seq + 1);
            let removed = verify_edited(&log, |l| drop(l.remove(i)));
            assert_eq!(removed, Err(ChainError::Gap { after, seq }), "removed {i}");
        }
        let first = verify_edited(&log, |l| drop(l.remove(0)));
        assert_eq!(first, Err(ChainError::MissingStart { seq: 2 }));
        // Removed and the rest renumbered (and rehashed): the link breaks.
        let renumbered = verify_edited(&log, |l| {
            l.remove(2);
            for e in &mut l[2..] {
                e.seq -= 1;
                e.hash = e.computed_hash();
            }
        });
        assert_eq!(renumbered, broken_link(2, 3));
    }

    #[test]
    fn reordering_is_detected() {
        let log = chain(6);
        for i in 0..log.len() - 1 {
            let swapped = verify_edited(&log, |l| l.swap(i, i + 1));
            assert!(swapped.is_err(), "swap {i}");
        }
        let swapped = verify_edited(&log, |l| l.swap(2, 3));
        assert_eq!(swapped, Err(ChainError::OutOfOrder { after: 2, seq: 4 }));
        assert!(verify_edited(&log, |l| l.swap(1, 4)).is_err());
        let dup = verify_edited(&log, |l| l.insert(3, log[2].clone()));
        assert_eq!(dup, Err(ChainError::OutOfOrder { after: 3, seq: 3 }));
    }

    #[test]
    fn a_truncated_tail_is_only_detected_with_the_head() {
        let log = chain(8);
        let head = log.last().unwrap().head();
        let truncated = &log[..5];
        // From the rows alone, a shorter log is a valid log.
        assert_eq!(verify(truncated), Ok(()));
        assert_eq!(
            verify_with_head(truncated, head),
            Err(ChainError::Truncated {
                last: 5,
                expected: 8
            })
        );
        assert_eq!(
            verify_with_head(&[], head),
            Err(ChainError::Truncated {
                last: 0,
                expected: 8
            })
        );
        // A tail rewritten with fresh hashes verifies alone, but not against the head.
        let mut rewritten = log.clone();
        rewritten[6].subject = "change/other".into();
        rewritten[6].hash = rewritten[6].computed_hash();
        rewritten[7].prev_hash = rewritten[6].hash.clone();
        rewritten[7].hash = rewritten[7].computed_hash();
        assert_eq!(verify(&rewritten), Ok(()));
        assert_eq!(
            verify_with_head(&rewritten, head),
            Err(ChainError::HeadMismatch { seq: 8 })
        );
        assert_eq!(
            verify_with_head(&log, (0, "1".repeat(64))),
            Err(ChainError::HeadMismatch { seq: 0 })
        );
    }
}
