//! Another writer on the same table: a second sink (another pipeline, another topic) commits
//! after the first sink wrote its base files and before it completes its instant (rolling the
//! first sink's instant back on the way, as any writer does with an unfinished instant). The
//! first sink notices, undoes its attempt and redoes the change set on the new table state;
//! both writers' changes end up in the table, each key once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray,
};
use arrow_schema::SchemaRef;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::{BeforeCommitHook, TableSink};
use cdc_core::testing::Scenario;
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use futures::FutureExt;

use crate::common::{assert_expected, logical_schema, read_with_hudi_rs, sync, to_logical, Query};

const OTHER_TOPIC: &str = "other.public.customers";

/// One upsert (`upsert` = true) or delete of key `id` by the other writer, at `offset`.
fn other_change(schema: &SchemaRef, id: i32, offset: i64, upsert: bool) -> ChangeSet {
    let table = TableId::new("public", "customers");
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "id" => Arc::new(Int32Array::from(vec![id])) as ArrayRef,
            "name" => Arc::new(StringArray::from(vec!["concurrent"])) as ArrayRef,
            _ => new_null_array(f.data_type(), 1),
        })
        .collect();
    let row = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let key = row.project(&[schema.index_of("id").unwrap()]).unwrap();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance(OTHER_TOPIC, 0, offset);
    let (upserts, deletes) = if upsert {
        (row, key.slice(0, 0))
    } else {
        (RecordBatch::new_empty(schema.clone()), key)
    };
    ChangeSet {
        table,
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::none(schema.fields().len()),
        ignore_table_values: BooleanArray::from(vec![false; upserts.num_rows()]),
        upserts,
        deletes,
        checkpoint,
        events: 1,
        max_source_ts_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_between_write_and_commit_is_retried() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let table = TableId::new("public", "customers");
    let other = HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
    let other_commits = Arc::new(AtomicI64::new(0));
    let (hook_other, hook_commits, hook_table) =
        (other.clone(), other_commits.clone(), table.clone());
    let hook = BeforeCommitHook(Arc::new(move || {
        let (other, commits, table) =
            (hook_other.clone(), hook_commits.clone(), hook_table.clone());
        async move {
            let n = commits.load(Ordering::SeqCst);
            if n >= 4 {
                return;
            }
            let mut sink = other.sink(&table);
            // Before the first commit there is no table to write to yet.
            let Some(schema) = sink.schema().await.unwrap() else {
                return;
            };
            let set = other_change(&schema.schema, 100_000 + n as i32, n, true);
            sink.apply(&set).await.expect("other writer commits");
            commits.fetch_add(1, Ordering::SeqCst);
        }
        .boxed()
    }));
    let config = HudiSinkConfig {
        before_commit: Some(hook),
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let concurrent = other_commits.load(Ordering::SeqCst);
    assert_eq!(concurrent, 4);
    assert!(
        warehouse.conflicts_retried() >= concurrent as u64,
        "{concurrent} concurrent commits but {} conflicts retried",
        warehouse.conflicts_retried()
    );

    // The other writer's rows are all there, once; it then deletes them again.
    let (logical, _) = logical_schema(&other, &table).await;
    let location = other.table_location(&table);
    let (_, rows) = to_logical(
        &read_with_hudi_rs(&location, &Query::Snapshot).await,
        &logical,
    );
    let ids = rows.column_by_name("id").unwrap();
    let ids = ids.as_any().downcast_ref::<Int32Array>().unwrap();
    for n in 0..concurrent {
        let id = 100_000 + n as i32;
        assert_eq!(ids.iter().filter(|v| *v == Some(id)).count(), 1, "row {id}");
        let set = other_change(&logical, id, 100 + n, false);
        other.sink(&table).apply(&set).await.unwrap();
    }
    assert_expected(&scenario, &warehouse, true).await;
}
