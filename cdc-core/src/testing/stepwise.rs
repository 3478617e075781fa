//! A sink compared with the reference sink after every commit, not only at the end.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;

use arrow_array::RecordBatch;

use crate::model::TableId;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineStats};
use crate::render::render_rows;
use crate::sink::{MemoryWarehouse, Warehouse};
use crate::source::raw::RawFileSource;

use super::{compare_with_expected, Scenario};

/// Syncs `scenario` into `warehouse` and into the reference [`MemoryWarehouse`] one batch of
/// `batch_events` records at a time and, after every batch, asserts each table `read` returns
/// equals the reference's. End states hide bugs that later events paper over (a column added
/// with a default read back as null until each row happens to be updated again). Returns the
/// number of batches.
pub async fn assert_equal_to_reference_after_every_batch<F, Fut>(
    scenario: &Scenario,
    dir: &Path,
    batch_events: usize,
    warehouse: &dyn Warehouse,
    read: F,
) -> usize
where
    F: Fn(TableId) -> Fut,
    Fut: Future<Output = RecordBatch>,
{
    let topics = dir.join("stepwise-topics");
    if !topics.exists() {
        scenario.write_s3_layout(&topics, 25, false);
    }
    let reference = MemoryWarehouse::new();
    let fresh = |s: &PipelineStats| s.records_read - s.records_already_committed;
    let mut batches = 0;
    loop {
        let ours = one_batch(&topics, batch_events, warehouse).await;
        let theirs = one_batch(&topics, batch_events, &reference).await;
        assert_eq!(
            fresh(&ours),
            fresh(&theirs),
            "{}: same input",
            scenario.name
        );
        if fresh(&ours) == 0 {
            return batches;
        }
        batches += 1;
        for (table, keys) in &scenario.tables {
            let Some(expected) = reference.table(table) else {
                continue;
            };
            let expected = render_rows(&expected.sorted_rows().expect("reference rows"))
                .expect("render the reference");
            let rows = read(table.clone()).await;
            compare_with_expected(table, keys, &rows, &expected)
                .unwrap_or_else(|e| panic!("{} after batch {batches}:\n{e}", scenario.name));
        }
    }
}

/// Runs the pipeline over one batch (resuming from the tables' checkpoints).
async fn one_batch(topics: &Path, batch_events: usize, into: &dyn Warehouse) -> PipelineStats {
    let mut config = PipelineConfig {
        table_hints: HashMap::new(),
        stop_after_batches: Some(1),
        ..PipelineConfig::default()
    };
    config.limits.max_events = batch_events;
    let mut source = RawFileSource::open(topics.to_str().expect("utf-8 path"))
        .await
        .expect("open the layout");
    Pipeline::new(config, into)
        .expect("pipeline")
        .run_to_end(&mut source, |_| {})
        .await
        .expect("one batch")
}
