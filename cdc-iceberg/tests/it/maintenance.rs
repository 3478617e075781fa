//! Maintenance: compaction folds the position deletes into clean data files without changing
//! rows or checkpoint; expiring snapshots deletes exactly the files only they reached; the
//! table stays readable by every reader throughout.

use std::collections::HashMap;

use cdc_core::testing::Scenario;
use cdc_iceberg::maintenance::{compact, expire_snapshots, orphan_files};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};
use iceberg::spec::Operation;

use crate::common::{assert_expected, current_metadata, sync, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_then_expire_keeps_rows_and_checkpoint() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let table = &scenario.tables[0].0;
    let data_files = || {
        let dir = warehouse
            .local_root()
            .unwrap()
            .join("public/customers/data");
        std::fs::read_dir(dir).unwrap().count()
    };
    let files_before = data_files();

    let done = compact(&warehouse, table)
        .await
        .unwrap()
        .expect("something to compact");
    assert!(done.data_files.0 > 1 && done.delete_files > 0, "{done:?}");
    assert_eq!(done.data_files.1, 1);
    let metadata = current_metadata(&warehouse, table).await;
    let current = metadata.current_snapshot().unwrap();
    assert_eq!(current.summary().operation, Operation::Replace);
    assert_eq!(
        current.summary().additional_properties["total-delete-files"],
        "0"
    );
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    // Nothing left to compact; the checkpoint is kept, so a replay commits nothing.
    assert_eq!(compact(&warehouse, table).await.unwrap(), None);
    let again = sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);

    let removed = expire_snapshots(&warehouse, table, i64::MAX, 1)
        .await
        .unwrap();
    // Every old data and delete file, manifest and manifest list went; only the compacted
    // data file is left.
    assert!(
        removed.iter().any(|p| p.ends_with("-deletes.parquet")),
        "{removed:#?}"
    );
    let files_after = data_files();
    assert_eq!(files_after, 1, "{files_before} data-directory files before");
    let metadata = current_metadata(&warehouse, table).await;
    assert_eq!(metadata.snapshots().count(), 1);
    assert!(orphan_files(&warehouse, table).await.unwrap().is_empty());
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
}

/// The sink expires snapshots itself every `expire_snapshots_every` commits, as the table's
/// `history.expire.*` properties say: the metadata stops growing with every commit, no data
/// or manifest file is left that nothing references, and every reader still reads the
/// source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_expires_snapshots_on_its_own() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = IcebergSinkConfig {
        expire_snapshots_every: 10,
        table_properties: HashMap::from([
            ("history.expire.max-snapshot-age-ms".into(), "0".into()),
            ("history.expire.min-snapshots-to-keep".into(), "5".into()),
        ]),
        ..IcebergSinkConfig::default()
    };
    let warehouse = IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    let stats = sync(&scenario, dir.path(), 3, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 40, "{} commits", stats.commits);
    let table = &scenario.tables[0].0;
    let metadata = current_metadata(&warehouse, table).await;
    let kept = metadata.snapshots().count();
    // The newest five, plus at most the commits since the last run.
    assert!(
        (5..15).contains(&kept),
        "{kept} snapshots after {} commits",
        stats.commits
    );
    // Only metadata files past the metadata log's length are left (as Java's writers leave
    // them unless `write.metadata.delete-after-commit.enabled`): no data, delete or manifest
    // file of an expired snapshot.
    let orphans = orphan_files(&warehouse, table).await.unwrap();
    assert!(
        orphans.iter().all(|p| p.ends_with(".metadata.json")),
        "{orphans:#?}"
    );
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    let again = sync(&scenario, dir.path(), 3, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0, "the checkpoint survives expiry");
}

/// Live data and delete files of the table's current snapshot.
async fn live_files(warehouse: &IcebergWarehouse, table: &cdc_core::model::TableId) -> (u64, u64) {
    let metadata = current_metadata(warehouse, table).await;
    let summary = &metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    let count = |k: &str| summary[k].parse::<u64>().unwrap();
    (count("total-data-files"), count("total-delete-files"))
}

/// Incremental compaction rewrites only the files worth it: with a byte limit, some small
/// files are packed and the delete files that name only them go, while the other files and
/// their deletes stay and still apply; without one, every small file is packed and no delete
/// file is left. Every reader reads the source's rows after each run, and a replay commits
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_only_the_files_worth_it() {
    use cdc_iceberg::compact::{compact_files, CompactOptions};
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = IcebergSinkConfig {
        compact_every: 0,
        ..IcebergSinkConfig::default()
    };
    let warehouse = IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let table = &scenario.tables[0].0;
    let (data, deletes) = live_files(&warehouse, table).await;
    assert!(
        data > 10 && deletes > 5,
        "{data} data, {deletes} delete files"
    );
    let some = CompactOptions {
        max_bytes: 20_000,
        ..CompactOptions::default()
    };
    let first = compact_files(&warehouse, table, &some)
        .await
        .unwrap()
        .unwrap();
    let (data_after, deletes_after) = live_files(&warehouse, table).await;
    assert!(
        first.data_files.0 >= 2 && data_after > first.data_files.1 as u64,
        "{first:?}"
    );
    assert_eq!(
        data_after,
        data - first.data_files.0 as u64 + first.data_files.1 as u64
    );
    assert_eq!(deletes_after, deletes - first.delete_files as u64);
    assert!(
        deletes_after > 0,
        "some deletes still apply to files not rewritten"
    );
    let metadata = current_metadata(&warehouse, table).await;
    let current = metadata.current_snapshot().unwrap();
    assert_eq!(current.summary().operation, Operation::Replace);
    assert_expected(&scenario, &warehouse, Readers::ALL).await;

    compact_files(&warehouse, table, &CompactOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live_files(&warehouse, table).await, (1, 0));
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    assert_eq!(
        compact_files(&warehouse, table, &CompactOptions::default())
            .await
            .unwrap(),
        None
    );
    let again = sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}

/// With `compact_every` the sink compacts on its own: far fewer live files than without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_compacts_on_its_own() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let mut counts = Vec::new();
    for every in [0, 10] {
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            compact_every: every,
            ..IcebergSinkConfig::default()
        };
        let warehouse =
            IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
        sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
            .await
            .unwrap();
        let (data, deletes) = live_files(&warehouse, table).await;
        counts.push(data + deletes);
        assert_expected(&scenario, &warehouse, Readers::ALL).await;
    }
    assert!(
        counts[1] * 3 < counts[0],
        "files without / with: {counts:?}"
    );
}
