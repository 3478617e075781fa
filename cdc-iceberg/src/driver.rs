//! The Iceberg format's driver of cdc-core's upsert engine, and the warehouse's sinks: loading
//! a table through the catalog, creating it, staging a snapshot ([`crate::write`]) and
//! committing it through the catalog.

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::maintenance::Every;
use cdc_core::sink::upsert::{
    Attempt, ChangedKeys, CommitControl, Committed, TableView, UpsertDriver, UpsertSink,
};
use cdc_core::sink::{TableSink, Warehouse};
use iceberg::spec::{FormatVersion, SortOrder, TableMetadata, TableMetadataBuilder};

use crate::config::{WriteMode, EQUALITY_PARTITIONED};
use crate::error::{iceberg_err, IcebergSinkError, Result};
use crate::partition::partition_spec;
use crate::schema::{iceberg_schema, schema_properties};
use crate::table::{FileCache, Loaded};
use crate::warehouse::IcebergWarehouse;
use crate::write::{stage, Snapshot};

/// Iceberg's table property: the age past which snapshots expire.
const MAX_SNAPSHOT_AGE_MS: &str = "history.expire.max-snapshot-age-ms";
/// Iceberg's table property: whether files may be deleted by expiry.
const GC_ENABLED: &str = "gc.enabled";
/// Iceberg's table property: snapshots kept whatever their age.
const MIN_SNAPSHOTS_TO_KEEP: &str = "history.expire.min-snapshots-to-keep";

/// The Iceberg sink of one table.
pub type IcebergSink = UpsertSink<IcebergDriver>;

impl IcebergWarehouse {
    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> IcebergSink {
        let control = CommitControl::new(self.retry_policy(), self.config().test_hooks.clone());
        UpsertSink::new(IcebergDriver {
            table: table.clone(),
            warehouse: self.clone(),
            control,
            cache: FileCache::default(),
            last_commit: None,
            expiry: Every::new(self.config().expire_snapshots_every as u64),
            compaction: Every::new(self.config().compact_every as u64),
        })
    }
}

#[async_trait]
impl Warehouse for IcebergWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The Iceberg format's driver of the upsert engine (see the crate docs).
#[derive(Debug)]
pub struct IcebergDriver {
    table: TableId,
    warehouse: IcebergWarehouse,
    control: CommitControl,
    /// Manifests and delete files already read (immutable, so read once).
    cache: FileCache,
    /// The metadata file of our last commit and its contents: when the catalog still points
    /// at it, the next load need not read and parse it again (it holds every snapshot).
    last_commit: Option<(String, TableMetadata)>,
    /// The sink's own snapshot expiry and compaction.
    expiry: Every,
    compaction: Every,
}

impl IcebergDriver {
    /// Compacts every [`compact_every`](crate::IcebergSinkConfig::compact_every) commits (at
    /// most `compact_max_bytes` read). The commit is done: a failure is logged and the next
    /// run tries again.
    async fn compact_on_schedule(&mut self) {
        if !self.compaction.due() {
            return;
        }
        let config = self.warehouse.config();
        let options = crate::compact::CompactOptions {
            max_bytes: config.compact_max_bytes,
            ..Default::default()
        };
        let table = &self.table;
        match crate::compact::compact_files(&self.warehouse, table, &options).await {
            Ok(Some(c)) => {
                tracing::info!(%table, files = ?c.data_files, deletes = c.delete_files, "compacted")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%table, error = %e, "compaction failed; retried later"),
        }
    }

    /// Expires snapshots every [`expire_snapshots_every`](crate::IcebergSinkConfig::expire_snapshots_every)
    /// commits, as the table's `history.expire.*` properties say. The commit is done: a
    /// failure is logged and the next run tries again.
    async fn expire_on_schedule(&mut self, properties: &std::collections::HashMap<String, String>) {
        if !self.expiry.due() {
            return;
        }
        // Iceberg's switch for deleting files: no expiry on a table that turned it off.
        if properties
            .get(GC_ENABLED)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        {
            return;
        }
        let setting = |key: &str, default: i64| {
            properties
                .get(key)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default)
        };
        let max_age_ms = setting(MAX_SNAPSHOT_AGE_MS, 5 * 24 * 3_600_000).max(0);
        let keep = setting(MIN_SNAPSHOTS_TO_KEEP, 1).max(1) as usize;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let expired = crate::maintenance::expire_snapshots(
            &self.warehouse,
            &self.table,
            now_ms - max_age_ms,
            keep,
        )
        .await;
        match expired {
            Ok(files) => {
                tracing::info!(table = %self.table, files = files.len(), "expired snapshots")
            }
            Err(e) => {
                tracing::warn!(table = %self.table, error = %e, "expiring snapshots failed; retried later")
            }
        }
    }

    fn name(&self) -> String {
        self.table.to_string()
    }

    /// The table as the catalog points at it now, `None` when it does not exist yet.
    pub(crate) async fn load(&mut self) -> Result<Option<Loaded>> {
        let Some(mut pointer) = self.warehouse.pointer(&self.table).await? else {
            return Ok(None);
        };
        if let Some((location, metadata)) = self.last_commit.take() {
            // Metadata files never change: the same location is the same metadata.
            if pointer.metadata.is_none() && pointer.location == location {
                pointer.metadata = Some(metadata);
            }
        }
        let io = self.warehouse.file_io();
        Ok(Some(
            Loaded::load(&self.name(), io, pointer, &mut self.cache).await?,
        ))
    }

    /// Creates the table from the first change set (or loads it when another writer created
    /// it first).
    async fn create(&mut self, changes: &ChangeSet) -> Result<Loaded> {
        let name = self.name();
        let config = self.warehouse.config();
        if config.write_mode == WriteMode::EqualityDeletes && !config.partition_by.is_empty() {
            // Checked before anything is written: a partitioned table could never take an
            // equality-delete commit.
            return Err(IcebergSinkError::Layout {
                table: name,
                message: EQUALITY_PARTITIONED.into(),
            });
        }
        let keys = changes.key_columns.to_vec();
        let schema = iceberg_schema(&name, &changes.schema, None, 0, &keys)?;
        let spec = partition_spec(&name, &schema, &config.partition_by)?;
        let mut properties = config.table_properties.clone();
        properties.extend(schema_properties(&changes.schema, &keys));
        let metadata = TableMetadataBuilder::new(
            schema,
            spec,
            SortOrder::unsorted_order(),
            self.warehouse.table_location(&self.table),
            FormatVersion::V2,
            properties,
        )
        .and_then(|b| b.build())
        .map_err(iceberg_err(&name, "creating table metadata"))?
        .metadata;
        let io = self.warehouse.file_io().clone();
        let catalog = self.warehouse.catalog().await?;
        catalog.create(&io, &self.table, metadata).await?;
        // Ours, or the one another writer registered first.
        self.load().await?.ok_or_else(|| IcebergSinkError::Layout {
            table: name,
            message: "the table vanished from the catalog right after it was created".into(),
        })
    }
}

#[async_trait]
impl UpsertDriver for IcebergDriver {
    type State = Loaded;
    type Staged = Snapshot;
    type Error = IcebergSinkError;

    fn table(&self) -> &TableId {
        &self.table
    }

    fn control(&mut self) -> &mut CommitControl {
        &mut self.control
    }

    async fn load_table(&mut self) -> Result<Option<Loaded>> {
        self.load().await
    }

    async fn create_table(&mut self, changes: &ChangeSet) -> Result<Loaded> {
        self.create(changes).await
    }

    fn view(&self, state: &Loaded) -> Result<TableView> {
        Ok(TableView {
            schema: Some(state.logical.clone()),
            key_columns: state.key_columns.clone(),
            checkpoint: state.checkpoint(&self.name())?,
        })
    }

    async fn stage(&mut self, attempt: Attempt<'_, Loaded>) -> Result<Snapshot> {
        let io = self.warehouse.file_io().clone();
        let mode = self.warehouse.config().write_mode;
        stage(&self.table, &io, mode, attempt, &mut self.cache).await
    }

    async fn lookup(
        &mut self,
        state: &Loaded,
        keys: Arc<ChangedKeys>,
        every_row: bool,
    ) -> Result<RecordBatch> {
        let io = self.warehouse.file_io().clone();
        crate::write::lookup(&self.table, &io, state, keys, every_row, &mut self.cache).await
    }

    async fn commit(&mut self, s: Snapshot) -> Result<Committed> {
        let committed = self
            .warehouse
            .commit(&self.table, &s.loaded, &s.next)
            .await?;
        tracing::debug!(table = %self.table, metadata = committed.location, "iceberg commit");
        let properties = committed.metadata.properties().clone();
        self.last_commit = Some((committed.location, committed.metadata));
        self.compact_on_schedule().await;
        self.expire_on_schedule(&properties).await;
        Ok(Committed {
            version: s.next.snapshot_id().unwrap_or_default().to_string(),
            rows_written: s.rows_written,
            rows_deleted: s.rows_deleted,
        })
    }

    fn is_conflict(error: &IcebergSinkError) -> bool {
        error.is_retryable()
    }
}
