//! Delta tables on Azure Blob Storage (Azurite on 127.0.0.1): sync, read back, replay.

use std::collections::HashMap;

use cdc_core::testing::{AzuriteServer, Scenario};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_delta_on_azure() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    // The emulator's address is read from the environment only (`AZURITE_BLOB_STORAGE_URL`).
    azurite.export_env();
    let storage_options = azurite
        .storage_options()
        .into_iter()
        .filter(|(k, _)| k.starts_with("AZURE_"))
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect();
    let config = DeltaSinkConfig {
        storage_options,
        ..DeltaSinkConfig::default()
    };
    let warehouse = DeltaWarehouse::new("az://lake/wh", config).unwrap();
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
