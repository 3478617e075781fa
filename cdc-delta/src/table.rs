//! One Delta table as a commit attempt reads it: the latest version, its logical schema and
//! key, and the checkpoint of cdc-lake's last commit; and creating the table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStoreExt;
use url::Url;

use crate::config::DeltaSinkConfig;
use crate::error::{DeltaSinkError, Result};
use crate::files::FileIndex;
use crate::schema;

/// Table property holding the primary-key columns (JSON list).
pub const KEY_COLUMNS_PROPERTY: &str = "cdc-lake.keyColumns";
/// `commitInfo` field holding the table's whole checkpoint after the commit.
pub const CHECKPOINT_COMMIT_INFO: &str = "cdc-lake.checkpoint";

/// The Delta `txn` application id of a topic-partition.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("cdc-lake:{topic}:{partition}")
}

/// How many commits back the checkpoint is looked for (other writers' commits in between,
/// such as `OPTIMIZE`, are skipped).
const HISTORY_DEPTH: usize = 10_000;
/// The table property that lets writers add deletion vectors.
pub(crate) const ENABLE_DELETION_VECTORS: &str = "delta.enableDeletionVectors";

/// The table at its latest version.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The delta-rs table as last loaded: its schema, properties and protocol are current
    /// (a commit that changes them loads it again), its version and files may not be.
    pub table: DeltaTable,
    /// The latest version.
    pub(crate) version: u64,
    /// The live data files at `version`.
    pub(crate) files: Arc<FileIndex>,
    /// Its logical schema.
    pub logical: SchemaRef,
    /// Its primary key.
    pub key_columns: Vec<String>,
    /// The checkpoint of cdc-lake's last commit.
    pub checkpoint: Checkpoint,
}

/// One table of a warehouse: where it is and with which settings it is written.
#[derive(Debug, Clone)]
pub(crate) struct TableLocation {
    pub table: TableId,
    pub url: Url,
    pub config: Arc<DeltaSinkConfig>,
    /// Where the table is registered in Glue (with `glue` settings).
    #[cfg(feature = "glue")]
    pub glue: Option<Arc<cdc_core::glue::GlueRegistry>>,
}

impl TableLocation {
    /// The table's URL without credentials.
    pub fn location(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    }

    pub(crate) fn delta_err(
        &self,
        context: &'static str,
    ) -> impl Fn(DeltaTableError) -> DeltaSinkError + '_ {
        move |source| DeltaSinkError::Delta {
            table: self.table.to_string(),
            location: self.location(),
            context,
            source: Box::new(source),
        }
    }

    /// The table at its latest version, or `None` when there is no table yet.
    pub async fn load(&self) -> Result<Option<DeltaTable>> {
        if let Ok(dir) = self.url.to_file_path() {
            // delta-rs refuses local locations that do not exist yet.
            std::fs::create_dir_all(&dir).map_err(|e| {
                DeltaSinkError::Core(cdc_core::Error::Io {
                    path: dir.display().to_string(),
                    source: e,
                })
            })?;
        }
        let mut table = self.open().await?;
        if !table
            .verify_deltatable_existence()
            .await
            .map_err(self.delta_err("checking for the table"))?
        {
            return Ok(None);
        }
        table.load().await.map_err(self.delta_err("loading"))?;
        Ok(Some(table))
    }

    /// Whether log entry `version` exists (another writer committed after the table we hold).
    pub(crate) async fn has_commit(&self, table: &DeltaTable, version: u64) -> Result<bool> {
        let path = deltalake::logstore::commit_uri_from_version(Some(version));
        match table.log_store().object_store(None).head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.delta_err("looking for new commits")(e.into())),
        }
    }

    async fn open(&self) -> Result<DeltaTable> {
        DeltaTable::try_from_url_with_storage_options(
            self.url.clone(),
            self.config.storage_options.clone(),
        )
        .await
        .map_err(self.delta_err("opening"))
    }

    /// Schema, key and checkpoint of a loaded table.
    pub(crate) async fn describe(&self, table: DeltaTable) -> Result<Loaded> {
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let logical = Arc::new(schema::logical_schema(&snapshot.schema())?);
        let stored = schema::stored_from_delta(&snapshot.schema()).map_err(|e| {
            cdc_core::Error::arrow(format!("the Delta schema of {}", self.table), e)
        })?;
        let actual: Vec<(String, arrow_schema::DataType)> = stored
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        cdc_core::storage::check_no_legacy_storage(
            &self.table.to_string(),
            &logical,
            &actual,
            &cdc_core::storage::StorageTypes::DELTA,
        )?;
        let layout = |message: String| DeltaSinkError::Layout {
            table: self.table.to_string(),
            message,
        };
        let keys = snapshot
            .metadata()
            .configuration()
            .get(KEY_COLUMNS_PROPERTY)
            .ok_or_else(|| {
                layout(format!(
                    "table property `{KEY_COLUMNS_PROPERTY}` is missing: not a cdc-lake table"
                ))
            })?;
        let key_columns: Vec<String> = serde_json::from_str(keys)
            .map_err(|e| layout(format!("bad `{KEY_COLUMNS_PROPERTY}` `{keys}`: {e}")))?;
        let checkpoint = self.read_checkpoint(&table).await?;
        let key = key_columns.first().map_or("", String::as_str);
        let files = Arc::new(FileIndex::from_files(snapshot.log_data(), key));
        Ok(Loaded {
            version: table.version().unwrap_or(0),
            files,
            table,
            logical,
            key_columns,
            checkpoint,
        })
    }

    /// The checkpoint the table holds: the topic-partitions of cdc-lake's last commit, each at
    /// the version of its `txn` action. Commits are read newest first and only until the first
    /// cdc-lake one (usually the latest), so this costs one or a few small reads.
    async fn read_checkpoint(&self, table: &DeltaTable) -> Result<Checkpoint> {
        let log_store = table.log_store();
        let latest = table.version().unwrap_or(0);
        let mut checkpoint = Checkpoint::default();
        for version in (0..=latest).rev().take(HISTORY_DEPTH) {
            let Some(bytes) = log_store
                .read_commit_entry(version)
                .await
                .map_err(self.delta_err("reading a commit"))?
            else {
                // Cleaned up: nothing older can be read either.
                break;
            };
            if let Some(found) = commit_checkpoint(&bytes)? {
                checkpoint = found;
                break;
            }
        }
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        for (topic, parts) in checkpoint.offsets.iter_mut() {
            for (partition, next) in parts.iter_mut() {
                let txn = snapshot
                    .transaction_version(log_store.as_ref(), app_id(topic, *partition))
                    .await
                    .map_err(self.delta_err("reading txn versions"))?;
                if let Some(v) = txn {
                    *next = v;
                }
            }
        }
        Ok(checkpoint)
    }

    /// Creates the table from the first change set (or loads the one another writer created).
    pub(crate) async fn create(&self, changes: &ChangeSet) -> Result<DeltaTable> {
        let delta_schema = schema::delta_schema(&changes.schema).map_err(|e| {
            cdc_core::Error::UnsupportedSchema {
                table: self.table.to_string(),
                column: String::new(),
                message: format!("no Delta schema for {}: {e}", changes.schema),
            }
        })?;
        let mut configuration: HashMap<String, Option<String>> = self
            .config
            .table_properties
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        if self.config.deletion_vectors {
            // Protocol 3/7 with the `deletionVectors` reader and writer feature (delta-rs adds
            // the feature for this property), unless the table properties say otherwise.
            configuration
                .entry(ENABLE_DELETION_VECTORS.to_string())
                .or_insert_with(|| Some("true".to_string()));
        }
        configuration.insert(
            KEY_COLUMNS_PROPERTY.to_string(),
            Some(serde_json::to_string(&changes.key_columns.to_vec()).expect("strings serialise")),
        );
        let created = self
            .open()
            .await?
            .create()
            .with_columns(delta_schema.fields().cloned())
            .with_partition_columns(self.config.partition_columns.clone())
            .with_configuration(configuration)
            .with_raise_if_key_not_exists(false)
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created it first: use theirs.
            Err(e) => match self.load().await? {
                Some(t) => Ok(t),
                None => Err(self.delta_err("creating the table")(e)),
            },
        }
    }
}

/// The checkpoint a commit's `commitInfo` carries, if it is a cdc-lake commit.
fn commit_checkpoint(commit: &[u8]) -> Result<Option<Checkpoint>> {
    for line in commit.split(|b| *b == b'\n') {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let info = action
            .get("commitInfo")
            .and_then(|c| c.get(CHECKPOINT_COMMIT_INFO));
        if let Some(v) = info {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            return Ok(Some(Checkpoint::from_json(&text)?));
        }
    }
    Ok(None)
}

/// Whether writers may add deletion vectors to the table: the `deletionVectors` writer feature
/// and `delta.enableDeletionVectors=true`.
pub(crate) fn allows_deletion_vectors(table: &DeltaTable) -> bool {
    let Ok(snapshot) = table.snapshot() else {
        return false;
    };
    let enabled = snapshot
        .metadata()
        .configuration()
        .get(ENABLE_DELETION_VECTORS)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let protocol = serde_json::to_value(snapshot.protocol()).unwrap_or_default();
    let feature = protocol
        .get("writerFeatures")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|f| f.iter().any(|v| v == "deletionVectors"));
    enabled && feature
}
