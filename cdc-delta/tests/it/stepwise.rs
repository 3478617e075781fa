//! The Delta table equals the reference sink after EVERY commit, not only at the end.

use cdc_core::testing::{assert_equal_to_reference_after_every_batch, Scenario};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::read_with_delta_rs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equals_the_reference_after_every_batch() {
    for name in ["schema_change", "toast", "truncate", "pk_change"] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        let delta = DeltaWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            DeltaSinkConfig::default(),
        )
        .unwrap();
        let batches =
            assert_equal_to_reference_after_every_batch(&scenario, dir.path(), 3, &delta, |t| {
                let delta = &delta;
                async move { read_with_delta_rs(delta, &t).await.0 }
            })
            .await;
        assert!(batches > 3, "{name}: {batches} batches");
    }
}
