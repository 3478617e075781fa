//! Helpers: sync a scenario into Delta, read a Delta table back with delta-rs and with DuckDB.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::{
    compare_raw_with_expected, compare_with_expected, external_to_logical, rows_from_python_reader,
    Scenario, VariantLoss,
};
use cdc_delta::schema::{logical_schema, stored_arrow_schema};
use cdc_delta::DeltaWarehouse;
use deltalake::datafusion::prelude::SessionContext;

pub use cdc_core::testing::sync_scenario as sync;

/// The table read by delta-rs through DataFusion, in logical types.
pub async fn read_with_delta_rs(
    warehouse: &DeltaWarehouse,
    table: &TableId,
) -> (RecordBatch, Vec<String>) {
    let sink = warehouse.sink(table);
    let delta = sink.load().await.unwrap().expect("table exists");
    let snapshot = delta.snapshot().unwrap();
    let logical: SchemaRef = Arc::new(logical_schema(&snapshot.schema()).unwrap());
    let ctx = SessionContext::new();
    delta.update_datafusion_session(&ctx.state()).unwrap();
    let provider = delta.table_provider().await.unwrap();
    let df = ctx.read_table(provider).unwrap();
    let batches = df.collect().await.unwrap();
    let stored_schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(stored_arrow_schema(&logical)));
    let rows = arrow_select::concat::concat_batches(&stored_schema, &batches).unwrap();
    let mut keys_sink = warehouse.sink(table);
    let keys = keys_sink.schema().await.unwrap().unwrap().key_columns;
    (to_logical(&rows, &logical), keys)
}

/// A batch read by another engine, cast column by column to the stored type and then back to
/// the logical type.
pub fn to_logical(rows: &RecordBatch, logical: &SchemaRef) -> RecordBatch {
    external_to_logical(rows, &stored_arrow_schema(logical), logical)
}

/// The table read by DuckDB's delta extension (written to Parquet by DuckDB, read back here).
pub fn read_with_duckdb(table_location: &str, logical: &SchemaRef) -> RecordBatch {
    to_logical(&raw_duckdb(table_location), logical)
}

/// The table as DuckDB's delta extension returns it (its own types, nothing of ours applied).
pub fn raw_duckdb(table_location: &str) -> RecordBatch {
    let script = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/readers/duckdb_delta.py"
    ));
    rows_from_python_reader(script, &[table_location])
}

/// Asserts every table of the scenario reads back equal to `expected/` through delta-rs and,
/// for local tables, DuckDB.
pub async fn assert_expected(scenario: &Scenario, warehouse: &DeltaWarehouse, duckdb: bool) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let (rows, table_keys) = read_with_delta_rs(warehouse, table).await;
        assert_eq!(&table_keys, keys);
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("{} via delta-rs:\n{e}", scenario.name));
        if duckdb {
            let url = warehouse.table_url(table);
            let path = url.to_file_path().unwrap();
            let raw = raw_duckdb(path.to_str().unwrap());
            let loss = VariantLoss::of(&scenario.name);
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as DuckDB returns it:\n{e}", scenario.name));
            let rows = to_logical(&raw, &rows.schema());
            compare_with_expected(table, keys, &rows, &expected[table])
                .unwrap_or_else(|e| panic!("{} via DuckDB:\n{e}", scenario.name));
        }
    }
}

/// Asserts every table of the scenario, as DuckDB returns it, equals `expected/` after only
/// generic conversions (for scenarios whose expected values are what engines return).
pub fn assert_raw_expected(scenario: &Scenario, warehouse: &DeltaWarehouse) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let path = warehouse.table_url(table).to_file_path().unwrap();
        let raw = raw_duckdb(path.to_str().unwrap());
        compare_raw_with_expected(table, keys, &raw, &expected[table], VariantLoss::Exact)
            .unwrap_or_else(|e| panic!("{} as DuckDB returns it:\n{e}", scenario.name));
    }
}

#[cfg(any(feature = "s3", feature = "azure"))]
/// Every fixture scenario synced into a warehouse under `root/<scenario>` (an object store URL
/// reached with `storage_options`), read back, and synced again without a commit.
pub async fn sync_every_fixture_and_replay_at(
    root: &str,
    storage_options: std::collections::HashMap<String, String>,
) {
    use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture};
    for scenario in Scenario::all() {
        let config = cdc_delta::DeltaSinkConfig {
            storage_options: storage_options.clone(),
            ..cdc_delta::DeltaSinkConfig::default()
        };
        let warehouse = DeltaWarehouse::new(&format!("{root}/{}", scenario.name), config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stats = sync_fixture(&scenario, dir.path(), &warehouse).await;
        assert!(stats.commits > 0, "{}", scenario.name);
        assert_expected(&scenario, &warehouse, false).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}
