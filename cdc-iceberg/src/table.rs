//! One table's state as a commit attempt reads it: the metadata file the catalog points at, the
//! current snapshot's manifests, their live data and delete files, and the checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use cdc_core::model::Checkpoint;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestEntry, ManifestFile,
    ManifestList, Snapshot, TableMetadata,
};

use crate::error::{file_err, iceberg_err, IcebergSinkError, Result};
use crate::files::read_position_deletes;
use crate::schema::logical_from_properties;

/// Snapshot summary key holding the table's whole checkpoint after the snapshot (JSON).
pub const CHECKPOINT_SUMMARY: &str = "cdc-lake.checkpoint";

/// Where a catalog points for a table.
#[derive(Debug, Clone)]
pub(crate) struct Pointer {
    /// The current metadata file.
    pub location: String,
    /// Its contents, when the catalog sent them along (REST).
    pub metadata: Option<TableMetadata>,
}

/// A live file of the current snapshot with its sequence numbers.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    pub entry: ManifestEntry,
}

impl LiveFile {
    pub fn content(&self) -> DataContentType {
        self.entry.data_file.content_type()
    }
    pub fn path(&self) -> &str {
        self.entry.data_file.file_path()
    }
    pub fn seq(&self) -> i64 {
        self.entry.sequence_number.unwrap_or(0)
    }
}

/// Manifests and position-delete files already read: both are immutable once written, so a
/// sink reads each once however many commits carry it over. Entries that leave the table are
/// dropped at the next load.
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    manifests: HashMap<String, Arc<Vec<Arc<ManifestEntry>>>>,
    deletes: HashMap<String, Arc<HashMap<String, Vec<i64>>>>,
}

impl FileCache {
    /// The entries of a manifest.
    async fn manifest(
        &mut self,
        table: &str,
        io: &FileIO,
        manifest: &ManifestFile,
    ) -> Result<Arc<Vec<Arc<ManifestEntry>>>> {
        if let Some(entries) = self.manifests.get(&manifest.manifest_path) {
            return Ok(entries.clone());
        }
        let entries = Arc::new(manifest_entries(table, io, manifest).await?);
        self.manifests
            .insert(manifest.manifest_path.clone(), entries.clone());
        Ok(entries)
    }

    /// The positions a position-delete file deletes, per data file.
    pub async fn deletes(
        &mut self,
        table: &str,
        io: &FileIO,
        file: &DataFile,
    ) -> Result<Arc<HashMap<String, Vec<i64>>>> {
        if let Some(d) = self.deletes.get(file.file_path()) {
            return Ok(d.clone());
        }
        let d = Arc::new(read_position_deletes(table, io, file).await?);
        self.deletes.insert(file.file_path().to_string(), d.clone());
        Ok(d)
    }

    /// Keeps only what `loaded` still references.
    fn retain(&mut self, loaded: &Loaded) {
        let manifests: HashSet<&str> = loaded
            .manifests
            .iter()
            .map(|m| m.manifest_path.as_str())
            .collect();
        self.manifests.retain(|k, _| manifests.contains(k.as_str()));
        let deletes: HashSet<&str> = loaded
            .delete_files
            .iter()
            .filter(|f| f.content() == DataContentType::PositionDeletes)
            .map(|f| f.path())
            .collect();
        self.deletes.retain(|k, _| deletes.contains(k.as_str()));
    }
}

/// The table at the metadata location the catalog points at.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub(crate) metadata_location: String,
    pub(crate) metadata: TableMetadata,
    pub(crate) logical: SchemaRef,
    pub(crate) key_columns: Vec<String>,
    /// Manifests of the current snapshot (empty without one).
    pub(crate) manifests: Vec<ManifestFile>,
    /// Live data files.
    pub(crate) data_files: Vec<LiveFile>,
    /// Live delete files (position and equality).
    pub(crate) delete_files: Vec<LiveFile>,
}

impl Loaded {
    /// Reads the metadata the catalog points at (unless the catalog sent it) and the current
    /// snapshot's manifests.
    pub(crate) async fn load(
        table: &str,
        io: &FileIO,
        pointer: Pointer,
        cache: &mut FileCache,
    ) -> Result<Loaded> {
        let metadata_location = pointer.location.as_str();
        let metadata = match pointer.metadata {
            Some(metadata) => metadata,
            None => TableMetadata::read_from(io, metadata_location)
                .await
                .map_err(iceberg_err(&table, format!("reading {metadata_location}")))?,
        };
        if metadata.format_version() != FormatVersion::V2 {
            return Err(IcebergSinkError::Layout {
                table: table.to_string(),
                message: format!(
                    "format version {} (cdc-lake writes format version 2 tables)",
                    metadata.format_version()
                ),
            });
        }
        let (logical, key_columns) = logical_from_properties(table, metadata.properties())?;
        let actual: Vec<(String, arrow_schema::DataType)> =
            crate::schema::file_arrow_schema(table, metadata.current_schema())?
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
        cdc_core::storage::check_no_legacy_storage(
            table,
            &logical,
            &actual,
            &cdc_core::storage::StorageTypes::ICEBERG,
        )?;
        let mut loaded = Loaded {
            metadata_location: metadata_location.to_string(),
            metadata,
            logical,
            key_columns,
            manifests: Vec::new(),
            data_files: Vec::new(),
            delete_files: Vec::new(),
        };
        let Some(snapshot) = loaded.metadata.current_snapshot().cloned() else {
            return Ok(loaded);
        };
        loaded.manifests = manifest_list(table, io, &snapshot).await?;
        for manifest in &loaded.manifests {
            let entries = cache.manifest(table, io, manifest).await?;
            for entry in entries.iter() {
                if !entry.is_alive() {
                    continue;
                }
                let live = LiveFile {
                    entry: entry.as_ref().clone(),
                };
                match manifest.content {
                    ManifestContentType::Data => loaded.data_files.push(live),
                    ManifestContentType::Deletes => loaded.delete_files.push(live),
                }
            }
        }
        cache.retain(&loaded);
        Ok(loaded)
    }

    /// The checkpoint of cdc-lake's latest snapshot: the newest snapshot on the current
    /// snapshot's ancestry that carries [`CHECKPOINT_SUMMARY`] (snapshots of other writers,
    /// such as compaction by another engine, are skipped). Empty only when the ancestry ends
    /// at a root snapshot (or there is no snapshot) without finding one. An ancestry broken
    /// before the key is found (a parent expired by another engine) is an error: an empty
    /// checkpoint there would replay the source from its start.
    pub(crate) fn checkpoint(&self, table: &str) -> Result<Checkpoint> {
        let snapshot = checkpoint_snapshot(table, &self.metadata)?;
        let Some(snapshot) = snapshot else {
            return Ok(Checkpoint::default());
        };
        let text = &snapshot.summary().additional_properties[CHECKPOINT_SUMMARY];
        Checkpoint::from_json(text).map_err(|e| IcebergSinkError::Layout {
            table: table.to_string(),
            message: format!(
                "snapshot {} has a bad `{CHECKPOINT_SUMMARY}` summary: {e}",
                snapshot.snapshot_id()
            ),
        })
    }

    /// Rows of the live data files minus those their position deletes remove (what a
    /// truncate deletes).
    pub(crate) fn live_rows(&self) -> u64 {
        let count = |files: &[LiveFile]| {
            files
                .iter()
                .map(|f| f.entry.data_file.record_count())
                .sum::<u64>()
        };
        count(&self.data_files).saturating_sub(count(&self.delete_files))
    }

    /// The current Iceberg schema.
    pub(crate) fn schema(&self) -> Arc<iceberg::spec::Schema> {
        self.metadata.current_schema().clone()
    }
}

/// The manifests of a snapshot.
pub(crate) async fn manifest_list(
    table: &str,
    io: &FileIO,
    snapshot: &Snapshot,
) -> Result<Vec<ManifestFile>> {
    let path = snapshot.manifest_list();
    let bytes = io
        .new_input(path)
        .map_err(file_err(&table, path))?
        .read()
        .await
        .map_err(file_err(&table, path))?;
    let list = ManifestList::parse_with_version(&bytes, FormatVersion::V2)
        .map_err(iceberg_err(&table, format!("reading manifest list {path}")))?;
    Ok(list.consume_entries().into_iter().collect())
}

/// The entries of a manifest.
pub(crate) async fn manifest_entries(
    table: &str,
    io: &FileIO,
    manifest: &ManifestFile,
) -> Result<Vec<Arc<ManifestEntry>>> {
    let (entries, _) = manifest
        .load_manifest(io)
        .await
        .map_err(iceberg_err(
            &table,
            format!("reading {}", manifest.manifest_path),
        ))?
        .into_parts();
    Ok(entries)
}

/// The snapshots from the current one back to the newest carrying [`CHECKPOINT_SUMMARY`]
/// (newest first, that one last), or the whole ancestry when none carries it and it ends at a
/// root snapshot. An error when a parent is missing before the key is found, or the parent
/// links loop.
pub(crate) fn checkpoint_ancestry<'m>(
    table: &str,
    metadata: &'m TableMetadata,
) -> Result<Vec<&'m Arc<Snapshot>>> {
    let mut chain: Vec<&Arc<Snapshot>> = Vec::new();
    let mut next = metadata.current_snapshot_id();
    while let Some(id) = next {
        let Some(snapshot) = metadata.snapshot_by_id(id) else {
            let child = chain
                .last()
                .map(|s| format!("the parent of snapshot {}", s.snapshot_id()))
                .unwrap_or_else(|| "the current snapshot".to_string());
            return Err(IcebergSinkError::Layout {
                table: table.to_string(),
                message: format!(
                    "cannot find the source checkpoint: snapshot {id} ({child}) is not in the \
                     metadata (expired?) and no newer snapshot carries `{CHECKPOINT_SUMMARY}`; \
                     refusing to replay the source from its start. Restore a metadata file \
                     that still has it, or rebuild the table"
                ),
            });
        };
        if chain.len() > metadata.snapshots().len() {
            return Err(IcebergSinkError::Layout {
                table: table.to_string(),
                message: format!("the parent links of snapshot {id} form a loop"),
            });
        }
        chain.push(snapshot);
        if snapshot
            .summary()
            .additional_properties
            .contains_key(CHECKPOINT_SUMMARY)
        {
            break;
        }
        next = snapshot.parent_snapshot_id();
    }
    Ok(chain)
}

/// The newest snapshot on the current ancestry that carries [`CHECKPOINT_SUMMARY`] (see
/// [`checkpoint_ancestry`]).
pub(crate) fn checkpoint_snapshot<'m>(
    table: &str,
    metadata: &'m TableMetadata,
) -> Result<Option<&'m Arc<Snapshot>>> {
    Ok(checkpoint_ancestry(table, metadata)?.pop().filter(|s| {
        s.summary()
            .additional_properties
            .contains_key(CHECKPOINT_SUMMARY)
    }))
}
