//! Files of commit attempts that never reached the log (a crash between writing data files and
//! committing): listed by `orphan_files`, removed by `remove_orphan_files` (only those older
//! than the cutoff), on local disk and on S3; the table stays equal to the expected state and
//! the log untouched.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{crash_hooks, crash_mid_sync, restart_after_crash};
use cdc_core::testing::{assert_replay_commits_nothing, Scenario};
use cdc_delta::maintenance::{orphan_files, remove_orphan_files};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::assert_expected;

/// The `crud` fixture into `root`: a crash after the data files, the restart, the failed
/// attempt's files listed (data files, and deletion vectors when it wrote some) and removed
/// once older than the cutoff, the table still right, a replay that commits nothing.
async fn crash_leaves_orphans_that_are_removed(root: &str, options: HashMap<String, String>) {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let open = |test_hooks| {
        let config = DeltaSinkConfig {
            test_hooks,
            storage_options: options.clone(),
            ..DeltaSinkConfig::default()
        };
        DeltaWarehouse::new(root, config).unwrap()
    };
    let crashing = open(crash_hooks(FailPoint::AfterDataFiles));
    crash_mid_sync(&scenario, dir.path(), &crashing).await;
    let healthy = open(TestHooks::default());
    let mut orphans = Vec::new();
    for (table, _) in &scenario.tables {
        orphans.extend(orphan_files(&healthy, table).await.unwrap());
    }
    assert!(
        !orphans.is_empty()
            && orphans
                .iter()
                .all(|p| p.ends_with(".parquet") || p.ends_with(".bin")),
        "{orphans:#?}"
    );
    restart_after_crash(&scenario, dir.path(), &healthy).await;
    assert_expected(&scenario, &healthy, false).await;
    let mut after_restart = Vec::new();
    for (table, _) in &scenario.tables {
        after_restart.extend(orphan_files(&healthy, table).await.unwrap());
    }
    assert_eq!(
        after_restart, orphans,
        "the restart's own files are referenced"
    );
    let mut removed = Vec::new();
    for (table, _) in &scenario.tables {
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert!(remove_orphan_files(&healthy, table, past)
            .await
            .unwrap()
            .is_empty());
        let soon = SystemTime::now() + Duration::from_secs(5);
        removed.extend(remove_orphan_files(&healthy, table, soon).await.unwrap());
        assert!(orphan_files(&healthy, table).await.unwrap().is_empty());
    }
    assert_eq!(removed, orphans);
    assert_expected(&scenario, &healthy, false).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_attempts_files_are_orphans_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    crash_leaves_orphans_that_are_removed(root.to_str().unwrap(), HashMap::new()).await;
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_attempts_files_are_orphans_and_removed_on_s3() {
    let Some(moto) = cdc_core::testing::MotoServer::start() else {
        return;
    };
    moto.create_bucket("orphans");
    crash_leaves_orphans_that_are_removed("s3://orphans/wh", moto.storage_options()).await;
}

/// A table's live files, its deletion vectors and every file a `remove` names are never
/// orphans: only files no log entry names are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referenced_files_are_never_orphans() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse =
        DeltaWarehouse::new(root.to_str().unwrap(), DeltaSinkConfig::default()).unwrap();
    cdc_core::testing::sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    let table = &scenario.tables[0].0;
    assert_eq!(
        orphan_files(&warehouse, table).await.unwrap(),
        Vec::<String>::new()
    );
    let table_dir = warehouse.table_url(table).to_file_path().unwrap();
    let stray = table_dir.join("part-00000-stray.snappy.parquet");
    std::fs::write(&stray, b"not referenced").unwrap();
    std::fs::write(table_dir.join("_delta_log/stray.tmp"), b"the log's own").unwrap();
    assert_eq!(
        orphan_files(&warehouse, table).await.unwrap(),
        vec!["part-00000-stray.snappy.parquet".to_string()]
    );
    let soon = SystemTime::now() + Duration::from_secs(5);
    remove_orphan_files(&warehouse, table, soon).await.unwrap();
    assert!(!stray.exists() && table_dir.join("_delta_log/stray.tmp").exists());
    assert_expected(&scenario, &warehouse, true).await;
}
