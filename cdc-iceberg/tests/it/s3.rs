//! Iceberg tables on S3 (moto_server on 127.0.0.1) with the SQLite catalog in a local file: a
//! crash after the data files, the restart, the orphans of the failed attempt listed and removed
//! from the bucket, and the tables read back by pyiceberg from S3.

use cdc_core::testing::MotoServer;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::remote::sync_through_a_crash_at;

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
    sync_through_a_crash_at("s3://lake/wh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_iceberg_on_s3() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("fixtures");
    moto.export_env();
    crate::remote::every_fixture_at("s3://fixtures/wh").await;
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
