//! The `cdc-lake` command line.

mod config;
mod endpoints;
mod inspect;
#[cfg(any(feature = "iceberg", feature = "delta"))]
mod maintenance;
mod sample;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cdc_core::decode::{TableHint, UnknownColumns};
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig, Progress, TableRouter};
use cdc_core::shape::ShapeConfig;
use cdc_core::source::raw::RawFileSource;
use cdc_core::source::BatchLimits;
use cdc_lake::{open_warehouse_with, Format};
use clap::{Parser, Subcommand};

/// Keep data-lake tables in sync with Debezium change events.
#[derive(Debug, Parser)]
#[command(name = "cdc-lake", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (retries, rollbacks, dead letters) are written to stderr; which ones is
    /// `RUST_LOG` (default: `warn` for libraries, `info` for cdc-lake's own crates).
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: LogFormat,
}

/// The log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// What is logged when `RUST_LOG` is not set.
/// Libraries warn, our crates inform. delta-kernel logs a table that does not exist yet as
/// an error (every first commit looks for one) and deltalake warns of every binary column it
/// keeps no statistics of: neither is news to the user.
const DEFAULT_LOG_FILTER: &str =
    "warn,cdc_core=info,cdc_delta=info,cdc_iceberg=info,cdc_hudi=info,\
     cdc_lake=info,buoyant_kernel::log_segment=off,buoyant_kernel::snapshot::builder=off,\
     deltalake_core::writer::stats=error";

/// Installs the log subscriber: `RUST_LOG` filters (an invalid one is an error, not ignored),
/// lines go to stderr beside the errors and progress.
fn init_logging(format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG `{spec}`: {e}"))?,
        Err(_) => EnvFilter::new(DEFAULT_LOG_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Read raw change-event files (Confluent S3 sink layout) once to the end and commit them.
    Sync(SyncArgs),
    /// Stream change events from Kafka until SIGINT/SIGTERM (finishing the commit in flight).
    #[cfg(feature = "kafka")]
    Stream(StreamArgs),
    /// Run the service a TOML file describes (source, sinks per table, routes, limits, metrics):
    /// `sync` for a `[source.raw]`, `stream` for a `[source.kafka]`.
    Run {
        /// The service's TOML file (docs/operations.md has a sample).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// SQL over the warehouse's tables (`schema.table`), printed as a table, CSV or JSON lines.
    Query(inspect::QueryArgs),
    /// Every table of the warehouse: format, rows, files, last commit, checkpoint.
    Status(inspect::StatusArgs),
    /// Iceberg table maintenance: compaction, snapshot expiry, orphan-file removal.
    #[cfg(feature = "iceberg")]
    #[command(subcommand)]
    Iceberg(maintenance::IcebergCommand),
    /// Delta table maintenance: optimize, orphan-file removal, vacuum.
    #[cfg(feature = "delta")]
    #[command(subcommand)]
    Delta(maintenance::DeltaCommand),
    /// Hudi table maintenance: small-file clustering (cleaning and archival run with every
    /// commit).
    #[cfg(feature = "hudi")]
    #[command(subcommand)]
    Hudi(maintenance::HudiCommand),
}

#[cfg(feature = "kafka")]
#[derive(Debug, clap::Args)]
struct StreamArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// Topics to read: a regex matched against whole topic names.
    #[arg(long)]
    topics: String,
    /// Join consumer group NAME: its rebalances (cooperative-sticky) share the matching
    /// partitions among the processes started with the same NAME, each positioned at its
    /// table's checkpoint. Without it, this process reads every matching partition (and reports
    /// offsets as group `cdc-lake`, for lag monitoring only).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// librdkafka property `KEY=VALUE` (security, SASL, SSL). Repeatable; never printed.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    /// Longest wait before committing what arrived (ms).
    #[arg(long, default_value_t = 1000)]
    max_wait_ms: u64,
    /// How often to look for topics created since the start that match `--topics` (ms); they
    /// are read from then on.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    topic_refresh_ms: u64,
    #[command(flatten)]
    sync: SyncArgs,
}

/// The format tables are written in when `--format` is not given: Delta when the build has it.
const DEFAULT_FORMAT: &str = if cfg!(feature = "delta") {
    "delta"
} else {
    "jsonl"
};

/// `--max-batch-events` for Hudi tables. A copy-on-write commit costs what the file groups it
/// touches cost, whatever its size; a 2 M-event backlog took 4.7 s in 200 000-event commits,
/// 3.2 s in 1 000 000-event ones, with less memory (docs/BENCHMARKS.md).
const HUDI_BATCH_EVENTS: usize = 1_000_000;

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Where the raw files are: a local directory, file:// or s3:// URL (the S3 sink's
    /// `topics.dir`). Default: the sample events built into the binary (`data/sample/`).
    #[arg(long)]
    source: Option<String>,
    /// Table format: jsonl, delta, iceberg or hudi (default: delta in builds that have it).
    #[arg(long, default_value = DEFAULT_FORMAT)]
    format: Format,
    /// Register the tables in a catalog engines read (`glue`: the AWS Glue Data Catalog, so
    /// Athena, EMR/Spark and Trino find them; settings under `glue` in `--sink-config`).
    #[arg(long, value_enum)]
    catalog: Option<Catalog>,
    /// Where tables go: `<warehouse>/<schema>/<table>/` (Iceberg: catalog `<warehouse>/catalog.db`, or `catalog_path` in the sink config for an s3:// warehouse).
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// The format's sink settings, a JSON file (Delta: `partition_columns`,
    /// `deletion_vectors`, ...; Iceberg: `write_mode`, `partition_by`, ...; Hudi:
    /// `partition_fields`, `commits_retained`, ...). Unknown keys are errors.
    #[arg(long, value_name = "FILE")]
    sink_config: Option<PathBuf>,
    /// Route topics to tables: `REGEX=SCHEMA.TABLE` (captures usable as $1), tried before the
    /// default `<prefix>.<schema>.<table>` rule. Repeatable.
    #[arg(long = "route", value_name = "REGEX=TABLE")]
    routes: Vec<String>,
    /// Arrow schema (JSON) of a table whose events carry no schema: `SCHEMA.TABLE=FILE`.
    #[arg(long = "schema", value_name = "TABLE=FILE")]
    schemas: Vec<String>,
    /// Primary key of a table whose events carry no key: `SCHEMA.TABLE=col1,col2`.
    #[arg(long = "key", value_name = "TABLE=COLUMNS")]
    keys: Vec<String>,
    /// What a table keeps of its source: `SCHEMA.TABLE=SHAPE`, SHAPE one of `mirror` (the
    /// default), `soft_delete` (deleted rows stay, flagged), `scd2` (one row per version,
    /// valid from/to) or `change_log` (every event). Repeatable.
    #[arg(long = "shape", value_name = "TABLE=SHAPE")]
    shapes: Vec<String>,
    /// The order of a table's events when its Kafka order is not the source's (scd2 tables):
    /// `SCHEMA.TABLE=source_ts` or `SCHEMA.TABLE=column:NAME` (integers, dates, timestamps);
    /// ties go by the database position. Repeatable.
    #[arg(long = "order-by", value_name = "TABLE=ORDER")]
    order_by: Vec<String>,
    /// Write undecodable records here (local path or URL) instead of stopping.
    #[arg(long)]
    dead_letter: Option<String>,
    /// Where Avro records' writer schemas are: a Confluent Schema Registry URL (Confluent's
    /// `AvroConverter`; basic auth from `CDC_LAKE_REGISTRY_USER_INFO` (USER:PASSWORD) or a
    /// bearer token from `CDC_LAKE_REGISTRY_TOKEN`; feature `avro`), or `glue` for the AWS Glue
    /// Schema Registry (AWS's converter on MSK; the AWS environment's region and credentials;
    /// feature `glue`). Avro container files from the S3 sink need neither.
    #[arg(long, value_name = "URL")]
    schema_registry: Option<String>,
    /// Ignore fields of schemaless rows that the given schema lacks (default: error).
    #[arg(long)]
    ignore_unknown_columns: bool,
    /// Records per batch (one commit per table per batch). Default 200 000; Hudi 1 000 000:
    /// a copy-on-write commit rewrites every file group it touches, so a backlog is committed
    /// in as few instants as memory allows.
    #[arg(long)]
    max_batch_events: Option<usize>,
    /// Raw bytes read and decoded at a time (mapped input files stay resident until decoded);
    /// a commit gathers decoded batches up to --max-batch-events.
    #[arg(long, default_value_t = 128 << 20)]
    max_batch_bytes: usize,
    /// Go on past offsets the source no longer has (a raw file deleted or never written, a
    /// checkpoint older than the broker's retention), logging each gap, instead of stopping
    /// with an error naming the table, partition and missing range.
    #[arg(long)]
    allow_gaps: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics`, and `/health` (live) and `/ready`
    /// (partitions assigned, caught up) beside them; `HOST:PORT` (port 0: any free port,
    /// printed on start).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// Keep following the source (`sync` only): after reaching its end, list what the S3 sink
    /// wrote since, every `--poll-interval-ms`, and apply it, until SIGINT/SIGTERM (which stop
    /// it after the commit in flight).
    #[arg(long)]
    watch: bool,
    /// How often `--watch` lists the source for new files.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    poll_interval_ms: u64,
    /// What follows each record in the S3 sink's `ByteArrayFormat` files (`.bin`): its
    /// `format.bytearray.separator`, with the escapes `\n`, `\r`, `\t` and `\\`.
    #[arg(long, default_value = "\\n", value_name = "TEXT")]
    byte_array_separator: String,
    /// Sink settings given as JSON text (`run --config`), instead of `--sink-config`'s file.
    #[arg(skip)]
    sink_settings: Option<String>,
    /// Tables opened in a warehouse of their own (`run --config`'s `[[tables]]`).
    #[arg(skip)]
    table_sinks: Vec<TableSink>,
}

/// One table's own format, location and settings.
#[derive(Debug, Clone)]
struct TableSink {
    table: TableId,
    format: Format,
    warehouse: String,
    catalog: Option<Catalog>,
    settings: Option<String>,
}

/// `\n`, `\r`, `\t` and `\\` in `text` as the characters they stand for (as in a connector's
/// properties file); any other backslash stays.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let escaped = match (c, chars.clone().next()) {
            ('\\', Some('n')) => '\n',
            ('\\', Some('r')) => '\r',
            ('\\', Some('t')) => '\t',
            ('\\', Some('\\')) => '\\',
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(escaped);
        chars.next();
    }
    out.into_bytes()
}

/// `LEFT=RIGHT` split at the first `=` (keys and table names hold none; values and paths may).
fn split_pair<'a>(arg: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    arg.split_once('=')
        .ok_or_else(|| format!("{what} `{arg}` must look like LEFT=RIGHT"))
}

/// `REGEX=TABLE` split at the last `=` (a regex may hold one; a table name does not).
fn split_route(arg: &str) -> Result<(&str, &str), String> {
    arg.rsplit_once('=')
        .ok_or_else(|| format!("--route `{arg}` must look like REGEX=TABLE"))
}

fn build_config(args: &SyncArgs) -> Result<PipelineConfig, Box<dyn std::error::Error>> {
    let routes = args
        .routes
        .iter()
        .map(|r| split_route(r).map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hints: HashMap<TableId, TableHint> = HashMap::new();
    for s in &args.schemas {
        let (table, file) = split_pair(s, "--schema")?;
        let text = std::fs::read_to_string(PathBuf::from(file))
            .map_err(|e| format!("cannot read schema file `{file}`: {e}"))?;
        let schema: cdc_core::arrow_schema::Schema = serde_json::from_str(&text)
            .map_err(|e| format!("`{file}` is not an Arrow schema in JSON: {e}"))?;
        hints.entry(TableId::parse(table)?).or_default().schema = Some(Arc::new(schema));
    }
    for k in &args.keys {
        let (table, cols) = split_pair(k, "--key")?;
        hints.entry(TableId::parse(table)?).or_default().key_columns =
            Some(cols.split(',').map(|c| c.trim().to_string()).collect());
    }
    let mut shapes: HashMap<TableId, ShapeConfig> = HashMap::new();
    for s in &args.shapes {
        let (table, shape) = split_pair(s, "--shape")?;
        shapes.entry(TableId::parse(table)?).or_default().shape = shape.parse()?;
    }
    for o in &args.order_by {
        let (table, order) = split_pair(o, "--order-by")?;
        shapes.entry(TableId::parse(table)?).or_default().order_by = order.parse()?;
    }
    for (table, shape) in &shapes {
        shape.check(table)?;
    }
    let mut config = PipelineConfig {
        router: TableRouter::with_rules(&routes)?,
        dead_letter: args.dead_letter.clone(),
        table_hints: hints,
        shapes,
        ..PipelineConfig::default()
    };
    if args.ignore_unknown_columns {
        config.decoder.unknown_columns = UnknownColumns::Ignore;
    }
    config.decoder.schema_registry = args.schema_registry.clone();
    config.limits.max_events = args.max_batch_events.unwrap_or(match args.format {
        Format::Hudi => HUDI_BATCH_EVENTS,
        _ => BatchLimits::default().max_events,
    });
    config.limits.max_bytes = args.max_batch_bytes;
    Ok(config)
}

/// A bar of the bytes `sync` has read of all it will read, with files done, events/s and the
/// ETA; redrawn from `progress` five times a second until finished.
fn progress_bar(progress: Arc<cdc_core::source::raw::ReadProgress>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {prefix} {wide_msg}",
        )
        .expect("a valid template"),
    );
    let drawn = bar.clone();
    tokio::spawn(async move {
        while !drawn.is_finished() {
            draw_read(&drawn, &progress);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    bar
}

/// Sets `bar` to the files and bytes read so far.
fn draw_read(bar: &indicatif::ProgressBar, read: &cdc_core::source::raw::ReadProgress) {
    let (files_done, files, bytes_done, bytes) = read.snapshot();
    bar.set_length(bytes);
    bar.set_position(bytes_done);
    bar.set_prefix(format!("{files_done}/{files} files"));
}

/// Records/s, events, commits and dead letters so far.
fn batch_summary(p: &Progress<'_>) -> String {
    let s = p.stats;
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    format!(
        "{:.0} records/s, {} events applied in {} commits, {} dead-lettered",
        s.records_read as f64 / secs,
        s.events_applied,
        s.commits,
        s.dead_lettered
    )
}

/// One progress line: on a terminal it rewrites itself; elsewhere (logs) only when `log_lines`.
fn show_progress(p: &Progress<'_>, tty: bool, log_lines: bool) {
    let s = p.stats;
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    let lag = s
        .lag()
        .map(|l| format!(", lag {:.1}s", l.as_secs_f64()))
        .unwrap_or_default();
    let last: Vec<String> = p
        .last_commits
        .iter()
        .map(|(t, v)| format!("{t}@{v}"))
        .collect();
    let line = format!(
        "{} records ({:.0}/s), {} events applied, {} commits, {} upserted, {} deleted, {} dead-lettered{lag}, last commit {}",
        s.records_read,
        s.records_read as f64 / secs,
        s.events_applied,
        s.commits,
        s.rows_upserted,
        s.rows_deleted,
        s.dead_lettered,
        if last.is_empty() { "-".to_string() } else { last.join(" ") }
    );
    if tty {
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    } else if log_lines {
        eprintln!("{line}");
    }
}

/// Catalogs every table format can register its tables in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Catalog {
    /// The AWS Glue Data Catalog (settings: `glue` in the sink config; region, credentials and
    /// endpoint from the usual AWS_* environment).
    Glue,
}

/// The text of a `--sink-config` file, with the `--catalog` given added (its settings, if the
/// file has none, the defaults).
fn read_settings(
    path: Option<&std::path::Path>,
    catalog: Option<Catalog>,
) -> Result<Option<String>, String> {
    let text = path
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
        })
        .transpose()?;
    with_catalog(text, catalog)
}

/// Sink settings (JSON text) with the `--catalog` given added.
fn with_catalog(text: Option<String>, catalog: Option<Catalog>) -> Result<Option<String>, String> {
    let Some(Catalog::Glue) = catalog else {
        return Ok(text);
    };
    let mut settings: serde_json::Value = match &text {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("--sink-config: {e}"))?,
        None => serde_json::json!({}),
    };
    let object = settings
        .as_object_mut()
        .ok_or("--sink-config must be a JSON object")?;
    let glue = object.entry("glue").or_insert(serde_json::Value::Null);
    if glue.is_null() {
        *glue = serde_json::json!({});
    }
    Ok(Some(settings.to_string()))
}

/// The warehouse of `--format` at `--warehouse`, with `--sink-config` settings; tables with
/// sinks of their own (`run --config`) open in theirs.
fn open_sinks(
    args: &SyncArgs,
) -> Result<Box<dyn cdc_core::sink::Warehouse>, Box<dyn std::error::Error>> {
    let settings = match &args.sink_settings {
        Some(text) => with_catalog(Some(text.clone()), args.catalog)?,
        None => read_settings(args.sink_config.as_deref(), args.catalog)?,
    };
    let default = open_warehouse_with(args.format, &args.warehouse, settings.as_deref())?;
    if args.table_sinks.is_empty() {
        return Ok(default);
    }
    let mut routed = cdc_core::sink::RoutedWarehouse::new(default);
    for t in &args.table_sinks {
        let settings = with_catalog(t.settings.clone(), t.catalog)?;
        let own = open_warehouse_with(t.format, &t.warehouse, settings.as_deref())
            .map_err(|e| format!("table {}: {e}", t.table))?;
        routed.route(t.table.clone(), own);
    }
    Ok(Box::new(routed))
}

/// Starts the metrics and health endpoints when `--metrics-addr` asks for them.
async fn serve_endpoints(
    args: &SyncArgs,
    pipeline: &Pipeline<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(addr) = &args.metrics_addr {
        let bound = endpoints::serve(addr, pipeline.readiness()).await?;
        eprintln!("serving metrics at http://{bound}/metrics (and /health, /ready)");
    }
    Ok(())
}

async fn sync(args: SyncArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = build_config(&args)?;
    let warehouse = open_sinks(&args)?;
    let (mut source, location) = match &args.source {
        Some(location) => (RawFileSource::open(location).await?, location.as_str()),
        None if args.watch => return Err("--watch follows a bucket: give it --source".into()),
        None => (sample::source().await?, sample::LOCATION),
    };
    source.allow_gaps(args.allow_gaps);
    // One registry client for the decoder and the source (which measures the framed records
    // of ByteArrayFormat files with their schemas): each schema is fetched once.
    let registry = match &config.decoder.schema_registry {
        Some(url) => Some(cdc_core::decode::avro::registry_for(url)?),
        None => None,
    };
    if let Some(registry) = &registry {
        source.set_schema_registry(registry.clone());
    }
    source.set_byte_array_separator(&unescape(&args.byte_array_separator));
    if source.topic_partitions().is_empty() && !args.watch {
        return Err(format!("no change-event files found under `{location}`").into());
    }
    let stop = if args.watch {
        eprintln!(
            "watching `{location}` every {} ms (SIGINT/SIGTERM stop it after the commit in flight)",
            args.poll_interval_ms
        );
        stop_on_signals()?
    } else {
        Arc::default()
    };
    let tty = std::io::stderr().is_terminal();
    let mut pipeline = match registry {
        Some(registry) => Pipeline::with_schema_registry(config, warehouse.as_ref(), registry)?,
        None => Pipeline::new(config, warehouse.as_ref())?,
    };
    serve_endpoints(&args, &pipeline).await?;
    // A terminal gets a bar of the files and bytes read; logs get a line per batch when
    // watching.
    let read = source.progress();
    let bar = (tty && !args.watch).then(|| progress_bar(read.clone()));
    let mut stats = pipeline
        .run(&mut source, &stop, |p| match &bar {
            Some(bar) => {
                draw_read(bar, &read);
                bar.set_message(batch_summary(p));
            }
            None => show_progress(p, tty, args.watch),
        })
        .await?;
    let rewrote_a_line = tty && bar.is_none();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    while args.watch && !stop.load(Ordering::Relaxed) {
        let poll = std::time::Instant::now();
        while poll.elapsed().as_millis() < u128::from(args.poll_interval_ms)
            && !stop.load(Ordering::Relaxed)
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if stop.load(Ordering::Relaxed) || source.refresh().await? == 0 {
            continue;
        }
        stats = pipeline
            .run(&mut source, &stop, |p| show_progress(p, tty, true))
            .await?;
    }
    if rewrote_a_line {
        eprintln!();
    }
    println!(
        "synced {} records into {} tables at `{}`: {} events in {} commits ({} already committed, {} control records, {} dead-lettered)",
        stats.records_read,
        args.format.name(),
        args.warehouse,
        stats.events_applied,
        stats.commits,
        stats.records_already_committed,
        stats.control_records,
        stats.dead_lettered
    );
    show_tables_written(&args, pipeline.last_commits());
    Ok(())
}

/// The tables a sync committed to, and the command that queries one of them.
fn show_tables_written(
    args: &SyncArgs,
    last_commits: &std::collections::BTreeMap<TableId, String>,
) {
    let Some(first) = last_commits.keys().next() else {
        return;
    };
    for (table, version) in last_commits {
        println!("  {table}: {} version {version}", args.format.name());
    }
    let warehouse = match args.warehouse.as_str() {
        "warehouse" => String::new(),
        other => format!(" --warehouse '{other}'"),
    };
    println!("next: cdc-lake query \"select count(*) from {first}\"{warehouse}");
}

/// A flag SIGINT or SIGTERM sets (the handlers are registered before this returns, so a
/// signal right after the caller announces itself is not lost).
fn stop_on_signals() -> Result<Arc<AtomicBool>, Box<dyn std::error::Error>> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("\nstopping after the commit in flight");
        on_signal.store(true, Ordering::Relaxed);
    });
    Ok(stop)
}

/// `run --config FILE`: the file as the flags of `sync` or `stream`, plus its sink settings
/// and the tables with sinks of their own.
async fn run_service(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let service = config::ServiceConfig::load(path)?;
    let in_file = |e: String| format!("{}: {e}", path.display());
    let parsed = Cli::try_parse_from(service.to_args()).map_err(|e| in_file(e.to_string()))?;
    let complete = |mut args: SyncArgs| -> Result<SyncArgs, String> {
        args.sink_settings = service
            .sink
            .settings
            .as_ref()
            .map(config::settings_json)
            .transpose()?;
        args.table_sinks = table_sinks(&service, &args).map_err(in_file)?;
        Ok(args)
    };
    match parsed.command {
        Command::Sync(args) => sync(complete(args)?).await,
        #[cfg(feature = "kafka")]
        Command::Stream(mut args) => {
            args.sync = complete(args.sync)?;
            stream(args).await
        }
        _ => Err(in_file("`[source]` is `raw` or `kafka`".into()).into()),
    }
}

/// The `[[tables]]` of `service` that go elsewhere than `[sink]` (`defaults`).
fn table_sinks(
    service: &config::ServiceConfig,
    defaults: &SyncArgs,
) -> Result<Vec<TableSink>, String> {
    let mut sinks = Vec::new();
    for t in service.tables.iter().filter(|t| t.has_own_sink()) {
        let table = TableId::parse(&t.name).map_err(|e| e.to_string())?;
        let format = match &t.format {
            Some(f) => f.parse()?,
            None => defaults.format,
        };
        let catalog = match &t.catalog {
            Some(c) => Some(<Catalog as clap::ValueEnum>::from_str(c, false)?),
            None => defaults.catalog,
        };
        let settings = match (&t.settings, &service.sink.settings) {
            (Some(own), _) => Some(config::settings_json(own)?),
            // Another format's settings would not fit.
            (None, Some(shared)) if format == defaults.format => {
                Some(config::settings_json(shared)?)
            }
            (None, _) => None,
        };
        sinks.push(TableSink {
            table,
            format,
            warehouse: t.warehouse.clone().unwrap_or(defaults.warehouse.clone()),
            catalog,
            settings,
        });
    }
    Ok(sinks)
}

#[cfg(feature = "kafka")]
async fn stream(args: StreamArgs) -> Result<(), Box<dyn std::error::Error>> {
    use cdc_core::source::kafka::{KafkaConfig, KafkaSource};
    if args.sync.watch {
        return Err(
            "--watch follows raw files (`sync`); `stream` always follows its topics".into(),
        );
    }
    let stop = stop_on_signals()?;
    eprintln!(
        "streaming topics matching `{}` into {} tables at `{}` (SIGINT/SIGTERM stop it after the commit in flight)",
        args.topics,
        args.sync.format.name(),
        args.sync.warehouse
    );
    let mut config = build_config(&args.sync)?;
    config.limits.max_wait = std::time::Duration::from_millis(args.max_wait_ms);
    config.partition_refresh = std::time::Duration::from_millis(args.topic_refresh_ms);
    let properties = args
        .kafka_properties
        .iter()
        .map(|p| split_pair(p, "--kafka-property").map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Result<_, _>>()?;
    let mut source = KafkaSource::new(&KafkaConfig {
        brokers: args.brokers.clone(),
        topics: args.topics.clone(),
        group_id: args.group.clone().unwrap_or_else(|| "cdc-lake".into()),
        join_group: args.group.is_some(),
        properties,
        allow_gaps: args.sync.allow_gaps,
    })?;
    let warehouse = open_sinks(&args.sync)?;
    let tty = std::io::stderr().is_terminal();
    let mut pipeline = Pipeline::new(config, warehouse.as_ref())?;
    serve_endpoints(&args.sync, &pipeline).await?;
    let stats = pipeline
        .run_stream(&mut source, &stop, |p| show_progress(p, tty, true))
        .await?;
    println!(
        "streamed {} records: {} events in {} commits ({} dead-lettered)",
        stats.records_read, stats.events_applied, stats.commits, stats.dead_lettered
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Sync(args) => runtime.block_on(sync(args)),
        Command::Run { config } => runtime.block_on(run_service(&config)),
        Command::Query(args) => runtime.block_on(inspect::query(args)),
        Command::Status(args) => runtime.block_on(inspect::status(args)),
        #[cfg(feature = "kafka")]
        Command::Stream(args) => runtime.block_on(stream(args)),
        #[cfg(feature = "iceberg")]
        Command::Iceberg(command) => runtime.block_on(maintenance::iceberg(command)),
        #[cfg(feature = "delta")]
        Command::Delta(command) => runtime.block_on(maintenance::delta(command)),
        #[cfg(feature = "hudi")]
        Command::Hudi(command) => runtime.block_on(maintenance::hudi(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{build_config, unescape, Cli, Command, HUDI_BATCH_EVENTS};
    use clap::Parser;

    fn max_events(args: &[&str]) -> usize {
        let cli = Cli::try_parse_from(["cdc-lake", "sync"].iter().chain(args)).unwrap();
        let Command::Sync(sync) = cli.command else {
            panic!("not sync")
        };
        build_config(&sync).unwrap().limits.max_events
    }

    #[test]
    fn hudi_backlogs_commit_in_bigger_batches_unless_told() {
        assert_eq!(max_events(&["--format", "jsonl"]), 200_000);
        assert_eq!(max_events(&["--format", "hudi"]), HUDI_BATCH_EVENTS);
        assert_eq!(
            max_events(&["--format", "hudi", "--max-batch-events", "7"]),
            7
        );
    }

    #[test]
    fn separators_unescape_as_in_connector_properties() {
        assert_eq!(unescape("\\n"), b"\n");
        assert_eq!(unescape("\\r\\n"), b"\r\n");
        assert_eq!(unescape("|\\t|"), b"|\t|");
        assert_eq!(unescape("a\\\\n"), b"a\\n");
        assert_eq!(unescape("\\x"), b"\\x");
        assert_eq!(unescape("end\\"), b"end\\");
    }
}
