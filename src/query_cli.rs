//! `cdc-lake query "SQL"`: the command line of [`cdc_lake::query`].

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
    let settings = match &args.sink_config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
        ),
        None => None,
    };
    let tables = Tables {
        warehouse: &args.warehouse,
        format: args.format,
        settings: settings.as_deref(),
    };
    let batches = Box::pin(tables.run(&args.sql)).await?;
    print!("{}", render(&batches, args.output.into())?);
    Ok(())
}
