//! The source checkpoint is never lost silently: another engine's snapshots on top of
//! cdc-lake's are walked through; a parent expired before the checkpoint is found is an error
//! (not an empty checkpoint, which would replay the source from offset 0); and
//! `expire_snapshots` keeps the newest snapshot carrying the checkpoint under them.

use std::collections::HashMap;
use std::str::FromStr;

use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::Scenario;
use cdc_iceberg::maintenance::expire_snapshots;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode, CHECKPOINT_SUMMARY};
use iceberg::spec::{
    Operation, Snapshot, SnapshotReference, SnapshotRetention, Summary, TableMetadata,
    TableMetadataBuilder, MAIN_BRANCH,
};
use iceberg::MetadataLocation;

use crate::common::{assert_expected, current_metadata, metadata_location, sync, Readers};

/// Commits a snapshot the way another engine would (same files, no cdc-lake checkpoint) on top
/// of the current one, dropping the snapshots in `expire` (another engine's expiry). Returns
/// the new snapshot's id.
async fn foreign_commit(warehouse: &IcebergWarehouse, table: &TableId, expire: &[i64]) -> i64 {
    let current = metadata_location(warehouse, table).await;
    let metadata = TableMetadata::read_from(warehouse.file_io(), &current)
        .await
        .unwrap();
    let parent = metadata.current_snapshot().unwrap().clone();
    let id = parent.snapshot_id() + 1;
    let snapshot = Snapshot::builder()
        .with_snapshot_id(id)
        .with_parent_snapshot_id(Some(parent.snapshot_id()))
        .with_sequence_number(metadata.next_sequence_number())
        .with_timestamp_ms(metadata.last_updated_ms() + 1)
        .with_manifest_list(parent.manifest_list().to_string())
        .with_summary(Summary {
            operation: Operation::Replace,
            additional_properties: HashMap::from([("engine".into(), "other".into())]),
        })
        .with_schema_id(metadata.current_schema_id())
        .build();
    let next = TableMetadataBuilder::new_from_metadata(metadata, Some(current.clone()))
        .add_snapshot(snapshot)
        .unwrap()
        .set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
        )
        .unwrap()
        .remove_snapshots(expire)
        .build()
        .unwrap()
        .metadata;
    let location = MetadataLocation::from_str(&current)
        .unwrap()
        .with_next_version();
    next.write_to(warehouse.file_io(), &location).await.unwrap();
    let swapped = warehouse
        .sql_catalog()
        .await
        .unwrap()
        .swap(
            &table.namespace,
            &table.name,
            &current,
            &location.to_string(),
        )
        .await
        .unwrap();
    assert!(swapped);
    id
}

async fn synced() -> (tempfile::TempDir, Scenario, IcebergWarehouse, TableId) {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let table = scenario.tables[0].0.clone();
    (dir, scenario, warehouse, table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_keeps_the_checkpoint_under_other_engines_snapshots() {
    let (dir, scenario, warehouse, table) = synced().await;
    let committed = warehouse
        .sink(&table)
        .committed_checkpoint()
        .await
        .unwrap()
        .unwrap();
    assert!(!committed.is_empty());
    foreign_commit(&warehouse, &table, &[]).await;
    foreign_commit(&warehouse, &table, &[]).await;

    expire_snapshots(&warehouse, &table, i64::MAX, 1)
        .await
        .unwrap();
    let metadata = current_metadata(&warehouse, &table).await;
    // The two foreign snapshots and cdc-lake's last one are left.
    assert_eq!(metadata.snapshots().count(), 3);
    assert!(metadata.snapshots().any(|s| s
        .summary()
        .additional_properties
        .contains_key(CHECKPOINT_SUMMARY)));
    let after = warehouse
        .sink(&table)
        .committed_checkpoint()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, committed);
    // A replay is still a no-op.
    let again = sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_ancestry_is_an_error_not_an_empty_checkpoint() {
    let (_dir, _scenario, warehouse, table) = synced().await;
    let ours: Vec<i64> = current_metadata(&warehouse, &table)
        .await
        .snapshots()
        .map(|s| s.snapshot_id())
        .collect();
    // Another engine commits on top and expires every cdc-lake snapshot.
    let foreign = foreign_commit(&warehouse, &table, &ours).await;

    let e = warehouse
        .sink(&table)
        .committed_checkpoint()
        .await
        .unwrap_err();
    // The whole chain, as the CLI prints it.
    let mut err = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        err = format!("{err}: {s}");
        source = s.source();
    }
    assert!(
        err.contains("public.customers")
            && err.contains(&foreign.to_string())
            && err.contains("checkpoint"),
        "{err}"
    );
}

#[test]
fn equality_deletes_on_a_partitioned_table_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = IcebergSinkConfig {
        write_mode: WriteMode::EqualityDeletes,
        partition_by: vec!["bucket(4, id)".into()],
        ..IcebergSinkConfig::default()
    };
    let err = IcebergWarehouse::new(dir.path().to_str().unwrap(), config).unwrap_err();
    assert!(err.to_string().contains("equality-deletes"), "{err}");
    // Nothing was created.
    assert!(!dir.path().join("catalog.db").exists());
}
