//! Running one test case on each backend: SQLite always, PostgreSQL when
//! `RAMPART_TEST_DATABASE_URL` is set (in a fresh schema, dropped afterwards). Without the
//! variable the PostgreSQL cases print a message and pass; with it set, an unreachable
//! database fails them. Shared with the control plane's suites (`#[path]`-included there).
#![allow(dead_code, unreachable_pub)]

use std::future::Future;

use rampart_store::new_id;

const PG_VAR: &str = "RAMPART_TEST_DATABASE_URL";

// ---- running one case on each backend ----

/// Run `case` with the URL of a fresh SQLite database.
pub async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/data/control.db", dir.path().display());
    let outcome = tokio::spawn(case(url)).await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Run `case` with the URL of a fresh PostgreSQL schema, if the suite has a database.
pub async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(PG_VAR) else {
        eprintln!("{PG_VAR} is not set: skipping the PostgreSQL run of this case");
        return;
    };
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{PG_VAR} is set but PostgreSQL is unreachable: {e}"));
    let schema = format!("rampart_test_{}", &new_id("s").unwrap()[2..]);
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create the test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let outcome = tokio::spawn(case(url)).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("drop the test schema");
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declare each case once; it runs as `sqlite::<case>` and `postgres::<case>`.
#[macro_export]
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $crate::support::run_sqlite(super::$case).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $crate::support::run_postgres(super::$case).await
                }
            )*
        }
    };
}

/// The example fleet (`examples/fleet.yaml`), the fixture of the control-plane suites.
pub fn example_fleet() -> rampart_model::Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .expect("examples/fleet.yaml");
    rampart_model::load::from_yaml(&text).expect("the example fleet loads")
}
