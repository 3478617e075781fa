//! Iceberg tables on Azure Blob Storage (Azurite on 127.0.0.1), the SQLite catalog in a local
//! file: sync, read back by pyiceberg (adlfs) from the container, replay, and the orphan listing
//! of a crashed attempt's files in the container.

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{crash_hooks, crash_mid_sync, restart_after_crash};
use cdc_core::testing::{assert_replay_commits_nothing, AzuriteServer, Scenario};
use cdc_iceberg::maintenance::{orphan_files, remove_orphan_files};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_iceberg_on_azure_through_a_crash() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    azurite.export_env();
    // For pyiceberg's adlfs (the reader script takes it from the environment).
    std::env::set_var(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string(),
    );
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db").display().to_string();
    let open = |test_hooks| {
        let config = IcebergSinkConfig {
            test_hooks,
            catalog_path: Some(catalog.clone()),
            ..IcebergSinkConfig::default()
        };
        IcebergWarehouse::new("abfs://lake/wh", config).unwrap()
    };
    let crashing = open(crash_hooks(FailPoint::AfterDataFiles));
    crash_mid_sync(&scenario, dir.path(), &crashing).await;
    let mut orphans = Vec::new();
    for (table, _) in &scenario.tables {
        assert!(crashing
            .table_location(table)
            .starts_with("abfs://lake/wh/"));
        orphans.extend(orphan_files(&crashing, table).await.unwrap());
    }
    assert!(
        orphans.iter().any(|p| p.ends_with(".parquet"))
            && orphans.iter().all(|p| p.starts_with("abfs://lake/wh/")),
        "{orphans:#?}"
    );
    let healthy = open(TestHooks::default());
    restart_after_crash(&scenario, dir.path(), &healthy).await;
    let readers = Readers {
        pyiceberg: true,
        duckdb: false,
    };
    assert_expected(&scenario, &healthy, readers).await;
    let mut removed = Vec::new();
    for (table, _) in &scenario.tables {
        let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        removed.extend(remove_orphan_files(&healthy, table, now).await.unwrap());
    }
    assert_eq!(removed, orphans);
    assert_replay_commits_nothing(&scenario, dir.path(), &healthy).await;
}
