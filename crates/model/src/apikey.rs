//! API keys minted by rampart, in a format a configuration can vouch for.
//!
//! A fleet file stores only the SHA-256 of each key, and a hash cannot prove that its
//! preimage was random: the hash of `password` looks like any other. So rampart mints keys in
//! a checkable format, `rk_<body>_<check>`:
//!
//! - `body`: 43 characters of base62, drawn uniformly from a CSPRNG (`rampart apikey new`), so
//!   256 bits of entropy (43 × log2 62 ≈ 256.0);
//! - `check`: 6 base62 characters of a SHA-256 over the body, so a truncated or mistyped key
//!   is recognised as malformed before any lookup.
//!
//! A key entry declares `format: rampart_v1`. Validation refuses, in prod, entries that do not
//! ([`crate::validate`]), and every entry whose hash is on the built-in [`DENYLIST`] (the old
//! demo keys and common words) in any environment. At request time, an entry that declares
//! the format matches only a presented key in that format (`rampart-eval`): an entry whose hash
//! is of `password` but that claims `rampart_v1` can never authenticate anything.
//!
//! The limit, stated honestly: the format proves shape, not randomness. Someone who writes
//! `rk_` + 43 chosen characters and computes the check can still store a guessable key; the
//! scheme stops accidents (human-chosen, reused, demo or dictionary keys), not an operator who
//! sets out to defeat it.

use sha2::{Digest, Sha256};

/// Every minted key starts with this.
pub const PREFIX: &str = "rk_";
/// Base62 characters of a key's random body.
pub const BODY_LEN: usize = 43;
/// Base62 characters of a key's check.
pub const CHECK_LEN: usize = 6;
/// The characters of a key's body and check.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The length of a whole minted key.
pub const KEY_LEN: usize = PREFIX.len() + BODY_LEN + 1 + CHECK_LEN;
/// Characters of the body a key entry may show as its non-secret `prefix`.
pub const SHOWN_BODY_CHARS: usize = 6;

/// Keys that must never be accepted, whatever the environment: the demo keys rampart once
/// shipped, and words people use as keys. Checked by the SHA-256 the entry stores.
pub const DENYLIST: [&str; 28] = [
    "jira-ci-demo-key",
    "confluence-bot-demo-key",
    "bitbucket-pipelines-demo-key",
    "bitbucket-mirror-demo-key",
    "jira-bot-key",
    "confluence-bot-key",
    "",
    "key",
    "apikey",
    "api-key",
    "api_key",
    "secret",
    "password",
    "passw0rd",
    "changeme",
    "change-me",
    "test",
    "testing",
    "demo",
    "admin",
    "token",
    "default",
    "example",
    "letmein",
    "qwerty",
    "123456",
    "12345678",
    "1234567890",
];

/// Why a presented key is not a minted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("a rampart API key is {KEY_LEN} characters: rk_, 43 base62 characters, _, 6 more")]
    Shape,
    #[error("the key's check characters do not match its body: it was truncated or mistyped")]
    Check,
}

/// The check characters of a key body.
pub fn check_of(body: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"rampart-apikey-v1\0")
        .chain_update(body.as_bytes())
        .finalize();
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// A key from a source of random bytes (a CSPRNG): each body character is drawn uniformly
/// by rejection sampling (bytes of 248 and more are skipped).
pub fn mint(mut random_byte: impl FnMut() -> u8) -> String {
    let mut body = String::with_capacity(BODY_LEN);
    while body.len() < BODY_LEN {
        let b = random_byte();
        if b < 248 {
            body.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    let check = check_of(&body);
    format!("{PREFIX}{body}_{check}")
}

/// Whether `key` is a well-formed minted key.
pub fn check(key: &[u8]) -> Result<(), KeyFormatError> {
    let is62 = |s: &[u8]| s.iter().all(|b| b.is_ascii_alphanumeric());
    if key.len() != KEY_LEN || !key.starts_with(PREFIX.as_bytes()) {
        return Err(KeyFormatError::Shape);
    }
    let rest = &key[PREFIX.len()..];
    let (body, tail) = rest.split_at(BODY_LEN);
    let Some(check) = tail.strip_prefix(b"_") else {
        return Err(KeyFormatError::Shape);
    };
    if !is62(body) || !is62(check) {
        return Err(KeyFormatError::Shape);
    }
    // Both are ASCII alphanumerics here.
    let body = std::str::from_utf8(body).map_err(|_| KeyFormatError::Shape)?;
    if check_of(body).as_bytes() != check {
        return Err(KeyFormatError::Check);
    }
    Ok(())
}

/// The non-secret prefix a key entry may carry to tell keys apart: `rk_` and the first
/// [`SHOWN_BODY_CHARS`] characters of the body (36 of its 256 bits).
pub fn shown_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + SHOWN_BODY_CHARS).collect()
}

/// The lowercase hex SHA-256 of a key, as a key entry stores it.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether a stored hash is of a key on the [`DENYLIST`].
pub fn is_denied(sha256: &str) -> bool {
    static DENIED: std::sync::LazyLock<std::collections::HashSet<String>> =
        std::sync::LazyLock::new(|| DENYLIST.iter().map(|k| sha256_hex(k)).collect());
    DENIED.contains(&sha256.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte source for tests (not for keys).
    fn counter() -> impl FnMut() -> u8 {
        let mut n: u8 = 0;
        move || {
            n = n.wrapping_mul(31).wrapping_add(17);
            n
        }
    }

    #[test]
    fn minted_keys_pass_their_check() {
        let key = mint(counter());
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.starts_with("rk_"));
        assert_eq!(check(key.as_bytes()), Ok(()));
        assert_eq!(shown_prefix(&key).len(), 9);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = mint(counter());
        let mut flipped = key.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(check(&flipped), Err(KeyFormatError::Check));
        for bad in [
            "",
            "password",
            &key[..KEY_LEN - 1],
            &format!("{key}x"),
            &key.replacen("rk_", "rK_", 1),
            &key.replacen('_', "-", 2),
            &format!("rk_{}_{}", "é".repeat(21), "abcdef"),
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let mut nul = key.into_bytes();
        nul[20] = 0;
        assert!(check(&nul).is_err());
    }

    #[test]
    fn the_denylist_holds_the_old_demo_keys_in_any_case() {
        let h = sha256_hex("jira-ci-demo-key");
        assert!(is_denied(&h));
        assert!(is_denied(&h.to_uppercase()));
        assert!(is_denied(&sha256_hex("password")));
        assert!(!is_denied(&sha256_hex(&mint(counter()))));
    }

    #[test]
    fn body_characters_are_uniform_over_the_alphabet() {
        // Rejection sampling: every byte below 248 maps to 62 characters 4 times each.
        let mut seen = [0u32; 62];
        for b in 0..248u8 {
            seen[usize::from(b % 62)] += 1;
        }
        assert!(seen.iter().all(|&n| n == 4));
    }
}
