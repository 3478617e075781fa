//! Crash recovery: the writer stopped after writing base files but before completing the
//! instant, and after completing it but before the pipeline's own bookkeeping; the restarted
//! pipeline rolls the unfinished instant back and ends equal to the expected state with no
//! duplicate record keys.

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::sink::TableSink;
use cdc_core::testing::conformance::{
    crash_hooks, crash_mid_sync, restart_after_crash, FAIL_POINTS,
};
use cdc_core::testing::Scenario;
use cdc_hudi::Timeline;
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::assert_expected;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_ends_equal() {
    for point in FAIL_POINTS {
        for name in ["crud", "toast", "pk_change", "truncate"] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("wh");
            let open = |test_hooks| {
                let config = HudiSinkConfig {
                    test_hooks,
                    ..HudiSinkConfig::default()
                };
                HudiWarehouse::new(root.to_str().unwrap(), config).unwrap()
            };
            let crashing = open(crash_hooks(point));
            crash_mid_sync(&scenario, dir.path(), &crashing).await;
            let (table, _) = &scenario.tables[0];
            let hoodie = std::path::Path::new(&crashing.table_location(table)).join(".hoodie");
            let pending = |d: &std::path::Path| {
                let names: Vec<String> = std::fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                Timeline::from_names(names.iter().map(String::as_str))
                    .pending_writes()
                    .count()
            };
            if point == FailPoint::AfterDataFiles {
                let left = pending(&hoodie);
                assert!(left > 0, "{name}: the crash leaves an unfinished instant");
                // Reading the table is not writing it: the writer may still be at work, so
                // its instant must survive a reader.
                let reader =
                    HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
                for (table, _) in &scenario.tables {
                    let mut sink = reader.sink(table);
                    sink.committed_checkpoint().await.unwrap();
                    sink.schema().await.unwrap();
                }
                assert_eq!(pending(&hoodie), left, "{name}: a reader rolled back");
            }
            let healthy = open(TestHooks::default());
            restart_after_crash(&scenario, dir.path(), &healthy).await;
            assert_eq!(pending(&hoodie), 0, "{name}: rolled back");
            assert_expected(&scenario, &healthy, false).await;
        }
    }
}
