//! Cleaning writes `clean` instants as Hudi's cleaner does: `t.clean.requested` and
//! `t.clean.inflight` with the cleaner plan, `t.clean` with the clean metadata, Avro container
//! files that fastavro (an independent reader) reads as `HoodieCleanerPlan` and
//! `HoodieCleanMetadata`. Every file a clean says it deleted is gone, the planned files are
//! the deleted ones, and hudi-rs and Python hudi still read the source's rows.

use cdc_core::testing::{sync_scenario, venv_python, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use serde_json::Value;

use crate::common::assert_expected;

/// The records of Avro container files as fastavro reads them, one JSON object per file.
fn fastavro(files: &[std::path::PathBuf]) -> Vec<Value> {
    let python = venv_python().expect("the venv (.ci/run creates it)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readers/avro_records.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_writes_clean_instants_as_hudi_does() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        commits_retained: 2,
        archive_min_commits: 1000,
        archive_max_commits: 2000,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    sync_scenario(&scenario, dir.path(), 10, Default::default(), &warehouse)
        .await
        .unwrap();
    let location = std::path::PathBuf::from(warehouse.table_location(table));
    let hoodie = location.join(".hoodie");
    let mut names: Vec<String> = std::fs::read_dir(&hoodie)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".clean"))
        .collect();
    names.sort();
    let completed: Vec<&String> = names.iter().filter(|n| n.ends_with(".clean")).collect();
    assert!(!completed.is_empty(), "no clean instant in {names:?}");
    assert_eq!(
        names.len(),
        completed.len() * 3,
        "requested, inflight, completed: {names:?}"
    );
    let paths: Vec<std::path::PathBuf> = names.iter().map(|n| hoodie.join(n)).collect();
    let mut deleted = 0;
    for file in fastavro(&paths) {
        let name = file["file"].as_str().unwrap();
        let record = &file["records"][0];
        assert_eq!(file["records"].as_array().unwrap().len(), 1, "{file}");
        if name.ends_with(".clean") {
            assert_eq!(
                file["schema"],
                "org.apache.hudi.avro.model.HoodieCleanMetadata"
            );
            assert_eq!(record["version"], 2);
            let earliest = record["earliestCommitToRetain"].as_str().unwrap();
            assert!(
                hoodie.join(format!("{earliest}.commit")).exists(),
                "{record}"
            );
            let mut total = 0;
            for (partition, meta) in record["partitionMetadata"].as_object().unwrap() {
                for gone in meta["successDeleteFiles"].as_array().unwrap() {
                    let path = location.join(partition).join(gone.as_str().unwrap());
                    assert!(
                        !path.exists(),
                        "{} was cleaned but is there",
                        path.display()
                    );
                    total += 1;
                }
                assert_eq!(meta["deletePathPatterns"], meta["successDeleteFiles"]);
                assert!(meta["failedDeleteFiles"].as_array().unwrap().is_empty());
            }
            assert_eq!(record["totalFilesDeleted"], total);
            deleted += total;
        } else {
            assert_eq!(
                file["schema"],
                "org.apache.hudi.avro.model.HoodieCleanerPlan"
            );
            assert_eq!(record["policy"], "KEEP_LATEST_COMMITS");
            assert_eq!(record["earliestInstantToRetain"]["state"], "COMPLETED");
            let planned = record["filePathsToBeDeletedPerPartition"]
                .as_object()
                .unwrap();
            assert!(planned
                .values()
                .all(|files| !files.as_array().unwrap().is_empty()));
        }
    }
    assert!(deleted > 0);
    assert_expected(&scenario, &warehouse, true).await;
}
