//! The raw-file source on S3: the fixtures' S3-sink layout uploaded to a real S3-compatible
//! server (`moto_server`, started here on 127.0.0.1) and synced from `s3://` through the
//! pipeline. Needs feature `s3` and moto (`.ci/run` installs it into a venv).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::raw::RawFileSource;
use cdc_core::testing::Scenario;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::common::assert_expected;

/// A moto server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    python: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_moto() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CDC_LAKE_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = std::env::var("CDC_LAKE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cdc-lake/venv")
        });
    let p = venv.join("bin/moto_server");
    p.exists().then_some(p)
}

fn start_moto() -> Option<Moto> {
    let Some(bin) = find_moto() else {
        assert!(
            std::env::var("CI").is_err(),
            "moto_server not found; .ci/run installs it"
        );
        eprintln!("skipping the S3 test: moto_server not found (run .ci/run once, or set CDC_LAKE_MOTO_SERVER)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        python: bin.parent().unwrap().join("python"),
    })
}

#[tokio::test]
async fn syncs_the_s3_sink_layout_from_s3() {
    let Some(moto) = start_moto() else { return };
    // Credentials and endpoint reach the source through the standard AWS variables only.
    std::env::set_var("AWS_ENDPOINT", &moto.endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test-key");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test-secret");
    std::env::set_var("AWS_REGION", "us-east-1");
    let status = Command::new(&moto.python)
        .args([
            "-c",
            &format!(
                "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='test-key', \
                 aws_secret_access_key='test-secret', region_name='us-east-1').create_bucket(Bucket='lake')",
                moto.endpoint
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "create bucket");
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
