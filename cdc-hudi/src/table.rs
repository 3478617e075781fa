//! One Hudi table as a writer reads it: the table properties, the timeline, the latest base
//! file of every file group (with the record-key range of its footer), every committed base
//! file version (for cleaning), and the writes that never completed (rolled back before the
//! next write, never by a mere read).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use futures::StreamExt;
use object_store::path::Path;

use crate::config::HudiSinkConfig;
use crate::error::{HudiSinkError, Result};
use crate::files::{self, BaseFileName, TableStore, HOODIE_DIR};
use crate::heartbeat;
use crate::schema as hschema;
use crate::timeline::{self, CommitMetadata, Instant, State, TableProperties, Timeline};

/// `extraMetadata` key of the table's whole source checkpoint after the commit.
pub const CHECKPOINT_KEY: &str = "cdc-lake.checkpoint";
/// `extraMetadata` key of the table's logical Arrow schema (JSON), with cdc-lake's field
/// metadata (original types, column defaults).
pub const ARROW_SCHEMA_KEY: &str = "cdc-lake.arrowSchema";
/// `extraMetadata` key of the Avro schema (Hudi's own).
pub const AVRO_SCHEMA_KEY: &str = "schema";
/// Path of the table properties.
pub const PROPERTIES_FILE: &str = ".hoodie/hoodie.properties";

/// One table of a warehouse: its store and the settings it is written with.
#[derive(Debug, Clone)]
pub(crate) struct TableAt {
    pub table: TableId,
    pub store: TableStore,
    pub config: Arc<HudiSinkConfig>,
    /// The table's location as engines open it (URL or local path).
    #[cfg_attr(not(feature = "glue"), allow(dead_code))]
    pub location: String,
    /// Where the table is registered in Glue (with `glue` settings).
    #[cfg(feature = "glue")]
    pub glue: Option<Arc<cdc_core::glue::GlueRegistry>>,
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
pub struct TableState {
    pub(crate) props: TableProperties,
    pub(crate) timeline: Timeline,
    pub(crate) latest: Option<Latest>,
    /// Live file groups by file id.
    pub(crate) groups: BTreeMap<String, FileGroup>,
    /// Every committed base file by file id, oldest first.
    pub(crate) versions: BTreeMap<String, Vec<FileVersion>>,
    /// File groups replaced by a truncate: file id → the replacing instant.
    pub(crate) replaced: BTreeMap<String, String>,
    /// Write instants that never completed, with their base files. Readers ignore them; the
    /// next write rolls them back (not a mere read: the writer may still be at work).
    pub(crate) unfinished: Vec<(Instant, Vec<files::Listed>)>,
}

impl TableAt {
    pub(crate) fn timeline_err(&self, instant: &str, message: impl Into<String>) -> HudiSinkError {
        HudiSinkError::Timeline {
            table: self.table.to_string(),
            instant: instant.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn layout_err(&self, message: impl Into<String>) -> HudiSinkError {
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

    /// Reads the table, or `None` when there is no table yet.
    pub(crate) async fn read_state(&self) -> Result<Option<TableState>> {
        let Some(text) = self.store.get(PROPERTIES_FILE).await? else {
            return Ok(None);
        };
        let props = TableProperties::parse(&String::from_utf8_lossy(&text))
            .map_err(|m| self.layout_err(format!("{PROPERTIES_FILE}: {m}")))?;
        let names = self.store.list_names(HOODIE_DIR).await?;
        let mut timeline = Timeline::from_names(names.iter().map(String::as_str));
        let start = crate::archive::timeline_start(&timeline);
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
        timeline.instants.retain(|i| {
            !((i.is_write() || i.action == crate::timeline::CLEAN) && i.state != State::Completed)
        });

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
            let archived = start.as_deref().is_some_and(|s| b.instant.as_str() < s);
            if !archived && !timeline.is_completed_write(&b.instant) {
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
    /// their instant files, so a crash in between leaves them pending.
    /// Only instants of our own writer id or with an expired (or no) heartbeat are rolled
    /// back; another writer's live instant is a [`HudiSinkError::Conflict`].
    pub(crate) async fn roll_back_unfinished(&self, state: &mut TableState) -> Result<()> {
        let unfinished = std::mem::take(&mut state.unfinished);
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
            // Completed meanwhile? Its writer deletes the heartbeat only after completing it,
            // so this look must come after the heartbeat's.
            let completed = timeline::file_name(&instant.time, &instant.action, State::Completed);
            if self
                .store
                .exists(&files::join(HOODIE_DIR, &completed))
                .await?
            {
                continue;
            }
            // Base files many at once (a round trip each on S3), all before the instant files.
            let deletes: Vec<_> = (base_files.iter())
                .map(|f| {
                    let (store, shown) = (self.store.clone(), files::join(&f.rel_dir, &f.name));
                    async move { store.delete_at(&f.location, &shown).await }
                })
                .collect();
            files::all_at_once(deletes).await?;
            // The instant files and the heartbeat at once: whichever a crash leaves still reads
            // as a pending instant (without a live heartbeat), rolled back again next time.
            let names = [State::Inflight, State::Requested].map(|s| {
                files::join(
                    HOODIE_DIR,
                    &timeline::file_name(&instant.time, &instant.action, s),
                )
            });
            let names = names.into_iter().chain([heartbeat::path(&instant.time)]);
            let deletes: Vec<_> = names
                .map(|name| {
                    let store = self.store.clone();
                    async move { store.delete(&name).await }
                })
                .collect();
            files::all_at_once(deletes).await?;
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
        if let Some(avro) = meta.extra_metadata.get(AVRO_SCHEMA_KEY) {
            let actual = hschema::avro_field_types(avro);
            cdc_core::storage::check_no_legacy_storage(
                &self.table.to_string(),
                &logical,
                &actual,
                &hschema::HUDI_TYPES,
            )?;
        }
        let checkpoint = match meta.extra_metadata.get(CHECKPOINT_KEY) {
            Some(c) => Checkpoint::from_json(c)?,
            None => Checkpoint::default(),
        };
        Ok(Latest {
            logical: Arc::new(logical),
            checkpoint,
        })
    }

    /// Creates `.hoodie/hoodie.properties` for the first change set.
    pub(crate) async fn create(&self, changes: &ChangeSet) -> Result<()> {
        let table = self.table.to_string();
        let column_err = |column: &str, message: String| HudiSinkError::Column {
            table: table.clone(),
            column: column.to_string(),
            message,
        };
        let cfg = &self.config;
        for c in cfg
            .partition_fields
            .iter()
            .chain(cfg.precombine_field.iter())
        {
            if changes.schema.index_of(c).is_err() {
                return Err(column_err(
                    c,
                    "configured as a partition or precombine field but not in the table".into(),
                ));
            }
        }
        for k in changes.key_columns.iter() {
            if k.contains(',') {
                return Err(column_err(
                    k,
                    "a Hudi record key field cannot contain a comma".into(),
                ));
            }
        }
        let stored = hschema::stored_schema(&changes.schema);
        let avro = hschema::avro_schema(&self.table.name, &stored)
            .map_err(|e| column_err(&e.column, e.message))?;
        let props = TableProperties {
            name: self.table.name.to_string(),
            key_columns: changes.key_columns.to_vec(),
            partition_fields: cfg.partition_fields.clone(),
            hive_style: cfg.hive_style_partitioning,
            precombine_field: cfg.precombine_field.clone(),
            create_schema: Some(avro),
        };
        self.store
            .put(PROPERTIES_FILE, Bytes::from(props.to_text()), true)
            .await
            .or_else(|e| match e {
                // Created meanwhile by another writer: use theirs.
                HudiSinkError::Store { source, .. }
                    if matches!(*source, object_store::Error::AlreadyExists { .. }) =>
                {
                    Ok(())
                }
                e => Err(e),
            })
    }
}
