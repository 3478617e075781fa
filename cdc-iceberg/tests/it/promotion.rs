//! Widened types (int → long, float → double, decimal precision) are promoted by readers at
//! read time: the change's snapshot keeps the old data files (their physical types stay
//! narrower) and touches only the files holding changed rows; the sink's own reads of the old
//! files (locating keys, old rows of unchanged TOAST cells, compaction) convert them, and
//! iceberg-rust, pyiceberg and DuckDB read the table equal.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::TableSink;
use cdc_iceberg::maintenance::compact;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{
    current_metadata, read_with_duckdb, read_with_iceberg_rust, read_with_pyiceberg,
};

fn change(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    unchanged: UnchangedMask,
    offset: i64,
) -> ChangeSet {
    let upserts = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance("t", 0, offset);
    let n = upserts.num_rows();
    ChangeSet {
        table: TableId::new("public", "widened"),
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: unchanged,
        ignore_table_values: BooleanArray::from(vec![false; n]),
        deletes: RecordBatch::try_new(
            Arc::new(Schema::new(vec![schema.field(0).clone()])),
            vec![upserts.column(0).slice(0, 0)],
        )
        .unwrap(),
        upserts,
        checkpoint,
        first_offsets: Default::default(),
        events: n,
        max_source_ts_ms: None,
        history: None,
    }
}

fn decimals(values: Vec<i128>, precision: u8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values)
            .with_precision_and_scale(precision, 2)
            .unwrap(),
    )
}

async fn summary(warehouse: &IcebergWarehouse, table: &TableId) -> HashMap<String, String> {
    let metadata = current_metadata(warehouse, table).await;
    metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .clone()
}

fn sorted(rows: &RecordBatch) -> RecordBatch {
    let ids = arrow_cast::cast(rows.column(0), &DataType::Int64).unwrap();
    let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by_key(|&i| ids.value(i as usize));
    arrow_select::take::take_record_batch(rows, &arrow_array::UInt32Array::from(order)).unwrap()
}

async fn assert_all_readers(warehouse: &IcebergWarehouse, table: &TableId, expected: &RecordBatch) {
    for (reader, rows) in [
        (
            "iceberg-rust",
            read_with_iceberg_rust(warehouse, table).await,
        ),
        ("pyiceberg", read_with_pyiceberg(warehouse, table).await),
        ("duckdb", read_with_duckdb(warehouse, table).await),
    ] {
        assert_eq!(&sorted(&rows), expected, "{reader}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_touches_only_the_changed_rows_file() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        IcebergWarehouse::new(dir.path().to_str().unwrap(), IcebergSinkConfig::default()).unwrap();
    let table = TableId::new("public", "widened");
    let mut sink = warehouse.sink(&table);
    let v1: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int32, true),
        Field::new("x", DataType::Float32, true),
        Field::new("d", DataType::Decimal128(9, 2), true),
    ]));
    sink.apply(&change(
        &v1,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            Arc::new(Int32Array::from(vec![10, 20, 30, 40])),
            Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5])),
            decimals(vec![100, 200, 300, 400], 9),
        ],
        UnchangedMask::none(4),
        0,
    ))
    .await
    .unwrap();

    // Every column widened; one row updated, its decimal cell unchanged (TOAST-like: the old
    // value comes from the old, narrower file).
    let v2: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(20, 2), true),
    ]));
    sink.apply(&change(
        &v2,
        vec![
            Arc::new(Int32Array::from(vec![2])),
            Arc::new(Int64Array::from(vec![1 << 40])),
            Arc::new(Float64Array::from(vec![1e300])),
            decimals(vec![0], 20),
        ],
        UnchangedMask::new(vec![None, None, None, Some(BooleanArray::from(vec![true]))]),
        1,
    ))
    .await
    .unwrap();
    let s = summary(&warehouse, &table).await;
    assert_eq!(s["added-data-files"], "1", "{s:?}");
    assert_eq!(
        s.get("deleted-data-files")
            .map(String::as_str)
            .unwrap_or("0"),
        "0",
        "{s:?}"
    );
    assert_eq!(s["added-position-deletes"], "1", "{s:?}");
    assert_eq!(s["total-data-files"], "2", "{s:?}");
    assert_eq!(s["added-records"], "1", "{s:?}");
    assert_eq!(sink.schema().await.unwrap().unwrap().schema, v2);

    let expected = RecordBatch::try_new(
        v2.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            Arc::new(Int64Array::from(vec![10, 1 << 40, 30, 40])),
            Arc::new(Float64Array::from(vec![0.5, 1e300, 2.5, 3.5])),
            decimals(vec![100, 200, 300, 400], 20),
        ],
    )
    .unwrap();
    assert_all_readers(&warehouse, &table, &expected).await;

    // A later update of a row in the old file finds it through the widened key bounds, and
    // compaction reads the old file under the new schema.
    sink.apply(&change(
        &v2,
        vec![
            Arc::new(Int32Array::from(vec![3])),
            Arc::new(Int64Array::from(vec![-(1 << 41)])),
            Arc::new(Float64Array::from(vec![-2.5])),
            decimals(vec![99_999_999_999_999_999], 20),
        ],
        UnchangedMask::none(4),
        2,
    ))
    .await
    .unwrap();
    let s = summary(&warehouse, &table).await;
    assert_eq!(s["added-data-files"], "1", "{s:?}");
    assert_eq!(s["total-data-files"], "3", "{s:?}");
    let expected = RecordBatch::try_new(
        v2.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            Arc::new(Int64Array::from(vec![10, 1 << 40, -(1 << 41), 40])),
            Arc::new(Float64Array::from(vec![0.5, 1e300, -2.5, 3.5])),
            decimals(vec![100, 200, 99_999_999_999_999_999, 400], 20),
        ],
    )
    .unwrap();
    assert_all_readers(&warehouse, &table, &expected).await;
    compact(&warehouse, &table)
        .await
        .unwrap()
        .expect("compacted");
    assert_all_readers(&warehouse, &table, &expected).await;
}

/// A column added with a non-null default is the one schema change that rewrites the live rows
/// (v2 files lacking it would read as null). The rewrite streams file by file into one clean
/// data file with the position deletes applied and the default filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_column_with_a_default_rewrites_the_live_rows() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        IcebergWarehouse::new(dir.path().to_str().unwrap(), IcebergSinkConfig::default()).unwrap();
    let table = TableId::new("public", "widened");
    let mut sink = warehouse.sink(&table);
    let v1: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int64, true),
    ]));
    for (offset, (ids, ns)) in [
        (vec![1, 2, 3], vec![10, 20, 30]),
        (vec![3, 4], vec![31, 40]),
        (vec![1, 5], vec![11, 50]),
    ]
    .into_iter()
    .enumerate()
    {
        sink.apply(&change(
            &v1,
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(Int64Array::from(ns)),
            ],
            UnchangedMask::none(2),
            offset as i64,
        ))
        .await
        .unwrap();
    }
    let before = summary(&warehouse, &table).await;
    assert_eq!(before["total-data-files"], "3", "{before:?}");

    let with_default = Field::new("c", DataType::Int32, true).with_metadata(HashMap::from([(
        "cdc.default".to_string(),
        "7".to_string(),
    )]));
    let v2: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int64, true),
        with_default,
    ]));
    sink.apply(&change(
        &v2,
        vec![
            Arc::new(Int32Array::from(vec![6])),
            Arc::new(Int64Array::from(vec![60])),
            Arc::new(Int32Array::from(vec![100])),
        ],
        UnchangedMask::none(3),
        3,
    ))
    .await
    .unwrap();
    let s = summary(&warehouse, &table).await;
    assert_eq!(s["deleted-data-files"], "3", "{s:?}");
    assert_eq!(s["total-data-files"], "1", "{s:?}");
    assert_eq!(s["total-delete-files"], "0", "{s:?}");
    assert_eq!(s["total-records"], "6", "{s:?}");

    let plain: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int64, true),
        Field::new("c", DataType::Int32, true),
    ]));
    let expected = RecordBatch::try_new(
        plain,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5, 6])),
            Arc::new(Int64Array::from(vec![11, 20, 31, 40, 50, 60])),
            Arc::new(Int32Array::from(vec![7, 7, 7, 7, 7, 100])),
        ],
    )
    .unwrap();
    for (reader, rows) in [
        (
            "iceberg-rust",
            read_with_iceberg_rust(&warehouse, &table).await,
        ),
        ("pyiceberg", read_with_pyiceberg(&warehouse, &table).await),
        ("duckdb", read_with_duckdb(&warehouse, &table).await),
    ] {
        let rows = sorted(&rows);
        let rows = RecordBatch::try_new(expected.schema(), rows.columns().to_vec())
            .unwrap_or_else(|e| panic!("{reader}: {e}: {:?}", rows.schema()));
        assert_eq!(rows, expected, "{reader}");
    }
}
