//! Helpers: run a scenario through the pipeline into a warehouse.

use std::collections::HashMap;
use std::path::Path;

use cdc_core::decode::TableHint;
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig, PipelineStats};
use cdc_core::sink::{MemoryWarehouse, Warehouse};
use cdc_core::source::raw::RawFileSource;
use cdc_core::testing::{compare_with_expected, Scenario};

/// How to lay out and batch a run.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    pub records_per_file: usize,
    pub gzip: bool,
    pub batch_events: usize,
}

pub const ONE_BATCH: RunShape = RunShape {
    records_per_file: 100,
    gzip: false,
    batch_events: 1_000_000,
};

pub const MEDIUM_BATCHES: RunShape = RunShape {
    records_per_file: 50,
    gzip: true,
    batch_events: 100,
};

pub const SMALL_BATCHES: RunShape = RunShape {
    records_per_file: 13,
    gzip: true,
    batch_events: 7,
};

/// Writes the scenario's S3 layout under `dir` and syncs it into `warehouse`.
pub async fn sync(
    scenario: &Scenario,
    dir: &Path,
    shape: RunShape,
    hints: HashMap<TableId, TableHint>,
    warehouse: &dyn Warehouse,
    stop_after_batches: Option<usize>,
) -> cdc_core::Result<PipelineStats> {
    let topics = dir.join("topics");
    if !topics.exists() {
        scenario.write_s3_layout(&topics, shape.records_per_file, shape.gzip);
    }
    let mut source = RawFileSource::open(topics.to_str().unwrap()).await?;
    let mut config = PipelineConfig {
        table_hints: hints,
        stop_after_batches,
        ..PipelineConfig::default()
    };
    config.limits.max_events = shape.batch_events;
    let mut pipeline = Pipeline::new(config, warehouse)?;
    pipeline.run_to_end(&mut source, |_| {}).await
}

/// Asserts every table of `warehouse` equals the scenario's expected state.
pub fn assert_expected(scenario: &Scenario, warehouse: &MemoryWarehouse) {
    let expected = scenario.expected();
    let mut failures = Vec::new();
    for (table, keys) in &scenario.tables {
        let Some(t) = warehouse.table(table) else {
            failures.push(format!("{table}: not created"));
            continue;
        };
        assert_eq!(&t.key_columns, keys, "{table}: key columns");
        if let Err(e) =
            compare_with_expected(table, keys, &t.sorted_rows().unwrap(), &expected[table])
        {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "scenario {}:\n{}",
        scenario.name,
        failures.join("\n")
    );
}

/// The same generated backlog (`snapshot_rows` + `changes` events of `public.customers`'s
/// shape) on each table's topic `dbserver1.public.<name>`, and pipeline settings keying every
/// table by `id`.
pub fn backlog_on_tables(
    tables: &[&str],
    snapshot_rows: u64,
    changes: u64,
    seed: u64,
) -> (Vec<Vec<cdc_core::source::RawRecord>>, PipelineConfig) {
    use cdc_core::testing::backlog::{generate, BacklogSpec};
    let backlog = generate(&BacklogSpec {
        snapshot_rows,
        changes,
        seed,
        with_schema: true,
    });
    let mut records = Vec::new();
    let mut hints = HashMap::new();
    for name in tables {
        let topic: std::sync::Arc<str> = std::sync::Arc::from(format!("dbserver1.public.{name}"));
        let mut of_topic = backlog.records();
        for r in &mut of_topic {
            r.topic = topic.clone();
        }
        records.push(of_topic);
        let hint = TableHint {
            schema: None,
            key_columns: Some(vec!["id".to_string()]),
        };
        hints.insert(TableId::new("public", *name), hint);
    }
    let config = PipelineConfig {
        table_hints: hints,
        ..PipelineConfig::default()
    };
    (records, config)
}
