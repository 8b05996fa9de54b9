//! `rampart demo-upstream`: a demo origin that echoes requests as JSON (and answers /healthz).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;

use crate::output::out;
use crate::runtime::{runtime, shutdown_signal};

#[derive(Debug, Args)]
pub(crate) struct DemoUpstreamArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
}

/// `rampart demo-upstream`: serve until SIGTERM or Ctrl-C.
pub(crate) fn run(DemoUpstreamArgs { name, listen }: DemoUpstreamArgs) -> Result<()> {
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        out(&format!(
            "demo upstream {name} listening on {}",
            listener.local_addr()?
        ))?;
        tokio::select! {
            _ = rampart_gateway::demo::serve(listener, name) => {}
            _ = shutdown_signal() => {}
        }
        Ok(())
    })
}
