//! The commands that read the tables: `cdc-lake query "SQL"` ([`cdc_lake::query`]) and
//! `cdc-lake status` ([`cdc_lake::status`]).

use std::path::PathBuf;

use cdc_lake::query::{render, BoxError, Tables};
use cdc_lake::Format;

/// Where the tables are: the arguments `query` and `status` share.
#[derive(Debug, clap::Args)]
pub struct WarehouseArgs {
    /// The warehouse the tables are in (`--warehouse` of `sync`).
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// The tables' format (default: every format this build has).
    #[arg(long)]
    format: Option<Format>,
    /// The sink settings the tables were written with (`--sink-config` of `sync`): Iceberg's
    /// catalog, for one.
    #[arg(long, value_name = "FILE")]
    sink_config: Option<PathBuf>,
}

/// `query`'s arguments.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// SQL in DataFusion's dialect; tables are named `schema.table`.
    sql: String,
    #[command(flatten)]
    at: WarehouseArgs,
    /// How rows are printed.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// How `query` prints rows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object a line.
    Json,
}

impl From<Output> for cdc_lake::query::Output {
    fn from(output: Output) -> Self {
        match output {
            Output::Table => Self::Table,
            Output::Csv => Self::Csv,
            Output::Json => Self::Json,
        }
    }
}

/// Runs `args.sql` and prints the rows.
pub async fn query(args: QueryArgs) -> Result<(), BoxError> {
    let settings = read_settings(args.at.sink_config.as_ref())?;
    let tables = Tables {
        warehouse: &args.at.warehouse,
        format: args.at.format,
        settings: settings.as_deref(),
    };
    let batches = Box::pin(tables.run(&args.sql)).await?;
    print!("{}", render(&batches, args.output.into())?);
    Ok(())
}

/// `status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    at: WarehouseArgs,
    /// The raw files the tables are synced from (`--source` of `sync`): each partition's lag
    /// is where its files end minus the table's checkpoint.
    #[arg(long)]
    source: Option<String>,
    /// The Kafka brokers the tables stream from: each partition's lag is its end minus the
    /// table's checkpoint.
    #[cfg(feature = "kafka")]
    #[arg(long)]
    brokers: Option<String>,
    /// librdkafka property `KEY=VALUE` for `--brokers` (security, SASL). Repeatable.
    #[cfg(feature = "kafka")]
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
}

/// Prints every table of the warehouse: format, rows, files, last commit, checkpoint.
pub async fn status(args: StatusArgs) -> Result<(), BoxError> {
    let (at, settings) = (&args.at, read_settings(args.at.sink_config.as_ref())?);
    let listed = cdc_lake::status::status(&at.warehouse, at.format, settings.as_deref());
    let tables = Box::pin(listed).await?;
    if tables.is_empty() {
        println!("no tables at `{}`", at.warehouse);
    }
    let mut ends = SourceEnds::of(&args).await?;
    for t in tables {
        let missing = || "-".to_string();
        println!(
            "{}: {} version {}, {} rows in {} files, committed {}",
            t.table,
            t.format.name(),
            t.version.unwrap_or_else(missing),
            t.rows,
            t.files.map_or_else(missing, |f| f.to_string()),
            t.committed_at.unwrap_or_else(missing),
        );
        for (topic, partitions) in &t.checkpoint.offsets {
            for (partition, next) in partitions {
                let lag = match ends.end(topic, *partition)? {
                    Some(end) => format!(", source ends at {end}: lag {}", (end - next).max(0)),
                    None => String::new(),
                };
                println!("  {topic}[{partition}]: next offset {next}{lag}");
            }
        }
    }
    Ok(())
}

/// The text of a `--sink-config` file.
fn read_settings(path: Option<&PathBuf>) -> Result<Option<String>, BoxError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    Ok(Some(text))
}

/// Where the source's partitions end, when `status` was given one.
enum SourceEnds {
    None,
    Raw(std::collections::BTreeMap<(String, i32), i64>),
    #[cfg(feature = "kafka")]
    Kafka(Box<cdc_core::source::kafka::KafkaSource>),
}

impl SourceEnds {
    async fn of(args: &StatusArgs) -> Result<SourceEnds, BoxError> {
        if let Some(location) = &args.source {
            let source = cdc_core::source::raw::RawFileSource::open(location).await?;
            return Ok(SourceEnds::Raw(source.end_offsets().await?));
        }
        #[cfg(feature = "kafka")]
        if let Some(brokers) = &args.brokers {
            let properties = (args.kafka_properties.iter())
                .map(|p| crate::split_pair(p, "--kafka-property"))
                .map(|pair| pair.map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Result<_, _>>()?;
            let source =
                cdc_core::source::kafka::KafkaSource::new(&cdc_core::source::kafka::KafkaConfig {
                    brokers: brokers.clone(),
                    topics: ".*".into(),
                    group_id: "cdc-lake-status".into(),
                    join_group: false,
                    properties,
                    allow_gaps: false,
                })?;
            return Ok(SourceEnds::Kafka(Box::new(source)));
        }
        Ok(SourceEnds::None)
    }

    /// The end of `topic`/`partition`, if there is a source.
    fn end(&mut self, topic: &str, partition: i32) -> Result<Option<i64>, BoxError> {
        Ok(match self {
            SourceEnds::None => None,
            SourceEnds::Raw(ends) => ends.get(&(topic.to_string(), partition)).copied(),
            #[cfg(feature = "kafka")]
            SourceEnds::Kafka(source) => Some(source.end_offset_now(topic, partition)?),
        })
    }
}
