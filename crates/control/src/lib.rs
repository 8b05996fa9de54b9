//! # rampart-control
//!
//! The control plane (in progress; issue 4). A change to production has exactly one path:
//! submitted, validated, approved by risk, applied as a new content-hashed snapshot, and
//! audited. This crate holds:
//!
//! - [`store`]: the append-only store on sqlx, SQLite by default and PostgreSQL by URL, one
//!   set of migrations, optimistic concurrency;
//! - [`rules`]: the risk rules (approvals, author exclusion, staging soak, change windows) as
//!   data, checked in one place;
//! - [`audit`]: the hash-chained audit log and its verification.

pub mod audit;
pub mod rules;
pub mod store;
