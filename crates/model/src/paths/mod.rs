//! The canonical request target: how a request's path and host are normalised before routing,
//! and the fleet settings that choose how (`settings.paths`).
//!
//! One function decides each: [`normalize_path`] and [`normalize_host`]. The gateway calls
//! them once per request; routing, policies, samples and the request forwarded upstream all
//! use their output, so what was checked is what is forwarded. Validation uses them too: a
//! route whose path is not canonical could never match.

mod host;
mod normalize;

pub use host::{HostError, checked_authority, normalize_host, split_port};
pub use normalize::{Normalized, PathError, normalize_path};

use serde::{Deserialize, Serialize};

/// How request paths are normalised (`settings.paths`). Every field has a safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PathSettings {
    /// Merge repeated slashes (`/a//b` is `/a/b`).
    pub merge_slashes: bool,
    /// What to do with `;` path parameters (`/a;jsessionid=1/b`).
    pub path_parameters: PathParameters,
    /// What to do with an encoded slash (`%2F`), an encoded backslash (`%5C`) or a backslash.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings {
            merge_slashes: true,
            path_parameters: PathParameters::Reject,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

impl PathSettings {
    /// Whether every field holds its default (then a snapshot leaves the settings out, so
    /// snapshots sealed before they existed keep their hash).
    pub fn is_default(&self) -> bool {
        *self == PathSettings::default()
    }
}

crate::wire_enum! {
    /// What to do with `;` path parameters.
    #[derive(Default)]
    pub enum PathParameters {
        /// Refuse the request with 400 `path_parameters`.
        #[default]
        Reject,
        /// Remove each segment's parameters (from `;` to the end of the segment) before
        /// matching and from the path forwarded upstream.
        Strip,
    }
}

crate::wire_enum! {
    /// What to do with `%2F`, `%5C` and `\` in a path (Envoy's
    /// `path_with_escaped_slashes_action`).
    #[derive(Default)]
    pub enum EscapedSlashes {
        /// Refuse the request with 400 `escaped_slash`.
        #[default]
        Reject,
        /// Leave them as they are: an ordinary character inside a segment (`%2f` becomes `%2F`).
        Keep,
        /// Decode them to `/` and forward the resulting path.
        DecodeAndForward,
        /// Decode them to `/` and answer 307 with the resulting path as `Location`.
        DecodeAndRedirect,
    }
}

crate::wire_enum! {
    /// How a route compares the request path (`match.path_case`).
    #[derive(Default)]
    pub enum PathCase {
        /// Letter case matters: `/Admin/` is not `/admin/`.
        #[default]
        Sensitive,
        /// ASCII letters match either case. Escapes are compared as the canonical target
        /// writes them (uppercase hex), so `%C3%A9` and `%c3%a9` match each other, but `É` and
        /// `é` do not.
        Insensitive,
    }
}

impl PathCase {
    /// Whether this is the default, [`PathCase::Sensitive`].
    pub fn is_sensitive(&self) -> bool {
        *self == PathCase::Sensitive
    }
}

#[cfg(test)]
mod tests;
