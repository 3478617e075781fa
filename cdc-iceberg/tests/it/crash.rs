//! Crash recovery: the writer stopped after writing every file of a snapshot but before the
//! catalog swap, and after the swap but before the pipeline's own bookkeeping; the restarted
//! pipeline ends equal to the expected state with no duplicate keys, and the orphan-file listing
//! names exactly what the failed attempt left behind.

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::conformance::{
    crash_hooks, crash_mid_sync, restart_after_crash, FAIL_POINTS,
};
use cdc_core::testing::Scenario;
use cdc_iceberg::maintenance::{orphan_files, remove_orphan_files};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_crash_ends_equal() {
    for point in FAIL_POINTS {
        for name in ["crud", "toast", "pk_change"] {
            let scenario = Scenario::load(name);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("wh");
            let open = |test_hooks| {
                let config = IcebergSinkConfig {
                    test_hooks,
                    ..IcebergSinkConfig::default()
                };
                IcebergWarehouse::new(root.to_str().unwrap(), config).unwrap()
            };
            let crashing = open(crash_hooks(point));
            crash_mid_sync(&scenario, dir.path(), &crashing).await;
            // One table's attempt failed; its files are orphans, every other table has none.
            let mut orphans = Vec::new();
            for (table, _) in &scenario.tables {
                orphans.push(orphan_files(&crashing, table).await.unwrap());
            }
            let with_orphans: Vec<&Vec<String>> =
                orphans.iter().filter(|o| !o.is_empty()).collect();
            match point {
                FailPoint::AfterDataFiles => {
                    // The data file, delete file (when rows were replaced), two manifests at
                    // most and the manifest list of the failed attempt (the metadata file is
                    // written by the commit itself).
                    assert_eq!(with_orphans.len(), 1, "{name}: {orphans:#?}");
                    let attempt = with_orphans[0];
                    assert!(
                        attempt.iter().any(|p| p.ends_with(".parquet"))
                            && attempt.iter().any(|p| p.contains("/snap-"))
                            && attempt.len() <= 5,
                        "{name}: {attempt:#?}"
                    );
                }
                FailPoint::AfterCommit => assert!(with_orphans.is_empty(), "{name}: {orphans:#?}"),
            }
            let healthy = open(TestHooks::default());
            restart_after_crash(&scenario, dir.path(), &healthy).await;
            // `compare_with_expected` fails on duplicate keys, so this also proves none.
            assert_expected(&scenario, &healthy, Readers::ALL).await;
            for ((table, _), orphans) in scenario.tables.iter().zip(&orphans) {
                let removed = remove_orphan_files(&healthy, table, std::time::SystemTime::now())
                    .await
                    .unwrap();
                assert_eq!(&removed, orphans, "{name} {table}");
                assert!(orphan_files(&healthy, table).await.unwrap().is_empty());
            }
            assert_expected(&scenario, &healthy, Readers::RUST_ONLY).await;
        }
    }
}
