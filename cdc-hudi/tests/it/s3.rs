//! Hudi tables on S3 (moto_server on 127.0.0.1): sync, read back with hudi-rs, replay, and
//! restart after a crash.

use std::collections::HashMap;

use cdc_core::testing::{compare_with_expected, MotoServer, Scenario};
use cdc_hudi::{FailPoint, HudiSinkConfig, HudiWarehouse};
use hudi::table::{ReadOptions, Table};

use crate::common::{assert_unique_keys, logical_schema, sync, to_logical};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_hudi_on_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    // The sink takes S3 settings from the environment, like the raw-file source.
    moto.export_env();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let crashing = HudiWarehouse::new(
        "s3://lake/wh",
        HudiSinkConfig {
            fail_point: Some(FailPoint::AfterDataFiles),
            fail_after_commits: 2,
            ..HudiSinkConfig::default()
        },
    )
    .unwrap();
    let err = sync(&scenario, dir.path(), 30, HashMap::new(), &crashing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fail point"), "{err}");
    let warehouse = HudiWarehouse::new("s3://lake/wh", HudiSinkConfig::default()).unwrap();
    let stats = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 1);
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        let location = warehouse.table_location(table);
        assert!(location.starts_with("s3://lake/wh/"), "{location}");
        let hudi = Table::new_with_options(&location, moto.storage_options())
            .await
            .unwrap();
        let batches = hudi.read(&ReadOptions::new()).await.unwrap();
        let rows = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let (logical, _) = logical_schema(&warehouse, table).await;
        let (meta, rows) = to_logical(&rows, &logical);
        assert_unique_keys(&meta, "s3");
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("hudi on s3 via hudi-rs:\n{e}"));
    }
    let again = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}
