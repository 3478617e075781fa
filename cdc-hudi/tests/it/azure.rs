//! Hudi tables on Azure Blob Storage (Azurite on 127.0.0.1): sync, read back with hudi-rs from
//! the container, replay.

use std::collections::HashMap;

use cdc_core::testing::{AzuriteServer, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{assert_hudi_rs_reads_expected_at, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_hudi_on_azure() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    azurite.export_env();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = HudiWarehouse::new("az://lake/wh", HudiSinkConfig::default()).unwrap();
    let stats = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 1);
    // hudi-rs takes object_store's option names.
    let options = azurite
        .storage_options()
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect();
    assert_hudi_rs_reads_expected_at(&scenario, &warehouse, "az://lake/wh/", options).await;
    let again = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}
