//! Maintenance of Delta tables. Orphans are the files of commit attempts that never reached
//! the log (a crash between writing data files and committing): `orphan_files` lists them and
//! `remove_orphan_files` removes those older than the cutoff, on local disk and on S3. Vacuum
//! keeps every live file, deletion vectors included, and removes the dead ones once their
//! retention has passed, checked by listing the table. The table stays equal to the expected
//! state.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{crash_hooks, crash_mid_sync, restart_after_crash};
use cdc_core::testing::{assert_replay_commits_nothing, Scenario};
use cdc_delta::maintenance::{orphan_files, remove_orphan_files, vacuum};
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
    let (scenario, _dir, warehouse) = synced_crud(DeltaSinkConfig::default()).await;
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

/// The `crud` fixture synced in batches of 5 into a local warehouse written with `config`.
async fn synced_crud(config: DeltaSinkConfig) -> (Scenario, tempfile::TempDir, DeltaWarehouse) {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse = DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap();
    cdc_core::testing::sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    (scenario, dir, warehouse)
}

/// The files under a table's directory outside `_delta_log/`, relative, sorted.
fn table_files(dir: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if path.is_dir() {
                if rel != "_delta_log" {
                    walk(&path, root, out);
                }
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Vacuum inside the retention window deletes nothing (time travel still reads the first
/// version). Past it, exactly the files the current version does not use go: listed
/// afterwards, the table holds its live data files (as delta-rs lists them) and one
/// deletion-vector file per UUID the live descriptors name, nothing else. delta-rs and DuckDB
/// (which resolves the deletion vectors itself) read the expected rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_keeps_every_live_file_and_removes_the_dead_ones() {
    let (scenario, dir, warehouse) = synced_crud(DeltaSinkConfig::default()).await;
    let table = &scenario.tables[0].0;
    let table_dir = warehouse.table_url(table).to_file_path().unwrap();
    std::fs::write(table_dir.join("part-00000-stray.snappy.parquet"), b"stray").unwrap();
    let before = table_files(&table_dir);

    let kept = vacuum(&warehouse, table, None, SystemTime::now())
        .await
        .unwrap();
    assert!(kept.files.is_empty(), "{kept:?}");
    assert_eq!(table_files(&table_dir), before);
    let mut first = deltalake::open_table(warehouse.table_url(table))
        .await
        .unwrap();
    first.load_version(1).await.unwrap();
    assert!(first.snapshot().unwrap().log_data().num_files() > 0);

    let later = SystemTime::now() + Duration::from_secs(5);
    let done = vacuum(&warehouse, table, Some(Duration::ZERO), later)
        .await
        .unwrap();
    let after = table_files(&table_dir);
    let delta = deltalake::open_table(warehouse.table_url(table))
        .await
        .unwrap();
    let snapshot = delta.snapshot().unwrap();
    let mut live: Vec<String> = (snapshot.log_data().into_iter())
        .map(|f| f.path().to_string())
        .collect();
    // A commit writes its deletion vectors into one file (each at its offset): the files
    // are the distinct UUIDs the live descriptors name.
    let dvs = (snapshot.log_data().into_iter())
        .filter_map(|f| f.remove_action(true).deletion_vector)
        .map(|dv| dv.path_or_inline_dv)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    live.sort();
    let (dv_files, data_files): (Vec<String>, Vec<String>) = after
        .iter()
        .cloned()
        .partition(|f| f.starts_with("deletion_vector_") && f.ends_with(".bin"));
    assert_eq!(data_files, live, "only the live data files are left");
    assert!(dvs > 0, "the scenario leaves live deletion vectors");
    assert_eq!(
        dv_files.len(),
        dvs,
        "one file per live deletion-vector UUID: {dv_files:?}"
    );
    let removed: Vec<String> = before.into_iter().filter(|f| !after.contains(f)).collect();
    assert_eq!(done.files, removed);
    assert!(
        removed.iter().any(|f| f.starts_with("deletion_vector_")),
        "{removed:?}"
    );
    assert!(removed.contains(&"part-00000-stray.snappy.parquet".to_string()));
    assert_expected(&scenario, &warehouse, true).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

/// With log checkpoints every 5 commits, the sink's own log cleanup off and a log retention of
/// nothing, vacuum deletes the log entries before the last checkpoint (and no later ones), and
/// the table still reads and resumes from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_cleans_the_log_past_its_retention() {
    let properties = [
        ("delta.checkpointInterval", "5"),
        ("delta.enableExpiredLogCleanup", "false"),
        ("delta.logRetentionDuration", "interval 0 seconds"),
    ];
    let config = DeltaSinkConfig {
        table_properties: (properties.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..DeltaSinkConfig::default()
    };
    let (scenario, dir, warehouse) = synced_crud(config).await;
    let table = &scenario.tables[0].0;
    let log = warehouse
        .table_url(table)
        .to_file_path()
        .unwrap()
        .join("_delta_log");
    let commits = |log: &std::path::Path| {
        let mut versions: Vec<u64> = (std::fs::read_dir(log).unwrap())
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort();
        versions
    };
    let before = commits(&log);
    assert_eq!(
        before.first(),
        Some(&0),
        "the sink kept its log: {before:?}"
    );
    let later = SystemTime::now() + Duration::from_secs(5);
    let done = vacuum(&warehouse, table, Some(Duration::ZERO), later)
        .await
        .unwrap();
    let after = commits(&log);
    // The sink checkpoints after every fifth commit: versions 4, 9, 14, ...
    let last_checkpoint = (before.last().unwrap() + 1) / 5 * 5 - 1;
    assert_eq!(after.first(), Some(&last_checkpoint), "{after:?}");
    assert_eq!(after.last(), before.last());
    assert!(done.log_entries >= last_checkpoint as usize, "{done:?}");
    assert_expected(&scenario, &warehouse, true).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

/// A table that does not set `delta.checkpointInterval` gets a log checkpoint every tenth
/// commit (Delta's default), not delta-rs's hundredth: a restarted writer reads at most nine
/// commit files after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_every_tenth_commit_by_default() {
    let (scenario, _dir, warehouse) = synced_crud(DeltaSinkConfig::default()).await;
    let table = &scenario.tables[0].0;
    let log = (warehouse.table_url(table).to_file_path().unwrap()).join("_delta_log");
    let names: Vec<String> = (std::fs::read_dir(&log).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let last: u64 = (names.iter())
        .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
        .max()
        .unwrap();
    assert!(last >= 9, "too few commits for a checkpoint: {last}");
    let checkpoints: Vec<&String> = (names.iter())
        .filter(|n| n.ends_with(".checkpoint.parquet"))
        .collect();
    let expected = (9..=last).step_by(10).count();
    assert_eq!(checkpoints.len(), expected, "{names:?}");
    assert!(names.contains(&"00000000000000000009.checkpoint.parquet".to_string()));
}
