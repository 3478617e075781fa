//! What the object-store tests (S3, Azure) share.

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{crash_hooks, crash_mid_sync, restart_after_crash};
use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture, Scenario};
use cdc_iceberg::maintenance::{orphan_files, remove_orphan_files};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, Readers};

/// The `crud` fixture into a warehouse at `root` (an object store URL whose settings are in the
/// environment): a crash after the data files, the restart, read back by pyiceberg, the failed
/// attempt's files listed and removed from the store, and a replay that commits nothing.
pub async fn sync_through_a_crash_at(root: &str) {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db").display().to_string();
    let open = |test_hooks| {
        let config = IcebergSinkConfig {
            test_hooks,
            catalog_path: Some(catalog.clone()),
            ..IcebergSinkConfig::default()
        };
        IcebergWarehouse::new(&format!("{root}/"), config).unwrap()
    };
    let crashing = open(crash_hooks(FailPoint::AfterDataFiles));
    crash_mid_sync(&scenario, dir.path(), &crashing).await;
    let mut orphans = Vec::new();
    for (table, _) in &scenario.tables {
        assert!(crashing.table_location(table).starts_with(root));
        orphans.extend(orphan_files(&crashing, table).await.unwrap());
    }
    // The failed attempt's data file and manifest list, as URLs in the store.
    assert!(
        orphans.iter().any(|p| p.ends_with(".parquet"))
            && orphans.iter().any(|p| p.contains("/snap-"))
            && orphans.iter().all(|p| p.starts_with(root)),
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
        assert!(orphan_files(&healthy, table).await.unwrap().is_empty());
    }
    assert_eq!(removed, orphans);
    assert_expected(&scenario, &healthy, Readers::RUST_ONLY).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &healthy).await;
}

/// Every fixture scenario synced into a warehouse under `root/<scenario>` (an object store URL
/// whose settings are in the environment, each with its own local catalog file), read back by
/// pyiceberg, and replayed without a commit.
pub async fn every_fixture_at(root: &str) {
    for scenario in Scenario::all() {
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            catalog_path: Some(dir.path().join("catalog.db").display().to_string()),
            ..IcebergSinkConfig::default()
        };
        let at = format!("{root}/{}", scenario.name);
        let warehouse = IcebergWarehouse::new(&at, config).unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        let readers = Readers {
            pyiceberg: true,
            duckdb: false,
        };
        assert_expected(&scenario, &warehouse, readers).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}
