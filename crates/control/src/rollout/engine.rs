//! The rollout driver: one per control plane, of which one per database drives. It looks at
//! every active rollout each tick ([`Rollouts::step`]) and wakes this process's config streams
//! when a step deployed something. With PostgreSQL, the driver is whoever holds a session
//! advisory lock on a connection kept out of the pool; with SQLite, the one control plane is.

use rampart_store::ops::*;
use std::time::Duration;

use super::Rollouts;
use crate::service::Service;
use rampart_store::{AdvisoryLock, Backend};

/// The advisory-lock key of the rollout driver (PostgreSQL).
const DRIVER_LOCK_KEY: i64 = 0x0072_616d_7061_7274; // "rampart"

/// The rollout driver: one per control plane, of which one (per database) drives.
#[derive(Debug)]
pub struct Engine {
    rollouts: Rollouts,
    tick: Duration,
}

impl Engine {
    /// The driver of `service`'s rollouts, looking every `tick`.
    pub fn new(service: Service, tick: Duration) -> Engine {
        Engine {
            rollouts: service.rollouts().clone(),
            tick,
        }
    }

    /// Run until the task is dropped.
    pub async fn run(self) {
        let mut lock = AdvisoryLock::new(DRIVER_LOCK_KEY);
        let mut was_leader = false;
        loop {
            let leader = match self.rollouts.store.backend() {
                Backend::Sqlite => true,
                Backend::Postgres => lock.hold(&self.rollouts.store).await,
            };
            if leader != was_leader {
                tracing::info!(leader, "rollout driver");
                was_leader = leader;
            }
            if leader {
                self.drive().await;
            }
            tokio::time::sleep(self.tick).await;
        }
    }

    async fn drive(&self) {
        let active = match self.rollouts.store.active_rollouts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list active rollouts");
                return;
            }
        };
        for r in active {
            let id = r.id.clone();
            match self.rollouts.step(r).await {
                Ok(true) => self.rollouts.deployed.notify_one(),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(rollout = %id, error = %e, "rollout step failed; retrying next tick")
                }
            }
        }
    }
}
