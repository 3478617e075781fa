//! The next batch of a file source is decoded while the current one commits: a table's schema
//! learned from one batch must already reach the batch decoded beside its commit.

use std::collections::HashMap;

use cdc_core::decode::TableHint;
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig, PipelineStats};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::raw::RawFileSource;
use cdc_core::testing::backlog::{generate, write_s3_sink_layout, Backlog, BacklogSpec};

const SNAPSHOT: u64 = 20;

fn spec(with_schema: bool) -> BacklogSpec {
    BacklogSpec {
        snapshot_rows: SNAPSHOT,
        changes: 300,
        seed: 11,
        with_schema,
    }
}

/// Syncs `backlog` in batches of `SNAPSHOT` events, the key given, the schema not.
async fn sync(backlog: &Backlog, dir: &std::path::Path) -> MemoryWarehouse {
    let (warehouse, stats) = sync_in(backlog, dir, SNAPSHOT as usize, 128 << 20).await;
    assert_eq!(
        stats.batches,
        1 + 300 / SNAPSHOT,
        "one batch per {SNAPSHOT} events"
    );
    warehouse
}

/// Syncs `backlog` with batches of at most `max_events` events, reading `max_bytes` of raw
/// files at a time, the key given, the schema not.
async fn sync_in(
    backlog: &Backlog,
    dir: &std::path::Path,
    max_events: usize,
    max_bytes: usize,
) -> (MemoryWarehouse, PipelineStats) {
    write_s3_sink_layout(backlog, SNAPSHOT, 25, dir).unwrap();
    let table = TableId::new("public", "customers");
    let hint = TableHint {
        schema: None,
        key_columns: Some(vec!["id".to_string()]),
    };
    let mut config = PipelineConfig {
        table_hints: HashMap::from([(table, hint)]),
        ..PipelineConfig::default()
    };
    config.limits.max_events = max_events;
    config.limits.max_bytes = max_bytes;
    let warehouse = MemoryWarehouse::default();
    let topics = dir.join("all/topics");
    let mut source = RawFileSource::open(topics.to_str().unwrap()).await.unwrap();
    let mut pipeline = Pipeline::new(config, &warehouse).unwrap();
    let stats = pipeline.run_to_end(&mut source, |_| {}).await.unwrap();
    drop(pipeline);
    (warehouse, stats)
}

#[tokio::test]
async fn schemaless_batches_decoded_ahead_use_the_schema_the_first_batch_brought() {
    // The snapshot (the first batch) with the schema, every change after it without: the
    // second batch is decoded while the first commits, with the schema the first folded.
    let (with_schema, mixed) = snapshot_with_schema_changes_without();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mixed_wh = sync(&mixed, a.path()).await;
    let reference_wh = sync(&with_schema, b.path()).await;
    assert_same_customers(&mixed_wh, &reference_wh, with_schema.live_keys);
}

/// Files read a few bytes at a time still commit `max_events` events at a time (a commit per
/// raw read would make copy-on-write tables rewrite their files per file read), and schemaless
/// parts decoded after a schema-enabled part of the same commit use the schema it brought.
#[tokio::test]
async fn a_commit_gathers_raw_reads_up_to_max_events() {
    let (with_schema, mixed) = snapshot_with_schema_changes_without();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // One byte a read: every read takes one file (25 events).
    let (gathered, stats) = sync_in(&mixed, a.path(), 200, 1).await;
    assert_eq!(stats.batches, 2, "{stats:?}");
    assert_eq!(stats.commits, 2, "{stats:?}");
    let reference = sync(&with_schema, b.path()).await;
    assert_same_customers(&gathered, &reference, with_schema.live_keys);
}

/// The backlog with schemas, and the same events with the snapshot's only (the changes
/// schemaless).
fn snapshot_with_schema_changes_without() -> (Backlog, Backlog) {
    let with_schema = generate(&spec(true));
    let mut mixed = generate(&spec(false));
    mixed.events[..SNAPSHOT as usize].clone_from_slice(&with_schema.events[..SNAPSHOT as usize]);
    (with_schema, mixed)
}

/// `got` holds exactly the customers rows of `want`, `live_keys` of them.
fn assert_same_customers(got: &MemoryWarehouse, want: &MemoryWarehouse, live_keys: usize) {
    let table = TableId::new("public", "customers");
    let got = got.table(&table).unwrap().sorted_rows().unwrap();
    let want = want.table(&table).unwrap().sorted_rows().unwrap();
    assert_eq!(got.num_rows(), live_keys);
    assert_eq!(got, want);
}
