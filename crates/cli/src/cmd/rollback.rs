//! `rampart rollback`: put an environment back on its last known good snapshot, now.

use anyhow::Result;
use rampart_api::{EmptyRequest, SnapshotRef};
use rampart_model::Environment;

use super::EnvArgs;
use crate::client::{client, parse_env};
use crate::output::{answer, out};

pub(crate) fn run(a: EnvArgs) -> Result<()> {
    let json = a.client.json;
    let env = parse_env(&a.env)?;
    client(&a.client, |api| async move {
        let path = format!("/v1/envs/{env}/rollback");
        let v: SnapshotRef = api.post(&path, &EmptyRequest {}).await?;
        answer(json, &v, |v| out(&rollback_line(env, v)))
    })
}

/// What `rampart rollback` prints.
fn rollback_line(env: Environment, v: &SnapshotRef) -> String {
    format!(
        "{env} is back on the last known good: version {}, hash {}",
        v.version, v.hash
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_line_prints_version_and_hash() {
        let hash = "ab".repeat(32);
        let v: SnapshotRef =
            serde_json::from_value(serde_json::json!({"version": 7, "hash": hash})).unwrap();
        assert_eq!(
            rollback_line(Environment::Prod, &v),
            format!("prod is back on the last known good: version 7, hash {hash}")
        );
    }
}
