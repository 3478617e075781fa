//! Every fixture scenario as soft-delete, SCD type 2 and change-log Iceberg tables, read back by
//! pyiceberg: each holds the history derived from the raw events, its live rows
//! equal `expected/` as pyiceberg returns them, and syncing again commits nothing. A key's changes
//! that arrive out of order across partitions still make the right history.

use cdc_core::shape::{ShapeConfig, TableShape};
use cdc_core::testing::shapes::{
    assert_history_rows, assert_shape_rows, delivered_as, Delivery, SHAPES,
};
use cdc_core::testing::{sync_shaped, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::raw_pyiceberg;

fn warehouse(dir: &std::path::Path) -> IcebergWarehouse {
    IcebergWarehouse::new(
        dir.join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap()
}

fn read(
    warehouse: &IcebergWarehouse,
    table: &cdc_core::model::TableId,
) -> arrow_array::RecordBatch {
    raw_pyiceberg(warehouse, table)
}

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    for shape in SHAPES {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = warehouse(dir.path());
        let config = ShapeConfig {
            shape,
            ..ShapeConfig::default()
        };
        sync_shaped(&scenario, dir.path(), config.clone(), &warehouse)
            .await
            .unwrap_or_else(|e| panic!("{name} as {shape}: {e}"));
        for (table, _) in &scenario.tables {
            assert_shape_rows(&scenario, shape, table, &read(&warehouse, table), true);
        }
        let again = sync_shaped(&scenario, dir.path(), config, &warehouse)
            .await
            .unwrap();
        assert_eq!(again.commits, 0, "{name} as {shape}: the replay committed");
    }
}

cdc_core::fixture_tests!(check);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    let scenarios = tempfile::tempdir().unwrap();
    let base = Scenario::load("crud");
    let spread = delivered_as(&base, scenarios.path(), Delivery::TwoPartitions);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = warehouse(dir.path());
    let config = ShapeConfig {
        shape: TableShape::Scd2,
        ..ShapeConfig::default()
    };
    sync_shaped(&spread, dir.path(), config, &warehouse)
        .await
        .unwrap();
    for (table, _) in &base.tables {
        let rows = read(&warehouse, table);
        assert_history_rows(&spread, &base, TableShape::Scd2, table, &rows, true);
    }
}

/// A history in a table written with equality deletes: the versions of a key are looked up by
/// the source key, a prefix of the table's, and the equality deletes still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equality_delete_table_keeps_a_history() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = IcebergSinkConfig {
        write_mode: cdc_iceberg::WriteMode::EqualityDeletes,
        ..IcebergSinkConfig::default()
    };
    let warehouse = IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    let shape = ShapeConfig {
        shape: TableShape::Scd2,
        ..ShapeConfig::default()
    };
    sync_shaped(&scenario, dir.path(), shape, &warehouse)
        .await
        .unwrap();
    // pyiceberg refuses equality deletes: DuckDB reads them.
    for (table, _) in &scenario.tables {
        let rows = crate::common::raw_duckdb(&warehouse, table).await;
        assert_shape_rows(&scenario, TableShape::Scd2, table, &rows, true);
    }
}
