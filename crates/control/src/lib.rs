//! # rampart-control
//!
//! The control plane (in progress; issue 4). A change to production has exactly one path:
//! submitted, validated, approved by risk, applied as a new content-hashed snapshot, and
//! audited. This crate holds:
//!
//! - [`store`]: the store (the `rampart-store` crate, re-exported): SQLite by default and
//!   PostgreSQL by URL, one set of migrations, optimistic concurrency; the control plane
//!   writes no SQL of its own;
//! - [`rules`]: the risk rules (approvals, author exclusion, staging soak, change windows) as
//!   data, checked in one place;
//! - [`audit`]: the hash-chained audit log and its verification;
//! - [`service`]: the one path for changes (submit, approve, apply, rollback), transactional;
//! - [`api`]: the admin REST API on axum, with tokens and roles, and the distribution
//!   endpoints for gateways (a server-sent-events snapshot stream, ACK/NACK, reports, the
//!   fleet view).

pub mod api;
pub mod audit;
pub mod gates;
pub mod impact;
pub mod plan;
pub mod rollout;
pub mod rules;
pub mod service;

/// The store, re-exported under the path the control plane has always used.
pub use rampart_store as store;
