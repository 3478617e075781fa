//! Every fixture scenario as soft-delete, SCD type 2 and change-log Delta tables, read back by
//! DuckDB's delta extension: each holds the history derived from the raw events, its live rows equal
//! `expected/` as the reader returns them, and syncing again commits nothing. A key's changes
//! that arrive out of order across partitions still make the right history.

use cdc_core::model::TableId;
use cdc_core::testing::shapes::{check_every_shape, check_history_delivered_as, Delivery};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::raw_duckdb;

fn warehouse(dir: &std::path::Path) -> DeltaWarehouse {
    DeltaWarehouse::new(dir.join("wh").to_str().unwrap(), DeltaSinkConfig::default()).unwrap()
}

fn read(warehouse: &DeltaWarehouse, table: &TableId) -> arrow_array::RecordBatch {
    let path = warehouse.table_url(table).to_file_path().unwrap();
    raw_duckdb(path.to_str().unwrap())
}

async fn check(name: &str) {
    check_every_shape(name, warehouse, read, true).await;
}

cdc_core::fixture_tests!(check);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    check_history_delivered_as("crud", Delivery::TwoPartitions, warehouse, read, true).await;
}
