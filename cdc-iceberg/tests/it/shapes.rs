//! Every fixture scenario as soft-delete, SCD type 2 and change-log Iceberg tables, read back by
//! pyiceberg: each holds the history derived from the raw events, its live rows equal
//! `expected/` as the reader returns them, and syncing again commits nothing. A key's changes
//! that arrive out of order across partitions still make the right history.

use cdc_core::model::TableId;
use cdc_core::shape::{ShapeConfig, TableShape};
use cdc_core::testing::shapes::{
    assert_shape_rows, check_every_shape, check_history_delivered_as, Delivery,
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

fn read(warehouse: &IcebergWarehouse, table: &TableId) -> arrow_array::RecordBatch {
    raw_pyiceberg(warehouse, table)
}

async fn check(name: &str) {
    check_every_shape(name, warehouse, read, true).await;
}

cdc_core::fixture_tests!(check);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    check_history_delivered_as("crud", Delivery::TwoPartitions, warehouse, read, true).await;
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
