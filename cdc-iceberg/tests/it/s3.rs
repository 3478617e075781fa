//! Iceberg tables on S3 (moto_server on 127.0.0.1) with the SQLite catalog in a local file: a
//! crash after the data files, the restart, the orphans of the failed attempt listed and removed
//! from the bucket, and the tables read back by pyiceberg from S3.

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{crash_hooks, crash_mid_sync, restart_after_crash};
use cdc_core::testing::{MotoServer, Scenario};
use cdc_iceberg::maintenance::{orphan_files, remove_orphan_files};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, Readers};

/// Each test exports its own moto server's address to the environment, which the stores read:
/// one test at a time.
pub static MOTO_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_iceberg_on_s3_through_a_crash() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    moto.export_env();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db").display().to_string();
    let open = |test_hooks| {
        let config = IcebergSinkConfig {
            test_hooks,
            catalog_path: Some(catalog.clone()),
            ..IcebergSinkConfig::default()
        };
        IcebergWarehouse::new("s3://lake/wh/", config).unwrap()
    };
    let crashing = open(crash_hooks(FailPoint::AfterDataFiles));
    crash_mid_sync(&scenario, dir.path(), &crashing).await;
    let mut orphans = Vec::new();
    for (table, _) in &scenario.tables {
        assert!(crashing.table_location(table).starts_with("s3://lake/wh/"));
        orphans.extend(orphan_files(&crashing, table).await.unwrap());
    }
    // The failed attempt's data file and manifest list, as URLs in the bucket.
    assert!(
        orphans.iter().any(|p| p.ends_with(".parquet"))
            && orphans.iter().any(|p| p.contains("/snap-"))
            && orphans.iter().all(|p| p.starts_with("s3://lake/wh/")),
        "{orphans:#?}"
    );
    let healthy = open(TestHooks::default());
    restart_after_crash(&scenario, dir.path(), &healthy).await;
    assert_expected(
        &scenario,
        &healthy,
        Readers {
            pyiceberg: true,
            duckdb: false,
        },
    )
    .await;
    let mut removed = Vec::new();
    for (table, _) in &scenario.tables {
        let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        removed.extend(remove_orphan_files(&healthy, table, now).await.unwrap());
        assert!(orphan_files(&healthy, table).await.unwrap().is_empty());
    }
    assert_eq!(removed, orphans);
    assert_expected(&scenario, &healthy, Readers::RUST_ONLY).await;
}

#[test]
fn a_warehouse_on_s3_needs_a_local_catalog_file_or_a_rest_catalog() {
    let err = IcebergWarehouse::new("s3://lake/wh", IcebergSinkConfig::default()).unwrap_err();
    assert!(err.to_string().contains("catalog_path"), "{err}");
    let config = IcebergSinkConfig {
        catalog_path: Some("s3://lake/catalog.db".into()),
        ..IcebergSinkConfig::default()
    };
    let err = IcebergWarehouse::new("s3://lake/wh", config).unwrap_err();
    assert!(err.to_string().contains("local file"), "{err}");
}
