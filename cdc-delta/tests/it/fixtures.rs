//! Every fixture scenario and variant synced into Delta (batches of 40 events, so tables see
//! many commits) reads back equal to its `expected/` state through delta-rs and DuckDB.

use std::collections::HashMap;

use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture, Scenario};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = DeltaWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        DeltaSinkConfig::default(),
    )
    .unwrap();
    sync_fixture(&scenario, dir.path(), &warehouse).await;
    assert_expected(&scenario, &warehouse, true).await;
    if name == "crud" {
        // Small updates and deletes went into deletion vectors, which both readers applied.
        let dvs: usize = scenario
            .tables
            .iter()
            .map(|(t, _)| deletion_vectors_added(&warehouse.table_url(t).to_file_path().unwrap()))
            .sum();
        assert!(dvs > 0, "no deletion vector written");
    }
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

cdc_core::fixture_tests!(check);

/// How many `add` actions in a table's log carry a deletion vector.
fn deletion_vectors_added(table_dir: &std::path::Path) -> usize {
    std::fs::read_dir(table_dir.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("{\"add\"") && l.contains("\"deletionVector\""))
                .count()
        })
        .sum()
}

/// A partitioned table (by a column that updates change, so rows move between partitions)
/// ends equal too, and its files sit in hive-style partition directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_table_ends_equal() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig {
        partition_columns: vec!["name".into()],
        ..DeltaSinkConfig::default()
    };
    let root = dir.path().join("wh");
    let warehouse = DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, true).await;
    let partitions = std::fs::read_dir(root.join("public/customers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("name=")
        })
        .count();
    assert!(partitions > 5, "{partitions} partition directories");
}

/// A column the source drops is null in the rows written after the drop (inside one commit
/// and across commits), read back by every reader; rows not written since keep their value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_column_is_null_in_rows_written_after_the_drop() {
    let scenarios = tempfile::tempdir().unwrap();
    let scenario = cdc_core::testing::conformance::dropped_column_scenario(scenarios.path());
    for batch in [5, 40] {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = DeltaWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            DeltaSinkConfig::default(),
        )
        .unwrap();
        crate::common::sync(&scenario, dir.path(), batch, Default::default(), &warehouse)
            .await
            .unwrap();
        crate::common::assert_expected(&scenario, &warehouse, true).await;
    }
}

/// A table an earlier version wrote with a time of day as an integer (its `c_time` column
/// stored as `long`) is refused with the column and how to migrate, not written on in a
/// second representation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_an_earlier_time_representation_is_refused_clearly() {
    use cdc_core::sink::TableSink;
    let scenario = Scenario::load("types");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse =
        DeltaWarehouse::new(root.to_str().unwrap(), DeltaSinkConfig::default()).unwrap();
    sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let (table, _) = &scenario.tables[0];
    // What an earlier version wrote: the time column as a long (same metadata).
    let log = warehouse
        .table_url(table)
        .to_file_path()
        .unwrap()
        .join("_delta_log");
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = Vec::new();
        for line in text.lines() {
            let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(add) = action.get_mut("add") {
                // Its statistics hold the time as text; an earlier version's as a number.
                add.as_object_mut().unwrap().remove("stats");
            }
            if let Some(meta) = action.get_mut("metaData") {
                let schema = meta["schemaString"].as_str().unwrap().replace(
                    r#"{"name":"c_time","type":"string""#,
                    r#"{"name":"c_time","type":"long""#,
                );
                meta["schemaString"] = schema.into();
            }
            lines.push(action.to_string());
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let err = warehouse
        .sink(table)
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c_time") && err.contains("re-creating"),
        "{err}"
    );
}

/// The type matrix (every Debezium type the live fixtures lack, in Postgres and MySQL shapes)
/// reads back, through every independent reader, as written out cell by cell in
/// `cdc_core::testing::type_matrix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_matrix_reads_back_as_written_out() {
    let scenarios = tempfile::tempdir().unwrap();
    for scenario in cdc_core::testing::type_matrix::scenarios(scenarios.path()) {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = DeltaWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            DeltaSinkConfig::default(),
        )
        .unwrap();
        crate::common::sync(&scenario, dir.path(), 40, Default::default(), &warehouse)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        crate::common::assert_raw_expected(&scenario, &warehouse);
        let table_dir = warehouse
            .table_url(&scenario.tables[0].0)
            .to_file_path()
            .unwrap();
        let comment = cdc_core::testing::type_matrix::comment_in(&scenario.name);
        assert!(
            cdc_core::testing::type_matrix::metadata_mentions(&table_dir, comment),
            "{}: no column comment in the table's metadata",
            scenario.name
        );
    }
}
