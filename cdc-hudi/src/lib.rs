//! `cdc-hudi`: cdc-lake's [`TableSink`] for Apache Hudi copy-on-write tables (table version 6,
//! timeline layout 1: what Hudi 0.14, Athena, EMR/Spark and hudi-rs read).
//!
//! Hudi is written natively here (the `hudi` crate only reads). Each folded [`ChangeSet`]
//! becomes ONE instant `t`: `t.commit.requested`, `t.inflight`, the new base files, then
//! `t.commit` with the JSON commit metadata (write stats per base file, operation `UPSERT`,
//! `extraMetadata.schema` = the Avro schema, plus the table's whole source checkpoint and its
//! Arrow schema under `cdc-lake.*` keys). A truncate is a `replacecommit` that replaces every
//! file group. Readers see an instant only once its completed file exists, so a crash at any
//! point leaves the previous commit; the next writer deletes the crashed instant's files and
//! pending instant files (rollback).
//!
//! Upserts go to the file group that holds the key, deletes remove it there, and only those
//! file groups are rewritten (a new base file of the same file id). The file groups are found
//! by the record-key range in each base file's footer, then by reading only the key columns of
//! the candidates. New keys fill small file groups first, then new ones (see
//! [`HudiSinkConfig::max_file_size`]). Rows that are carried over keep their
//! `_hoodie_commit_time`, so Hudi incremental queries return exactly the rows each commit
//! changed.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
//! let warehouse = HudiWarehouse::new("/data/lake", HudiSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse)
//! # Ok(()) }
//! ```
//!
//! Partitioned tables ([`HudiSinkConfig::partition_fields`], Hive-style directories by
//! default) write `.hoodie_partition_metadata` in each partition; a key whose partition value
//! changes moves to a file group of its new partition. After each commit the cleaner deletes
//! base-file versions that no query as of the last [`HudiSinkConfig::commits_retained`]
//! commits that changed files can read (Hudi's KEEP_LATEST_COMMITS; checkpoint-only commits do
//! not count), nor a query started within [`HudiSinkConfig::retain_hours`].
//!
//! # Limits
//!
//! - One writer per table is the safe setup, and **one writer id
//!   ([`HudiSinkConfig::writer_id`]) per concurrently running writer**. Each pending instant
//!   has a heartbeat (`.hoodie/.heartbeat/<instant>`, see [`heartbeat`]); a writer rolls back
//!   only pending instants of its own id (its crashed predecessor) or whose heartbeat expired,
//!   and meets another id's live instant with a conflict (retried up to
//!   [`HudiSinkConfig::max_commit_attempts`] times), never a deletion. Two writers sharing an
//!   id would roll back each other's live instants. Before completing an instant the sink
//!   checks that its `.inflight` and base files are still there and that no other writer
//!   completed an instant meanwhile, and if not undoes its attempt and redoes the change set
//!   on the new table state; but that is a check, not a lock (Hudi's own writers need a lock
//!   provider for concurrent writes).
//! - Base files carry the record-key range but no bloom filter, so a Spark/Java Hudi writer
//!   joining the table must use the SIMPLE or GLOBAL_SIMPLE index (readers need neither).
//! - No metadata table, no archival of the timeline (three small files per commit stay in
//!   `.hoodie/`), and cleaning deletes old versions without writing `clean` instants.
//! - Column names must be valid Avro names (the table schema is Avro).

mod clean;
mod config;
mod error;
pub mod files;
pub mod heartbeat;
pub mod index;
pub mod schema;
pub mod timeline;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use cdc_core::sink::{CommitOutcome, TableSchema, TableSink, Warehouse};
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

pub use config::{FailPoint, HudiSinkConfig};
pub use error::{HudiSinkError, Result};

use files::{BaseFileName, TableStore, HOODIE_DIR};
use timeline::{CommitMetadata, Instant, State, TableProperties, Timeline};

/// `extraMetadata` key of the table's whole source checkpoint after the commit.
pub const CHECKPOINT_KEY: &str = "cdc-lake.checkpoint";
/// `extraMetadata` key of the table's logical Arrow schema (JSON), with cdc-lake's field
/// metadata (original types, column defaults).
pub const ARROW_SCHEMA_KEY: &str = "cdc-lake.arrowSchema";
/// `extraMetadata` key of the Avro schema (Hudi's own).
pub const AVRO_SCHEMA_KEY: &str = "schema";
/// Path of the table properties.
pub const PROPERTIES_FILE: &str = ".hoodie/hoodie.properties";

/// Hudi tables under one root: table `<schema>.<table>` at `<root>/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct HudiWarehouse {
    location: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    config: Arc<HudiSinkConfig>,
    conflicts: Arc<std::sync::atomic::AtomicU64>,
}

impl HudiWarehouse {
    /// A warehouse at `root`: a local path, `file://` URL, or `s3://bucket/prefix` (feature
    /// `s3`; credentials and endpoint from the standard `AWS_*` environment variables).
    pub fn new(root: &str, config: HudiSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let (store, prefix) = cdc_core::source::raw::object_store_from_url(root)?;
        let location = match url::Url::parse(root) {
            Ok(u) if u.scheme().len() > 1 => root.trim_end_matches('/').to_string(),
            _ => std::path::absolute(root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| root.to_string()),
        };
        Ok(HudiWarehouse {
            location,
            store,
            prefix,
            config: Arc::new(config),
            conflicts: Arc::default(),
        })
    }

    /// Where one table lives (a local path or URL), as Hudi readers take it.
    pub fn table_location(&self, table: &TableId) -> String {
        format!("{}/{}/{}", self.location, table.namespace, table.name)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> HudiSink {
        let rel = format!("{}/{}", table.namespace, table.name);
        let root = if self.prefix.as_ref().is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix.as_ref()))
        };
        HudiSink {
            table: table.clone(),
            store: TableStore {
                table: table.to_string(),
                store: self.store.clone(),
                root,
            },
            config: self.config.clone(),
            state: None,
            fail_point: self.config.fail_point,
            commits: 0,
            conflicts: self.conflicts.clone(),
        }
    }

    /// Write conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl Warehouse for HudiWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The latest base file of one file group.
#[derive(Debug, Clone)]
pub struct FileGroup {
    /// Partition path (`""` when not partitioned), as in `_hoodie_partition_path`.
    pub partition: String,
    /// Its directory in the store.
    pub dir: Path,
    /// File group id.
    pub file_id: String,
    /// Base file name.
    pub file_name: String,
    /// Instant that wrote it.
    pub instant: String,
    /// Bytes.
    pub size: u64,
    /// Records.
    pub rows: u64,
    /// Least record key (footer).
    pub min_key: Option<String>,
    /// Greatest record key (footer).
    pub max_key: Option<String>,
    /// Numeric range of a single integer key (footer).
    pub int_range: Option<(i64, i64)>,
}

impl FileGroup {
    /// Base file path relative to the table root (as Hudi's write stats give it).
    pub fn path(&self) -> String {
        files::join(&self.partition, &self.file_name)
    }

    /// Where the base file is in the store.
    pub fn location(&self) -> Path {
        self.dir.clone().join(self.file_name.as_str())
    }
}

/// A committed base file of any version (for cleaning).
#[derive(Debug, Clone)]
pub(crate) struct FileVersion {
    pub location: Path,
    pub path: String,
    pub instant: String,
}

/// What the latest completed write says.
#[derive(Debug, Clone)]
pub(crate) struct Latest {
    pub logical: SchemaRef,
    pub checkpoint: Checkpoint,
}

/// The table as the sink knows it between commits.
#[derive(Debug, Clone)]
pub(crate) struct TableState {
    pub props: TableProperties,
    pub timeline: Timeline,
    pub latest: Option<Latest>,
    /// Live file groups by file id.
    pub groups: BTreeMap<String, FileGroup>,
    /// Every committed base file by file id, oldest first.
    pub versions: BTreeMap<String, Vec<FileVersion>>,
    /// File groups replaced by a truncate: file id → the replacing instant.
    pub replaced: BTreeMap<String, String>,
    /// Write instants that never completed, with their base files. Readers ignore them; the
    /// next write rolls them back (not a mere read: the writer may still be at work).
    pub unfinished: Vec<(Instant, Vec<files::Listed>)>,
}

/// The Hudi sink of one table.
#[derive(Debug)]
pub struct HudiSink {
    table: TableId,
    store: TableStore,
    config: Arc<HudiSinkConfig>,
    /// Cached between commits; dropped after any error so the next call reloads.
    state: Option<TableState>,
    fail_point: Option<FailPoint>,
    commits: usize,
    conflicts: Arc<std::sync::atomic::AtomicU64>,
}

impl HudiSink {
    fn timeline_err(&self, instant: &str, message: impl Into<String>) -> HudiSinkError {
        HudiSinkError::Timeline {
            table: self.table.to_string(),
            instant: instant.to_string(),
            message: message.into(),
        }
    }

    fn layout_err(&self, message: impl Into<String>) -> HudiSinkError {
        HudiSinkError::Layout {
            table: self.table.to_string(),
            message: message.into(),
        }
    }

    /// The metadata of a completed write instant.
    pub(crate) async fn read_commit(&self, instant: &Instant) -> Result<CommitMetadata> {
        let name = instant.file_name();
        let bytes = self
            .store
            .get(&files::join(HOODIE_DIR, &name))
            .await?
            .ok_or_else(|| self.timeline_err(&instant.time, format!("`{name}` vanished")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.timeline_err(&instant.time, format!("bad commit metadata: {e}")))
    }

    /// Loads the table, or `None` when there is no table yet.
    async fn load(&mut self) -> Result<Option<&mut TableState>> {
        if self.state.is_none() {
            self.state = self.read_state().await?;
        }
        Ok(self.state.as_mut())
    }

    async fn read_state(&self) -> Result<Option<TableState>> {
        let Some(text) = self.store.get(PROPERTIES_FILE).await? else {
            return Ok(None);
        };
        let props = TableProperties::parse(&String::from_utf8_lossy(&text))
            .map_err(|m| self.layout_err(format!("{PROPERTIES_FILE}: {m}")))?;
        let names = self.store.list_names(HOODIE_DIR).await?;
        let mut timeline = Timeline::from_names(names.iter().map(String::as_str));
        let mut data = self.store.list_data_files().await?;

        // Writes that never completed (a crashed writer, or one still at work): set aside with
        // their base files; `roll_back_unfinished` removes them before the next write.
        let mut unfinished = Vec::new();
        for p in timeline.pending_writes().cloned().collect::<Vec<Instant>>() {
            let (theirs, rest): (Vec<_>, Vec<_>) = data
                .into_iter()
                .partition(|f| BaseFileName::parse(&f.name).is_some_and(|b| b.instant == p.time));
            data = rest;
            unfinished.push((p, theirs));
        }
        timeline
            .instants
            .retain(|i| !(i.is_write() && i.state != State::Completed));

        let latest = match timeline.completed_writes().next_back() {
            Some(i) => Some(self.latest_of(i, &self.read_commit(i).await?)?),
            None => None,
        };
        let mut replaced = BTreeMap::new();
        let replaces: Vec<Instant> = timeline
            .completed_writes()
            .filter(|i| i.action == timeline::REPLACE_COMMIT)
            .cloned()
            .collect();
        for i in &replaces {
            let meta = self.read_commit(i).await?;
            for ids in meta
                .partition_to_replace_file_ids
                .unwrap_or_default()
                .values()
            {
                for id in ids {
                    replaced.insert(id.clone(), i.time.clone());
                }
            }
        }

        let mut versions: BTreeMap<String, Vec<FileVersion>> = BTreeMap::new();
        let mut newest: HashMap<String, files::Listed> = HashMap::new();
        for f in data {
            let Some(b) = BaseFileName::parse(&f.name) else {
                continue;
            };
            if !timeline.is_completed_write(&b.instant) {
                continue;
            }
            versions
                .entry(b.file_id.clone())
                .or_default()
                .push(FileVersion {
                    location: f.location.clone(),
                    path: files::join(&f.rel_dir, &f.name),
                    instant: b.instant.clone(),
                });
            if replaced.contains_key(&b.file_id) {
                continue;
            }
            match newest.get(&b.file_id) {
                Some(old)
                    if BaseFileName::parse(&old.name).is_some_and(|o| o.instant >= b.instant) => {}
                _ => {
                    newest.insert(b.file_id.clone(), f);
                }
            }
        }
        for v in versions.values_mut() {
            v.sort_by(|a, b| a.instant.cmp(&b.instant));
        }
        let store = self.store.clone();
        let footers: Vec<Result<FileGroup>> =
            futures::stream::iter(newest.into_iter().map(|(file_id, f)| {
                let store = store.clone();
                async move {
                    let shown = files::join(&f.rel_dir, &f.name);
                    let footer = store.read_footer(&f.location, &shown, f.size).await?;
                    let b = BaseFileName::parse(&f.name).expect("parsed before");
                    Ok(FileGroup {
                        partition: footer.partition.unwrap_or(f.rel_dir),
                        dir: f.dir,
                        file_id,
                        file_name: f.name,
                        instant: b.instant,
                        size: f.size,
                        rows: footer.rows,
                        min_key: footer.min_key,
                        max_key: footer.max_key,
                        int_range: footer.int_range,
                    })
                }
            }))
            .buffer_unordered(16)
            .collect()
            .await;
        let mut groups = BTreeMap::new();
        for g in footers {
            let g = g?;
            groups.insert(g.file_id.clone(), g);
        }
        Ok(Some(TableState {
            props,
            timeline,
            latest,
            groups,
            versions,
            replaced,
            unfinished,
        }))
    }

    /// Rolls back the writes a crashed writer left unfinished: their base files first, then
    /// their instant files, newest state first, so a crash in between leaves them pending.
    /// Only instants of our own writer id or with an expired (or no) heartbeat are rolled
    /// back; another writer's live instant is a [`HudiSinkError::Conflict`].
    pub(crate) async fn roll_back_unfinished(&mut self) -> Result<()> {
        let unfinished = match self.load().await? {
            Some(state) => std::mem::take(&mut state.unfinished),
            None => return Ok(()),
        };
        let interval = std::time::Duration::from_millis(self.config.heartbeat_interval_ms);
        for (instant, base_files) in &unfinished {
            let beat =
                heartbeat::read(&self.store, &instant.time, interval, chrono::Utc::now()).await?;
            if let Some(b) = beat.filter(|b| b.live && b.writer_id != self.config.writer_id) {
                return Err(HudiSinkError::Conflict {
                    table: self.table.to_string(),
                    instant: instant.time.clone(),
                    message: format!(
                        "instant {} of writer `{}` is in flight (live heartbeat); not rolled back",
                        instant.time, b.writer_id
                    ),
                });
            }
            // Completed meanwhile? Its writer deletes the heartbeat only after completing it.
            let completed = timeline::file_name(&instant.time, &instant.action, State::Completed);
            if self
                .store
                .exists(&files::join(HOODIE_DIR, &completed))
                .await?
            {
                continue;
            }
            for f in base_files {
                let shown = files::join(&f.rel_dir, &f.name);
                self.store.delete_at(&f.location, &shown).await?;
            }
            for state in [State::Inflight, State::Requested] {
                let name = timeline::file_name(&instant.time, &instant.action, state);
                self.store.delete(&files::join(HOODIE_DIR, &name)).await?;
            }
            self.store.delete(&heartbeat::path(&instant.time)).await?;
            tracing::info!(table = %self.table, instant = %instant.time, files = base_files.len(), "rolled back an unfinished instant");
        }
        Ok(())
    }

    /// Schema and checkpoint of a completed write.
    pub(crate) fn latest_of(&self, i: &Instant, meta: &CommitMetadata) -> Result<Latest> {
        let text = meta.extra_metadata.get(ARROW_SCHEMA_KEY).ok_or_else(|| {
            self.timeline_err(
                &i.time,
                format!("`extraMetadata.{ARROW_SCHEMA_KEY}` is missing: not written by cdc-lake"),
            )
        })?;
        let logical: Schema = serde_json::from_str(text)
            .map_err(|e| self.timeline_err(&i.time, format!("bad `{ARROW_SCHEMA_KEY}`: {e}")))?;
        let checkpoint = match meta.extra_metadata.get(CHECKPOINT_KEY) {
            Some(c) => Checkpoint::from_json(c)?,
            None => Checkpoint::default(),
        };
        Ok(Latest {
            logical: Arc::new(logical),
            checkpoint,
        })
    }

    /// Whether a crash test stops here (once).
    pub(crate) fn fail_now(&mut self, point: FailPoint) -> bool {
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

    /// The live file groups (loads the table if needed), for tests and tools.
    pub async fn file_groups(&mut self) -> cdc_core::Result<Vec<FileGroup>> {
        Ok(match self.load().await? {
            Some(s) => s.groups.values().cloned().collect(),
            None => Vec::new(),
        })
    }
}

#[async_trait]
impl TableSink for HudiSink {
    fn table(&self) -> &TableId {
        &self.table
    }

    async fn schema(&mut self) -> cdc_core::Result<Option<TableSchema>> {
        let result = self.load().await;
        match result {
            Ok(Some(state)) => Ok(state.latest.as_ref().map(|l| TableSchema {
                schema: l.logical.clone(),
                key_columns: state.props.key_columns.clone(),
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.state = None;
                Err(e.into())
            }
        }
    }

    async fn committed_checkpoint(&mut self) -> cdc_core::Result<Option<Checkpoint>> {
        let result = self.load().await;
        match result {
            Ok(Some(state)) => Ok(state.latest.as_ref().map(|l| l.checkpoint.clone())),
            Ok(None) => Ok(None),
            Err(e) => {
                self.state = None;
                Err(e.into())
            }
        }
    }

    async fn apply(&mut self, changes: &ChangeSet) -> cdc_core::Result<CommitOutcome> {
        let attempts = self.config.max_commit_attempts;
        for attempt in 1..=attempts {
            match self.apply_inner(changes).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) => {
                    // Whatever happened, the next call starts from what the table holds.
                    self.state = None;
                    if matches!(e, HudiSinkError::Conflict { .. }) && attempt < attempts {
                        self.conflicts
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(table = %self.table, attempt, error = %e, "write conflict; retrying on the new table state");
                        // Give a writer in flight time to finish.
                        let pause = 50 * attempt.min(20) as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                        continue;
                    }
                    return Err(e.into());
                }
            }
        }
        unreachable!("max_commit_attempts is at least 1")
    }
}
