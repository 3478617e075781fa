//! The committed table, looked at directly: row changes are position deletes (not rewrites),
//! every snapshot carries the checkpoint, sequence numbers grow by one per snapshot, and a
//! commit leaves no orphan files; manifests are merged before they pile up.

use std::collections::HashMap;

use cdc_core::testing::Scenario;
use cdc_iceberg::maintenance::orphan_files;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, CHECKPOINT_SUMMARY};
use iceberg::spec::{ManifestContentType, Operation};

use crate::common::{assert_expected, current_manifests, current_metadata, sync, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_position_deletes_with_checkpoints() {
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
    let table = &scenario.tables[0].0;
    let metadata = current_metadata(&warehouse, table).await;
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    assert!(snapshots.len() > 3);
    for (i, s) in snapshots.iter().enumerate() {
        assert_eq!(s.sequence_number(), i as i64 + 1);
        assert!(s
            .summary()
            .additional_properties
            .contains_key(CHECKPOINT_SUMMARY));
    }
    assert_eq!(metadata.last_sequence_number(), snapshots.len() as i64);
    let ops: Vec<_> = snapshots
        .iter()
        .map(|s| s.summary().operation.clone())
        .collect();
    assert!(ops.contains(&Operation::Overwrite), "{ops:?}");
    let current = metadata.current_snapshot().unwrap();
    let props = &current.summary().additional_properties;
    assert!(
        props["total-position-deletes"].parse::<u64>().unwrap() > 0,
        "{props:?}"
    );
    assert!(
        props["total-delete-files"].parse::<u64>().unwrap() > 0,
        "{props:?}"
    );
    let manifests = current_manifests(&warehouse, &metadata).await;
    let deletes = manifests
        .iter()
        .filter(|m| m.content == ManifestContentType::Deletes)
        .count();
    assert!(deletes > 0);
    // Manifests were merged on the way: fewer than two per commit, some with EXISTING entries.
    assert!(manifests.len() < 34, "{}", manifests.len());
    assert!(manifests
        .iter()
        .any(|m| m.existing_files_count.unwrap_or(0) > 0));
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    assert!(orphan_files(&warehouse, table).await.unwrap().is_empty());
}
