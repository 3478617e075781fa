//! Schema changes: a new column and widened types land in the same snapshot as the data with
//! the old field ids kept; an incompatible change fails with an error naming the column and
//! leaves the table as it was.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::{CommitOutcome, TableSink};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{
    current_metadata, read_with_duckdb, read_with_iceberg_rust, read_with_pyiceberg,
};

fn change(schema: SchemaRef, columns: Vec<ArrayRef>, offset: i64) -> ChangeSet {
    let upserts = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance("t", 0, offset);
    let n = upserts.num_rows();
    ChangeSet {
        table: TableId::new("public", "evolving"),
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::none(schema.fields().len()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_and_new_columns_keep_field_ids() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        IcebergWarehouse::new(dir.path().to_str().unwrap(), IcebergSinkConfig::default()).unwrap();
    let table = TableId::new("public", "evolving");
    let mut sink = warehouse.sink(&table);
    let v1 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int32, true),
        Field::new("x", DataType::Float32, true),
    ]));
    sink.apply(&change(
        v1.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(Int32Array::from(vec![10, 20])),
            Arc::new(Float32Array::from(vec![0.5, 1.5])),
        ],
        0,
    ))
    .await
    .unwrap();
    let before = current_metadata(&warehouse, &table).await;
    let v2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    let out = sink
        .apply(&change(
            v2.clone(),
            vec![
                Arc::new(Int32Array::from(vec![2, 3])),
                Arc::new(Int64Array::from(vec![1 << 40, 30])),
                Arc::new(Float64Array::from(vec![2.5, 3.5])),
                Arc::new(StringArray::from(vec![Some("two"), None])),
            ],
            1,
        ))
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Committed { .. }));
    let after = current_metadata(&warehouse, &table).await;
    // One snapshot per change set, and one metadata file per commit: the schema changed in the
    // data's snapshot, which was written with it, not in a commit of its own.
    assert_eq!(after.snapshots().count(), 2);
    assert_eq!(
        after.metadata_log().len(),
        before.metadata_log().len() + 1,
        "one new metadata file for the schema and the data"
    );
    let current = after.current_snapshot().unwrap();
    assert_eq!(current.schema_id(), Some(after.current_schema_id()));
    assert_ne!(before.current_schema_id(), after.current_schema_id());
    let (old, new) = (before.current_schema(), after.current_schema());
    for name in ["id", "n", "x"] {
        assert_eq!(
            old.field_id_by_name(name),
            new.field_id_by_name(name),
            "{name}"
        );
    }
    assert_eq!(new.field_id_by_name("note"), Some(4));
    assert_eq!(sink.schema().await.unwrap().unwrap().schema, v2);

    let expected = RecordBatch::try_new(
        v2.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(Int64Array::from(vec![10, 1 << 40, 30])),
            Arc::new(Float64Array::from(vec![0.5, 2.5, 3.5])),
            Arc::new(StringArray::from(vec![None, Some("two"), None])),
        ],
    )
    .unwrap();
    for rows in [
        read_with_iceberg_rust(&warehouse, &table).await,
        read_with_pyiceberg(&warehouse, &table).await,
        read_with_duckdb(&warehouse, &table).await,
    ] {
        assert_eq!(sorted(&rows), expected);
    }

    // Narrowing back is refused, naming the column, and nothing is committed.
    let bad = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("n", DataType::Utf8, true),
    ]));
    let err = sink
        .apply(&change(
            bad,
            vec![
                Arc::new(Int32Array::from(vec![4])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
            2,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, cdc_core::Error::IncompatibleSchema { ref column, .. } if column == "n"),
        "{err}"
    );
    let unchanged = current_metadata(&warehouse, &table).await;
    assert_eq!(unchanged.snapshots().count(), 2);
}

fn sorted(rows: &RecordBatch) -> RecordBatch {
    let ids = rows
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by_key(|&i| ids.value(i as usize));
    arrow_select::take::take_record_batch(rows, &arrow_array::UInt32Array::from(order)).unwrap()
}
