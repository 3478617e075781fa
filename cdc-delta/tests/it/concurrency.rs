//! A concurrent writer on the same table: a second sink (another pipeline, another topic)
//! commits between the first sink's read of the table and its commit. The first sink's commit
//! conflicts, it redoes the change set on the new version, and both writers' changes end up in
//! the table with no duplicate key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow_array::Int32Array;
use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{BeforeCommitHook, TestHooks};
use cdc_core::sink::TableSink;
use cdc_core::testing::{other_writer_change, Scenario};
use cdc_delta::schema::logical_schema;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use futures::FutureExt;

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_between_read_and_commit_is_retried() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let other = DeltaWarehouse::new(root.to_str().unwrap(), DeltaSinkConfig::default()).unwrap();
    let other_commits = Arc::new(AtomicI64::new(0));
    let (hook_other, hook_commits) = (other.clone(), other_commits.clone());
    let hook = BeforeCommitHook(Arc::new(move || {
        let (other, commits) = (hook_other.clone(), hook_commits.clone());
        async move {
            // Before every other commit attempt of the pipeline, the other writer commits a row.
            let n = commits.load(Ordering::SeqCst);
            if n >= 6 {
                return;
            }
            let table = TableId::new("public", "customers");
            let Some(delta) = other.sink(&table).load().await.unwrap() else {
                return;
            };
            let schema: SchemaRef =
                Arc::new(logical_schema(&delta.snapshot().unwrap().schema()).unwrap());
            let set = other_writer_change(&schema, 100_000 + n as i32, n, true);
            let mut sink = other.sink(&set.table);
            sink.apply(&set).await.expect("other writer commits");
            commits.fetch_add(1, Ordering::SeqCst);
        }
        .boxed()
    }));
    let config = DeltaSinkConfig {
        test_hooks: TestHooks::before_commit(hook),
        ..DeltaSinkConfig::default()
    };
    let warehouse = DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let concurrent = other_commits.load(Ordering::SeqCst);
    assert_eq!(concurrent, 6);
    assert!(
        warehouse.conflicts_retried() >= concurrent as u64,
        "{concurrent} concurrent commits but {} conflicts retried",
        warehouse.conflicts_retried()
    );

    // The other writer's rows are all there, once; it then deletes them again.
    let table = TableId::new("public", "customers");
    let delta = other.sink(&table).load().await.unwrap().unwrap();
    let schema: SchemaRef = Arc::new(logical_schema(&delta.snapshot().unwrap().schema()).unwrap());
    let (rows, _) = crate::common::read_with_delta_rs(&other, &table).await;
    let ids = rows
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap()
        .clone();
    for n in 0..concurrent {
        let id = 100_000 + n as i32;
        assert_eq!(ids.iter().filter(|v| *v == Some(id)).count(), 1, "row {id}");
        let set = other_writer_change(&schema, id, 100 + n, false);
        other.sink(&table).apply(&set).await.unwrap();
    }
    assert_expected(&scenario, &warehouse, true).await;
}
