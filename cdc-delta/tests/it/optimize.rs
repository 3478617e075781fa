//! Delta `optimize`: small files packed and deletion vectors dropped in one `OPTIMIZE` commit
//! that keeps the checkpoint; the table reads the same in delta-rs and DuckDB, time travel to
//! the version before still works, and a writer committing at the same time loses nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cdc_core::testing::{assert_replay_commits_nothing, sync_scenario, Scenario};
use cdc_delta::optimize::{optimize, OptimizeOptions};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::assert_expected;

fn warehouse(dir: &std::path::Path, optimize_every: u64) -> DeltaWarehouse {
    let config = DeltaSinkConfig {
        optimize_every,
        ..DeltaSinkConfig::default()
    };
    DeltaWarehouse::new(dir.join("wh").to_str().unwrap(), config).unwrap()
}

/// Live data files and how many carry a deletion vector, as delta-rs loads the table.
async fn live_files(
    warehouse: &DeltaWarehouse,
    table: &cdc_core::model::TableId,
) -> (usize, usize) {
    let delta = deltalake::open_table(warehouse.table_url(table))
        .await
        .unwrap();
    let snapshot = delta.snapshot().unwrap();
    let dvs = (snapshot.log_data().into_iter())
        .filter(|f| f.remove_action(true).deletion_vector.is_some())
        .count();
    (snapshot.log_data().num_files(), dvs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_packs_small_files_and_drops_deleted_rows() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = warehouse(dir.path(), 0);
    sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    let (files, dvs) = live_files(&warehouse, table).await;
    assert!(
        files > 10 && dvs > 0,
        "{files} files, {dvs} with deletion vectors"
    );
    let options = OptimizeOptions::for_target(DeltaSinkConfig::default().target_file_size);
    let done = optimize(&warehouse, table, &options).await.unwrap();
    let version = done.version.expect("a commit");
    assert_eq!(done.files.0, files);
    assert_eq!(done.rows, scenario.expected()[table].len() as u64);
    assert_eq!(live_files(&warehouse, table).await, (1, 0));
    assert_expected(&scenario, &warehouse, true).await;
    // One OPTIMIZE entry whose adds and removes are no data change.
    let log = warehouse
        .table_url(table)
        .to_file_path()
        .unwrap()
        .join(format!("_delta_log/{version:020}.json"));
    let entry = std::fs::read_to_string(log).unwrap();
    assert!(entry.contains("\"operation\":\"OPTIMIZE\""), "{entry}");
    assert!(!entry.contains("\"dataChange\":true"), "{entry}");
    // Time travel: the version before still has its files.
    let mut before = deltalake::open_table(warehouse.table_url(table))
        .await
        .unwrap();
    before.load_version(version - 1).await.unwrap();
    assert_eq!(before.snapshot().unwrap().log_data().num_files(), files);
    // Nothing left to do; the checkpoint is the sink's: a replay commits nothing.
    let again = optimize(&warehouse, table, &options).await.unwrap();
    assert_eq!(again.version, None);
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

/// With `optimize_every` the sink optimizes on its own: far fewer files than without, and the
/// table is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_optimizes_on_its_own() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let mut counts = Vec::new();
    for every in [0, 10] {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = warehouse(dir.path(), every);
        sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
            .await
            .unwrap();
        counts.push(live_files(&warehouse, table).await.0);
        assert_expected(&scenario, &warehouse, true).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
    assert!(
        counts[1] * 3 < counts[0],
        "files without / with: {counts:?}"
    );
}

/// Optimize runs again and again while the sink commits: each commit that finds its version
/// taken is redone on the new one, and the table ends right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_beside_a_writer_loses_nothing() {
    let scenario = Scenario::load("crud");
    let table = scenario.tables[0].0.clone();
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Arc::new(warehouse(dir.path(), 0));
    // The first batches make the table before optimize starts.
    let topics = dir.path().join("topics");
    scenario.write_s3_layout(&topics, 25, true);
    let mut source = cdc_core::source::raw::RawFileSource::open(topics.to_str().unwrap())
        .await
        .unwrap();
    let mut config = cdc_core::pipeline::PipelineConfig {
        stop_after_batches: Some(4),
        ..Default::default()
    };
    config.limits.max_events = 5;
    cdc_core::pipeline::Pipeline::new(config, warehouse.as_ref())
        .unwrap()
        .run_to_end(&mut source, |_| {})
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let optimizer = {
        let (warehouse, done, table) = (warehouse.clone(), done.clone(), table.clone());
        tokio::spawn(async move {
            let options = OptimizeOptions::for_target(128 << 20);
            let mut commits = 0;
            while !done.load(Ordering::Relaxed) {
                if optimize(&warehouse, &table, &options)
                    .await
                    .unwrap()
                    .version
                    .is_some()
                {
                    commits += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            commits
        })
    };
    sync_scenario(
        &scenario,
        dir.path(),
        3,
        Default::default(),
        warehouse.as_ref(),
    )
    .await
    .unwrap();
    done.store(true, Ordering::Relaxed);
    let optimized = optimizer.await.unwrap();
    assert!(optimized > 0, "optimize never committed");
    assert_expected(&scenario, &warehouse, true).await;
}
