//! The Iceberg table (read by iceberg-rust) equals the reference sink after EVERY commit, not
//! only at the end, in every write mode.

use cdc_core::testing::{assert_equal_to_reference_after_every_batch, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};

use crate::common::read_with_iceberg_rust;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equals_the_reference_after_every_batch() {
    let runs: [(WriteMode, &[&str]); 3] = [
        (
            WriteMode::PositionDeletes,
            &["schema_change", "toast", "truncate", "pk_change"],
        ),
        (WriteMode::CopyOnWrite, &["schema_change", "toast"]),
        (WriteMode::EqualityDeletes, &["schema_change", "toast"]),
    ];
    for (mode, names) in runs {
        for name in names {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let config = IcebergSinkConfig {
                write_mode: mode,
                ..IcebergSinkConfig::default()
            };
            let iceberg =
                IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
            let batches = assert_equal_to_reference_after_every_batch(
                &scenario,
                dir.path(),
                3,
                &iceberg,
                |t| {
                    let iceberg = &iceberg;
                    async move { read_with_iceberg_rust(iceberg, &t).await }
                },
            )
            .await;
            assert!(batches > 3, "{name} ({mode:?}): {batches} batches");
        }
    }
}
