//! The raw-file source on S3: the fixtures' S3-sink layout uploaded to a real S3-compatible
//! server (`moto_server`, started here on 127.0.0.1) and synced from `s3://` through the
//! pipeline. Needs feature `s3` and moto (`.ci/run` installs it into a venv).

use std::path::PathBuf;

use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::raw::RawFileSource;
use cdc_core::testing::{MotoServer, Scenario};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::common::assert_expected;

#[tokio::test]
async fn syncs_the_s3_sink_layout_from_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    // Credentials and endpoint reach the source through the standard AWS variables only.
    moto.export_env();
    moto.create_bucket("lake");
    let store = AmazonS3Builder::from_env()
        .with_bucket_name("lake")
        .build()
        .unwrap();

    for name in ["crud", "toast"] {
        let scenario = Scenario::load(name);
        let dir = tempfile::tempdir().unwrap();
        scenario.write_s3_layout(dir.path(), 40, true);
        for entry in walk(dir.path()) {
            let rel = entry
                .strip_prefix(dir.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let key = Path::from(format!("{name}/topics/{rel}"));
            store
                .put(&key, PutPayload::from(std::fs::read(&entry).unwrap()))
                .await
                .unwrap();
        }
        let mut source = RawFileSource::open(&format!("s3://lake/{name}/topics"))
            .await
            .unwrap();
        assert!(!source.topic_partitions().is_empty());
        let wh = MemoryWarehouse::new();
        let mut config = PipelineConfig::default();
        config.limits.max_events = 10;
        let stats = Pipeline::new(config, &wh)
            .unwrap()
            .run_to_end(&mut source, |_| {})
            .await
            .unwrap();
        assert!(stats.commits > 1);
        assert_expected(&scenario, &wh);
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
