//! DataFusion SQL over a warehouse's tables (feature `query`, in the CLI's `cdc-lake query`),
//! each read through its format's own reader: Delta through deltalake's table provider, Iceberg
//! through iceberg-datafusion's, Hudi through hudi-rs (its snapshot, in memory), jsonl from its
//! files (in memory).

use std::sync::Arc;

use crate::Format;
use cdc_core::model::TableId;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::TableReference;

/// Errors of a query: the format's, DataFusion's or ours, as text with their sources.
pub type BoxError = Box<dyn std::error::Error>;

/// How [`render`] prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object a line.
    Json,
}

/// Where a query finds the tables a statement names.
pub struct Tables<'a> {
    /// The warehouse (`--warehouse` of `sync`).
    pub warehouse: &'a str,
    /// The tables' format; `None`: each table is looked for in every format this build has.
    pub format: Option<Format>,
    /// The sink settings the tables were written with (Iceberg's catalog, for one).
    pub settings: Option<&'a str>,
}

impl Tables<'_> {
    /// Runs `sql` over the tables it names.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, BoxError> {
        let ctx = SessionContext::new();
        let statement = ctx
            .state()
            .sql_to_statement(sql, &datafusion::config::Dialect::Generic)?;
        for reference in ctx.state().resolve_table_references(&statement)? {
            self.register(&ctx, reference).await?;
        }
        // Boxed: the planner's futures are deep enough to overflow the layout computation.
        let plan = Box::pin(ctx.state().statement_to_plan(statement)).await?;
        let frame = Box::pin(ctx.execute_logical_plan(plan)).await?;
        Ok(Box::pin(frame.collect()).await?)
    }

    /// Registers the table `reference` names (`schema.table`) under that name.
    async fn register(
        &self,
        ctx: &SessionContext,
        reference: TableReference,
    ) -> Result<(), BoxError> {
        let Some(schema) = reference.schema() else {
            return Err(format!(
                "table `{reference}`: name tables as `schema.table` (e.g. public.customers)"
            )
            .into());
        };
        let table = TableId::new(schema, reference.table());
        let (format, provider) = self.provider(ctx, &table).await?;
        tracing::debug!(%table, format = format.name(), "table found");
        let catalog = ctx.catalog("datafusion").ok_or("no default catalog")?;
        if catalog.schema(schema).is_none() {
            catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        ctx.register_table(reference, provider)?;
        Ok(())
    }

    /// The table's provider, in `--format` or in the first compiled format that has it.
    async fn provider(
        &self,
        ctx: &SessionContext,
        table: &TableId,
    ) -> Result<(Format, Arc<dyn TableProvider>), BoxError> {
        let formats = match self.format {
            Some(format) => vec![format],
            None => compiled_formats(),
        };
        for format in formats {
            if let Some(provider) = self.provider_in(format, ctx, table).await? {
                return Ok((format, provider));
            }
        }
        let formats: Vec<&str> = match self.format {
            Some(f) => vec![f.name()],
            None => compiled_formats().iter().map(|f| f.name()).collect(),
        };
        Err(format!(
            "no table `{table}` at `{}` ({})",
            self.warehouse,
            formats.join(", ")
        )
        .into())
    }

    /// The table's provider in `format`; `None` when the warehouse has no such table in it.
    async fn provider_in(
        &self,
        format: Format,
        ctx: &SessionContext,
        table: &TableId,
    ) -> Result<Option<Arc<dyn TableProvider>>, BoxError> {
        let _ = ctx;
        match format {
            Format::Jsonl => jsonl_provider(self.warehouse, table),
            #[cfg(feature = "delta")]
            Format::Delta => Box::pin(delta_provider(self, ctx, table)).await,
            #[cfg(feature = "iceberg")]
            Format::Iceberg => Box::pin(iceberg_provider(self, table)).await,
            #[cfg(feature = "hudi")]
            Format::Hudi => Box::pin(hudi_provider(self, table)).await,
            #[allow(unreachable_patterns)]
            other => Err(format!("format `{}` is not in this build", other.name()).into()),
        }
    }
}

/// The formats this build reads, in the order `query` looks for a table.
fn compiled_formats() -> Vec<Format> {
    let mut formats = Vec::new();
    if cfg!(feature = "delta") {
        formats.push(Format::Delta);
    }
    if cfg!(feature = "iceberg") {
        formats.push(Format::Iceberg);
    }
    if cfg!(feature = "hudi") {
        formats.push(Format::Hudi);
    }
    formats.push(Format::Jsonl);
    formats
}

/// A local warehouse directory's path, `None` for an object store URL.
fn local_dir(warehouse: &str) -> Option<&std::path::Path> {
    let path = warehouse.strip_prefix("file://").unwrap_or(warehouse);
    (!path.contains("://")).then(|| std::path::Path::new(path))
}

/// The jsonl table's current rows, in memory.
fn jsonl_provider(
    warehouse: &str,
    table: &TableId,
) -> Result<Option<Arc<dyn TableProvider>>, BoxError> {
    let Some(dir) = local_dir(warehouse) else {
        return Ok(None);
    };
    let Some(loaded) = cdc_core::sink::JsonlWarehouse::new(dir).load(table)? else {
        return Ok(None);
    };
    let rows = loaded.sorted_rows()?;
    Ok(Some(Arc::new(MemTable::try_new(
        rows.schema(),
        vec![vec![rows]],
    )?)))
}

/// deltalake's provider of the table's latest version.
#[cfg(feature = "delta")]
async fn delta_provider(
    tables: &Tables<'_>,
    ctx: &SessionContext,
    table: &TableId,
) -> Result<Option<Arc<dyn TableProvider>>, BoxError> {
    if local_dir(tables.warehouse).is_some_and(|dir| !dir.join(&*table.namespace).exists()) {
        return Ok(None);
    }
    let warehouse = crate::delta_warehouse(tables.warehouse, tables.settings)?;
    let Some(loaded) = warehouse.sink(table).load().await? else {
        return Ok(None);
    };
    loaded.update_datafusion_session(&ctx.state())?;
    Ok(Some(loaded.table_provider().await?))
}

/// iceberg-datafusion's provider of the table's current snapshot, found through the catalog
/// the sink settings name (by default the warehouse's SQLite catalog, when there is one).
#[cfg(feature = "iceberg")]
async fn iceberg_provider(
    tables: &Tables<'_>,
    table: &TableId,
) -> Result<Option<Arc<dyn TableProvider>>, BoxError> {
    use iceberg::{NamespaceIdent, TableIdent};
    let local = local_dir(tables.warehouse);
    // Looking in a catalog that is not there would create it.
    if tables.settings.is_none() && local.is_some_and(|dir| !dir.join("catalog.db").exists()) {
        return Ok(None);
    }
    let warehouse = crate::iceberg_warehouse(tables.warehouse, tables.settings)?;
    let Some(location) = warehouse.metadata_location(table).await? else {
        return Ok(None);
    };
    let ident = TableIdent::new(
        NamespaceIdent::new(table.namespace.to_string()),
        table.name.to_string(),
    );
    let file_io = warehouse.file_io().clone();
    let loaded = iceberg::table::StaticTable::from_metadata_file(&location, ident, file_io).await?;
    let provider =
        iceberg_datafusion::IcebergStaticTableProvider::try_new_from_table(loaded.into_table())
            .await?;
    Ok(Some(Arc::new(provider)))
}

/// The table's snapshot as hudi-rs reads it, in memory.
#[cfg(feature = "hudi")]
async fn hudi_provider(
    tables: &Tables<'_>,
    table: &TableId,
) -> Result<Option<Arc<dyn TableProvider>>, BoxError> {
    let Some(loaded) = open_with_hudi_rs(tables.warehouse, tables.settings, table).await? else {
        return Ok(None);
    };
    let batches = loaded.read(&hudi::table::ReadOptions::new()).await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => Arc::new(loaded.get_schema_with_meta_fields().await?),
    };
    Ok(Some(Arc::new(MemTable::try_new(schema, vec![batches])?)))
}

/// The Hudi table as hudi-rs opens it (object-store settings from the environment); `None`
/// when a local warehouse has no such table.
#[cfg(feature = "hudi")]
pub(crate) async fn open_with_hudi_rs(
    warehouse: &str,
    settings: Option<&str>,
    table: &TableId,
) -> Result<Option<hudi::table::Table>, BoxError> {
    let location = crate::hudi_warehouse(warehouse, settings)?.table_location(table);
    if local_dir(&location).is_some_and(|dir| !dir.join(".hoodie").exists()) {
        return Ok(None);
    }
    let options: Vec<(String, String)> = crate::storage_options_from_env().into_iter().collect();
    Ok(Some(
        hudi::table::Table::new_with_options(&location, options).await?,
    ))
}

/// `batches` as `output` prints them.
pub fn render(batches: &[RecordBatch], output: Output) -> Result<String, BoxError> {
    use datafusion::arrow::{csv, json, util::pretty};
    Ok(match output {
        Output::Table => format!("{}\n", pretty::pretty_format_batches(batches)?),
        Output::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            for batch in batches {
                writer.write(batch)?;
            }
            String::from_utf8(writer.into_inner())?
        }
        Output::Json => {
            let mut writer = json::LineDelimitedWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            String::from_utf8(writer.into_inner())?
        }
    })
}
