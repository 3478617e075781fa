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
use crate::error::{iceberg_err, IcebergSinkError, Result};
use crate::rest::RestCatalog;
use crate::storage;
use crate::table::{Loaded, Pointer};
use crate::table_catalog::{Committed, TableCatalog};

/// Iceberg tables under one root, registered in `<root>/catalog.db`: table `<schema>.<table>`
/// is Iceberg namespace `<schema>`, table `<table>`, at `<root>/<schema>/<table>/`. With a REST
/// catalog ([`IcebergSinkConfig::rest`]), the catalog registers the tables and picks their
/// locations. The root is a local directory or an object store URL (`s3://bucket/prefix`, its
/// credentials from the `AWS_*` environment); a SQLite catalog is a local file, so a warehouse on
/// an object store names it (`catalog_path`) or uses a REST catalog.
#[derive(Debug, Clone)]
pub struct IcebergWarehouse {
    /// The root as tables' locations start: a canonical local path or a URL.
    location: String,
    local_root: Option<PathBuf>,
    catalog_path: String,
    config: Arc<IcebergSinkConfig>,
    catalog: Arc<OnceCell<TableCatalog>>,
    io: FileIO,
    conflicts: Arc<AtomicU64>,
}

impl IcebergWarehouse {
    /// A warehouse at `root`: a local directory or `file://` URL (created when missing), or an
    /// object store URL such as `s3://bucket/prefix`.
    pub fn new(root: &str, config: IcebergSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let (location, local_root, catalog_path) = match storage::is_remote(root) {
            true => Self::remote_root(root, &config)?,
            false => Self::local_root_of(root, &config)?,
        };
        Ok(IcebergWarehouse {
            location,
            local_root,
            catalog_path,
            config: Arc::new(config),
            catalog: Arc::new(OnceCell::new()),
            io: storage::lake_file_io(),
            conflicts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The location, no local root and the catalog file of a warehouse on an object store.
    fn remote_root(
        root: &str,
        config: &IcebergSinkConfig,
    ) -> cdc_core::Result<(String, Option<PathBuf>, String)> {
        // Opens the store once to fail early on a bad URL or a build without its feature.
        cdc_core::source::raw::object_store_from_url(root)?;
        let catalog_owned = config.rest.is_some() || config.glue.is_some();
        let catalog_path = match (&config.catalog_path, catalog_owned) {
            (Some(p), _) if p.contains("://") => {
                return Err(cdc_core::Error::Config(format!(
                    "Iceberg `catalog_path` `{p}`: the SQLite catalog is a local file"
                )))
            }
            (Some(p), _) => p.clone(),
            (None, true) => String::new(),
            (None, false) => {
                return Err(cdc_core::Error::Config(format!(
                    "Iceberg warehouse `{root}` is on an object store, where a SQLite catalog \
                     cannot live: set `catalog_path` (a local file), `rest` or `glue` in the \
                     sink config"
                )))
            }
        };
        Ok((root.trim_end_matches('/').to_string(), None, catalog_path))
    }

    /// The location, local root and catalog file of a warehouse in a local directory.
    fn local_root_of(
        root: &str,
        config: &IcebergSinkConfig,
    ) -> cdc_core::Result<(String, Option<PathBuf>, String)> {
        let path = root.strip_prefix("file://").unwrap_or(root);
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
        Ok((root.display().to_string(), Some(root), catalog_path))
    }

    /// Where the warehouse's tables are: its canonical local path or its URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The warehouse directory, when it is local.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
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
                #[cfg(feature = "glue")]
                if let Some(glue) = &self.config.glue {
                    return Ok(TableCatalog::Glue(
                        crate::glue::GlueCatalog::connect(glue, &self.location).await?,
                    ));
                }
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
            #[cfg(feature = "glue")]
            TableCatalog::Glue(glue) => Err(IcebergSinkError::Rest {
                catalog: glue.endpoint().to_string(),
                context: "opening the SQLite catalog".into(),
                status: 0,
                message: "this warehouse commits through the Glue Data Catalog".into(),
            }),
        }
    }

    /// The directory of one table.
    pub fn table_location(&self, table: &TableId) -> String {
        match &self.local_root {
            Some(root) => (root.join(&*table.namespace).join(&*table.name))
                .display()
                .to_string(),
            None => format!("{}/{}/{}", self.location, table.namespace, table.name),
        }
    }

    /// The table's current metadata file, `None` when the catalog has no such table.
    pub async fn metadata_location(&self, table: &TableId) -> Result<Option<String>> {
        Ok(self.pointer(table).await?.map(|p| p.location))
    }

    /// `table` as iceberg-rust opens it for reading (its scans), at the metadata the catalog
    /// points at now; `None` when there is no table.
    pub async fn read_only_table(&self, table: &TableId) -> Result<Option<iceberg::table::Table>> {
        let Some(location) = self.metadata_location(table).await? else {
            return Ok(None);
        };
        let metadata = iceberg::spec::TableMetadata::read_from(self.file_io(), &location)
            .await
            .map_err(iceberg_err(table, format!("reading {location}")))?;
        let ident = iceberg::TableIdent::new(
            iceberg::NamespaceIdent::new(table.namespace.to_string()),
            table.name.to_string(),
        );
        let opened = iceberg::table::Table::builder()
            .metadata(metadata)
            .metadata_location(location)
            .identifier(ident)
            .file_io(self.file_io().clone())
            .runtime(iceberg::Runtime::current())
            .readonly(true)
            .build()
            .map_err(iceberg_err(table, "opening the table to read"))?;
        Ok(Some(opened))
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
