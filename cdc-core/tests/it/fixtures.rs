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

/// The type matrix (every Debezium type the live fixtures lack, Postgres and MySQL shapes)
/// through the reference sink, compared as engines would read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_matrix_reads_back_as_written_out() {
    let scenarios = tempfile::tempdir().unwrap();
    for scenario in cdc_core::testing::type_matrix::scenarios(scenarios.path()) {
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        sync(
            &scenario,
            dir.path(),
            ONE_BATCH,
            Default::default(),
            &wh,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        let expected = scenario.expected();
        for (table, keys) in &scenario.tables {
            let rows = wh.table(table).unwrap().sorted_rows().unwrap();
            let stored = cdc_core::storage::storage_schema(
                &rows.schema(),
                &cdc_core::storage::StorageTypes::DELTA,
            );
            let stored =
                cdc_core::storage::to_storage(&rows, &std::sync::Arc::new(stored)).unwrap();
            cdc_core::testing::compare_raw_with_expected(
                table,
                keys,
                &stored,
                &expected[table],
                cdc_core::testing::VariantLoss::Exact,
            )
            .unwrap_or_else(|e| panic!("{}:\n{e}", scenario.name));
        }
    }
}
