//! The two handles every operation runs on: the store ([`Store`], a connection pool) and a
//! transaction over it ([`StoreTx`]), and the one trait ([`Handle`]) that lets each operation
//! be written once for both.

use std::fmt;

use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use crate::connect::{DeploymentListener, Target};
use crate::{Backend, Result, StoreError};

/// The control plane's store. Cheap to clone (it is a connection pool). Its operations are
/// the methods of the operation traits (`use rampart_store::ops::*`), called on `&Store`.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for what needs a connection of its own (LISTEN).
    pg_url: Option<String>,
}

impl Store {
    /// Open (creating if needed) the database at `url` and run the pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let target = Target::parse(url)?;
        let pool = target.open().await?;
        Ok(Store {
            pool,
            backend: target.backend,
            pg_url: (target.backend == Backend::Postgres).then_some(target.url),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for tests that inspect or damage the database on purpose. Writes
    /// through it bypass the store's guarantees.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close every connection; pending operations finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Start a transaction for several operations at once; see [`StoreTx`].
    pub async fn begin(&self) -> Result<StoreTx> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(StoreTx {
            tx,
            failed: false,
            backend: self.backend,
        })
    }

    /// With PostgreSQL, a LISTEN for the deployments every replica makes (see
    /// [`DEPLOYED_CHANNEL`](crate::DEPLOYED_CHANNEL)); `None` on SQLite, where one process
    /// owns the database.
    pub async fn listen_deployments(&self) -> Result<Option<DeploymentListener>> {
        match &self.pg_url {
            Some(url) => Ok(Some(DeploymentListener::connect(url).await?)),
            None => Ok(None),
        }
    }
}

/// A transaction over the store: several operations that commit together or not at all.
///
/// Dropping it without [`commit`](StoreTx::commit) rolls it back. After any error from one of
/// its operations it is poisoned: `commit` rolls back and returns [`StoreError::Aborted`]. On
/// SQLite it holds the database's write lock from the start, so keep it short.
pub struct StoreTx {
    tx: Transaction<'static, Any>,
    failed: bool,
    backend: Backend,
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StoreTx {
    /// Commit, unless an operation failed (then roll back and return [`StoreError::Aborted`]).
    pub async fn commit(self) -> Result<()> {
        if self.failed {
            self.tx.rollback().await?;
            return Err(StoreError::Aborted);
        }
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Where an operation runs: implemented by `&Store` and `&mut StoreTx`, and by nothing else.
/// The operation traits are implemented for every `Handle`, so each operation is written once.
pub trait Handle: Sized + Send {
    /// The database behind the handle.
    fn backend(&self) -> Backend;

    /// Run `op` on one connection: a pooled one for `&Store`; the transaction's for
    /// `&mut StoreTx`, which an error poisons.
    #[doc(hidden)]
    async fn run<T: Send>(self, op: impl Op<T>) -> Result<T>;

    /// Like [`run`](Handle::run), for an operation of several statements that must apply
    /// together: on `&Store` it runs in a transaction of its own; in a transaction, it is
    /// [`run`](Handle::run).
    #[doc(hidden)]
    async fn atomic<T: Send>(self, op: impl Op<T>) -> Result<T> {
        self.run(op).await
    }
}

/// An operation on one connection: what [`Handle::run`] runs.
#[doc(hidden)]
pub trait Op<T>: AsyncFnOnce(&mut AnyConnection) -> Result<T> + Send {}

impl<T, F: AsyncFnOnce(&mut AnyConnection) -> Result<T> + Send> Op<T> for F {}

impl Handle for &Store {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn run<T: Send>(self, op: impl Op<T>) -> Result<T> {
        let mut conn = self.pool.acquire().await?;
        op(&mut conn).await
    }

    async fn atomic<T: Send>(self, op: impl Op<T>) -> Result<T> {
        let mut tx = self.begin().await?;
        let value = (&mut tx).run(op).await?;
        tx.commit().await?;
        Ok(value)
    }
}

impl Handle for &mut StoreTx {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn run<T: Send>(self, op: impl Op<T>) -> Result<T> {
        let result = op(&mut self.tx).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}
