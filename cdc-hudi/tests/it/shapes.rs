//! Every fixture scenario as soft-delete, SCD type 2 and change-log Hudi tables, read back by
//! the Python `hudi` package: each holds the history derived from the raw events, its live rows
//! equal `expected/` as it returns them, and syncing again commits nothing. A key's changes
//! that arrive out of order across partitions still make the right history.

use cdc_core::shape::{ShapeConfig, TableShape};
use cdc_core::testing::shapes::{
    assert_history_rows, assert_shape_rows, delivered_as, Delivery, SHAPES,
};
use cdc_core::testing::{sync_shaped, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{read_with_python, Query};

fn warehouse(dir: &std::path::Path) -> HudiWarehouse {
    HudiWarehouse::new(dir.join("wh").to_str().unwrap(), HudiSinkConfig::default()).unwrap()
}

fn read(warehouse: &HudiWarehouse, table: &cdc_core::model::TableId) -> arrow_array::RecordBatch {
    read_with_python(&warehouse.table_location(table), &Query::Snapshot)
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
