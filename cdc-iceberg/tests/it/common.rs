//! Helpers: sync a scenario into Iceberg, read a table back with iceberg-rust, pyiceberg and
//! DuckDB.

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
use cdc_iceberg::schema::stored_arrow_schema;
use cdc_iceberg::IcebergWarehouse;
use futures::TryStreamExt;
use iceberg::spec::{FormatVersion, ManifestFile, ManifestList, TableMetadata};

pub use cdc_core::testing::sync_scenario as sync;

/// The table's logical schema and key columns, as the sink reports them.
pub async fn logical_schema(
    warehouse: &IcebergWarehouse,
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

/// The current metadata file of a table.
pub async fn metadata_location(warehouse: &IcebergWarehouse, table: &TableId) -> String {
    warehouse
        .metadata_location(table)
        .await
        .unwrap()
        .expect("table in the catalog")
}

/// The table's current metadata.
pub async fn current_metadata(warehouse: &IcebergWarehouse, table: &TableId) -> TableMetadata {
    TableMetadata::read_from(
        warehouse.file_io(),
        metadata_location(warehouse, table).await,
    )
    .await
    .unwrap()
}

/// The manifests of the table's current snapshot (none before its first snapshot).
pub async fn current_manifests(
    warehouse: &IcebergWarehouse,
    metadata: &TableMetadata,
) -> Vec<ManifestFile> {
    let Some(snapshot) = metadata.current_snapshot() else {
        return Vec::new();
    };
    let list = warehouse
        .file_io()
        .new_input(snapshot.manifest_list())
        .unwrap()
        .read()
        .await
        .unwrap();
    ManifestList::parse_with_version(&list, FormatVersion::V2)
        .unwrap()
        .consume_entries()
        .into_iter()
        .collect()
}

/// The table read by iceberg-rust's scan (position deletes applied by iceberg-rust), in
/// logical types.
pub async fn read_with_iceberg_rust(warehouse: &IcebergWarehouse, table: &TableId) -> RecordBatch {
    let (logical, _) = logical_schema(warehouse, table).await;
    let t = warehouse.read_only_table(table).await.unwrap().unwrap();
    let stream = t
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let rows = match batches.first() {
        Some(b) => arrow_select::concat::concat_batches(&b.schema(), &batches).unwrap(),
        None => RecordBatch::new_empty(Arc::new(stored_arrow_schema(&logical))),
    };
    to_logical(&rows, &logical)
}

/// A batch read by another engine in the table's logical types.
pub fn to_logical(rows: &RecordBatch, logical: &SchemaRef) -> RecordBatch {
    external_to_logical(rows, &stored_arrow_schema(logical), logical)
}

fn run_reader(script: &str, args: &[&str]) -> RecordBatch {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/readers")
        .join(script);
    rows_from_python_reader(&script, args)
}

/// The table read by pyiceberg: its SqlCatalog on our catalog file, or its RestCatalog from
/// the warehouse's REST catalog.
pub async fn read_with_pyiceberg(warehouse: &IcebergWarehouse, table: &TableId) -> RecordBatch {
    let (logical, _) = logical_schema(warehouse, table).await;
    to_logical(&raw_pyiceberg(warehouse, table), &logical)
}

/// The table as pyiceberg returns it (its own types, nothing of ours applied).
pub fn raw_pyiceberg(warehouse: &IcebergWarehouse, table: &TableId) -> RecordBatch {
    if let Some(glue) = &warehouse.config().glue {
        let (database, name) = glue.names_of(table);
        return run_reader("pyiceberg_glue.py", &[&database, &name]);
    }
    if let Some(rest) = &warehouse.config().rest {
        let token = tempfile::NamedTempFile::new().unwrap();
        let secret = rest.token.as_ref().expect("REST tests hand over a token");
        std::fs::write(token.path(), secret.expose()).unwrap();
        let mut namespace = rest.parent_namespace.clone();
        namespace.push(table.namespace.to_string());
        let rows = run_reader(
            "pyiceberg_rest.py",
            &[
                &rest.uri,
                rest.prefix.as_deref().unwrap_or(""),
                &namespace.join("."),
                &table.name,
                token.path().to_str().unwrap(),
            ],
        );
        return rows;
    }
    run_reader(
        "pyiceberg_sql.py",
        &[
            warehouse.catalog_path(),
            warehouse.catalog_name(),
            &table.to_string(),
        ],
    )
}

/// The table read by DuckDB's iceberg extension from its current metadata file.
pub async fn read_with_duckdb(warehouse: &IcebergWarehouse, table: &TableId) -> RecordBatch {
    let (logical, _) = logical_schema(warehouse, table).await;
    to_logical(&raw_duckdb(warehouse, table).await, &logical)
}

/// The table as DuckDB's iceberg extension returns it.
pub async fn raw_duckdb(warehouse: &IcebergWarehouse, table: &TableId) -> RecordBatch {
    let location = metadata_location(warehouse, table).await;
    run_reader("duckdb_iceberg.py", &[&location])
}

/// Which readers [`assert_expected`] uses.
#[derive(Debug, Clone, Copy)]
pub struct Readers {
    pub pyiceberg: bool,
    pub duckdb: bool,
}

impl Readers {
    pub const ALL: Readers = Readers {
        pyiceberg: true,
        duckdb: true,
    };
    pub const RUST_ONLY: Readers = Readers {
        pyiceberg: false,
        duckdb: false,
    };
}

/// Asserts every table of the scenario reads back equal to `expected/` through iceberg-rust
/// and the chosen independent readers.
pub async fn assert_expected(scenario: &Scenario, warehouse: &IcebergWarehouse, readers: Readers) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let (_, table_keys) = logical_schema(warehouse, table).await;
        assert_eq!(&table_keys, keys);
        let rows = read_with_iceberg_rust(warehouse, table).await;
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("{} via iceberg-rust:\n{e}", scenario.name));
        let (logical, _) = logical_schema(warehouse, table).await;
        let loss = VariantLoss::of(&scenario.name);
        if readers.pyiceberg {
            let raw = raw_pyiceberg(warehouse, table);
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as pyiceberg returns it:\n{e}", scenario.name));
            compare_with_expected(table, keys, &to_logical(&raw, &logical), &expected[table])
                .unwrap_or_else(|e| panic!("{} via pyiceberg:\n{e}", scenario.name));
        }
        if readers.duckdb {
            let raw = raw_duckdb(warehouse, table).await;
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as DuckDB returns it:\n{e}", scenario.name));
            compare_with_expected(table, keys, &to_logical(&raw, &logical), &expected[table])
                .unwrap_or_else(|e| panic!("{} via DuckDB:\n{e}", scenario.name));
        }
    }
}

/// Asserts every table of the scenario, as pyiceberg and DuckDB return it, equals `expected/`
/// after only generic conversions (for scenarios whose expected values are what engines return).
pub async fn assert_raw_expected(scenario: &Scenario, warehouse: &IcebergWarehouse) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        for (reader, raw) in [
            ("pyiceberg", raw_pyiceberg(warehouse, table)),
            ("DuckDB", raw_duckdb(warehouse, table).await),
        ] {
            compare_raw_with_expected(table, keys, &raw, &expected[table], VariantLoss::Exact)
                .unwrap_or_else(|e| panic!("{} as {reader} returns it:\n{e}", scenario.name));
        }
    }
}

/// Asserts the scenario's tables hold one snapshot per commit of the pipeline (`commits` in
/// all), each with a checkpoint its parent's does not cover: no commit landed twice, none was
/// redone after it landed.
pub async fn assert_one_snapshot_per_commit(
    scenario: &Scenario,
    warehouse: &IcebergWarehouse,
    commits: u64,
) {
    let mut total = 0;
    for (table, _) in &scenario.tables {
        let metadata = current_metadata(warehouse, table).await;
        let mut seen = std::collections::HashSet::new();
        let mut parent: Option<cdc_core::model::Checkpoint> = None;
        // Compaction's `replace` snapshots carry the checkpoint on: they are not commits.
        let mut snapshots: Vec<_> = (metadata.snapshots())
            .filter(|s| s.summary().operation != iceberg::spec::Operation::Replace)
            .collect();
        snapshots.sort_by_key(|s| s.sequence_number());
        for s in &snapshots {
            let text = &s.summary().additional_properties[cdc_iceberg::CHECKPOINT_SUMMARY];
            let checkpoint = cdc_core::model::Checkpoint::from_json(text).unwrap();
            assert!(seen.insert(text.clone()), "{table}: checkpoint twice");
            if let Some(p) = &parent {
                assert!(!checkpoint.is_covered_by(p), "{table}: no progress");
            }
            parent = Some(checkpoint);
        }
        total += snapshots.len();
    }
    assert_eq!(total as u64, commits);
}
