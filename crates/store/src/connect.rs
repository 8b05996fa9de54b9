//! Opening a store by URL, and what needs a connection of its own: LISTEN for deployments
//! and advisory locks (PostgreSQL).

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgListener;
use sqlx::{AnyConnection, AnyPool};

use crate::{Result, StoreError};

/// The embedded migrations, shared by both backends.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Run on every new SQLite connection.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
];

/// The PostgreSQL channel every deployment is announced on (payload: the environment), in the
/// deploying transaction, so other replicas stream it at once.
pub const DEPLOYED_CHANNEL: &str = "rampart_deployments";

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed database URL.
pub(crate) struct Target {
    pub(crate) backend: Backend,
    pub(crate) url: String,
    pub(crate) memory: bool,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target {
                backend: Backend::Postgres,
                url: url.to_owned(),
                memory: false,
            });
        }
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::UnsupportedUrl {
                scheme: url.split(':').next().unwrap_or_default().to_owned(),
            });
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let memory = path.is_empty()
            || path == ":memory:"
            || query.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
        if memory {
            return Ok(Target {
                backend: Backend::Sqlite,
                url: url.to_owned(),
                memory: true,
            });
        }
        // Percent-encoded paths are left for SQLite to decode and must already exist.
        if !path.contains('%')
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
        let url = match (query, has_mode) {
            (_, true) => url.to_owned(),
            (Some(_), false) => format!("{url}&mode=rwc"),
            (None, false) => format!("{url}?mode=rwc"),
        };
        Ok(Target {
            backend: Backend::Sqlite,
            url,
            memory: false,
        })
    }

    /// Open the pool and run the pending migrations.
    pub(crate) async fn open(&self) -> Result<AnyPool> {
        sqlx::any::install_default_drivers();
        let mut options = AnyPoolOptions::new();
        match self.backend {
            Backend::Sqlite => {
                options = if self.memory {
                    // Every connection to `:memory:` is its own database: keep exactly one.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(8)
                };
                options = options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                });
            }
            Backend::Postgres => options = options.max_connections(10),
        }
        let pool = options.connect(&self.url).await?;
        MIGRATOR.run(&pool).await?;
        Ok(pool)
    }
}

/// A LISTEN on [`DEPLOYED_CHANNEL`]: hears the deployments every replica makes.
#[derive(Debug)]
pub struct DeploymentListener {
    listener: PgListener,
}

impl DeploymentListener {
    pub(crate) async fn connect(url: &str) -> Result<DeploymentListener> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(DEPLOYED_CHANNEL).await?;
        Ok(DeploymentListener { listener })
    }

    /// Wait for the next deployment; returns the environment's name it was announced with.
    /// An error means the connection is gone: connect again.
    pub async fn recv(&mut self) -> Result<String> {
        Ok(self.listener.recv().await?.payload().to_owned())
    }
}

/// A PostgreSQL session-level advisory lock, so that one replica at a time does a job. The
/// lock lives on a connection taken out of the pool for good: when that connection fails it
/// is dropped (closed), so the session, and the lock with it, ends instead of going back to
/// the pool still held.
#[derive(Debug)]
pub struct AdvisoryLock {
    key: i64,
    conn: Option<AnyConnection>,
}

impl AdvisoryLock {
    /// The lock `key` (shared by every replica), not yet taken.
    pub fn new(key: i64) -> AdvisoryLock {
        AdvisoryLock { key, conn: None }
    }

    /// Keep the lock, or try to take it; whether it is held now.
    pub async fn hold(&mut self, store: &crate::Store) -> bool {
        if let Some(conn) = self.conn.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                return true;
            }
            tracing::warn!(
                key = self.key,
                "lost the connection holding an advisory lock"
            );
            self.conn = None;
        }
        let Ok(mut conn) = store.pool().acquire().await else {
            return false;
        };
        let got: std::result::Result<bool, _> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await;
        match got {
            Ok(true) => {
                // Out of the pool for good: the lock must never go back to it.
                self.conn = Some(conn.detach());
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(key = self.key, error = %e, "cannot try an advisory lock");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/c.db", dir.path().display());
        let t = Target::parse(&url).unwrap();
        assert_eq!(t.backend, Backend::Sqlite);
        assert!(t.url.ends_with("?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
        let t = Target::parse("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(t.url, "sqlite://x.db?mode=ro");
        assert!(Target::parse("sqlite::memory:").unwrap().memory);
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
        let t = Target::parse("postgres://u@h/db").unwrap();
        assert_eq!(t.backend, Backend::Postgres);
    }
}
