//! `rampart up`'s control plane: on SQLite in the data directory, with the demo's rules, its
//! tokens kept in files, the fleet loaded into `dev` through a change, and its rollout engine.

use rampart_store::ops::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rampart_api::{Role, TokenKind};
use rampart_control::service::{Service, Submission};
use rampart_model::change::Edit;
use rampart_model::{Config, Environment};
use rampart_store::Store;
use tokio::sync::watch;

use super::rules::{demo_rollouts, demo_rules};

/// Who `rampart up` acts as on its control plane.
const ACTOR: &str = "rampart-up";

/// A control plane serving its admin API until the stop signal.
pub(super) struct ControlPlane {
    pub(super) addr: SocketAddr,
    pub(super) admin_token: String,
    pub(super) gateway_token: String,
    store: Store,
    served: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    /// Open the store in `data_dir`, load the fleet if `dev` is empty, and serve on `listen`.
    pub(super) async fn start(
        data_dir: &Path,
        listen: SocketAddr,
        cfg: &Config,
        limits: rampart_listen::Limits,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Self> {
        let db = format!("sqlite://{}/control.db", data_dir.display());
        let store = Store::connect(&db)
            .await
            .with_context(|| format!("cannot open {db}"))?;
        let service = Service::new(store.clone(), demo_rules()?).with_rollouts(demo_rollouts());
        let admin_token = kept_token(&service, data_dir, &ADMIN).await?;
        let gateway_token = kept_token(&service, data_dir, &GATEWAY).await?;
        load_fleet(&service, cfg).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for the control plane on {listen}"))?;
        let addr = listener.local_addr()?;
        tokio::spawn(
            rampart_control::rollout::Engine::new(service.clone(), Duration::from_millis(100))
                .run(),
        );
        let served = tokio::spawn(async move {
            let app = rampart_control::api::router_with(service);
            let stopped = async move {
                let _ = stop.changed().await;
            };
            crate::cmd::control::serve_api(listener, app, limits, stopped).await;
        });
        Ok(Self {
            addr,
            admin_token,
            gateway_token,
            store,
            served,
        })
    }

    /// Wait for the admin API to stop, then close the store.
    pub(super) async fn stopped(self) {
        let _ = self.served.await;
        self.store.close().await;
    }
}

/// A token of `rampart up`, its secret kept in a file of the data directory.
struct KeptToken {
    /// The file, in the data directory.
    file: &'static str,
    name: &'static str,
    kind: TokenKind,
    role: Option<Role>,
}

/// The operator's token, printed at start.
const ADMIN: KeptToken = KeptToken {
    file: "admin-token",
    name: "admin",
    kind: TokenKind::User,
    role: Some(Role::Admin),
};

/// The gateway's token.
const GATEWAY: KeptToken = KeptToken {
    file: "gateway-token",
    name: "gw-1",
    kind: TokenKind::Gateway,
    role: None,
};

/// The token's secret: read from its file, or created on the first start and written there.
async fn kept_token(service: &Service, data_dir: &Path, token: &KeptToken) -> Result<String> {
    let path = data_dir.join(token.file);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_owned());
    }
    let (_, secret) = service
        .create_token(ACTOR, token.name, token.kind, token.role)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the {} token: {e}", token.name))?;
    crate::output::write_secret(&path, &secret)?;
    Ok(secret)
}

/// Load the fleet into the demo environment through a change, if the environment is empty.
async fn load_fleet(service: &Service, cfg: &Config) -> Result<()> {
    let env = Environment::Dev;
    if service
        .store()
        .head(env)
        .await
        .context("cannot read the demo environment")?
        > 0
    {
        return Ok(());
    }
    let view = service
        .submit(
            ACTOR,
            Submission {
                env,
                reason: "rampart up: load the example fleet".into(),
                declared_impact: Default::default(),
                edits: cfg.objects().map(Edit::Upsert).collect(),
                base_version: 0,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("the fleet was refused: {e}"))?;
    service
        .apply(&view.record.id, ACTOR)
        .await
        .map_err(|e| anyhow::anyhow!("cannot apply the fleet: {e}"))?;
    Ok(())
}
