//! Hudi tables on Azure Blob Storage (Azurite on 127.0.0.1): every fixture synced, read back
//! with hudi-rs from the container, replayed.

use cdc_core::testing::AzuriteServer;

use crate::common::every_fixture_at;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_hudi_on_azure() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    azurite.export_env();
    // hudi-rs takes object_store's option names.
    let options = azurite
        .storage_options()
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect();
    every_fixture_at("az://lake/wh", options).await;
}
