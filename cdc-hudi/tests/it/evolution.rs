//! Schema evolution on write: a column added, `int → long` and `float → double` widened in the
//! same commit as the data; readers see the new schema for old and new rows. An incompatible
//! change is an error naming the column, and leaves the table as it was.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::TableSink;
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{read_with_hudi_rs, read_with_python, to_logical, Query};

fn set(schema: SchemaRef, columns: Vec<ArrayRef>, offset: i64) -> ChangeSet {
    let upserts = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let n = upserts.num_rows();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance("db.public.items", 0, offset);
    ChangeSet {
        table: TableId::new("public", "items"),
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::none(schema.fields().len()),
        ignore_table_values: BooleanArray::from(vec![false; n]),
        deletes: upserts.project(&[0]).unwrap().slice(0, 0),
        upserts,
        checkpoint,
        first_offsets: Default::default(),
        events: n,
        max_source_ts_ms: None,
        history: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_and_widened_columns_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        HudiWarehouse::new(dir.path().to_str().unwrap(), HudiSinkConfig::default()).unwrap();
    let table = TableId::new("public", "items");
    let mut sink = warehouse.sink(&table);
    let v1 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Float32, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    sink.apply(&set(
        v1.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(Int32Array::from(vec![10, 20, 30])),
            Arc::new(Float32Array::from(vec![1.5, 2.25, 0.1])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
        ],
        0,
    ))
    .await
    .unwrap();
    let v2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("qty", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    sink.apply(&set(
        v2,
        vec![
            Arc::new(Int32Array::from(vec![1, 4])),
            Arc::new(Int64Array::from(vec![5_000_000_000, 40])),
            Arc::new(Float64Array::from(vec![0.1, 4.125])),
            Arc::new(StringArray::from(vec!["a2", "d"])),
            Arc::new(StringArray::from(vec![Some("new"), None])),
        ],
        1,
    ))
    .await
    .unwrap();

    let schema = sink.schema().await.unwrap().unwrap().schema;
    assert_eq!(
        schema.field_with_name("qty").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("price").unwrap().data_type(),
        &DataType::Float64
    );
    assert!(schema.field_with_name("note").is_ok());
    let location = warehouse.table_location(&table);
    for (reader, read) in [
        (
            "hudi-rs",
            read_with_hudi_rs(&location, &Query::Snapshot).await,
        ),
        ("python", read_with_python(&location, &Query::Snapshot)),
    ] {
        let (_, rows) = to_logical(&read, &schema);
        let rows = sorted(&rows);
        let col = |n: &str| rows.column_by_name(n).unwrap().clone();
        let ids: Vec<i32> = col("id")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(ids, [1, 2, 3, 4], "{reader}");
        let qty = col("qty");
        let qty = qty.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            qty.values().to_vec(),
            [5_000_000_000, 20, 30, 40],
            "{reader}"
        );
        let price = col("price");
        let price = price.as_any().downcast_ref::<Float64Array>().unwrap();
        // Old float values widen exactly (0.1f32 is not 0.1f64).
        assert_eq!(
            price.values().to_vec(),
            [0.1, 2.25, f64::from(0.1f32), 4.125],
            "{reader}"
        );
        let note = col("note");
        let note = note.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            note.iter().collect::<Vec<_>>(),
            [Some("new"), None, None, None],
            "{reader}"
        );
    }

    // An incompatible change names the column and commits nothing.
    let v3 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Int32, true),
    ]));
    let before = sink.file_groups().await.unwrap().len();
    let err = sink
        .apply(&set(
            v3,
            vec![
                Arc::new(Int32Array::from(vec![9])),
                Arc::new(Int32Array::from(vec![9])),
            ],
            2,
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`name`") && err.contains("public.items"),
        "{err}"
    );
    assert_eq!(
        warehouse.sink(&table).file_groups().await.unwrap().len(),
        before
    );
    let _ = v1;
}

fn sorted(rows: &RecordBatch) -> RecordBatch {
    let ids = rows.column_by_name("id").unwrap();
    let ids = ids.as_any().downcast_ref::<Int32Array>().unwrap();
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by_key(|&i| ids.value(i as usize));
    arrow_select::take::take_record_batch(rows, &arrow_array::UInt32Array::from(order)).unwrap()
}
