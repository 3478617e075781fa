//! Restarts: a pipeline stopped after some batches and started again (on the persisted jsonl
//! format) ends equal to the expected state with no duplicate key, and a full re-run changes
//! nothing.

use std::collections::HashMap;

use cdc_core::sink::{JsonlWarehouse, Warehouse};
use cdc_core::testing::{compare_with_expected, Scenario};

use crate::common::{sync, SMALL_BATCHES};

#[tokio::test]
async fn stopped_and_restarted_pipeline_ends_equal() {
    for name in ["crud", "toast", "schema_change", "truncate", "pk_change"] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        let wh = JsonlWarehouse::new(dir.path().join("warehouse"));
        let run = |stop_after| {
            sync(
                &scenario,
                dir.path(),
                SMALL_BATCHES,
                HashMap::new(),
                &wh,
                stop_after,
            )
        };
        // Three runs that each stop early, then one to the end.
        for _ in 0..3 {
            run(Some(4)).await.unwrap();
        }
        let last = run(None).await.unwrap();
        assert_eq!(
            last.records_already_committed, 0,
            "seek skips committed files"
        );
        let again = run(None).await.unwrap();
        assert_eq!(again.commits, 0, "{name}: a re-run must not commit");
        let expected = scenario.expected();
        for (table, keys) in &scenario.tables {
            let t = wh.load(table).unwrap().expect("table exists");
            compare_with_expected(table, keys, &t.sorted_rows().unwrap(), &expected[table])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let _ = wh.open(table).await.unwrap();
        }
    }
}
