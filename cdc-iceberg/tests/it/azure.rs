//! Iceberg tables on Azure Blob Storage (Azurite on 127.0.0.1), the SQLite catalog in a local
//! file: the same crash, restart, orphan and read-back test as on S3, read by pyiceberg (adlfs).

use cdc_core::testing::AzuriteServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_iceberg_on_azure_through_a_crash() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    azurite.export_env();
    // For pyiceberg's adlfs (the reader script takes it from the environment).
    std::env::set_var(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string(),
    );
    crate::remote::sync_through_a_crash_at("abfs://lake/wh").await;
    crate::remote::every_fixture_at("abfs://lake/fixtures").await;
}
