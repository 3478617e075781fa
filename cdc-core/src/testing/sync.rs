//! Syncing a fixture scenario through the real pipeline (raw files in the S3-sink layout),
//! and the schemas a user would give for its schemaless variants.

use std::path::Path;

use super::*;
use crate::model::TableId;

/// Writes the scenario's S3-sink layout under `dir/topics` (once) and syncs it into `warehouse`
/// with the pipeline, `batch_events` events per batch at most.
pub async fn sync_scenario(
    scenario: &Scenario,
    dir: &Path,
    batch_events: usize,
    hints: std::collections::HashMap<TableId, crate::decode::TableHint>,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::Result<crate::pipeline::PipelineStats> {
    let config = crate::pipeline::PipelineConfig {
        table_hints: hints,
        ..crate::pipeline::PipelineConfig::default()
    };
    sync_layout(scenario, dir, batch_events, config, warehouse).await
}

/// Syncs every event of the scenario into `warehouse` as [`sync_fixture`] does, every table
/// of it in `shape`.
pub async fn sync_shaped(
    scenario: &Scenario,
    dir: &Path,
    shape: crate::shape::ShapeConfig,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::Result<crate::pipeline::PipelineStats> {
    let config = crate::pipeline::PipelineConfig {
        table_hints: schemaless_hints(scenario).await,
        shapes: (scenario.tables.iter())
            .map(|(t, _)| (t.clone(), shape.clone()))
            .collect(),
        ..crate::pipeline::PipelineConfig::default()
    };
    sync_layout(scenario, dir, FIXTURE_BATCH_EVENTS, config, warehouse).await
}

/// Syncs the scenario's S3-sink layout (written under `dir/topics` once) with `config`.
async fn sync_layout(
    scenario: &Scenario,
    dir: &Path,
    batch_events: usize,
    mut config: crate::pipeline::PipelineConfig,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::Result<crate::pipeline::PipelineStats> {
    let topics = dir.join("topics");
    if !topics.exists() {
        scenario.write_s3_layout(&topics, 25, true);
    }
    let topics = topics
        .to_str()
        .ok_or_else(|| crate::Error::Config(format!("{} is not UTF-8", topics.display())))?;
    let mut source = crate::source::raw::RawFileSource::open(topics).await?;
    config.limits.max_events = batch_events;
    crate::pipeline::Pipeline::new(config, warehouse)?
        .run_to_end(&mut source, |_| {})
        .await
}

/// Events per batch when a test syncs a whole fixture scenario: small enough that tables see
/// many commits.
pub const FIXTURE_BATCH_EVENTS: usize = 40;

/// Syncs every event of the scenario into `warehouse` ([`FIXTURE_BATCH_EVENTS`] per batch; a
/// schemaless variant with the [`schemaless_hints`] a user would give) and asserts it committed.
pub async fn sync_fixture(
    scenario: &Scenario,
    dir: &Path,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::pipeline::PipelineStats {
    let hints = schemaless_hints(scenario).await;
    let stats = sync_scenario(scenario, dir, FIXTURE_BATCH_EVENTS, hints, warehouse)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    assert!(stats.commits > 0, "{}: nothing committed", scenario.name);
    stats
}

/// Syncs the scenario's events again (after [`sync_fixture`]) and asserts nothing is committed:
/// every table's checkpoint already covers them.
pub async fn assert_replay_commits_nothing(
    scenario: &Scenario,
    dir: &Path,
    warehouse: &dyn crate::sink::Warehouse,
) {
    let again = sync_scenario(
        scenario,
        dir,
        FIXTURE_BATCH_EVENTS,
        Default::default(),
        warehouse,
    )
    .await
    .unwrap_or_else(|e| panic!("{}: replay: {e}", scenario.name));
    assert_eq!(again.commits, 0, "{}: the replay committed", scenario.name);
}

/// For a schemaless variant (`-noschema`), the table schemas a user would give: those the base
/// scenario's schema-carrying events produce, through Arrow's JSON schema form as a schema file
/// would carry them. Empty for every other scenario.
pub async fn schemaless_hints(
    scenario: &Scenario,
) -> std::collections::HashMap<TableId, crate::decode::TableHint> {
    use crate::pipeline::{Pipeline, PipelineConfig};
    use crate::sink::MemoryWarehouse;
    use crate::source::raw::RawFileSource;
    use std::sync::atomic::{AtomicUsize, Ordering};

    if scenario.variant() != "noschema" {
        return Default::default();
    }
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let base = Scenario::load(scenario.base());
    let dir = std::env::temp_dir().join(format!(
        "cdc-lake-hints-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    base.write_s3_layout(&dir, 1000, false);
    let warehouse = MemoryWarehouse::new();
    let mut source = RawFileSource::open(dir.to_str().expect("utf-8 temp dir"))
        .await
        .expect("layout");
    Pipeline::new(PipelineConfig::default(), &warehouse)
        .expect("pipeline")
        .run_to_end(&mut source, |_| {})
        .await
        .expect("base scenario syncs");
    let _ = std::fs::remove_dir_all(&dir);
    base.tables
        .iter()
        .map(|(t, _)| {
            let schema = warehouse.table(t).expect("synced").schema;
            let text = serde_json::to_string(schema.as_ref()).expect("schema to JSON");
            let parsed: arrow_schema::Schema =
                serde_json::from_str(&text).expect("schema from JSON");
            let hint = crate::decode::TableHint {
                schema: Some(std::sync::Arc::new(parsed)),
                key_columns: None,
            };
            (t.clone(), hint)
        })
        .collect()
}
