//! Partitioned tables (identity of a column updates change, so rows move between partitions;
//! bucket of the key; day of a timestamp) end equal too: every position-delete file sits in the
//! partition of the data files it names, whether the change was an update or a key-only delete.

use std::collections::HashMap;

use arrow_array::{Array, StringArray};
use cdc_core::model::TableId;
use cdc_core::testing::Scenario;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};
use iceberg::spec::{DataContentType, Struct};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{assert_expected, current_manifests, current_metadata, sync, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_end_equal() {
    for (partition_by, dirs) in [
        (vec!["name"], "name="),
        (vec!["bucket(4, id)"], "id_bucket_4="),
        (vec!["day(updated_at)", "bucket(2, id)"], "updated_at_day="),
        (vec!["hour(updated_at)"], "updated_at_hour="),
    ] {
        let scenario = Scenario::load("crud");
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
            ..IcebergSinkConfig::default()
        };
        let root = dir.path().join("wh");
        let warehouse = IcebergWarehouse::new(root.to_str().unwrap(), config).unwrap();
        sync(&scenario, dir.path(), 10, HashMap::new(), &warehouse)
            .await
            .unwrap();
        assert_expected(&scenario, &warehouse, Readers::ALL).await;
        let table = &scenario.tables[0].0;
        let metadata = current_metadata(&warehouse, table).await;
        assert_eq!(
            metadata.default_partition_spec().fields().len(),
            partition_by.len()
        );
        let partitions = std::fs::read_dir(root.join("public/customers/data"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(dirs)
            })
            .count();
        assert!(
            partitions > 1,
            "{partition_by:?}: {partitions} partition directories"
        );
        let checked = assert_deletes_in_partitions_of_their_files(&warehouse, table).await;
        assert!(checked > 0, "{partition_by:?}: no position delete checked");
    }
}

/// Every row of every live position-delete file names a live data file of the delete file's
/// own partition (readers match delete files to data files by partition). Returns how many
/// delete rows were checked.
async fn assert_deletes_in_partitions_of_their_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> usize {
    let io = warehouse.file_io();
    let metadata = current_metadata(warehouse, table).await;
    let manifests = current_manifests(warehouse, &metadata).await;
    let mut data_partitions: HashMap<String, Struct> = HashMap::new();
    let mut delete_files: Vec<(String, Struct)> = Vec::new();
    for manifest in &manifests {
        for entry in manifest.load_manifest(io).await.unwrap().entries() {
            if !entry.is_alive() {
                continue;
            }
            let file = entry.data_file();
            let item = (file.file_path().to_string(), file.partition().clone());
            match entry.content_type() {
                DataContentType::Data => {
                    data_partitions.insert(item.0, item.1);
                }
                DataContentType::PositionDeletes => delete_files.push(item),
                DataContentType::EqualityDeletes => {}
            }
        }
    }
    let mut checked = 0;
    for (path, partition) in delete_files {
        let bytes = io.new_input(&path).unwrap().read().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let names = batch
                .column_by_name("file_path")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for i in 0..names.len() {
                let named = names.value(i);
                // A delete of a file no longer live is harmless; a live one must match.
                if let Some(data_partition) = data_partitions.get(named) {
                    assert_eq!(
                        data_partition, &partition,
                        "{table}: {path} deletes rows of {named} in another partition"
                    );
                    checked += 1;
                }
            }
        }
    }
    checked
}

#[test]
fn bad_partition_fields_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = IcebergSinkConfig {
        partition_by: vec!["bucket(id)".into()],
        ..IcebergSinkConfig::default()
    };
    let err = IcebergWarehouse::new(dir.path().to_str().unwrap(), config).unwrap_err();
    assert!(err.to_string().contains("bucket(N, column)"), "{err}");
}

/// Key changes (pk_change: a row's key moves, the old key is deleted by a key-only event) and
/// unchanged TOAST cells (toast: the old value comes from a row in another partition than the
/// new row's) on tables partitioned by a column the updates change, in small batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_pk_change_and_toast_end_equal() {
    for (name, partition_by) in [
        ("pk_change", vec!["bucket(4, qty)"]),
        ("pk_change", vec!["qty"]),
        ("toast", vec!["version"]),
        ("toast", vec!["bucket(2, id)", "version"]),
    ] {
        for mode in [WriteMode::PositionDeletes, WriteMode::CopyOnWrite] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let config = IcebergSinkConfig {
                partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
                write_mode: mode,
                ..IcebergSinkConfig::default()
            };
            let warehouse =
                IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
            let stats = sync(&scenario, dir.path(), 3, HashMap::new(), &warehouse)
                .await
                .unwrap();
            assert!(stats.commits > 3, "{name} {partition_by:?} {mode:?}");
            for (table, _) in &scenario.tables {
                let metadata = current_metadata(&warehouse, table).await;
                assert_eq!(
                    metadata.default_partition_spec().fields().len(),
                    partition_by.len(),
                    "{table}"
                );
                assert_deletes_in_partitions_of_their_files(&warehouse, table).await;
            }
            assert_expected(&scenario, &warehouse, Readers::ALL).await;
        }
    }
}
