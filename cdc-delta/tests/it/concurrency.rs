//! A concurrent writer on the same table: a second sink (another pipeline, another topic)
//! commits between the first sink's read of the table and its commit. The first sink's commit
//! conflicts, it redoes the change set on the new version, and both writers' changes end up in
//! the table with no duplicate key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::Int32Array;
use arrow_schema::SchemaRef;
use cdc_core::testing::conformance::OtherWriter;
use cdc_core::testing::Scenario;
use cdc_delta::schema::logical_schema;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_between_read_and_commit_is_retried() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let other = DeltaWarehouse::new(root.to_str().unwrap(), DeltaSinkConfig::default()).unwrap();
    // Before every other commit attempt of the pipeline, the other writer commits a row.
    let writer = OtherWriter::new(Arc::new(other.clone()), 6);
    let config = DeltaSinkConfig {
        test_hooks: writer.hook(),
        ..DeltaSinkConfig::default()
    };
    let warehouse = DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let concurrent = writer.commits();
    assert_eq!(concurrent, 6);
    assert!(
        warehouse.conflicts_retried() >= concurrent as u64,
        "{concurrent} concurrent commits but {} conflicts retried",
        warehouse.conflicts_retried()
    );

    // The other writer's rows are all there, once; it then deletes them again.
    let table = OtherWriter::table();
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
    for id in writer.ids() {
        assert_eq!(ids.iter().filter(|v| *v == Some(id)).count(), 1, "row {id}");
    }
    writer.undo(&schema).await;
    assert_expected(&scenario, &warehouse, true).await;
}
