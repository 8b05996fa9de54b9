//! Request samples gateways upload, kept for the impact test and pruned to the newest.

use rampart_model::EnumName;
use rampart_model::config::Environment;

use crate::codec::{new_id, now_ms};
use crate::{Handle, Result};

/// Sample batches, on any [`Handle`].
pub trait Samples: Handle {
    /// Keep a batch of request samples (its JSON), and prune `env` to its newest `keep`
    /// batches.
    async fn put_samples(
        self,
        env: Environment,
        gateway: &str,
        body: &str,
        keep: u32,
    ) -> Result<()> {
        self.atomic(async |c| {
            sqlx::query(
                "INSERT INTO sample_batches (env, id, gateway, at_ms, body) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(env.as_str())
            .bind(new_id("smp")?)
            .bind(gateway)
            .bind(now_ms())
            .bind(body)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "DELETE FROM sample_batches WHERE env = $1 AND id NOT IN (SELECT id FROM \
                 sample_batches WHERE env = $1 ORDER BY at_ms DESC, id DESC LIMIT $2)",
            )
            .bind(env.as_str())
            .bind(i64::from(keep))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
        .await
    }

    /// The newest sample batches of `env` (their JSON), newest first.
    async fn sample_batches(self, env: Environment, limit: u32) -> Result<Vec<String>> {
        self.run(async |c| {
            Ok(sqlx::query_scalar(
                "SELECT body FROM sample_batches WHERE env = $1 \
                 ORDER BY at_ms DESC, id DESC LIMIT $2",
            )
            .bind(env.as_str())
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?)
        })
        .await
    }
}

impl<H: Handle> Samples for H {}
