//! # rampart-model
//!
//! The domain types of rampart, shared by every other crate: the fleet configuration of one
//! environment ([`Config`]: products, upstreams, policies, routes and flags), the content-hashed
//! [`Snapshot`] that gateways run, the canonical request target ([`paths`]: how a request's
//! path and host are normalised before routing), [`Change`]s and rollout plan definitions, the one table of hard
//! [`limits`], and the [`validate`] library that reports every error with the path of the field
//! at fault.
//!
//! This crate does no I/O and has no async runtime. Wire formats are YAML (for humans, see
//! [`load`]) and JSON (for machines); unknown fields are errors in both. Wire types become
//! domain types through `TryFrom`, so a value that exists has been checked.

pub mod apikey;
pub mod bind;
pub mod body;
pub mod change;
pub mod clock;
pub mod config;
pub mod flag;
pub mod identity;
pub mod limits;
pub mod load;
pub mod names;
pub mod paths;
pub mod snapshot;
pub mod validate;
pub mod wire;

pub use bind::Bindable;
pub use change::{Change, DeclaredImpact, Risk};
pub use clock::{Clock, SystemClock};
pub use config::{Config, Environment, GatewayIdentity};
pub use flag::{Attribute, Flag, FlagType};
pub use limits::LIMITS;
pub use load::LoadError;
pub use names::{EnumName, UnknownName, parse_name};
pub use snapshot::{ContentHash, Rollout, Snapshot, SnapshotError, StageScope};
pub use validate::{ValidationError, ValidationErrors};
