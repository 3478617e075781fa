//! A root under which every table of the pipeline is an Iceberg table, and the catalog that
//! registers them (the embedded SQLite catalog, or a REST catalog).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cdc_core::model::TableId;
use cdc_core::sink::upsert::RetryPolicy;
use iceberg::io::FileIO;
use tokio::sync::OnceCell;

use crate::catalog::SqlCatalog;
use crate::commit::NextMetadata;
use crate::config::IcebergSinkConfig;
use crate::error::{IcebergSinkError, Result};
use crate::rest::RestCatalog;
use crate::table::{Loaded, Pointer};
use crate::table_catalog::{Committed, TableCatalog};

/// Iceberg tables under one local root, registered in `<root>/catalog.db`: table
/// `<schema>.<table>` is Iceberg namespace `<schema>`, table `<table>`, at
/// `<root>/<schema>/<table>/`. With a REST catalog ([`IcebergSinkConfig::rest`]), the catalog
/// registers the tables and picks their locations.
#[derive(Debug, Clone)]
pub struct IcebergWarehouse {
    root: PathBuf,
    catalog_path: String,
    config: Arc<IcebergSinkConfig>,
    catalog: Arc<OnceCell<TableCatalog>>,
    io: FileIO,
    conflicts: Arc<AtomicU64>,
}

impl IcebergWarehouse {
    /// A warehouse at `root` (a local directory or `file://` URL; created when missing).
    pub fn new(root: &str, config: IcebergSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let path = root.strip_prefix("file://").unwrap_or(root);
        if path.contains("://") {
            return Err(cdc_core::Error::Config(format!(
                "Iceberg warehouse `{root}`: only local directories are supported so far; \
                 give a path or a file:// URL"
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| cdc_core::Error::Io {
            path: path.to_string(),
            source: e,
        })?;
        let root = std::fs::canonicalize(path).map_err(|e| cdc_core::Error::Io {
            path: path.to_string(),
            source: e,
        })?;
        let catalog_path = match &config.catalog_path {
            Some(p) => p.clone(),
            None => root.join("catalog.db").display().to_string(),
        };
        Ok(IcebergWarehouse {
            root,
            catalog_path,
            config: Arc::new(config),
            catalog: Arc::new(OnceCell::new()),
            io: FileIO::new_with_fs(),
            conflicts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The warehouse directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite catalog file (unused with a REST catalog).
    pub fn catalog_path(&self) -> &str {
        &self.catalog_path
    }

    /// The warehouse's settings.
    pub fn config(&self) -> &IcebergSinkConfig {
        &self.config
    }

    /// The catalog name readers must open the catalog under.
    pub fn catalog_name(&self) -> &str {
        &self.config.catalog_name
    }

    /// The catalog (opened on first use).
    pub(crate) async fn catalog(&self) -> Result<&TableCatalog> {
        self.catalog
            .get_or_try_init(|| async {
                Ok(match &self.config.rest {
                    Some(rest) => TableCatalog::Rest(RestCatalog::connect(rest).await?),
                    None => TableCatalog::Sql(
                        SqlCatalog::open(&self.catalog_path, &self.config.catalog_name).await?,
                    ),
                })
            })
            .await
    }

    /// The embedded SQLite catalog; an error when the warehouse uses a REST catalog.
    pub async fn sql_catalog(&self) -> Result<&SqlCatalog> {
        match self.catalog().await? {
            TableCatalog::Sql(sql) => Ok(sql),
            TableCatalog::Rest(rest) => Err(IcebergSinkError::Rest {
                catalog: rest.uri().to_string(),
                context: "opening the SQLite catalog".into(),
                status: 0,
                message: "this warehouse commits through a REST catalog".into(),
            }),
        }
    }

    /// The directory of one table.
    pub fn table_location(&self, table: &TableId) -> String {
        self.root
            .join(&*table.namespace)
            .join(&*table.name)
            .display()
            .to_string()
    }

    /// The table's current metadata file, `None` when the catalog has no such table.
    pub async fn metadata_location(&self, table: &TableId) -> Result<Option<String>> {
        Ok(self.pointer(table).await?.map(|p| p.location))
    }

    /// Where the catalog points for `table`.
    pub(crate) async fn pointer(&self, table: &TableId) -> Result<Option<Pointer>> {
        self.catalog().await?.load(table).await
    }

    /// Commits `next` on top of `base` (see [`TableCatalog::commit`]).
    pub(crate) async fn commit(
        &self,
        table: &TableId,
        base: &Loaded,
        next: &NextMetadata,
    ) -> Result<Committed> {
        self.catalog()
            .await?
            .commit(
                &self.io,
                table,
                &base.metadata_location,
                &base.metadata,
                next,
            )
            .await
    }

    /// The file I/O the sinks use.
    pub fn file_io(&self) -> &FileIO {
        &self.io
    }

    /// The retry policy of commits to this warehouse's tables (conflicts counted across its
    /// sinks).
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.config.max_commit_attempts).counting_in(self.conflicts.clone())
    }

    /// Commit conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }
}
