//! Crash recovery: the writer stopped after writing base files but before completing the
//! instant, and after completing it but before the pipeline's own bookkeeping; the restarted
//! pipeline rolls the unfinished instant back and ends equal to the expected state with no
//! duplicate record keys.

use std::collections::HashMap;

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::sink::TableSink;
use cdc_core::testing::Scenario;
use cdc_hudi::Timeline;
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_ends_equal() {
    for point in [FailPoint::AfterDataFiles, FailPoint::AfterCommit] {
        for name in ["crud", "toast", "pk_change", "truncate"] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("wh");
            // Crash in the middle: the third commit of each table stops at `point`.
            let crashing = HudiWarehouse::new(
                root.to_str().unwrap(),
                HudiSinkConfig {
                    test_hooks: TestHooks::fail_at(point, 2),
                    ..HudiSinkConfig::default()
                },
            )
            .unwrap();
            let err = sync(&scenario, dir.path(), 5, HashMap::new(), &crashing)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("fail point"), "{err}");
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
            let healthy =
                HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
            sync(&scenario, dir.path(), 5, HashMap::new(), &healthy)
                .await
                .unwrap();
            assert_eq!(pending(&hoodie), 0, "{name}: rolled back");
            assert_expected(&scenario, &healthy, false).await;
        }
    }
}
