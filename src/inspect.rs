//! The commands that read the tables: `cdc-lake query "SQL"` ([`cdc_lake::query`]) and
//! `cdc-lake status` ([`cdc_lake::status`]).

use std::path::PathBuf;

use cdc_lake::query::{render, BoxError, Tables};
use cdc_lake::Format;

/// `query`'s arguments.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// SQL in DataFusion's dialect; tables are named `schema.table`.
    sql: String,
    /// The warehouse the tables are in (`--warehouse` of `sync`).
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// The tables' format (default: each table is looked for in every format this build has).
    #[arg(long)]
    format: Option<Format>,
    /// The sink settings the tables were written with (`--sink-config` of `sync`): Iceberg's
    /// catalog, for one.
    #[arg(long, value_name = "FILE")]
    sink_config: Option<PathBuf>,
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
    let settings = read_settings(args.sink_config.as_ref())?;
    let tables = Tables {
        warehouse: &args.warehouse,
        format: args.format,
        settings: settings.as_deref(),
    };
    let batches = Box::pin(tables.run(&args.sql)).await?;
    print!("{}", render(&batches, args.output.into())?);
    Ok(())
}

/// `status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The warehouse (`--warehouse` of `sync`).
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// Only tables of this format.
    #[arg(long)]
    format: Option<Format>,
    /// The sink settings the tables were written with (`--sink-config` of `sync`).
    #[arg(long, value_name = "FILE")]
    sink_config: Option<PathBuf>,
}

/// Prints every table of the warehouse: format, rows, files, last commit, checkpoint.
pub async fn status(args: StatusArgs) -> Result<(), BoxError> {
    let settings = read_settings(args.sink_config.as_ref())?;
    let tables = Box::pin(cdc_lake::status::status(
        &args.warehouse,
        args.format,
        settings.as_deref(),
    ))
    .await?;
    if tables.is_empty() {
        println!("no tables at `{}`", args.warehouse);
    }
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
                println!("  {topic}[{partition}]: next offset {next}");
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
