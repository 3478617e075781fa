//! Copy-on-write mode: the same scenarios end equal through every reader, with no delete file
//! ever written (touched data files are rewritten instead).

use std::collections::HashMap;

use cdc_core::testing::{schemaless_hints, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};

use crate::common::{assert_expected, current_metadata, sync, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_on_write_ends_equal_without_delete_files() {
    for name in [
        "crud",
        "toast",
        "pk_change",
        "truncate",
        "schema_change",
        "types",
    ] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            write_mode: WriteMode::CopyOnWrite,
            ..IcebergSinkConfig::default()
        };
        let warehouse =
            IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
        sync(
            &scenario,
            dir.path(),
            10,
            schemaless_hints(&scenario).await,
            &warehouse,
        )
        .await
        .unwrap();
        assert_expected(&scenario, &warehouse, Readers::ALL).await;
        for (table, _) in &scenario.tables {
            let metadata = current_metadata(&warehouse, table).await;
            for snapshot in metadata.snapshots() {
                let summary = &snapshot.summary().additional_properties;
                assert_eq!(summary["total-delete-files"], "0", "{name}: {summary:?}");
            }
        }
        let again = sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
            .await
            .unwrap();
        assert_eq!(again.commits, 0, "{name}");
    }
}

/// Equality-delete mode: rows end equal through iceberg-rust and DuckDB (pyiceberg refuses
/// equality deletes), the sink's own later commits see through the equality deletes (TOAST
/// values, primary-key moves), and after `compact` pyiceberg reads the table too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equality_deletes_end_equal_and_compact_for_every_reader() {
    for name in ["crud", "toast", "pk_change", "truncate", "schema_change"] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            write_mode: WriteMode::EqualityDeletes,
            ..IcebergSinkConfig::default()
        };
        let warehouse =
            IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
        sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
            .await
            .unwrap();
        let readers = Readers {
            pyiceberg: false,
            duckdb: true,
        };
        assert_expected(&scenario, &warehouse, readers).await;
        let mut equality_deletes = 0;
        for (table, _) in &scenario.tables {
            let metadata = current_metadata(&warehouse, table).await;
            equality_deletes += metadata
                .snapshots()
                .filter(|s| {
                    s.summary()
                        .additional_properties
                        .contains_key("added-equality-delete-files")
                })
                .count();
            cdc_iceberg::maintenance::compact(&warehouse, table)
                .await
                .unwrap();
        }
        assert!(equality_deletes > 0, "{name}");
        assert_expected(&scenario, &warehouse, Readers::ALL).await;
        let again = sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
            .await
            .unwrap();
        assert_eq!(again.commits, 0, "{name}");
    }
}
