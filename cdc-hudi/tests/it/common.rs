//! Helpers: sync a scenario into Hudi, read a Hudi table back with hudi-rs and with the Python
//! `hudi` package.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::storage::from_storage;
use cdc_core::testing::{
    compare_raw_with_expected, compare_with_expected, venv_python, Scenario, VariantLoss,
};
use cdc_hudi::HudiWarehouse;
use cdc_hudi::{stored_schema, META_COLUMNS};
use hudi::table::{QueryType, ReadOptions, Table};

pub use cdc_core::testing::sync_scenario as sync;

/// How a reader reads the table.
#[derive(Debug, Clone)]
pub enum Query {
    /// The latest commit.
    Snapshot,
    /// Time travel to an instant.
    AsOf(String),
    /// Rows changed in `(start, end]`.
    Incremental(String, String),
}

/// The table's logical schema and key, from the sink.
pub async fn logical_schema(
    warehouse: &HudiWarehouse,
    table: &TableId,
) -> (SchemaRef, Vec<String>) {
    let s = warehouse
        .sink(table)
        .schema()
        .await
        .unwrap()
        .expect("table exists");
    (s.schema, s.key_columns)
}

/// Rows read by another engine (meta columns and all), as `(meta columns, logical rows)`:
/// each data column cast to its stored type and then back to the logical type.
pub fn to_logical(rows: &RecordBatch, logical: &SchemaRef) -> (RecordBatch, RecordBatch) {
    let stored = stored_schema(logical);
    let cols = stored
        .fields()
        .iter()
        .map(|f| {
            let col = rows
                .column_by_name(f.name())
                .unwrap_or_else(|| panic!("reader lost column {}", f.name()));
            arrow_cast::cast(col, f.data_type()).unwrap()
        })
        .collect();
    let stored =
        RecordBatch::try_new(Arc::new(Schema::new(stored.fields().clone())), cols).unwrap();
    let meta_idx: Vec<usize> = META_COLUMNS
        .iter()
        .map(|m| rows.schema().index_of(m).expect("meta column read"))
        .collect();
    (
        rows.project(&meta_idx).unwrap(),
        from_storage(&stored, logical).unwrap(),
    )
}

/// The table read by hudi-rs.
pub async fn read_with_hudi_rs(location: &str, query: &Query) -> RecordBatch {
    let table = Table::new(location).await.unwrap();
    let options = match query {
        Query::Snapshot => ReadOptions::new(),
        Query::AsOf(t) => ReadOptions::new().with_as_of_timestamp(t),
        Query::Incremental(a, b) => ReadOptions::new()
            .with_query_type(QueryType::Incremental)
            .with_start_timestamp(a)
            .with_end_timestamp(b),
    };
    let batches = table.read(&options).await.unwrap();
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => Arc::new(table.get_schema_with_meta_fields().await.unwrap()),
    };
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

/// The table read by the Python `hudi` package (written to Parquet by it, read back here).
pub fn read_with_python(location: &str, query: &Query) -> RecordBatch {
    let python = venv_python().expect("the venv with the `hudi` package (.ci/run creates it)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readers/hudi_python.py");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.parquet");
    let mut args = vec![
        script.to_string(),
        location.to_string(),
        out.to_str().unwrap().to_string(),
    ];
    match query {
        Query::Snapshot => args.push("snapshot".into()),
        Query::AsOf(t) => args.extend(["as_of".into(), t.clone()]),
        Query::Incremental(a, b) => args.extend(["incremental".into(), a.clone(), b.clone()]),
    }
    let output = std::process::Command::new(python)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python hudi: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::fs::File::open(&out).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

/// Asserts no record key appears twice.
pub fn assert_unique_keys(meta: &RecordBatch, what: &str) {
    let keys = meta
        .column_by_name("_hoodie_record_key")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for k in keys.iter() {
        assert!(
            seen.insert(k.unwrap().to_string()),
            "{what}: duplicate record key {k:?}"
        );
    }
}

/// Asserts every table of the scenario reads back equal to `expected/` through hudi-rs and
/// (when `python`) the Python `hudi` package.
pub async fn assert_expected(scenario: &Scenario, warehouse: &HudiWarehouse, python: bool) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let (logical, table_keys) = logical_schema(warehouse, table).await;
        assert_eq!(&table_keys, keys);
        let location = warehouse.table_location(table);
        let loss = VariantLoss::of(&scenario.name);
        let raw = read_with_hudi_rs(&location, &Query::Snapshot).await;
        compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
            .unwrap_or_else(|e| panic!("{} as hudi-rs returns it:\n{e}", scenario.name));
        let (meta, rows) = to_logical(&raw, &logical);
        assert_unique_keys(&meta, &scenario.name);
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("{} via hudi-rs:\n{e}", scenario.name));
        if python {
            let raw = read_with_python(&location, &Query::Snapshot);
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as python hudi returns it:\n{e}", scenario.name));
            let (_, rows) = to_logical(&raw, &logical);
            compare_with_expected(table, keys, &rows, &expected[table])
                .unwrap_or_else(|e| panic!("{} via python hudi:\n{e}", scenario.name));
        }
    }
}

/// Asserts every table of the scenario, as hudi-rs and Python hudi return it, equals
/// `expected/` after only generic conversions (for scenarios whose expected values are what
/// engines return).
pub async fn assert_raw_expected(scenario: &Scenario, warehouse: &HudiWarehouse) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let location = warehouse.table_location(table);
        for (reader, raw) in [
            (
                "hudi-rs",
                read_with_hudi_rs(&location, &Query::Snapshot).await,
            ),
            ("python hudi", read_with_python(&location, &Query::Snapshot)),
        ] {
            compare_raw_with_expected(table, keys, &raw, &expected[table], VariantLoss::Exact)
                .unwrap_or_else(|e| panic!("{} as {reader} returns it:\n{e}", scenario.name));
        }
    }
}

#[cfg(any(feature = "s3", feature = "azure"))]
/// Asserts every table of `scenario` in `warehouse` (under `root`, an object store URL), read by
/// hudi-rs with the object_store `options`, equals `expected/` with unique keys.
pub async fn assert_hudi_rs_reads_expected_at(
    scenario: &cdc_core::testing::Scenario,
    warehouse: &HudiWarehouse,
    root: &str,
    options: std::collections::HashMap<String, String>,
) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let location = warehouse.table_location(table);
        assert!(location.starts_with(root), "{location}");
        let hudi = Table::new_with_options(&location, options.clone())
            .await
            .unwrap();
        let batches = hudi.read(&ReadOptions::new()).await.unwrap();
        let rows = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let (logical, _) = logical_schema(warehouse, table).await;
        let (meta, rows) = to_logical(&rows, &logical);
        assert_unique_keys(&meta, root);
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("hudi at {root} via hudi-rs:\n{e}"));
    }
}

#[cfg(any(feature = "s3", feature = "azure"))]
/// Every fixture scenario synced into a warehouse under `root/<scenario>` (an object store URL
/// whose settings are in the environment), read back by hudi-rs with `options`, and replayed
/// without a commit.
pub async fn every_fixture_at(root: &str, options: std::collections::HashMap<String, String>) {
    use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture, Scenario};
    for scenario in Scenario::all() {
        let at = format!("{root}/{}", scenario.name);
        let warehouse = HudiWarehouse::new(&at, cdc_hudi::HudiSinkConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        let prefix = format!("{at}/");
        assert_hudi_rs_reads_expected_at(&scenario, &warehouse, &prefix, options.clone()).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}
