//! Unit tests of the normaliser, one group per setting value, and a proptest of its fixed
//! point.

use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

fn with(merge_slashes: bool, p: PathParameters, e: EscapedSlashes) -> PathSettings {
    PathSettings {
        merge_slashes,
        path_parameters: p,
        escaped_slashes: e,
    }
}

fn norm(path: &str) -> Result<String, PathError> {
    norm_with(path, &PathSettings::default())
}

fn norm_with(path: &str, s: &PathSettings) -> Result<String, PathError> {
    normalize_path(path, s).map(|n| n.path.into_owned())
}

#[test]
fn defaults_are_the_safe_ones() {
    let s = PathSettings::default();
    assert!(s.merge_slashes);
    assert_eq!(s.path_parameters, PathParameters::Reject);
    assert_eq!(s.escaped_slashes, EscapedSlashes::Reject);
    let parsed: PathSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(parsed, s);
    let e = serde_json::from_str::<PathSettings>(r#"{"escaped_slashes": "unescape"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown variant `unescape`"), "{e}");
    assert!(serde_json::from_str::<PathSettings>(r#"{"merge": true}"#).is_err());
}

#[test]
fn a_canonical_path_stays_borrowed() {
    for path in [
        "/",
        "/rest/api/2/issue",
        "/a/.well-known/x",
        "/a/...",
        "/a-b_c~d",
        "/%C3%A9",
        "/a%20b",
    ] {
        let n = normalize_path(path, &PathSettings::default()).unwrap();
        assert!(matches!(n.path, Cow::Borrowed(_)), "{path} was copied");
        assert_eq!(n.path, path);
        assert!(!n.redirect);
    }
}

#[test]
fn unreserved_escapes_are_decoded_others_uppercased() {
    for (input, want) in [
        ("/%72est/api", "/rest/api"),
        ("/%72%65%73%74", "/rest"),
        ("/%41%7a%30%2d%2E%5f%7E", "/Az0-._~"),
        ("/a%2cb", "/a%2Cb"),
        ("/a%3bb", "/a%3Bb"),
        ("/a%25b", "/a%25b"),
        ("/a%252e%252e/x", "/a%252e%252e/x"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/%e2%82%ac", "/%E2%82%AC"),
        ("/%F0%9F%A6%80", "/%F0%9F%A6%80"),
        ("/a%20b%3f", "/a%20b%3F"),
    ] {
        assert_eq!(norm(input).unwrap(), want, "{input}");
    }
}

#[test]
fn dot_segments_are_resolved_encoded_or_not() {
    for (input, want) in [
        ("/public/../admin/x", "/admin/x"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2e/admin", "/admin"),
        ("/public/.%2E/admin", "/admin"),
        ("/public/%2e./admin", "/admin"),
        ("/a/./b/.", "/a/b/"),
        ("/a/%2e/b", "/a/b"),
        ("/../../etc", "/etc"),
        ("/a/..", "/"),
        ("/a/b/../", "/a/"),
        ("/.", "/"),
        ("/..", "/"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/.hidden", "/a/.hidden"),
        ("/a/...", "/a/..."),
        ("/a/%2e%2e%2e", "/a/..."),
    ] {
        assert_eq!(norm(input).unwrap(), want, "{input}");
    }
}

#[test]
fn merge_slashes_on_and_off() {
    for (input, merged, kept) in [
        ("//rest//api", "/rest/api", "//rest//api"),
        ("/rest///api/", "/rest/api/", "/rest///api/"),
        ("/a//../b", "/b", "/a/b"),
        ("//", "/", "//"),
        ("//.", "/", "//"),
    ] {
        let on = with(true, PathParameters::Reject, EscapedSlashes::Reject);
        let off = with(false, PathParameters::Reject, EscapedSlashes::Reject);
        assert_eq!(norm_with(input, &on).unwrap(), merged, "{input} merged");
        assert_eq!(norm_with(input, &off).unwrap(), kept, "{input} kept");
    }
}

#[test]
fn path_parameters_reject_and_strip() {
    let strip = with(true, PathParameters::Strip, EscapedSlashes::Reject);
    for (input, stripped) in [
        ("/rest;x/api", "/rest/api"),
        ("/rest/api;jsessionid=1", "/rest/api"),
        ("/public/..;/admin", "/admin"),
        ("/public/..;x=1/admin", "/admin"),
        ("/;/admin", "/admin"),
        ("/a;b;c/d", "/a/d"),
    ] {
        assert_eq!(norm_with(input, &strip).unwrap(), stripped, "{input}");
        assert!(
            matches!(norm(input), Err(PathError::PathParameters { .. })),
            "{input} is refused by default"
        );
    }
    // An encoded `;` is data, not a parameter.
    assert_eq!(norm("/a%3Bb").unwrap(), "/a%3Bb");
}

#[test]
fn escaped_slashes_per_action() {
    let cases = [
        ("/a%2Fb", "/a%2Fb", "/a/b"),
        ("/a%2fb", "/a%2Fb", "/a/b"),
        ("/a%5cb", "/a%5Cb", "/a/b"),
        ("/a\\b", "/a\\b", "/a/b"),
        ("/public%2F..%2Fadmin", "/public%2F..%2Fadmin", "/admin"),
        ("/public\\..\\admin", "/public\\..\\admin", "/admin"),
        ("/a%2F%2Fb", "/a%2F%2Fb", "/a/b"),
    ];
    for (input, kept, decoded) in cases {
        let s = |e| with(true, PathParameters::Reject, e);
        assert!(
            matches!(norm(input), Err(PathError::EscapedSlash { .. })),
            "{input} is refused by default"
        );
        let keep = normalize_path(input, &s(EscapedSlashes::Keep)).unwrap();
        assert_eq!((&*keep.path, keep.redirect), (kept, false), "{input} kept");
        let fwd = normalize_path(input, &s(EscapedSlashes::DecodeAndForward)).unwrap();
        assert_eq!(
            (&*fwd.path, fwd.redirect),
            (decoded, false),
            "{input} forwarded"
        );
        let red = normalize_path(input, &s(EscapedSlashes::DecodeAndRedirect)).unwrap();
        assert_eq!(
            (&*red.path, red.redirect),
            (decoded, true),
            "{input} redirected"
        );
    }
    // Nothing to decode: no redirect.
    let red = with(
        true,
        PathParameters::Reject,
        EscapedSlashes::DecodeAndRedirect,
    );
    assert!(!normalize_path("/a//b", &red).unwrap().redirect);
}

#[test]
fn bad_paths_are_refused_with_the_offset() {
    use PathError::*;
    for (input, want) in [
        ("rest/api", NotAbsolute),
        ("", NotAbsolute),
        ("http://x/", NotAbsolute),
        ("/a%zz", InvalidPercentEncoding { at: 2 }),
        ("/a%4", InvalidPercentEncoding { at: 2 }),
        ("/a%", InvalidPercentEncoding { at: 2 }),
        ("/a/%%30%30", InvalidPercentEncoding { at: 3 }),
        ("/%C0%AF", InvalidUtf8 { at: 1 }),
        ("/a/%E0%80%AF", InvalidUtf8 { at: 3 }),
        ("/%C0%AE%C0%AE/admin", InvalidUtf8 { at: 1 }),
        ("/%ED%A0%80", InvalidUtf8 { at: 1 }),
        ("/%C3", InvalidUtf8 { at: 1 }),
        ("/%FF", InvalidUtf8 { at: 1 }),
        ("/admin%00.json", ControlCharacter { at: 6 }),
        ("/a%0d%0aX: y", ControlCharacter { at: 2 }),
        ("/a%7F", ControlCharacter { at: 2 }),
        ("/a%C2%85", ControlCharacter { at: 2 }),
        ("/a b", InvalidCharacter { at: 2 }),
        ("/a\u{0}", InvalidCharacter { at: 2 }),
        ("/a\tb", InvalidCharacter { at: 2 }),
        ("/é", InvalidCharacter { at: 1 }),
        ("/a?b", InvalidCharacter { at: 2 }),
        ("/a#b", InvalidCharacter { at: 2 }),
    ] {
        assert_eq!(norm(input), Err(want), "{input:?}");
    }
    let e = norm("/a%zz").unwrap_err();
    assert_eq!(<&str>::from(e), "invalid_percent_encoding");
    assert_eq!(
        e.to_string(),
        "`%` at byte 2 is not followed by two hex digits"
    );
    assert_eq!(<&str>::from(PathError::NotAbsolute), "bad_request_target");
}

#[test]
fn options_star_is_the_root() {
    assert_eq!(norm("*").unwrap(), "/");
}

#[test]
fn hosts_are_canonical() {
    for (input, host, port) in [
        ("jira.example.com", "jira.example.com", None),
        ("JIRA.Example.COM", "jira.example.com", None),
        ("jira.example.com.", "jira.example.com", None),
        ("jira.example.com:8443", "jira.example.com", Some("8443")),
        ("Jira.Example.com.:80", "jira.example.com", Some("80")),
        ("[::1]:8080", "::1", Some("8080")),
        ("[2001:DB8::1]", "2001:db8::1", None),
        ("127.0.0.1:9", "127.0.0.1", Some("9")),
        ("", "", None),
    ] {
        let (h, p) = checked_authority(input).unwrap();
        assert_eq!((&*h, p), (host, port), "{input}");
        assert_eq!(normalize_host(input), host, "{input}");
        assert_eq!(normalize_host(host), host, "{input}: not a fixed point");
    }
    // Found by the fuzzer: a bare IPv6 address has no port (it was read as `::` and `1`).
    assert_eq!(split_port("::1"), ("::1", None));
    assert_eq!(normalize_host("2001:DB8::1"), "2001:db8::1");
    for bad in [
        "user@jira.example.com",
        "jira.example.com..",
        ".jira.example.com",
        "jira..example.com",
        "jira.example.com:",
        "jira.example.com:123456",
        "jira.example.com:80:80",
        "jira example.com",
        "jira.example.com/x",
        "jira.example.com\\",
        "[::1",
        "[not-ip]",
        "::1",
        "jira.example.com%2e",
        ".",
    ] {
        assert!(checked_authority(bad).is_err(), "{bad}");
    }
}

#[test]
fn path_case_round_trips() {
    assert!(PathCase::default().is_sensitive());
    let c: PathCase = serde_json::from_str("\"insensitive\"").unwrap();
    assert_eq!(c, PathCase::Insensitive);
}

/// Paths made of the pieces attacks are made of.
fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("//"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%5C"),
        Just("\\"),
        Just(";"),
        Just(";x="),
        Just("a"),
        Just("Admin"),
        Just("%41"),
        Just("%7e"),
        Just("%25"),
        Just("%2"),
        Just("%zz"),
        Just("%00"),
        Just("%C3%A9"),
        Just("%c3%a9"),
        Just("%C0%AF"),
        Just("%3B"),
        Just("~"),
        Just("-"),
        Just(" "),
        Just("é"),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
}

fn all_settings() -> impl Strategy<Value = PathSettings> {
    (
        any::<bool>(),
        prop_oneof![Just(PathParameters::Reject), Just(PathParameters::Strip)],
        prop_oneof![
            Just(EscapedSlashes::Reject),
            Just(EscapedSlashes::Keep),
            Just(EscapedSlashes::DecodeAndForward),
            Just(EscapedSlashes::DecodeAndRedirect),
        ],
    )
        .prop_map(|(m, p, e)| with(m, p, e))
}

/// Whether `path` still has something the default normaliser would change.
fn has_leftovers(path: &str) -> Option<&'static str> {
    if path.contains("//") {
        return Some("//");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Some("a dot segment");
    }
    let b = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let v = u8::from_str_radix(path.get(i + 1..i + 3)?, 16).ok()?;
        if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
            return Some("an unreserved escape");
        }
        if b[i + 1].is_ascii_lowercase() || b[i + 2].is_ascii_lowercase() {
            return Some("a lowercase escape");
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalising_twice_is_normalising_once(path in tricky_path(), s in all_settings()) {
        if let Ok(once) = normalize_path(&path, &s) {
            let twice = normalize_path(&once.path, &s)
                .unwrap_or_else(|e| panic!("{path:?} -> {:?} is refused: {e}", once.path));
            prop_assert_eq!(&twice.path, &once.path, "from {:?}", path);
            prop_assert!(!twice.redirect, "{:?} redirects again", once.path);
            prop_assert!(matches!(twice.path, Cow::Borrowed(_)));
            prop_assert!(once.path.starts_with('/'));
        }
    }

    #[test]
    fn default_output_is_clean(path in tricky_path()) {
        if let Ok(n) = normalize_path(&path, &PathSettings::default()) {
            prop_assert_eq!(has_leftovers(&n.path), None, "{:?} -> {:?}", path, n.path);
            prop_assert!(!n.path.contains(';') && !n.path.contains('\\'));
            prop_assert!(!n.path.to_ascii_uppercase().contains("%2F"));
        }
    }

    #[test]
    fn any_string_is_answered_without_panic(path in "\\PC{0,40}", s in all_settings()) {
        let _ = normalize_path(&path, &s);
        let _ = checked_authority(&path);
    }
}
