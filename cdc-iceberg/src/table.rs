//! One table's state as a commit attempt reads it: the metadata file the catalog points at, the
//! current snapshot's manifests, their live data and delete files, and the checkpoint.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use cdc_core::model::Checkpoint;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, FormatVersion, ManifestContentType, ManifestEntry, ManifestFile, ManifestList,
    Snapshot, TableMetadata,
};

use crate::error::{file_err, iceberg_err, IcebergSinkError, Result};
use crate::schema::logical_from_properties;

/// Snapshot summary key holding the table's whole checkpoint after the snapshot (JSON).
pub const CHECKPOINT_SUMMARY: &str = "cdc-lake.checkpoint";
/// How many snapshots back [`Loaded::checkpoint`] looks for cdc-lake's last one (snapshots of
/// other writers, such as compaction by another engine, are skipped).
const HISTORY_DEPTH: usize = 10_000;

/// A live file of the current snapshot with its sequence numbers.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    pub entry: ManifestEntry,
}

impl LiveFile {
    pub fn path(&self) -> &str {
        self.entry.data_file.file_path()
    }
    pub fn seq(&self) -> i64 {
        self.entry.sequence_number.unwrap_or(0)
    }
}

/// The table at the metadata location the catalog points at.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub metadata_location: String,
    pub metadata: TableMetadata,
    pub logical: SchemaRef,
    pub key_columns: Vec<String>,
    /// Manifests of the current snapshot (empty without one).
    pub manifests: Vec<ManifestFile>,
    /// Live data files.
    pub data_files: Vec<LiveFile>,
    /// Live delete files.
    pub delete_files: Vec<LiveFile>,
}

impl Loaded {
    /// Reads the metadata file at `metadata_location` and the current snapshot's manifests.
    pub async fn load(table: &str, io: &FileIO, metadata_location: &str) -> Result<Loaded> {
        let metadata = TableMetadata::read_from(io, metadata_location)
            .await
            .map_err(iceberg_err(&table, format!("reading {metadata_location}")))?;
        let (logical, key_columns) = logical_from_properties(table, metadata.properties())?;
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
            let entries = manifest
                .load_manifest(io)
                .await
                .map_err(iceberg_err(
                    &table,
                    format!("reading {}", manifest.manifest_path),
                ))?
                .into_parts()
                .0;
            for entry in entries {
                if !entry.is_alive() {
                    continue;
                }
                let live = LiveFile {
                    entry: entry.as_ref().clone(),
                };
                match (manifest.content, entry.content_type()) {
                    (ManifestContentType::Data, _) => loaded.data_files.push(live),
                    (ManifestContentType::Deletes, DataContentType::EqualityDeletes) => {
                        return Err(IcebergSinkError::Layout {
                            table: table.to_string(),
                            message: format!(
                                "equality-delete file `{}`: cdc-lake writes position deletes only; \
                                 compact the table with another engine first",
                                entry.file_path()
                            ),
                        })
                    }
                    (ManifestContentType::Deletes, _) => loaded.delete_files.push(live),
                }
            }
        }
        Ok(loaded)
    }

    /// The checkpoint of cdc-lake's latest snapshot (empty without one).
    pub fn checkpoint(&self, table: &str) -> Result<Checkpoint> {
        let mut next = self.metadata.current_snapshot_id();
        for _ in 0..HISTORY_DEPTH {
            let Some(id) = next else { break };
            let Some(snapshot) = self.metadata.snapshot_by_id(id) else {
                break;
            };
            if let Some(text) = snapshot
                .summary()
                .additional_properties
                .get(CHECKPOINT_SUMMARY)
            {
                return Checkpoint::from_json(text).map_err(|e| IcebergSinkError::Layout {
                    table: table.to_string(),
                    message: format!("snapshot {id} has a bad `{CHECKPOINT_SUMMARY}` summary: {e}"),
                });
            }
            next = snapshot.parent_snapshot_id();
        }
        Ok(Checkpoint::default())
    }

    /// The current Iceberg schema.
    pub fn schema(&self) -> Arc<iceberg::spec::Schema> {
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
