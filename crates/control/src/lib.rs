//! # rampart-control
//!
//! The control plane. A change to production has exactly one path: submitted, validated,
//! approved by risk, rolled out stage by stage behind health gates (or applied at once when it
//! is an environment's first config), and audited; the fast path back is the last known good
//! snapshot. It keeps its state in the store ([`rampart_store`]: SQLite by default and
//! PostgreSQL by URL, one set of migrations, optimistic concurrency) and writes no SQL of its
//! own; its API's bodies are the [`rampart_api`] types. This crate holds:
//!
//! - [`rules`]: the risk rules as data: who may do what ([`rules::permissions`]), what each
//!   environment asks of each risk level ([`rules::config`]), what a change still lacks
//!   ([`rules::readiness`]), and a change's risk derived from what it touches ([`rules::risk`]);
//! - [`service`]: the one path for changes (submit, approve, reject, withdraw, apply,
//!   rollback), each step transactional and audited;
//! - [`plan`]: the stages of a rollout, by risk, overridable per environment;
//! - [`impact`]: the impact test, which replays the request samples gateways uploaded through
//!   the baseline and the candidate before a rollout starts;
//! - [`gates`]: the health gates that judge a stage (a sequential error-rate test, latency,
//!   traffic floor, shadow diff, NACKs and guard trips), pure;
//! - [`rollout`]: the rollouts ([`rollout::Rollouts`]: start, step, pause, resume, abort) and
//!   their driver ([`rollout::Engine`]), one per database;
//! - [`audit`]: the hash-chained audit log and its verification;
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
