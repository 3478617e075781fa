//! Every fixture scenario and variant synced into Iceberg (batches of 40 events, so tables see
//! many snapshots with position deletes) reads back equal to its `expected/` state through
//! iceberg-rust, pyiceberg and DuckDB; replaying everything commits nothing.

use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, Readers};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    sync_fixture(&scenario, dir.path(), &warehouse).await;
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
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
        let warehouse = IcebergWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            IcebergSinkConfig::default(),
        )
        .unwrap();
        crate::common::sync(&scenario, dir.path(), batch, Default::default(), &warehouse)
            .await
            .unwrap();
        crate::common::assert_expected(&scenario, &warehouse, crate::common::Readers::ALL).await;
    }
}

/// The type matrix (every Debezium type the live fixtures lack, in Postgres and MySQL shapes)
/// reads back, through every independent reader, as written out cell by cell in
/// `cdc_core::testing::type_matrix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_matrix_reads_back_as_written_out() {
    let scenarios = tempfile::tempdir().unwrap();
    for scenario in cdc_core::testing::type_matrix::scenarios(scenarios.path()) {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = IcebergWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            IcebergSinkConfig::default(),
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
