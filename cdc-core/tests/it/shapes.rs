//! Every fixture scenario as soft-delete, SCD type 2 and change-log tables of the reference
//! sink: each holds the history derived from the raw events, its live rows equal `expected/`,
//! and syncing again commits nothing.

use cdc_core::shape::{ShapeConfig, TableShape};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::testing::shapes::{
    assert_history_rows, assert_shape_rows, delivered_as, Delivery, SHAPES,
};
use cdc_core::testing::{sync_shaped, Scenario};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    for shape in SHAPES {
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        let config = ShapeConfig {
            shape,
            ..ShapeConfig::default()
        };
        let stats = sync_shaped(&scenario, dir.path(), config.clone(), &wh)
            .await
            .unwrap_or_else(|e| panic!("{name} as {shape}: {e}"));
        assert!(stats.commits > 0);
        for (table, _) in &scenario.tables {
            let rows = wh.table(table).expect("synced").rows;
            assert_shape_rows(&scenario, shape, table, &rows, false);
        }
        let again = sync_shaped(&scenario, dir.path(), config, &wh)
            .await
            .unwrap();
        assert_eq!(again.commits, 0, "{name} as {shape}: the replay committed");
    }
}

cdc_core::fixture_tests!(check);

/// Debezium delivers at least once: after a connector restart the last records come again at
/// new offsets. A history takes each change once (its sequence is the database position), so
/// the SCD type 2 table is the one the events delivered once make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_takes_redelivered_changes_once() {
    let scenarios = tempfile::tempdir().unwrap();
    for base in ["crud", "toast", "pk_change"] {
        let base = Scenario::load(base);
        let again = delivered_as(&base, scenarios.path(), Delivery::Redelivered(60));
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        sync_shaped(&again, dir.path(), scd2(), &wh).await.unwrap();
        for (table, _) in &base.tables {
            let rows = wh.table(table).expect("synced").rows;
            assert_history_rows(&again, &base, TableShape::Scd2, table, &rows, false);
        }
    }
}

/// A key's changes spread over two partitions reach the sink out of order, across batches;
/// the history still orders them by their database position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    let scenarios = tempfile::tempdir().unwrap();
    let base = Scenario::load("crud");
    let spread = delivered_as(&base, scenarios.path(), Delivery::TwoPartitions);
    let dir = tempfile::tempdir().unwrap();
    let wh = MemoryWarehouse::new();
    sync_shaped(&spread, dir.path(), scd2(), &wh).await.unwrap();
    for (table, _) in &base.tables {
        let rows = wh.table(table).expect("synced").rows;
        assert_history_rows(&spread, &base, TableShape::Scd2, table, &rows, false);
    }
}

fn scd2() -> ShapeConfig {
    ShapeConfig {
        shape: TableShape::Scd2,
        ..ShapeConfig::default()
    }
}
