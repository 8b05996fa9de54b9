//! The API's shared state: the service, and the newest deployment of each environment,
//! serialized once for every gateway stream and kept current by a publisher task.

use std::sync::Arc;

use rampart_model::Environment;

use crate::service::Service;

/// Shared state of the API.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Service,
    /// The newest snapshot of each environment, serialized once for every stream; see
    /// [`AppState::publish`].
    snapshots: [tokio::sync::watch::Sender<Option<Arc<Published>>>; 3],
}

/// A snapshot as the streams send it.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub json: String,
}

impl AppState {
    /// The state over `service`, with its publisher (and, on PostgreSQL, its listener).
    pub fn start(service: Service) -> Arc<AppState> {
        let state = Arc::new(AppState {
            service,
            snapshots: std::array::from_fn(|_| tokio::sync::watch::Sender::new(None)),
        });
        spawn_publisher(&state);
        spawn_listener(&state);
        state
    }

    fn env_index(env: Environment) -> usize {
        match env {
            Environment::Dev => 0,
            Environment::Staging => 1,
            Environment::Prod => 2,
        }
    }

    /// Load the newest deployment of `env` and hand it to every stream of `env`; called after
    /// each apply and rollback, by the first stream of an environment, and by
    /// [`spawn_publisher`] when another replica (or the rollout driver) deployed.
    pub async fn publish(&self, env: Environment) {
        let dep = match self.service.newest_deployment(env).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, env = %env, "cannot read the newest deployment to publish");
                return;
            }
        };
        let json = match serde_json::to_string(&dep.snapshot) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a snapshot");
                return;
            }
        };
        let new = Arc::new(Published {
            version: dep.seq,
            json,
        });
        // Two publishes may finish out of order: never go back to an older deployment.
        self.snapshots[Self::env_index(env)].send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.version >= new.version) {
                return false;
            }
            *cur = Some(new);
            true
        });
    }

    /// The deployment `seq` each stream of `env` has, if any.
    fn published(&self, env: Environment) -> Option<u64> {
        self.snapshots[Self::env_index(env)]
            .borrow()
            .as_ref()
            .map(|p| p.version)
    }

    pub fn subscribe(
        &self,
        env: Environment,
    ) -> tokio::sync::watch::Receiver<Option<Arc<Published>>> {
        self.snapshots[Self::env_index(env)].subscribe()
    }
}

/// How often each replica checks for deployments it did not make itself, as a fallback: its
/// own rollout driver wakes it at once, and with PostgreSQL so does a NOTIFY from the others.
pub const PUBLISH_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Check for new deployments every [`PUBLISH_POLL`] and stream them; runs until the state is
/// dropped by every router.
fn spawn_publisher(state: &Arc<AppState>) {
    let weak = Arc::downgrade(state);
    let service = state.service.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PUBLISH_POLL) => {}
                _ = service.deployed().notified() => {}
            }
            let Some(state) = weak.upgrade() else { return };
            for env in [Environment::Dev, Environment::Staging, Environment::Prod] {
                let Some(current) = state.published(env) else {
                    continue;
                };
                match state.service.deployment_seq(env).await {
                    Ok(Some(seq)) if seq > current => state.publish(env).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot check for new deployments"),
                }
            }
        }
    });
}

/// With PostgreSQL, LISTEN for deployments other replicas make, and wake this replica's
/// publisher at once (the poll stays as the fallback). Reconnects after errors; ends when the
/// state is dropped.
fn spawn_listener(state: &Arc<AppState>) {
    let service = state.service.clone();
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let mut listener = match service.listen_deployments().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for deployments; polling meanwhile");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if weak.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let got =
                    tokio::time::timeout(std::time::Duration::from_secs(1), listener.recv()).await;
                let Some(state) = weak.upgrade() else { return };
                match got {
                    Ok(Ok(_)) => state.service.deployed().notify_one(),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "LISTEN for deployments failed; reconnecting");
                        break;
                    }
                    Err(_) => {} // no deployment this second
                }
            }
        }
    });
}
