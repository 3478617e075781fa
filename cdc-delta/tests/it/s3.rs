//! Delta tables on S3 (moto_server on 127.0.0.1): every fixture synced, read back, replayed.

use cdc_core::testing::MotoServer;

use crate::common::sync_every_fixture_and_replay_at;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_delta_on_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    sync_every_fixture_and_replay_at("s3://lake/wh", moto.storage_options()).await;
}
