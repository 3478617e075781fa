//! `cdc-delta`: cdc-lake's [`TableSink`] for Delta Lake.
//!
//! Each folded [`ChangeSet`] becomes ONE Delta commit holding:
//! - `remove` actions for the data files that hold a changed or deleted key (found by the key
//!   column's min/max statistics, then by reading only the key column), and `add` actions for
//!   their rewritten rows plus the upserted rows;
//! - `txn` actions, one per source topic-partition (`appId` = `cdc-lake:<topic>:<partition>`,
//!   `version` = next Kafka offset), and the whole checkpoint in `commitInfo`
//!   (`cdc-lake.checkpoint`), so a restart resumes exactly where the table is;
//! - a `metaData` action when the schema evolved (new columns, widened types).
//!
//! Files whose key range cannot hold a changed key are never read; files that could but do not
//! are read for their key column only and never rewritten. The commit is a `MERGE` operation to
//! delta-rs's conflict checker, so a concurrent writer that changed data makes it fail; the sink
//! then reloads the table and redoes the change set on the new version.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
//! let warehouse = DeltaWarehouse::new("/data/lake", DeltaSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse)
//! # Ok(()) }
//! ```

mod config;
mod dv;
mod error;
mod rewrite;
pub mod schema;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use cdc_core::schema::{evolution_rewrites_rows, merge_schemas};
use cdc_core::sink::upsert::{resolve_upserts, ChangedKeys};
use cdc_core::sink::{CommitOutcome, TableSchema, TableSink, Warehouse};
use cdc_core::storage::to_storage;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, Transaction};
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use url::Url;

pub use config::{BeforeCommitHook, DeltaSinkConfig, FailPoint};
pub use error::{DeltaSinkError, Result};

/// Table property holding the primary-key columns (JSON list).
pub const KEY_COLUMNS_PROPERTY: &str = "cdc-lake.keyColumns";
/// `commitInfo` field holding the table's whole checkpoint after the commit.
pub const CHECKPOINT_COMMIT_INFO: &str = "cdc-lake.checkpoint";
/// How many commits back [`TableSink::committed_checkpoint`] looks for cdc-lake's last commit
/// (other writers' commits in between, such as `OPTIMIZE`, are skipped).
const HISTORY_DEPTH: usize = 10_000;
/// A candidate file with at most this many changed keys in its key range is probed (key columns
/// read first); with more, it almost surely holds one and is read whole at once (unless it may
/// get a deletion vector: then its key columns are all that is read).
const PROBE_AT_MOST_KEYS: usize = 16;
/// The table property that lets writers add deletion vectors.
const ENABLE_DELETION_VECTORS: &str = "delta.enableDeletionVectors";

/// The Delta `txn` application id of a topic-partition.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("cdc-lake:{topic}:{partition}")
}

/// Delta tables under one root: table `<schema>.<table>` at `<root>/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct DeltaWarehouse {
    root: Url,
    config: Arc<DeltaSinkConfig>,
    conflicts: Arc<AtomicU64>,
}

impl DeltaWarehouse {
    /// A warehouse at `root` (local path, `file://` or `s3://` URL).
    pub fn new(root: &str, config: DeltaSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let mut root = deltalake::ensure_table_uri(root)
            .map_err(|e| cdc_core::Error::Config(format!("bad Delta warehouse `{root}`: {e}")))?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(DeltaWarehouse {
            root,
            config: Arc::new(config),
            conflicts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The URL of one table.
    pub fn table_url(&self, table: &TableId) -> Url {
        self.root
            .join(&format!("{}/{}/", table.namespace, table.name))
            .expect("table names join onto the root")
    }

    /// Commit conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> DeltaSink {
        DeltaSink {
            table: table.clone(),
            url: self.table_url(table),
            config: self.config.clone(),
            fail_point: self.config.fail_point,
            commits: 0,
            conflicts: self.conflicts.clone(),
        }
    }
}

#[async_trait]
impl Warehouse for DeltaWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The Delta sink of one table.
#[derive(Debug)]
pub struct DeltaSink {
    table: TableId,
    url: Url,
    config: Arc<DeltaSinkConfig>,
    fail_point: Option<FailPoint>,
    commits: usize,
    conflicts: Arc<AtomicU64>,
}

/// What one attempt of a change set needs from the current table version.
struct Loaded {
    table: DeltaTable,
    logical: SchemaRef,
    key_columns: Vec<String>,
}

impl DeltaSink {
    fn location(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    }

    fn delta_err(&self, context: &'static str) -> impl Fn(DeltaTableError) -> DeltaSinkError + '_ {
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
        let mut table = DeltaTable::try_from_url_with_storage_options(
            self.url.clone(),
            self.config.storage_options.clone(),
        )
        .await
        .map_err(self.delta_err("opening"))?;
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

    fn describe(&self, table: DeltaTable) -> Result<Loaded> {
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let logical = Arc::new(schema::logical_schema(&snapshot.schema())?);
        let keys = snapshot
            .metadata()
            .configuration()
            .get(KEY_COLUMNS_PROPERTY)
            .ok_or_else(|| DeltaSinkError::Layout {
                table: self.table.to_string(),
                message: format!(
                    "table property `{KEY_COLUMNS_PROPERTY}` is missing: not a cdc-lake table"
                ),
            })?;
        let key_columns: Vec<String> =
            serde_json::from_str(keys).map_err(|e| DeltaSinkError::Layout {
                table: self.table.to_string(),
                message: format!("bad `{KEY_COLUMNS_PROPERTY}` `{keys}`: {e}"),
            })?;
        Ok(Loaded {
            table,
            logical,
            key_columns,
        })
    }

    /// The checkpoint the table holds: the topic-partitions of cdc-lake's last commit, each at
    /// the version of its `txn` action. Commits are read newest first and only until the first
    /// cdc-lake one (usually the latest), so this costs one or a few small reads.
    async fn read_checkpoint(&self, table: &DeltaTable) -> Result<Checkpoint> {
        let log_store = table.log_store();
        let latest = table.version().unwrap_or(0);
        let mut checkpoint = Checkpoint::default();
        'versions: for version in (0..=latest).rev().take(HISTORY_DEPTH) {
            let Some(bytes) = log_store
                .read_commit_entry(version)
                .await
                .map_err(self.delta_err("reading a commit"))?
            else {
                // Cleaned up: nothing older can be read either.
                break;
            };
            for line in bytes.split(|b| *b == b'\n') {
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
                    checkpoint = Checkpoint::from_json(&text)?;
                    break 'versions;
                }
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

    async fn create(&self, changes: &ChangeSet) -> Result<DeltaTable> {
        let table = DeltaTable::try_from_url_with_storage_options(
            self.url.clone(),
            self.config.storage_options.clone(),
        )
        .await
        .map_err(self.delta_err("opening"))?;
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
        let created = table
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

    /// One attempt at committing `changes` on the latest table version.
    async fn try_apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        let table = match self.load().await? {
            Some(t) => t,
            None => self.create(changes).await?,
        };
        let committed = self.read_checkpoint(&table).await?;
        if !committed.is_empty() && changes.checkpoint.is_covered_by(&committed) {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        let Loaded {
            table,
            logical,
            key_columns,
        } = self.describe(table)?;
        let merged: SchemaRef = Arc::new(merge_schemas(&self.table, &logical, &changes.schema)?);
        let evolved = merged != logical;
        let rewrite_all = evolved && evolution_rewrites_rows(&logical, &merged);
        let keys = ChangedKeys::new(changes, &merged, &key_columns)?;
        let stored: SchemaRef = Arc::new(schema::stored_arrow_schema(&merged));
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let store = table.object_store();

        let mut writer = DeltaWriter::new(
            store.clone(),
            WriterConfig::new(
                stored.clone(),
                self.config.partition_columns.clone(),
                None,
                NonZeroU64::new(self.config.target_file_size),
                None,
                snapshot.table_config().num_indexed_cols(),
                Some(match &snapshot.table_config().data_skipping_stats_columns {
                    Some(cols) => cols.iter().map(|c| c.to_string()).collect(),
                    None => stats_columns(&stored),
                }),
            ),
        );

        let ranges = KeyRanges::new(&keys);
        let use_dvs = self.config.deletion_vectors && allows_deletion_vectors(&table);
        let fraction = self.config.deletion_vector_max_fraction;
        let mut removes = Vec::new();
        let mut candidates = Vec::new();
        // Collected first: the log iterator is not `Send` across the reads below.
        let files: Vec<deltalake::kernel::LogicalFileView> =
            snapshot.log_data().into_iter().collect();
        for file in files {
            if changes.truncate {
                removes.push(file.remove_action(true));
                continue;
            }
            let in_range = if rewrite_all {
                None
            } else {
                ranges.keys_in_range(&file)
            };
            if in_range == Some(0) {
                continue;
            }
            let old_dv = file.deletion_vector_descriptor();
            let live = file.num_records().map(|n| {
                (n as u64).saturating_sub(old_dv.as_ref().map_or(0, |dv| dv.cardinality as u64))
            });
            // So few changed keys in its range that the file gets a deletion vector whichever
            // of them it holds: only its key columns are read.
            let dv_surely = use_dvs
                && !rewrite_all
                && matches!((in_range, live), (Some(k), Some(l)) if k as f64 <= fraction * l as f64);
            candidates.push((
                FileEntry {
                    remove: file.remove_action(true),
                    stats: file.stats(),
                    modification_time: file.modification_time(),
                },
                rewrite::Candidate {
                    path: file.path().to_string(),
                    size: file.size(),
                    partition_values: partition_values(&file),
                    // Few changed keys in its range: read the key columns before the whole file.
                    probe: !rewrite_all
                        && (in_range.is_none_or(|n| n <= PROBE_AT_MOST_KEYS) || dv_surely),
                    rewrite_anyway: rewrite_all,
                    deletion_vector: old_dv,
                    deletion_vector_allowed: use_dvs && !rewrite_all,
                },
            ));
        }

        let needs_old_row = (0..keys.upserts.num_rows())
            .map(|j| {
                !changes.ignore_table_values.value(j)
                    && keys
                        .unchanged
                        .columns()
                        .iter()
                        .flatten()
                        .any(|mask| mask.value(j))
            })
            .collect();
        let ctx = Arc::new(rewrite::RewriteContext {
            table: self.table.clone(),
            store: store.clone(),
            table_root: self.url.clone(),
            needs_old_row,
            deletion_vector_max_fraction: fraction,
            stored: stored.clone(),
            merged: merged.clone(),
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
            key_columns: key_columns.clone(),
            keys,
        });
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut results = futures::stream::iter(candidates.into_iter().map(|(entry, file)| {
            let ctx = ctx.clone();
            async move {
                let task = tokio::spawn(rewrite::rewrite_file(ctx, file));
                (entry, task.await)
            }
        }))
        .buffered(parallelism);
        let mut dv_files: Vec<(FileEntry, roaring::RoaringTreemap)> = Vec::new();
        let mut old_parts: Vec<RecordBatch> = Vec::new();
        let mut old_row: Vec<Option<usize>> = vec![None; ctx.keys.upserts.num_rows()];
        let mut old_rows_seen = 0usize;
        let mut rows_deleted = 0u64;
        let mut rows_rewritten = 0u64;
        while let Some((entry, joined)) = results.next().await {
            let outcome = joined.map_err(|e| DeltaSinkError::Layout {
                table: self.table.to_string(),
                message: format!("file task failed: {e}"),
            })??;
            let Some(done) = outcome else { continue };
            rows_deleted += done.deleted;
            for (i, j) in done.replaced_upserts.iter().enumerate() {
                old_row[*j] = Some(old_rows_seen + i);
            }
            old_rows_seen += done.replaced.num_rows();
            old_parts.push(done.replaced);
            match done.plan {
                rewrite::Plan::Rewrite { kept } => {
                    if kept.num_rows() > 0 {
                        rows_rewritten += kept.num_rows() as u64;
                        writer
                            .write(&to_storage(&kept, &stored)?)
                            .await
                            .map_err(self.delta_err("writing rewritten rows"))?;
                    }
                }
                // Every row deleted: the file simply goes.
                rewrite::Plan::DeletionVector { deleted, rows } if deleted.len() >= rows => {}
                rewrite::Plan::DeletionVector { deleted, .. } => {
                    // Removed with its old deletion vector, added back below with the new one.
                    dv_files.push((entry.clone(), deleted));
                }
            }
            removes.push(entry.remove);
        }
        drop(results);
        let dv_adds = self.write_deletion_vectors(&store, dv_files).await?;
        let deletion_vectors = dv_adds.len();
        let old = arrow_select::concat::concat_batches(&merged, &old_parts)
            .map_err(|e| cdc_core::Error::arrow("collecting replaced rows", e))?;
        let upserts = resolve_upserts(changes, &ctx.keys, &old, &old_row)?;
        if upserts.num_rows() > 0 {
            writer
                .write(&to_storage(&upserts, &stored)?)
                .await
                .map_err(self.delta_err("writing upserts"))?;
        }
        let adds = writer
            .close()
            .await
            .map_err(self.delta_err("closing data files"))?;
        if self.fail_now(FailPoint::AfterDataFiles) {
            return Err(DeltaSinkError::FailPoint {
                table: self.table.to_string(),
                point: FailPoint::AfterDataFiles,
            });
        }

        let mut actions: Vec<Action> = Vec::with_capacity(removes.len() + adds.len() + 1);
        if evolved {
            let delta_schema =
                schema::delta_schema(&merged).map_err(|e| cdc_core::Error::UnsupportedSchema {
                    table: self.table.to_string(),
                    column: String::new(),
                    message: format!("no Delta schema for {merged}: {e}"),
                })?;
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&delta_schema)
                .map_err(|e| self.delta_err("evolving the schema")(DeltaTableError::from(e)))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(removes.into_iter().map(Action::Remove));
        actions.extend(dv_adds.into_iter().map(Action::Add));
        actions.extend(adds.into_iter().map(Action::Add));

        let mut full = committed.clone();
        full.merge(&changes.checkpoint);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .ok();
        let txns = changes
            .checkpoint
            .offsets
            .iter()
            .flat_map(|(topic, parts)| {
                parts.iter().map(move |(p, next)| {
                    Transaction::new_with_last_update(app_id(topic, *p), *next, now)
                })
            })
            .collect();
        let properties = CommitProperties::default()
            .with_metadata([(
                CHECKPOINT_COMMIT_INFO.to_string(),
                serde_json::Value::String(full.to_json()),
            )])
            .with_application_transactions(txns)
            .with_max_retries(0);
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: None,
            matched_predicates: vec![],
            not_matched_predicates: vec![],
            not_matched_by_source_predicates: vec![],
        };
        if let Some(hook) = &self.config.before_commit {
            (hook.0)(table.clone()).await;
        }
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(self.delta_err("committing"))?;
        let version = finalized.version();
        self.commits += 1;
        if self.fail_now(FailPoint::AfterCommit) {
            return Err(DeltaSinkError::FailPoint {
                table: self.table.to_string(),
                point: FailPoint::AfterCommit,
            });
        }
        tracing::debug!(table = %self.table, version, rows_rewritten, deletion_vectors, "delta commit");
        Ok(CommitOutcome::Committed {
            version: version.to_string(),
            rows_written: upserts.num_rows() as u64,
            rows_deleted,
        })
    }

    /// Writes the new deletion vectors of one commit into one DV file and returns the `add`
    /// actions that put each file back with its new deletion vector (same path, size and
    /// statistics; the statistics' bounds are no longer tight).
    async fn write_deletion_vectors(
        &self,
        store: &deltalake::logstore::ObjectStoreRef,
        files: Vec<(FileEntry, roaring::RoaringTreemap)>,
    ) -> Result<Vec<Add>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let dv_err = |path: &str| {
            let path = path.to_string();
            move |e: dv::DvError| DeltaSinkError::DeletionVector {
                table: self.table.to_string(),
                path: path.clone(),
                message: e.to_string(),
            }
        };
        let mut writer = dv::DvFileWriter::new();
        let mut adds = Vec::with_capacity(files.len());
        for (entry, deleted) in files {
            let descriptor = writer.push(&deleted).map_err(dv_err(&entry.remove.path))?;
            let remove = entry.remove;
            adds.push(Add {
                path: remove.path,
                partition_values: remove.partition_values.unwrap_or_default(),
                size: remove.size.unwrap_or_default(),
                modification_time: entry.modification_time,
                data_change: true,
                stats: entry.stats.map(|s| loose_bounds(&s)),
                tags: None,
                deletion_vector: Some(descriptor),
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            });
        }
        writer.finish(store).await.map_err(dv_err(""))?;
        Ok(adds)
    }

    /// Whether a crash test stops here (once).
    fn fail_now(&mut self, point: FailPoint) -> bool {
        let n = self.config.fail_after_commits;
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

/// What a touched file's `add` needs when it comes back with a deletion vector.
#[derive(Debug, Clone)]
struct FileEntry {
    remove: deltalake::kernel::Remove,
    stats: Option<String>,
    modification_time: i64,
}

/// Whether writers may add deletion vectors to the table: the `deletionVectors` writer feature
/// and `delta.enableDeletionVectors=true`.
fn allows_deletion_vectors(table: &DeltaTable) -> bool {
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

/// File statistics of a file with rows deleted by a deletion vector: `numRecords` and the
/// bounds still describe the physical file, so they are marked not tight (`tightBounds`).
fn loose_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("tightBounds".into(), serde_json::Value::Bool(false));
            serde_json::Value::Object(map).to_string()
        }
        _ => stats.to_string(),
    }
}

/// Columns to keep min/max statistics for: all top-level columns but decimals wider than a
/// double's 15 exact digits, whose statistics delta-rs writes as JSON floats it cannot read back.
fn stats_columns(stored: &Schema) -> Vec<String> {
    stored
        .fields()
        .iter()
        .filter(|f| !matches!(f.data_type(), arrow_schema::DataType::Decimal128(p, _) if *p > 15))
        .map(|f| f.name().clone())
        .collect()
}

/// Partition values of a file, as strings.
fn partition_values(file: &deltalake::kernel::LogicalFileView) -> HashMap<String, String> {
    use deltalake::kernel::scalars::ScalarExt;
    let Some(values) = file.partition_values() else {
        return HashMap::new();
    };
    values
        .fields()
        .iter()
        .zip(values.values())
        .filter(|(_, v)| !v.is_null())
        .map(|(f, v)| (f.name().to_string(), v.serialize()))
        .collect()
}

/// Sorted values of the first key column, for pruning files by their min/max statistics.
/// Only integer keys are pruned; other key types read every file's key column.
struct KeyRanges {
    column: String,
    sorted: Option<Vec<i64>>,
}

impl KeyRanges {
    fn new(keys: &ChangedKeys) -> Self {
        let field = &keys.key_fields()[0];
        let column = field.name().clone();
        let to_i64 = |a: &ArrayRef| arrow_cast::cast(a, &arrow_schema::DataType::Int64).ok();
        let sorted = if field.data_type().is_integer() {
            let mut values = Vec::new();
            let upserts = keys.upserts.column_by_name(&column).and_then(to_i64);
            let deletes = to_i64(&keys.deletes[0]);
            for a in [upserts, deletes].into_iter().flatten() {
                let a = a
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .expect("int64");
                values.extend(a.iter().flatten());
            }
            values.sort_unstable();
            Some(values)
        } else {
            None
        };
        KeyRanges { column, sorted }
    }

    /// How many changed keys fall in the file's key range; `None` when unknown (no integer key
    /// or no statistics).
    fn keys_in_range(&self, file: &deltalake::kernel::LogicalFileView) -> Option<usize> {
        use deltalake::kernel::scalars::ScalarExt;
        let sorted = self.sorted.as_ref()?;
        let bound = |v: Option<serde_json::Value>| {
            v.and_then(|v| v.get(&self.column).and_then(serde_json::Value::as_i64))
        };
        let min = bound(file.min_values().map(|s| s.to_json()));
        let max = bound(file.max_values().map(|s| s.to_json()));
        let (min, max) = (min?, max?);
        Some(sorted.partition_point(|&k| k <= max) - sorted.partition_point(|&k| k < min))
    }
}

#[async_trait]
impl TableSink for DeltaSink {
    fn table(&self) -> &TableId {
        &self.table
    }

    async fn schema(&mut self) -> cdc_core::Result<Option<TableSchema>> {
        let Some(table) = self.load().await? else {
            return Ok(None);
        };
        let loaded = self.describe(table)?;
        Ok(Some(TableSchema {
            schema: loaded.logical,
            key_columns: loaded.key_columns,
        }))
    }

    async fn committed_checkpoint(&mut self) -> cdc_core::Result<Option<Checkpoint>> {
        match self.load().await? {
            Some(t) => Ok(Some(self.read_checkpoint(&t).await?)),
            None => Ok(None),
        }
    }

    async fn apply(&mut self, changes: &ChangeSet) -> cdc_core::Result<CommitOutcome> {
        let attempts = self.config.max_commit_attempts;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.try_apply(changes).await {
                Err(e) if e.is_conflict() => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(table = %self.table, attempt, error = %e, "commit conflict; retrying on the new version");
                    last = e.to_string();
                }
                other => return Ok(other?),
            }
        }
        Err(DeltaSinkError::Conflict {
            table: self.table.to_string(),
            attempts,
            last,
        }
        .into())
    }
}
