//! The fleet `rampart up` serves: a fleet file, or the example fleet built into the binary;
//! and the demo origins behind its loopback endpoints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rampart_model::Config;
use tokio::net::TcpListener;

use crate::fleet_file::{FleetArgs, check, load, parse};

/// The example fleet, built in so that `rampart up` runs from any directory.
const EXAMPLE_FLEET: &str = include_str!("../../../../examples/fleet.yaml");
/// Where the built-in example fleet lives in the repository: its name in messages.
const EXAMPLE_FLEET_PATH: &str = "examples/fleet.yaml";

/// Read and check `file`, or the built-in example fleet without one; with its name.
pub(super) fn fleet(file: Option<&Path>) -> Result<(PathBuf, Config)> {
    let args = FleetArgs {
        file: file.unwrap_or(Path::new(EXAMPLE_FLEET_PATH)).to_owned(),
        declare_deny_all: vec![],
    };
    let cfg = match file {
        Some(_) => load(&args)?,
        None => parse(&args.file, EXAMPLE_FLEET)?,
    };
    check(&args, &cfg)?;
    Ok((args.file, cfg))
}

/// A demo origin, listening, and its name (`<upstream>-<n>`).
pub(super) type Origin = (String, TcpListener);

/// Listen for one demo origin per loopback endpoint of the fleet. With `free_ports`, each
/// listens on a free port of its address instead, and the fleet's endpoint is moved there.
pub(super) async fn bind_origins(cfg: &mut Config, free_ports: bool) -> Result<Vec<Origin>> {
    let mut origins = Vec::new();
    for u in &mut cfg.upstreams {
        for (i, endpoint) in u.endpoints.iter_mut().enumerate() {
            let Ok(addr) = endpoint.parse::<SocketAddr>() else {
                continue;
            };
            if !addr.ip().is_loopback() {
                continue;
            }
            let name = format!("{}-{}", u.name, i + 1);
            let at = if free_ports {
                SocketAddr::new(addr.ip(), 0)
            } else {
                addr
            };
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot start the demo upstream {name} on {addr}"))?;
            if free_ports {
                *endpoint = listener.local_addr()?.to_string();
            }
            origins.push((name, listener));
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_fleet_is_the_example_and_valid() {
        let (name, cfg) = fleet(None).unwrap();
        assert_eq!(name, Path::new("examples/fleet.yaml"));
        let on_disk = format!("{}/../../examples/fleet.yaml", env!("CARGO_MANIFEST_DIR"));
        let (_, from_file) = fleet(Some(Path::new(&on_disk))).unwrap();
        assert_eq!(cfg, from_file);
    }

    #[tokio::test]
    async fn free_ports_move_the_loopback_endpoints() {
        let (_, mut cfg) = fleet(None).unwrap();
        let origins = bind_origins(&mut cfg, true).await.unwrap();
        assert_eq!(origins.len(), 5);
        for (name, listener) in &origins {
            let addr = listener.local_addr().unwrap().to_string();
            let upstream = cfg
                .upstreams
                .iter()
                .find(|u| name.starts_with(&u.name))
                .unwrap();
            assert!(upstream.endpoints.contains(&addr), "{name} on {addr}");
        }
    }
}
