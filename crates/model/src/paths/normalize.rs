//! [`normalize_path`]: one canonical form of a request path, or the reason it has none.

use std::borrow::Cow;

use super::{EscapedSlashes, PathParameters, PathSettings};

/// A canonical path, borrowed from the input when nothing had to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    pub path: Cow<'a, str>,
    /// An escaped slash or backslash was decoded under [`EscapedSlashes::DecodeAndRedirect`]:
    /// the client is to be sent to `path` rather than served.
    pub redirect: bool,
}

/// Why a path has no canonical form. The name (`strum`) is the gateway's `x-rampart-error`
/// code; `at` is the byte offset of the fault in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum PathError {
    #[error("the path is not absolute: it must start with `/`")]
    #[strum(serialize = "bad_request_target")]
    NotAbsolute,
    #[error("`%` at byte {at} is not followed by two hex digits")]
    InvalidPercentEncoding { at: usize },
    #[error("the percent-encoded bytes from byte {at} are not UTF-8 (or are overlong)")]
    InvalidUtf8 { at: usize },
    #[error("byte {at} encodes a control character")]
    ControlCharacter { at: usize },
    #[error(
        "byte {at} may not appear unencoded in a path (a space, `?`, `#`, a control or non-ASCII byte)"
    )]
    InvalidCharacter { at: usize },
    #[error("an encoded slash or a backslash at byte {at}")]
    EscapedSlash { at: usize },
    #[error("a `;` path parameter at byte {at}")]
    PathParameters { at: usize },
}

/// The canonical form of `path` (the path of a request target, without its query):
///
/// - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other escapes
///   written in uppercase hex; an escape that is not two hex digits, bytes that are not UTF-8
///   (overlong forms included) and control characters (`%00`, `%7F`, C1) are errors;
/// - `;` parameters are refused or stripped ([`PathParameters`]);
/// - `%2F`, `%5C` and `\` are refused, kept, or decoded to `/` ([`EscapedSlashes`]);
/// - repeated slashes are merged (if [`PathSettings::merge_slashes`]);
/// - dot segments, encoded ones included, are resolved (RFC 3986, section 5.2.4).
///
/// `*` (the target of `OPTIONS *`) is `/`. A path that is already canonical is returned
/// borrowed: no allocation.
pub fn normalize_path<'a>(path: &'a str, s: &PathSettings) -> Result<Normalized<'a>, PathError> {
    if path == "*" {
        return Ok(Normalized {
            path: Cow::Borrowed("/"),
            redirect: false,
        });
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(path.as_bytes(), s.merge_slashes) {
        return Ok(Normalized {
            path: Cow::Borrowed(path),
            redirect: false,
        });
    }
    let (out, redirect) = rebuild(path, s)?;
    let path = if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    };
    Ok(Normalized { path, redirect })
}

/// Whether a path needs no work: no escape, parameter, backslash or byte that is not visible
/// ASCII, no dot segment, and no repeated slash when they are merged. One pass, no allocation.
fn is_canonical(b: &[u8], merge_slashes: bool) -> bool {
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b';' | b'\\' | b'?' | b'#' | ..=b' ' | 0x7f.. => return false,
            b'/' => {
                let rest = &b[i + 1..];
                let dot = |n: usize| {
                    rest.len() >= n
                        && rest[..n].iter().all(|&d| d == b'.')
                        && rest.get(n).is_none_or(|&d| d == b'/')
                };
                if (merge_slashes && rest.first() == Some(&b'/')) || dot(1) || dot(2) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The slow path: decode each segment, then resolve dot and empty segments.
fn rebuild(path: &str, s: &PathSettings) -> Result<(String, bool), PathError> {
    let mut out = String::with_capacity(path.len());
    let mut redirect = false;
    let mut trailing = false;
    let mut decoded = String::new();
    let mut raw_segments = path[1..].split('/').peekable();
    let mut at = 1;
    while let Some(raw) = raw_segments.next() {
        let last_raw = raw_segments.peek().is_none();
        let offset = at;
        at += raw.len() + 1;
        let raw = match (raw.find(';'), s.path_parameters) {
            (None, _) => raw,
            (Some(i), PathParameters::Reject) => {
                return Err(PathError::PathParameters { at: offset + i });
            }
            (Some(i), PathParameters::Strip) => &raw[..i],
        };
        decoded.clear();
        redirect |= decode(raw, offset, s.escaped_slashes, &mut decoded)?;
        let mut pieces = decoded.split('/').peekable();
        while let Some(piece) = pieces.next() {
            let last = last_raw && pieces.peek().is_none();
            trailing = false;
            match piece {
                "." => trailing = last,
                ".." => {
                    // Every kept segment starts at a `/` and holds none: remove the last one.
                    if let Some(start) = out.rfind('/') {
                        out.truncate(start);
                    }
                    trailing = last;
                }
                "" if s.merge_slashes => trailing = last,
                _ => {
                    out.push('/');
                    out.push_str(piece);
                }
            }
        }
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok((out, redirect))
}

/// Decode one raw segment (`at` is its offset in the path) into `out`, where a decoded slash
/// is `/`. Returns whether a slash was decoded under [`EscapedSlashes::DecodeAndRedirect`].
fn decode(
    raw: &str,
    at: usize,
    action: EscapedSlashes,
    out: &mut String,
) -> Result<bool, PathError> {
    let b = raw.as_bytes();
    let mut redirect = false;
    let mut slash = |out: &mut String, i: usize, literal: &str| -> Result<(), PathError> {
        match action {
            EscapedSlashes::Reject => return Err(PathError::EscapedSlash { at: at + i }),
            EscapedSlashes::Keep => out.push_str(literal),
            EscapedSlashes::DecodeAndForward => out.push('/'),
            EscapedSlashes::DecodeAndRedirect => {
                out.push('/');
                redirect = true;
            }
        }
        Ok(())
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let v = hex_at(b, i).ok_or(PathError::InvalidPercentEncoding { at: at + i })?;
                if v >= 0x80 {
                    i = utf8_run(b, i, at, out)?;
                    continue;
                }
                match v {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(char::from(v));
                    }
                    b'/' => slash(out, i, "%2F")?,
                    b'\\' => slash(out, i, "%5C")?,
                    ..=0x1f | 0x7f => return Err(PathError::ControlCharacter { at: at + i }),
                    _ => push_escape(out, v),
                }
                i += 3;
            }
            b'\\' => {
                slash(out, i, "\\")?;
                i += 1;
            }
            b'?' | b'#' | ..=b' ' | 0x7f.. => {
                return Err(PathError::InvalidCharacter { at: at + i });
            }
            c => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    Ok(redirect)
}

/// Read the run of escapes of bytes >= 0x80 that starts at `i`: it must be UTF-8 without
/// control characters; it is written back in uppercase hex. Returns the offset after it.
fn utf8_run(b: &[u8], mut i: usize, at: usize, out: &mut String) -> Result<usize, PathError> {
    let start = i;
    let mut bytes = Vec::new();
    while let Some(v) = (b.get(i) == Some(&b'%')).then(|| hex_at(b, i)).flatten() {
        if v < 0x80 {
            break;
        }
        bytes.push(v);
        i += 3;
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| PathError::InvalidUtf8 { at: at + start })?;
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter { at: at + start });
    }
    for v in bytes {
        push_escape(out, v);
    }
    Ok(i)
}

/// The byte that the escape at `b[i]` (a `%`) encodes, if two hex digits follow.
fn hex_at(b: &[u8], i: usize) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    let hi = digit(*b.get(i + 1)?)?;
    let lo = digit(*b.get(i + 2)?)?;
    Some((hi * 16 + lo) as u8)
}

fn push_escape(out: &mut String, v: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(v >> 4)]));
    out.push(char::from(HEX[usize::from(v & 15)]));
}
