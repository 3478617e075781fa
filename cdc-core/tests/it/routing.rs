//! Records of several topics, in runs of one topic-partition as sources give them: each run is
//! routed once, and a table's committed records are left out by partition, whichever run they
//! come in.

use cdc_core::model::TableId;
use cdc_core::pipeline::Pipeline;
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::RawRecord;

use crate::common::backlog_on_tables;

const TABLES: [&str; 2] = ["customers_a", "customers_b"];

#[tokio::test]
async fn committed_records_are_left_out_by_partition_across_runs() {
    let (records, config) = backlog_on_tables(&TABLES, 10, 30, 5);
    let (a, b) = (&records[0], &records[1]);
    let warehouse = MemoryWarehouse::new();
    let mut first = Pipeline::new(config.clone(), &warehouse).unwrap();
    let committed: Vec<RawRecord> = a[..20].iter().chain(&b[..10]).cloned().collect();
    first.process_batch(&committed).await.unwrap();

    // Everything again, the two topics' runs interleaved, each run crossing its checkpoint.
    let runs: Vec<RawRecord> = (a[..15].iter())
        .chain(&b[..25])
        .chain(&a[15..])
        .chain(&b[25..])
        .cloned()
        .collect();
    let mut again = Pipeline::new(config.clone(), &warehouse).unwrap();
    again.process_batch(&runs).await.unwrap();
    assert_eq!(again.stats().records_read, 80);
    assert_eq!(again.stats().records_already_committed, 30);

    let reference = MemoryWarehouse::new();
    let mut once = Pipeline::new(config, &reference).unwrap();
    let all: Vec<RawRecord> = a.iter().chain(b).cloned().collect();
    once.process_batch(&all).await.unwrap();
    for name in TABLES {
        let table = TableId::new("public", name);
        let rows = |w: &MemoryWarehouse| w.table(&table).unwrap().sorted_rows().unwrap();
        assert_eq!(rows(&warehouse), rows(&reference), "{name}");
        assert!(rows(&reference).num_rows() > 0);
    }
}
