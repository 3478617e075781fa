//! Crash recovery: the writer stopped after writing data files but before committing, and after
//! committing but before the pipeline's own bookkeeping; the restarted pipeline ends equal to
//! the expected state with no duplicate keys.

use std::collections::HashMap;

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::Scenario;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_ends_equal() {
    for point in [FailPoint::AfterDataFiles, FailPoint::AfterCommit] {
        for name in ["crud", "toast", "pk_change"] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("wh");
            // Crash in the middle: the third commit of each table stops at `point`.
            let crashing = DeltaWarehouse::new(
                root.to_str().unwrap(),
                DeltaSinkConfig {
                    test_hooks: TestHooks::fail_at(point, 2),
                    ..DeltaSinkConfig::default()
                },
            )
            .unwrap();
            let err = sync(&scenario, dir.path(), 5, HashMap::new(), &crashing)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("fail point"), "{err}");
            let healthy =
                DeltaWarehouse::new(root.to_str().unwrap(), DeltaSinkConfig::default()).unwrap();
            sync(&scenario, dir.path(), 5, HashMap::new(), &healthy)
                .await
                .unwrap();
            assert_expected(&scenario, &healthy, false).await;
        }
    }
}
