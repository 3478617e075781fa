//! Every fixture scenario as soft-delete, SCD type 2 and change-log tables of the reference
//! sink: each holds the history derived from the raw events, its live rows equal `expected/`,
//! and syncing again commits nothing. Redelivered and out-of-order changes make the history
//! the events delivered once, in order, make.

use cdc_core::model::TableId;
use cdc_core::sink::MemoryWarehouse;
use cdc_core::testing::shapes::{check_every_shape, check_history_delivered_as, Delivery};

fn open(_: &std::path::Path) -> MemoryWarehouse {
    MemoryWarehouse::new()
}

fn read(warehouse: &MemoryWarehouse, table: &TableId) -> arrow_array::RecordBatch {
    warehouse.table(table).expect("synced").rows
}

async fn check(name: &str) {
    check_every_shape(name, open, read, false).await;
}

cdc_core::fixture_tests!(check);

/// Debezium delivers at least once: after a connector restart the last records come again at
/// new offsets. A history takes each change once (its sequence is the database position).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_takes_redelivered_changes_once() {
    for base in ["crud", "toast", "pk_change"] {
        let again = Delivery::Redelivered(60);
        check_history_delivered_as(base, again, open, read, false).await;
    }
}

/// A key's changes spread over two partitions reach the sink out of order, across batches;
/// the history still orders them by their database position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_orders_changes_that_arrive_out_of_order() {
    check_history_delivered_as("crud", Delivery::TwoPartitions, open, read, false).await;
}
