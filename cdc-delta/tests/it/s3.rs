//! Delta tables on S3 (moto_server on 127.0.0.1): sync, read back, replay.

use std::collections::HashMap;

use cdc_core::testing::{MotoServer, Scenario};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_delta_on_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    let config = DeltaSinkConfig {
        storage_options: moto.storage_options(),
        ..DeltaSinkConfig::default()
    };
    let warehouse = DeltaWarehouse::new("s3://lake/wh", config).unwrap();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let stats = sync(&scenario, dir.path(), 60, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 1);
    assert_expected(&scenario, &warehouse, false).await;
    let again = sync(&scenario, dir.path(), 60, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}
