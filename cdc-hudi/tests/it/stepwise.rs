//! The Hudi table, read by hudi-rs, equals the reference sink after EVERY commit, not only at
//! the end (batches of 3 events: many small commits, truncates and schema changes among them).

use cdc_core::testing::{assert_equal_to_reference_after_every_batch, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{logical_schema, read_with_hudi_rs, to_logical, Query};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equals_the_reference_after_every_batch() {
    for name in ["schema_change", "toast", "truncate", "pk_change"] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        let hudi = HudiWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            HudiSinkConfig::default(),
        )
        .unwrap();
        let batches =
            assert_equal_to_reference_after_every_batch(&scenario, dir.path(), 3, &hudi, |t| {
                let hudi = &hudi;
                async move {
                    let (logical, _) = logical_schema(hudi, &t).await;
                    let read = read_with_hudi_rs(&hudi.table_location(&t), &Query::Snapshot).await;
                    to_logical(&read, &logical).1
                }
            })
            .await;
        assert!(batches > 3, "{name}: {batches} batches");
    }
}
