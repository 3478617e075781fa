//! `cdc-iceberg`: cdc-lake's [`TableSink`] for Apache Iceberg (format v2, merge-on-read).
//!
//! Each folded [`ChangeSet`] becomes ONE Iceberg snapshot holding:
//! - a position-delete file (`file_path`, `pos`, sorted) naming the row of every changed or
//!   deleted key, found by pruning data files with their manifest bounds of the key column and
//!   reading only the key columns of the candidates ([`locate`]);
//! - a data file with the upserted rows (unchanged TOAST cells filled from the old rows);
//! - a data manifest and a delete manifest for them, the parent's manifests carried over, a
//!   manifest list, and the table's whole checkpoint in the snapshot summary
//!   (`cdc-lake.checkpoint`), so a restart resumes exactly where the table is and a replay is
//!   a no-op;
//! - the evolved schema when the source's schema grew (field ids kept; see [`schema`]).
//!
//! Other write modes ([`WriteMode`]): copy-on-write rewrites the touched data files instead of
//! writing delete files; equality deletes write the changed keys without looking for their
//! rows. Partitioned tables ([`IcebergSinkConfig::partition_by`]) get one position-delete file
//! per partition of the data files it names. [`maintenance`] compacts delete files away,
//! expires snapshots and lists orphan files.
//!
//! A truncate is a snapshot that removes every data and delete file. Widened types (int→long,
//! float→double, decimal precision) are promoted by readers at read time, so old files stay;
//! only a new column with a non-null default rewrites the table's live rows in the same
//! snapshot (module `promote`).
//!
//! The catalog is a SQLite file in the Iceberg JDBC layout ([`catalog`]), so pyiceberg's
//! `SqlCatalog` and Java's `JdbcCatalog` open the same tables; the snapshot becomes visible when
//! the catalog's `metadata_location` is swapped from the metadata file the attempt read to the
//! new one. Or it is an Iceberg REST catalog ([`rest`], [`IcebergSinkConfig::rest`]): the
//! commit sends the snapshot as updates with requirements on what the attempt read. Either way,
//! if another writer committed first, the attempt is redone on the new metadata.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};
//! let warehouse = IcebergWarehouse::new("/data/lake", IcebergSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse);
//! // pyiceberg: SqlCatalog("cdc_lake", uri="sqlite:////data/lake/catalog.db").load_table("public.customers")
//! # Ok(()) }
//! ```

mod attempt;
pub mod catalog;
mod commit;
mod config;
mod error;
mod files;
pub mod locate;
pub mod maintenance;
pub mod partition;
mod promote;
pub mod rest;
mod rewrite;
pub mod schema;
mod table;
mod table_catalog;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use cdc_core::schema::merge_schemas;
use cdc_core::sink::upsert::{resolve_upserts, ChangedKeys};
use cdc_core::sink::{CommitOutcome, TableSchema, TableSink, Warehouse};
use iceberg::io::FileIO;
use iceberg::spec::{FormatVersion, SortOrder, Struct, TableMetadataBuilder};
use tokio::sync::OnceCell;

use crate::catalog::SqlCatalog;
use crate::commit::{evolve_metadata, write_snapshot, Staged};
use crate::files::{write_data_files, write_equality_deletes, write_position_deletes};
use crate::locate::{locate, read_all_live, read_kept, Located};
use crate::rest::RestCatalog;
use crate::rewrite::RollingWriter;
use crate::schema::{iceberg_schema, schema_properties};
use crate::table::{FileCache, Loaded};
use crate::table_catalog::{Committed, NextMetadata, Pointer, TableCatalog};

pub use config::{
    BeforeCommitHook, FailPoint, IcebergSinkConfig, RestCatalogConfig, Secret, WriteMode,
    DEFAULT_CATALOG_NAME,
};
pub use error::{IcebergSinkError, Result};
pub use table::CHECKPOINT_SUMMARY;

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
            .join(&table.namespace)
            .join(&table.name)
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

    /// Attempts of one commit when other writers commit first.
    pub(crate) fn max_commit_attempts(&self) -> usize {
        self.config.max_commit_attempts
    }

    /// Commit conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> IcebergSink {
        IcebergSink {
            table: table.clone(),
            warehouse: self.clone(),
            fail_point: self.config.fail_point,
            commits: 0,
            cache: FileCache::default(),
        }
    }
}

#[async_trait]
impl Warehouse for IcebergWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The Iceberg sink of one table.
#[derive(Debug)]
pub struct IcebergSink {
    table: TableId,
    warehouse: IcebergWarehouse,
    fail_point: Option<FailPoint>,
    commits: usize,
    cache: FileCache,
}

impl IcebergSink {
    fn name(&self) -> String {
        self.table.to_string()
    }

    /// The table as the catalog points at it now, `None` when it does not exist yet.
    pub(crate) async fn load(&mut self) -> Result<Option<Loaded>> {
        let Some(pointer) = self.warehouse.pointer(&self.table).await? else {
            return Ok(None);
        };
        Ok(Some(
            Loaded::load(&self.name(), &self.warehouse.io, pointer, &mut self.cache).await?,
        ))
    }

    /// Creates the table from the first change set (or loads it when another writer created
    /// it first).
    async fn create(&mut self, changes: &ChangeSet) -> Result<Loaded> {
        let name = self.name();
        let config = &self.warehouse.config;
        if config.write_mode == WriteMode::EqualityDeletes && !config.partition_by.is_empty() {
            // Checked before anything is written: a partitioned table could never take an
            // equality-delete commit.
            return Err(IcebergSinkError::Layout {
                table: name,
                message: config::EQUALITY_PARTITIONED.into(),
            });
        }
        let keys = changes.key_columns.to_vec();
        let schema = iceberg_schema(&name, &changes.schema, None, 0, &keys)?;
        let spec = partition::partition_spec(&name, &schema, &self.warehouse.config.partition_by)?;
        let mut properties = self.warehouse.config.table_properties.clone();
        properties.extend(schema_properties(&changes.schema, &keys));
        let location = self.warehouse.table_location(&self.table);
        let metadata = TableMetadataBuilder::new(
            schema,
            spec,
            SortOrder::unsorted_order(),
            location.clone(),
            FormatVersion::V2,
            properties,
        )
        .and_then(|b| b.build())
        .map_err(error::iceberg_err(&name, "creating table metadata"))?
        .metadata;
        self.warehouse
            .catalog()
            .await?
            .create(&self.warehouse.io, &self.table, metadata)
            .await?;
        // Ours, or the one another writer registered first.
        self.load().await?.ok_or_else(|| IcebergSinkError::Layout {
            table: name,
            message: "the table vanished from the catalog right after it was created".into(),
        })
    }

    /// One attempt at committing `changes` on the table's current metadata.
    async fn try_apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        let name = self.name();
        let io = self.warehouse.io.clone();
        let loaded = match self.load().await? {
            Some(l) => l,
            None => self.create(changes).await?,
        };
        let committed = loaded.checkpoint(&name)?;
        if !committed.is_empty() && changes.checkpoint.is_covered_by(&committed) {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        let merged: SchemaRef = Arc::new(merge_schemas(
            &self.table,
            &loaded.logical,
            &changes.schema,
        )?);
        let evolved = merged != loaded.logical;
        let keys = Arc::new(ChangedKeys::new(changes, &merged, &loaded.key_columns)?);

        let mut staged = Staged::default();
        if evolved {
            staged.schema = Some(iceberg_schema(
                &name,
                &merged,
                Some(&loaded.schema()),
                loaded.metadata.last_column_id(),
                &loaded.key_columns,
            )?);
            staged.properties = schema_properties(&merged, &loaded.key_columns);
        }
        // Widened types are promoted by readers at read time; only a new column with a
        // non-null default (or a change Iceberg cannot promote) rewrites the live rows.
        let rewrite_all = match &staged.schema {
            Some(next) if !loaded.data_files.is_empty() => {
                promote::rewrites_rows(&loaded.logical, &merged, &loaded.schema(), next)
            }
            _ => false,
        };
        let evolved = evolve_metadata(&name, &loaded, &staged)?;
        let metadata = &evolved.metadata;
        let need_old = !keys.unchanged.is_empty();
        let equality = self.warehouse.config.write_mode == WriteMode::EqualityDeletes;
        if equality && !metadata.default_partition_spec().is_unpartitioned() {
            return Err(IcebergSinkError::Layout {
                table: name,
                message: "write_mode equality-deletes needs an unpartitioned table (a key-only \
                          delete does not say which partition its row is in); use \
                          position-deletes"
                    .into(),
            });
        }

        // A whole-table rewrite streams: each data file's live rows are written as read.
        let mut rewriter =
            rewrite_all.then(|| RollingWriter::new(&name, &io, metadata, merged.clone()));
        let (kept, located) = if changes.truncate {
            staged.remove_all = true;
            let located = Located {
                old_row: vec![None; keys.upserts.num_rows()],
                ..Located::default()
            };
            (None, located)
        } else if let Some(out) = rewriter.as_mut() {
            staged.remove_all = true;
            let located = read_all_live(
                &self.table,
                &io,
                &loaded,
                Some(&keys),
                &merged,
                &mut self.cache,
                out,
            )
            .await?;
            (None, located)
        } else if equality && !need_old {
            // Equality deletes name keys, not rows: nothing to find.
            let located = Located {
                old_row: vec![None; keys.upserts.num_rows()],
                deleted: changes.deletes.num_rows() as u64,
                ..Located::default()
            };
            (None, located)
        } else {
            let located = locate(
                &self.table,
                &io,
                &loaded,
                &keys,
                &merged,
                need_old,
                &mut self.cache,
            )
            .await?;
            (None, located)
        };
        let empty = RecordBatch::new_empty(merged.clone());
        let old = located.old.as_ref().unwrap_or(&empty);
        let resolved = resolve_upserts(changes, &keys, old, &located.old_row)?;
        let copy_on_write = self.warehouse.config.write_mode == WriteMode::CopyOnWrite
            && !staged.remove_all
            && !located.positions.is_empty();
        let kept = if copy_on_write {
            let (kept, removed) = read_kept(
                &self.table,
                &io,
                &loaded,
                &located.positions,
                &merged,
                &mut self.cache,
            )
            .await?;
            staged.removed = removed;
            Some(kept)
        } else {
            kept
        };
        let rows = match kept {
            Some(kept) => arrow_select::concat::concat_batches(&merged, [&kept, &resolved])
                .map_err(|e| cdc_core::Error::arrow("joining kept and new rows", e))?,
            None => resolved.clone(),
        };

        staged.data = match rewriter {
            Some(mut out) => {
                out.push(rows).await?;
                out.finish().await?.0
            }
            None => write_data_files(&name, &io, metadata, &rows).await?,
        };
        if equality && !staged.remove_all {
            if !keys.is_empty() {
                let key_rows = changed_keys_batch(&self.table, &keys)?;
                staged.deletes =
                    vec![write_equality_deletes(&name, &io, metadata, &key_rows).await?];
            }
        } else if !staged.remove_all && !copy_on_write && !located.positions.is_empty() {
            let partitions: HashMap<&str, &Struct> = loaded
                .data_files
                .iter()
                .map(|f| (f.path(), f.entry.data_file.partition()))
                .collect();
            staged.deletes =
                write_position_deletes(&name, &io, metadata, &located.positions, &partitions)
                    .await?;
        }
        let mut full = committed.clone();
        full.merge(&changes.checkpoint);
        staged.checkpoint = full.to_json();
        let next = write_snapshot(&name, &io, &loaded, evolved, &staged).await?;
        let snapshot_id = next.snapshot_id().unwrap_or_default();

        if self.fail_now(FailPoint::AfterDataFiles) {
            return Err(IcebergSinkError::FailPoint {
                table: name,
                point: FailPoint::AfterDataFiles,
            });
        }
        if let Some(hook) = &self.warehouse.config.before_commit {
            (hook.0)().await;
        }
        let committed = self.warehouse.commit(&self.table, &loaded, &next).await?;
        self.commits += 1;
        if self.fail_now(FailPoint::AfterCommit) {
            return Err(IcebergSinkError::FailPoint {
                table: name,
                point: FailPoint::AfterCommit,
            });
        }
        let rows_deleted = if changes.truncate {
            loaded
                .data_files
                .iter()
                .map(|f| f.entry.data_file.record_count())
                .sum::<u64>()
                .saturating_sub(
                    loaded
                        .delete_files
                        .iter()
                        .map(|f| f.entry.data_file.record_count())
                        .sum(),
                )
        } else {
            located.deleted
        };
        tracing::debug!(table = %self.table, snapshot_id, metadata = committed.location, rows = resolved.num_rows(), "iceberg commit");
        Ok(CommitOutcome::Committed {
            version: snapshot_id.to_string(),
            rows_written: resolved.num_rows() as u64,
            rows_deleted,
        })
    }

    /// Whether a crash test stops here (once).
    fn fail_now(&mut self, point: FailPoint) -> bool {
        let n = self.warehouse.config.fail_after_commits;
        let due = match point {
            FailPoint::AfterDataFiles => self.commits >= n,
            FailPoint::AfterCommit => self.commits > n,
        };
        if self.fail_point == Some(point) && due {
            self.fail_point = None;
            return true;
        }
        false
    }
}

/// Every key a change set touches (upserted or deleted), as a batch of the key columns.
fn changed_keys_batch(table: &TableId, keys: &ChangedKeys) -> Result<RecordBatch> {
    let fields = keys.key_fields().to_vec();
    let columns = fields
        .iter()
        .zip(&keys.deletes)
        .map(|(f, deleted)| {
            let upserted = keys.upserts.column_by_name(f.name()).ok_or_else(|| {
                cdc_core::Error::MissingKey {
                    table: table.to_string(),
                    message: format!("upserts lack key column `{}`", f.name()),
                }
            })?;
            arrow_select::concat::concat(&[upserted.as_ref(), deleted.as_ref()])
                .map_err(|e| cdc_core::Error::arrow("collecting changed keys", e))
        })
        .collect::<cdc_core::Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| cdc_core::Error::arrow("collecting changed keys", e).into())
}

#[async_trait]
impl TableSink for IcebergSink {
    fn table(&self) -> &TableId {
        &self.table
    }

    async fn schema(&mut self) -> cdc_core::Result<Option<TableSchema>> {
        Ok(self.load().await?.map(|l| TableSchema {
            schema: l.logical,
            key_columns: l.key_columns,
        }))
    }

    async fn committed_checkpoint(&mut self) -> cdc_core::Result<Option<Checkpoint>> {
        match self.load().await? {
            Some(l) => Ok(Some(l.checkpoint(&self.name())?)),
            None => Ok(None),
        }
    }

    async fn apply(&mut self, changes: &ChangeSet) -> cdc_core::Result<CommitOutcome> {
        // The loop of attempt::with_retries, written out: its attempt borrows the sink mutably.
        let (warehouse, table) = (self.warehouse.clone(), self.table.clone());
        let mut retries = attempt::Retries::new(&warehouse, &table);
        loop {
            if let Some(result) = retries.settle(self.try_apply(changes).await).await {
                return Ok(result?);
            }
        }
    }
}
