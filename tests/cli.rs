//! The `cdc-lake` binary end to end: sync a fixture's S3-sink layout into the jsonl format, run
//! again (nothing to do), and bad input either stops with a located error or goes to the
//! dead-letter location.

use std::path::Path;
use std::process::Command;

use cdc_core::sink::JsonlWarehouse;
use common::{assert_jsonl_expected, cdc_lake, jsonl_sync, layout, s};

mod common;

#[test]
fn sync_writes_the_expected_tables_and_resumes() {
    let (scenario, _dir, topics, wh) = layout("crud", 50, true);
    let args = jsonl_sync(&topics, &wh, &["--max-batch-events", "100"]);
    let out = cdc_lake(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("synced 359 records"), "{stdout}");

    let warehouse = JsonlWarehouse::new(&wh);
    for (table, keys) in &scenario.tables {
        assert_jsonl_expected(&warehouse, &scenario, table, keys);
        let t = warehouse.load(table).unwrap().unwrap();
        let lines = std::fs::read_to_string(
            warehouse
                .table_dir(table)
                .join(format!("v{:08}.jsonl", t.version)),
        )
        .unwrap();
        assert_eq!(lines.lines().count(), scenario.expected()[table].len());
    }

    let again = cdc_lake(&args);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("in 0 commits"));
}

/// Makes the `op` of the customers record at `offset` (of the first file) unknown.
fn spoil_op(topics: &Path, offset: usize) {
    let file = topics.join(
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000000.json",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[offset] = lines[offset].replacen("\"op\":\"", "\"op\":\"X", 1);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
}

#[test]
fn bad_records_stop_with_their_location_or_go_to_dead_letters() {
    let (_scenario, dir, topics, wh) = layout("crud", 1000, false);
    spoil_op(&topics, 7);

    let out = cdc_lake(&jsonl_sync(&topics, &wh, &[]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dbserver1.public.customers[0]@7") && stderr.contains("`op`"),
        "{stderr}"
    );

    let dlq = dir.path().join("dlq");
    let out = cdc_lake(&jsonl_sync(&topics, &wh, &["--dead-letter", s(&dlq)]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dead-lettered"));
    // Logged once, with the record's place (the default filter shows our warnings).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("dead-letter location"))
        .collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    for field in [
        "WARN",
        "table=public.customers",
        "partition=0",
        "offset=7",
        "`op`",
    ] {
        assert!(logged[0].contains(field), "{field}: {stderr}");
    }
    let letter = dlq.join("dbserver1.public.customers/partition=0/00000000000000000007.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(letter).unwrap()).unwrap();
    assert_eq!(doc["offset"], 7);
    assert_eq!(doc["field"], "op");
}

#[cfg(feature = "delta")]
#[test]
fn sync_into_delta_from_the_command_line() {
    let (_scenario, _dir, topics, wh) = layout("toast", 5, false);
    let args = [
        "sync",
        "--format",
        "delta",
        "--source",
        s(&topics),
        "--warehouse",
        s(&wh),
        "--max-batch-events",
        "4",
    ];
    let out = cdc_lake(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wh
        .join("public/documents/_delta_log/00000000000000000001.json")
        .exists());
    let again = cdc_lake(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("in 0 commits"));

    // A data file no log entry names (as a crashed attempt leaves): listed, then removed.
    let table = wh.join("public/documents");
    let stray = table.join("part-00000-crashed.snappy.parquet");
    std::fs::write(&stray, b"never committed").unwrap();
    let orphans = |extra: &[&str]| {
        let base = ["delta", "remove-orphans", "--warehouse", s(&wh)];
        let rest = ["--table", "public.documents", "--older-than-hours", "0"];
        let out = cdc_lake(&[&base[..], &rest, extra].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = orphans(&["--dry-run"]);
    assert!(
        listed.contains("public.documents: part-00000-crashed.snappy.parquet"),
        "{listed}"
    );
    assert!(
        listed.contains("1 orphan files") && stray.exists(),
        "{listed}"
    );
    assert!(orphans(&[]).contains("removed 1 orphan files"));
    assert!(!stray.exists());
    assert!(orphans(&[]).contains("removed 0 orphan files"));
    let missing = cdc_lake(&[
        "delta",
        "remove-orphans",
        "--warehouse",
        s(&wh),
        "--table",
        "public.nope",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no Delta table"));
    // Vacuum: inside the default retention (a week) nothing goes; with none, the files the
    // current version does not use do, and the table reads the same.
    let vacuum = |retention: &[&str]| {
        let base = [
            "delta",
            "vacuum",
            "--warehouse",
            s(&wh),
            "--table",
            "public.documents",
        ];
        let out = cdc_lake(&[&base[..], retention].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(vacuum(&[]).contains("vacuumed 0 files"));
    let vacuumed = vacuum(&["--retention-hours", "0"]);
    assert!(!vacuumed.contains("vacuumed 0 files"), "{vacuumed}");
    assert!(String::from_utf8_lossy(&cdc_lake(&args).stdout).contains("in 0 commits"));
    // Each commit rewrote the table's one small file: nothing to pack.
    let optimized = delta_optimize(&wh, "public.documents");
    assert!(optimized.contains("nothing to optimize"), "{optimized}");
}

/// `cdc-lake delta optimize` on one table: its output.
fn delta_optimize(wh: &Path, table: &str) -> String {
    let out = cdc_lake(&["delta", "optimize", "--warehouse", s(wh), "--table", table]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(feature = "kafka")]
#[test]
fn stream_from_kafka_until_sigterm() {
    use cdc_core::testing::{produce_to_kafka, scenario_topics_regex, TansuBroker};
    let Some(broker) = TansuBroker::start() else {
        return;
    };
    let scenario = cdc_core::testing::Scenario::load("toast");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(produce_to_kafka(&broker.bootstrap, &scenario));
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let topics = scenario_topics_regex(&scenario);
    let endpoints = format!("127.0.0.1:{}", cdc_core::testing::free_loopback_port());
    let child = Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
        .args([
            "stream",
            "--format",
            "jsonl",
            "--brokers",
            &broker.bootstrap,
            "--topics",
            &topics,
            "--warehouse",
            s(&wh),
            "--metrics-addr",
            &endpoints,
        ])
        .args(["--max-wait-ms", "200", "--max-batch-events", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let warehouse = JsonlWarehouse::new(&wh);
    let (table, keys) = &scenario.tables[0];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done = warehouse.load(table).ok().flatten().and_then(|t| {
            t.checkpoint
                .offsets
                .values()
                .next()
                .and_then(|p| p.get(&0).copied())
        });
        if done == Some(scenario.records().len() as i64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stream did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Caught up: live, ready, and the metrics count what was read and applied.
    assert_eq!(http_get(&endpoints, "/health").0, 200);
    let (status, ready) = http_get(&endpoints, "/ready");
    assert_eq!(status, 200, "{ready}");
    let (status, metrics) = http_get(&endpoints, "/metrics");
    assert_eq!(status, 200);
    let table_label = format!("{{table=\"{table}\"}}");
    let metric = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{table_label} ")))
            .unwrap_or_else(|| panic!("no {name}{table_label} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let read = metric("cdc_lake_events_read_total");
    assert_eq!(read, scenario.records().len() as u64);
    assert!(
        metrics.contains("cdc_lake_commit_seconds_bucket{table="),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE cdc_lake_lag_seconds gauge"),
        "{metrics}"
    );
    let (applied, commits) = (
        metric("cdc_lake_events_applied_total"),
        metric("cdc_lake_commits_total"),
    );
    let out = common::terminate(child);
    // The run's own totals agree with what was scraped.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let totals = format!("streamed {read} records: {applied} events in {commits} commits");
    assert!(stdout.contains(&totals), "{stdout} (scraped: {totals})");
    assert_jsonl_expected(&warehouse, &scenario, table, keys);
}

/// `sync --format iceberg`, then the maintenance commands; the table, read by pyiceberg, still
/// equals the expected state after compaction and snapshot expiry.
#[cfg(feature = "iceberg")]
#[test]
fn iceberg_sync_and_maintenance_from_the_command_line() {
    let (scenario, dir, topics, wh) = layout("crud", 25, false);
    let stray = wh.join("public/customers/data/00000-stray.parquet");
    let store = IcebergCliStore {
        warehouse: s(&wh).to_string(),
        envs: Vec::new(),
        put_stray: Box::new(|| std::fs::write(&stray, b"left by a crashed attempt").unwrap()),
        stray_exists: Box::new(|| stray.exists()),
    };
    iceberg_sync_and_maintenance(&scenario, dir.path(), &topics, &store);
}

/// The same on S3 (moto_server on 127.0.0.1), the catalog a local file: every file of the
/// table, the stray included, lives in the bucket.
#[cfg(all(feature = "iceberg", feature = "s3"))]
#[test]
fn iceberg_on_s3_from_the_command_line() {
    use object_store::ObjectStoreExt;
    let Some(moto) = cdc_core::testing::MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    let (scenario, dir, topics, _) = layout("crud", 25, false);
    // The store, the readers and the warehouse opened here take S3 settings from the
    // environment (the binary gets them explicitly too).
    moto.export_env();
    let envs: Vec<(String, String)> = moto.storage_options().into_iter().collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bucket = cdc_core::source::raw::object_store_from_url("s3://lake")
        .unwrap()
        .0;
    let stray = object_store::path::Path::from("wh/public/customers/data/00000-stray.parquet");
    let store = IcebergCliStore {
        warehouse: "s3://lake/wh".into(),
        envs: envs.clone(),
        put_stray: Box::new(|| {
            let payload = object_store::PutPayload::from_static(b"left by a crashed attempt");
            runtime.block_on(bucket.put(&stray, payload)).unwrap();
        }),
        stray_exists: Box::new(|| runtime.block_on(bucket.head(&stray)).is_ok()),
    };
    iceberg_sync_and_maintenance(&scenario, dir.path(), &topics, &store);
}

/// Where an Iceberg CLI test's warehouse is, and how it plants and finds a stray file.
#[cfg(feature = "iceberg")]
struct IcebergCliStore<'a> {
    warehouse: String,
    /// The environment the binary and the readers run with (S3 settings).
    envs: Vec<(String, String)>,
    put_stray: Box<dyn Fn() + 'a>,
    stray_exists: Box<dyn Fn() -> bool + 'a>,
}

#[cfg(feature = "iceberg")]
fn iceberg_sync_and_maintenance(
    scenario: &cdc_core::testing::Scenario,
    dir: &Path,
    topics: &Path,
    store: &IcebergCliStore,
) {
    let wh = store.warehouse.as_str();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
            .args(args)
            .envs(store.envs.iter().cloned())
            .output()
            .expect("runs")
    };
    let run = |args: &[&str]| {
        let out = cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A catalog of another name in another file: maintenance finds the tables only through
    // the same `--sink-config` the sync used.
    let settings_file = dir.join("settings.json");
    let catalog = dir.join("lake.db");
    let settings = cdc_lake::iceberg_sink_config(Some(
        &serde_json::json!({"catalog_name": "lake", "catalog_path": s(&catalog)}).to_string(),
    ))
    .unwrap();
    std::fs::write(&settings_file, serde_json::to_string(&settings).unwrap()).unwrap();
    let sync = [
        "sync",
        "--format",
        "iceberg",
        "--source",
        s(topics),
        "--warehouse",
        wh,
        "--max-batch-events",
        "40",
        "--sink-config",
        s(&settings_file),
    ];
    run(&sync);
    let table = [
        "--warehouse",
        wh,
        "--table",
        "public.customers",
        "--sink-config",
        s(&settings_file),
    ];
    let without_settings = cli(&[
        "iceberg",
        "compact",
        "--warehouse",
        wh,
        "--table",
        "public.customers",
    ]);
    assert!(!without_settings.status.success());
    let message = String::from_utf8_lossy(&without_settings.stderr);
    assert!(
        message.contains("public.customers is not in the catalog")
            || message.contains("catalog_path"),
        "{message}"
    );
    let compact = run(&[&["iceberg", "compact"][..], &table].concat());
    assert!(compact.contains("compacted"), "{compact}");
    let expire = run(&[
        &["iceberg", "expire-snapshots", "--older-than-hours", "0"][..],
        &table,
    ]
    .concat());
    let deleted: usize = expire
        .split("deleted ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{expire}"));
    assert!(deleted > 0, "{expire}");
    // A file no snapshot references (as a crashed attempt leaves) is removed, nothing else.
    (store.put_stray)();
    assert!((store.stray_exists)());
    let orphans = run(&[
        &["iceberg", "remove-orphans", "--older-than-hours", "0"][..],
        &table,
    ]
    .concat());
    assert!(orphans.contains("removed 1 orphan files"), "{orphans}");
    assert!(!(store.stray_exists)());

    let (id, keys) = &scenario.tables[0];
    let script = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cdc-iceberg/tests/readers/pyiceberg_sql.py"
    ));
    let rows =
        cdc_core::testing::rows_from_python_reader(script, &[s(&catalog), "lake", &id.to_string()]);
    // As pyiceberg returns the rows: only generic conversions, none of our column metadata.
    let loss = cdc_core::testing::VariantLoss::of(&scenario.name);
    cdc_core::testing::compare_raw_with_expected(id, keys, &rows, &scenario.expected()[id], loss)
        .unwrap();
    // Maintenance kept the checkpoint: nothing is applied twice.
    assert!(run(&sync).contains("in 0 commits"));
}

/// `--sink-config` reaches the format: a Hudi table partitioned by a column, and an unknown
/// setting is an error naming it.
#[cfg(feature = "hudi")]
#[test]
fn sink_settings_from_a_file() {
    let (_scenario, dir, topics, wh) = layout("crud", 25, false);
    let settings = dir.path().join("hudi.json");
    std::fs::write(&settings, r#"{"partition_fields": ["name"]}"#).unwrap();
    let args = [
        "sync",
        "--format",
        "hudi",
        "--source",
        s(&topics),
        "--warehouse",
        s(&wh),
        "--sink-config",
        s(&settings),
    ];
    let out = cdc_lake(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let properties =
        std::fs::read_to_string(wh.join("public/customers/.hoodie/hoodie.properties")).unwrap();
    assert!(
        properties.contains("hoodie.table.partition.fields=name"),
        "{properties}"
    );
    let partitions = std::fs::read_dir(wh.join("public/customers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("name=")
        })
        .count();
    assert!(partitions > 5, "{partitions} partitions");

    std::fs::write(&settings, r#"{"partition_feilds": ["name"]}"#).unwrap();
    let out = cdc_lake(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hudi sink settings") && err.contains("partition_feilds"),
        "{err}"
    );
}

/// `--log-format json` writes one JSON object a line; `RUST_LOG` filters, and an invalid filter
/// is an error.
#[test]
fn log_lines_are_json_on_request_and_filtered_by_rust_log() {
    let (_scenario, dir, topics, wh) = layout("crud", 1000, false);
    spoil_op(&topics, 0);
    let dlq = dir.path().join("dlq");
    let sync = |log: Option<&str>, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdc-lake"));
        command.args(["sync", "--format", "jsonl", "--source", s(&topics)]);
        command.args(["--warehouse", s(&wh)]);
        command.args(["--dead-letter", s(&dlq)]).args(extra);
        match log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        command.output().expect("runs")
    };

    let out = sync(None, &["--log-format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    let warning = lines
        .iter()
        .find(|l| l["fields"]["message"] == "record sent to the dead-letter location")
        .expect("the dead letter is logged");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["table"], "public.customers");
    assert_eq!(warning["fields"]["topic"], "dbserver1.public.customers");
    assert_eq!(warning["fields"]["offset"], 0);

    // Nothing left to do on the second run; off silences, a bad filter is refused.
    std::fs::remove_dir_all(&wh).unwrap();
    let out = sync(Some("off"), &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("dead-letter"));
    let out = sync(Some("cdc_core=loud"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUST_LOG"));
}

/// A plain HTTP/1.1 GET: (status, body).
#[cfg(feature = "kafka")]
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the endpoints listen");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `--shape` makes a table an SCD type 2 history (read back by DuckDB's delta extension, it is
/// the history the raw events say); an ordering other than capture order needs that shape.
#[test]
fn sync_keeps_a_history_when_asked() {
    use cdc_core::shape::TableShape;
    let (scenario, _dir, topics, wh) = layout("crud", 50, true);
    let sync = |extra: &[&str]| {
        let base = ["sync", "--format", "delta", "--source", s(&topics)];
        cdc_lake(&[&base[..], &["--warehouse", s(&wh)], extra].concat())
    };
    let mismatched = sync(&[
        "--shape",
        "public.customers=soft_delete",
        "--order-by",
        "public.customers=source_ts",
    ]);
    assert!(!mismatched.status.success());
    let err = String::from_utf8_lossy(&mismatched.stderr);
    assert!(err.contains("needs the scd2 shape"), "{err}");
    let out = sync(&[
        "--shape",
        "public.customers=scd2",
        "--max-batch-events",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cdc-delta/tests/readers/duckdb_delta.py"
    );
    for (table, _) in &scenario.tables {
        let location = wh.join(&*table.namespace).join(&*table.name);
        let rows = cdc_core::testing::rows_from_python_reader(Path::new(script), &[s(&location)]);
        cdc_core::testing::shapes::assert_shape_rows(
            &scenario,
            TableShape::Scd2,
            table,
            &rows,
            true,
        );
    }
}

/// `cdc-lake hudi cluster` packs the small file groups a sync left (here every commit's inserts
/// start a group: `small_file_limit` 0), and the table then resumes with nothing to do.
#[test]
fn hudi_cluster_from_the_command_line() {
    let (_scenario, dir, topics, wh) = layout("crud", 25, false);
    let settings = dir.path().join("hudi.json");
    std::fs::write(&settings, r#"{"small_file_limit": 0, "cluster_every": 0}"#).unwrap();
    let sync = [
        "sync",
        "--format",
        "hudi",
        "--source",
        s(&topics),
        "--warehouse",
        s(&wh),
        "--sink-config",
        s(&settings),
        "--max-batch-events",
        "40",
    ];
    let out = cdc_lake(&sync);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster = || {
        let at = ["--warehouse", s(&wh), "--sink-config", s(&settings)];
        let out =
            cdc_lake(&[&["hudi", "cluster", "--table", "public.customers"][..], &at].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = cluster();
    assert!(first.contains("public.customers: clustered"), "{first}");
    assert!(cluster().contains("nothing to cluster"));
    assert!(String::from_utf8_lossy(&cdc_lake(&sync).stdout).contains("in 0 commits"));
}
