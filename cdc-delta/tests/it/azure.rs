//! Delta tables on Azure Blob Storage (Azurite on 127.0.0.1): every fixture synced, read back, replayed.

use cdc_core::testing::AzuriteServer;

use crate::common::sync_every_fixture_and_replay_at;

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
    sync_every_fixture_and_replay_at("az://lake/wh", storage_options).await;
}
