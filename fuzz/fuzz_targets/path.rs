//! Fuzz the request-target normaliser (`rampart_model::paths`).
//!
//! The first byte of the input chooses the settings (merge slashes, path parameters, escaped
//! slashes); the rest, read as UTF-8 (other inputs are skipped), is the path, and also an
//! authority for `checked_authority`.
//!
//! Invariants checked (a failure is a real bug):
//! - nothing panics on any input;
//! - a normalised path starts with `/`, and normalising it again gives the same path,
//!   borrowed (no allocation), with no redirect;
//! - under merged slashes it has no `//`; it never has a `.` or `..` segment, a `;` when
//!   parameters are refused or stripped, or a `%2F`/`%5C`/`\` unless they are kept;
//! - a checked authority's host is already canonical.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use rampart_model::paths::{
    EscapedSlashes, PathParameters, PathSettings, checked_authority, normalize_host,
    normalize_path,
};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let s = PathSettings {
        merge_slashes: choice & 1 == 0,
        path_parameters: if choice & 2 == 0 {
            PathParameters::Reject
        } else {
            PathParameters::Strip
        },
        escaped_slashes: match (choice >> 2) & 3 {
            0 => EscapedSlashes::Reject,
            1 => EscapedSlashes::Keep,
            2 => EscapedSlashes::DecodeAndForward,
            _ => EscapedSlashes::DecodeAndRedirect,
        },
    };
    if let Ok(once) = normalize_path(path, &s) {
        let p = &*once.path;
        assert!(p.starts_with('/'), "{path:?} -> {p:?}");
        let twice = normalize_path(p, &s)
            .unwrap_or_else(|e| panic!("{path:?} -> {p:?}, which is refused: {e}"));
        assert_eq!(twice.path, p, "{path:?} is not a fixed point after one pass");
        assert!(matches!(twice.path, Cow::Borrowed(_)), "{p:?} is copied again");
        assert!(!twice.redirect, "{p:?} redirects again");
        if s.merge_slashes {
            assert!(!p.contains("//"), "{path:?} -> {p:?}");
        }
        assert!(
            !p.split('/').any(|seg| seg == "." || seg == ".."),
            "{path:?} -> {p:?} has a dot segment"
        );
        assert!(!p.contains(';'), "{path:?} -> {p:?} has a parameter");
        if s.escaped_slashes != EscapedSlashes::Keep {
            let upper = p.to_ascii_uppercase();
            assert!(
                !upper.contains("%2F") && !upper.contains("%5C") && !p.contains('\\'),
                "{path:?} -> {p:?} has an escaped slash"
            );
        }
    }
    if let Ok((host, _port)) = checked_authority(path) {
        assert_eq!(normalize_host(&host), host, "{path:?} -> {host:?}");
    }
});
