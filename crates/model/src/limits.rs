//! The published hard limits: one table, enforced by validation in the control plane and by
//! every gateway when it compiles a snapshot.
//!
//! Raising a limit is a gateway release, not a config change: a gateway refuses (NACKs) a
//! snapshot over the limits it was built with.

/// Hard limits on the size of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_products: usize,
    pub max_upstreams: usize,
    pub max_endpoints_per_upstream: usize,
    pub max_policies: usize,
    pub max_routes: usize,
    pub max_policies_per_route: usize,
    pub max_header_matches: usize,
    pub max_access_rules: usize,
    pub max_access_entries: usize,
    pub max_api_keys: usize,
    pub max_header_edits: usize,
    pub max_flags: usize,
    pub max_rules_per_flag: usize,
    pub max_conditions_per_rule: usize,
    pub max_values_per_condition: usize,
    /// Bytes of a compiled regex program, passed to `regex::RegexBuilder::size_limit`.
    pub max_regex_bytes: usize,
    /// Bytes of a pattern's source text.
    pub max_regex_source: usize,
    /// Bytes of a static response body.
    pub max_static_body: usize,
    /// Bytes of a flag value, as compact JSON.
    pub max_flag_value_bytes: usize,
    /// Bytes of any name, id, host or header value.
    pub max_string: usize,
}

/// The limits of this build.
pub const LIMITS: Limits = Limits {
    max_products: 64,
    max_upstreams: 512,
    max_endpoints_per_upstream: 256,
    max_policies: 2_048,
    max_routes: 2_048,
    max_policies_per_route: 16,
    max_header_matches: 16,
    max_access_rules: 256,
    max_access_entries: 4_096,
    max_api_keys: 10_000,
    max_header_edits: 32,
    max_flags: 5_000,
    max_rules_per_flag: 64,
    max_conditions_per_rule: 16,
    max_values_per_condition: 1_000,
    max_regex_bytes: 256 * 1024,
    max_regex_source: 1_024,
    max_static_body: 64 * 1024,
    max_flag_value_bytes: 32 * 1024,
    max_string: 1_024,
};
