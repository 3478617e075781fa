//! Every fixture scenario and variant synced into Hudi (batches of 40 events, so tables see
//! many commits) reads back equal to its `expected/` state through hudi-rs and the Python
//! `hudi` package; replaying changes nothing. Then one more commit (a delete and an unchanged
//! upsert) checks time travel to the commit before it and an incremental read of it.

use std::sync::Arc;

use arrow_array::{Array, BooleanArray, StringArray};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, UnchangedMask};
use cdc_core::sink::{CommitOutcome, TableSink};
use cdc_core::testing::{
    assert_replay_commits_nothing, compare_with_expected, sync_fixture, Scenario,
};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use serde_json::Value;

use crate::common::{
    assert_expected, assert_unique_keys, logical_schema, read_with_hudi_rs, read_with_python,
    to_logical, Query,
};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = HudiWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        HudiSinkConfig::default(),
    )
    .unwrap();
    sync_fixture(&scenario, dir.path(), &warehouse).await;
    assert_expected(&scenario, &warehouse, true).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    time_travel_and_incremental(&scenario, &warehouse).await;
}

/// One more commit on the first table with two rows or more: delete the first row's key and
/// upsert the second row unchanged. Time travel to the commit before must give `expected/`,
/// the incremental read of the new commit exactly the upserted row, and the snapshot
/// `expected/` without the deleted key. Both readers.
async fn time_travel_and_incremental(scenario: &Scenario, warehouse: &HudiWarehouse) {
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let location = warehouse.table_location(table);
        let (logical, _) = logical_schema(warehouse, table).await;
        let (_, rows) = to_logical(
            &read_with_hudi_rs(&location, &Query::Snapshot).await,
            &logical,
        );
        if rows.num_rows() < 2 {
            continue;
        }
        let mut sink = warehouse.sink(table);
        let before = sink.file_groups().await.unwrap();
        let prev = before.iter().map(|g| g.instant.clone()).max().unwrap();
        let key_idx: Vec<usize> = keys.iter().map(|k| logical.index_of(k).unwrap()).collect();
        let deleted_key = rows.slice(0, 1).project(&key_idx).unwrap();
        let upsert = rows.slice(1, 1);
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance("test.time-travel", 0, 0);
        let set = ChangeSet {
            table: table.clone(),
            schema: logical.clone(),
            key_columns: Arc::from(keys.clone()),
            truncate: false,
            upsert_unchanged: UnchangedMask::none(logical.fields().len()),
            ignore_table_values: BooleanArray::from(vec![false]),
            upserts: upsert.clone(),
            deletes: deleted_key.clone(),
            checkpoint,
            first_offsets: Default::default(),
            events: 2,
            max_source_ts_ms: None,
            history: None,
        };
        let CommitOutcome::Committed { version: last, .. } = sink.apply(&set).await.unwrap() else {
            panic!("not committed");
        };
        assert!(last > prev, "{last} after {prev}");

        // Time travel to the commit before: the expected state, by both readers.
        for (reader, read) in [
            (
                "hudi-rs",
                read_with_hudi_rs(&location, &Query::AsOf(prev.clone())).await,
            ),
            (
                "python",
                read_with_python(&location, &Query::AsOf(prev.clone())),
            ),
        ] {
            let (meta, rows) = to_logical(&read, &logical);
            assert_unique_keys(&meta, reader);
            compare_with_expected(table, keys, &rows, &expected[table])
                .unwrap_or_else(|e| panic!("{} as of {prev} via {reader}:\n{e}", scenario.name));
        }

        // Now: the expected state without the deleted key.
        let deleted = cdc_core::render::render_rows(&deleted_key)
            .unwrap()
            .remove(0);
        let remaining: Vec<_> = expected[table]
            .iter()
            .filter(|row| !keys.iter().all(|k| numbers_eq(row.get(k), deleted.get(k))))
            .cloned()
            .collect();
        assert_eq!(
            remaining.len() + 1,
            expected[table].len(),
            "{}: one key deleted",
            scenario.name
        );
        let (_, now) = to_logical(
            &read_with_hudi_rs(&location, &Query::Snapshot).await,
            &logical,
        );
        compare_with_expected(table, keys, &now, &remaining)
            .unwrap_or_else(|e| panic!("{} after the extra commit:\n{e}", scenario.name));

        // Incremental (prev, last]: exactly the upserted row, stamped with the new instant.
        let upserted = cdc_core::render::render_rows(&upsert).unwrap();
        for (reader, read) in [
            (
                "hudi-rs",
                read_with_hudi_rs(&location, &Query::Incremental(prev.clone(), last.clone())).await,
            ),
            (
                "python",
                read_with_python(&location, &Query::Incremental(prev.clone(), last.clone())),
            ),
        ] {
            let (meta, rows) = to_logical(&read, &logical);
            let times = meta
                .column_by_name("_hoodie_commit_time")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            assert!(
                times.iter().all(|t| t == Some(last.as_str())),
                "{reader}: {times:?}"
            );
            let expected_rows: Vec<serde_json::Map<String, Value>> = upserted.clone();
            compare_with_expected(table, keys, &rows, &expected_rows).unwrap_or_else(|e| {
                panic!(
                    "{} incremental ({prev}, {last}] via {reader}:\n{e}",
                    scenario.name
                )
            });
        }
        return;
    }
}

fn numbers_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (a, b) => a == b,
    }
}

cdc_core::fixture_tests!(check);

/// A column the source drops is null in the rows written after the drop (inside one commit
/// and across commits), read back by every reader; rows not written since keep their value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_column_is_null_in_rows_written_after_the_drop() {
    let scenarios = tempfile::tempdir().unwrap();
    let scenario = cdc_core::testing::conformance::dropped_column_scenario(scenarios.path());
    for batch in [5, 40] {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = HudiWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            HudiSinkConfig::default(),
        )
        .unwrap();
        crate::common::sync(&scenario, dir.path(), batch, Default::default(), &warehouse)
            .await
            .unwrap();
        crate::common::assert_expected(&scenario, &warehouse, true).await;
    }
}

/// A table an earlier version wrote with a timestamp without zone as a plain `long` (in its
/// commits' Avro schema) is refused with the column and how to migrate, not written on in a
/// second representation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_an_earlier_timestamp_representation_is_refused_clearly() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
    crate::common::sync(&scenario, dir.path(), 40, Default::default(), &warehouse)
        .await
        .unwrap();
    let (table, _) = &scenario.tables[0];
    let hoodie = std::path::Path::new(&warehouse.table_location(table)).join(".hoodie");
    let mut edited = 0;
    for entry in std::fs::read_dir(&hoodie).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "commit") {
            let text = std::fs::read_to_string(&path).unwrap();
            let old = text.replace(
                r#"\"name\":\"updated_at\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}]"#,
                r#"\"name\":\"updated_at\",\"type\":[\"null\",\"long\"]"#,
            );
            edited += usize::from(old != text);
            std::fs::write(&path, old).unwrap();
        }
    }
    assert!(edited > 0, "no commit carried the timestamp's Avro type");
    let err = warehouse
        .sink(table)
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("updated_at") && err.contains("re-creating"),
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
        let warehouse = HudiWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            HudiSinkConfig::default(),
        )
        .unwrap();
        crate::common::sync(&scenario, dir.path(), 40, Default::default(), &warehouse)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        crate::common::assert_raw_expected(&scenario, &warehouse).await;
        let table_dir = std::path::PathBuf::from(warehouse.table_location(&scenario.tables[0].0));
        let comment = cdc_core::testing::type_matrix::comment_in(&scenario.name);
        assert!(
            cdc_core::testing::type_matrix::metadata_mentions(&table_dir, comment),
            "{}: no column comment in the table's metadata",
            scenario.name
        );
    }
}
