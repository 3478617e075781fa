//! Crash recovery: the writer stopped after writing data files but before committing, and after
//! committing but before the pipeline's own bookkeeping; the restarted pipeline ends equal to
//! the expected state with no duplicate keys.

use cdc_core::sink::upsert::TestHooks;
use cdc_core::testing::conformance::{
    crash_hooks, crash_mid_sync, restart_after_crash, FAIL_POINTS,
};
use cdc_core::testing::Scenario;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::assert_expected;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_ends_equal() {
    for point in FAIL_POINTS {
        for name in ["crud", "toast", "pk_change"] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("wh");
            let open = |test_hooks| {
                let config = DeltaSinkConfig {
                    test_hooks,
                    ..DeltaSinkConfig::default()
                };
                DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap()
            };
            crash_mid_sync(&scenario, dir.path(), &open(crash_hooks(point))).await;
            let healthy = open(TestHooks::default());
            restart_after_crash(&scenario, dir.path(), &healthy).await;
            assert_expected(&scenario, &healthy, false).await;
        }
    }
}
