//! Every fixture scenario as soft-delete, SCD type 2 and change-log Hudi tables, read back by
//! the Python `hudi` package: each holds the history derived from the raw events, its live rows equal
//! `expected/` as the reader returns them, and syncing again commits nothing. A key's changes
//! that arrive out of order across partitions still make the right history.

use cdc_core::model::TableId;
use cdc_core::testing::shapes::{check_every_shape, check_history_delivered_as, Delivery};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{read_with_python, Query};

fn warehouse(dir: &std::path::Path) -> HudiWarehouse {
    HudiWarehouse::new(dir.join("wh").to_str().unwrap(), HudiSinkConfig::default()).unwrap()
}

fn read(warehouse: &HudiWarehouse, table: &TableId) -> arrow_array::RecordBatch {
    read_with_python(&warehouse.table_location(table), &Query::Snapshot)
}

async fn check(name: &str) {
    check_every_shape(name, warehouse, read, true).await;
}

cdc_core::fixture_tests!(check);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    check_history_delivered_as("crud", Delivery::TwoPartitions, warehouse, read, true).await;
}
