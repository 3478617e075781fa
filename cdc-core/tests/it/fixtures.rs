//! Every fixture scenario and variant, through the S3-sink layout on local disk, the pipeline and
//! the reference sink, ends equal to its `expected/` state: as one batch (folding inside a
//! batch), in batches of 100 and in batches of 7 events over gzipped files (folding across
//! commits, unchanged values resolved from the table).

use cdc_core::sink::MemoryWarehouse;
use cdc_core::testing::{schemaless_hints, Scenario};

use crate::common::{assert_expected, sync, MEDIUM_BATCHES, ONE_BATCH, SMALL_BATCHES};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let hints = schemaless_hints(&scenario).await;
    for shape in [ONE_BATCH, MEDIUM_BATCHES, SMALL_BATCHES] {
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        let stats = sync(&scenario, dir.path(), shape, hints.clone(), &wh, None)
            .await
            .unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
        assert_eq!(stats.dead_lettered, 0);
        assert!(stats.commits > 0);
        assert_expected(&scenario, &wh);
    }
}

cdc_core::fixture_tests!(check);

/// A column the source drops is null in the rows written after the drop, whether the drop
/// falls inside one batch or between two; rows not written since keep their value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_column_is_null_in_rows_written_after_the_drop() {
    let scenarios = tempfile::tempdir().unwrap();
    let scenario = cdc_core::testing::conformance::dropped_column_scenario(scenarios.path());
    for shape in [ONE_BATCH, MEDIUM_BATCHES, SMALL_BATCHES] {
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        sync(&scenario, dir.path(), shape, Default::default(), &wh, None)
            .await
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_expected(&scenario, &wh);
    }
}
