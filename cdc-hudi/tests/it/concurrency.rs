//! Another writer on the same table: a second sink (another pipeline, another topic) commits
//! after the first sink wrote its base files and before it completes its instant (rolling the
//! first sink's instant back on the way, as any writer does with an unfinished instant). The
//! first sink notices, undoes its attempt and redoes the change set on the new table state;
//! both writers' changes end up in the table, each key once.

use std::collections::HashMap;

use std::sync::Arc;

use arrow_array::{Array, Int32Array};
use arrow_schema::SchemaRef;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{BeforeCommitHook, FailPoint, TestHooks};
use cdc_core::sink::TableSink;
use cdc_core::testing::conformance::OtherWriter;
use cdc_core::testing::{keyed_change, other_writer_change, Scenario, OTHER_WRITER_TOPIC};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use futures::FutureExt;

use crate::common::{assert_expected, logical_schema, read_with_hudi_rs, sync, to_logical, Query};

/// One upsert (`upsert` = true, column `name` = `name`, other columns null) or delete of key
/// `id` of `public.customers`, at `offset` of another topic.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub fn change(schema: &SchemaRef, id: i32, name: &str, offset: i64, upsert: bool) -> ChangeSet {
    let table = TableId::new("public", "customers");
    keyed_change(
        &table,
        schema,
        &[id],
        name,
        upsert,
        (OTHER_WRITER_TOPIC, offset),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_between_write_and_commit_is_retried() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let table = TableId::new("public", "customers");
    let other = HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
    let writer = OtherWriter::new(Arc::new(other.clone()), 4);
    let config = HudiSinkConfig {
        test_hooks: writer.hook(),
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let concurrent = writer.commits();
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
    for id in writer.ids() {
        assert_eq!(ids.iter().filter(|v| *v == Some(id)).count(), 1, "row {id}");
    }
    writer.undo(&logical).await;
    assert_expected(&scenario, &warehouse, true).await;
}

/// A writer of another id never rolls back a live writer's instant: while the first sink
/// (writer `main`) sits between its base files and its commit, a second sink (writer `other`)
/// meets its live heartbeat and gets a conflict, deleting nothing; the first sink commits
/// without any retry. Once the first writer is done the second commits. A crashed writer of a
/// third id is rolled back by another writer only once its heartbeat has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_writer_of_another_id_is_never_rolled_back() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let table = TableId::new("public", "customers");
    let other = HudiWarehouse::new(
        root.to_str().unwrap(),
        HudiSinkConfig {
            writer_id: "other".into(),
            max_commit_attempts: 2,
            ..HudiSinkConfig::default()
        },
    )
    .unwrap();
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (hook_other, hook_errors, hook_table) = (other.clone(), errors.clone(), table.clone());
    let hook = BeforeCommitHook(Arc::new(move || {
        let (other, errors, table) = (hook_other.clone(), hook_errors.clone(), hook_table.clone());
        async move {
            let n = errors.lock().unwrap().len() as i64;
            if n >= 3 {
                return;
            }
            let mut sink = other.sink(&table);
            let Some(schema) = sink.schema().await.unwrap() else {
                return;
            };
            let set = other_writer_change(&schema.schema, 200_000 + n as i32, n, true);
            let result = sink.apply(&set).await;
            let err = result.expect_err("the other writer must not roll back a live instant");
            errors.lock().unwrap().push(err.to_string());
        }
        .boxed()
    }));
    let config = HudiSinkConfig {
        writer_id: "main".into(),
        test_hooks: TestHooks::before_commit(hook),
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("writer `main` is in flight"),
            "not a heartbeat conflict: {e}"
        );
    }
    assert_eq!(
        warehouse.conflicts_retried(),
        0,
        "the live writer lost files"
    );
    assert_expected(&scenario, &warehouse, false).await;

    // The first writer is done (its heartbeats are gone): the other one commits now.
    let (logical, _) = logical_schema(&other, &table).await;
    other
        .sink(&table)
        .apply(&other_writer_change(&logical, 300_000, 10, true))
        .await
        .unwrap();
    other
        .sink(&table)
        .apply(&other_writer_change(&logical, 300_000, 11, false))
        .await
        .unwrap();

    // A writer of a third id crashes with its instant pending; its heartbeat (refreshed every
    // 100 ms) expires and the next writer rolls it back.
    let crashing = HudiWarehouse::new(
        root.to_str().unwrap(),
        HudiSinkConfig {
            writer_id: "crashing".into(),
            heartbeat_interval_ms: 100,
            test_hooks: TestHooks::fail_at(FailPoint::AfterDataFiles, 0),
            ..HudiSinkConfig::default()
        },
    )
    .unwrap();
    let err = crashing
        .sink(&table)
        .apply(&other_writer_change(&logical, 300_001, 12, true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fail point"), "{err}");
    let heartbeats = std::path::Path::new(&other.table_location(&table)).join(".hoodie/.heartbeat");
    assert_eq!(std::fs::read_dir(&heartbeats).unwrap().count(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    other
        .sink(&table)
        .apply(&other_writer_change(&logical, 300_002, 13, false))
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(&heartbeats).unwrap().count(), 0);
    assert_expected(&scenario, &warehouse, false).await;
}
