//! One Iceberg v2 snapshot from written files: manifests, manifest list, snapshot, table
//! metadata, and the catalog swap.
//!
//! - New data files go into a new data manifest and new position-delete files into a new
//!   delete manifest, both ADDED at the snapshot's sequence number `last-sequence-number + 1`.
//!   A position delete applies to data files whose data sequence number is at most its own, and
//!   names only files of earlier snapshots, so it never touches the rows added with it.
//! - The parent's manifests are carried over unchanged, except those holding only DELETED
//!   entries; once there are [`MERGE_MANIFESTS_AT`] of them, their live entries are rewritten
//!   as EXISTING entries (original snapshot ids and sequence numbers) into one data and one
//!   delete manifest. Files the snapshot removes (truncate, full rewrites) are written as DELETED
//!   entries (with their original sequence numbers) into manifests of their own, and the
//!   parent manifests that held them are dropped.
//! - The summary carries the operation, the usual added/removed/total metrics and the
//!   checkpoint (`cdc-lake.checkpoint`).
//! - The result is the next table metadata with its updates ([`NextMetadata`]); the catalog
//!   commits it only if the table is still the one the attempt read (the SQLite catalog writes
//!   the next `metadata.json` and swaps its pointer, a REST catalog checks the commit's
//!   requirements; see [`crate::table_catalog`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, ManifestContentType, ManifestFile, ManifestListWriter,
    ManifestWriterBuilder, Operation, Schema as IcebergSchema, Snapshot, SnapshotReference,
    SnapshotRetention, Summary, TableMetadata, TableMetadataBuilder, MAIN_BRANCH,
};
use iceberg::{MetadataLocation, TableUpdate};
use std::str::FromStr;

use crate::error::{file_err, iceberg_err, Result};
use crate::table::{LiveFile, Loaded, CHECKPOINT_SUMMARY};

/// New table metadata built on what a writer read, with the updates that lead there.
#[derive(Debug, Clone)]
pub(crate) struct NextMetadata {
    pub metadata: TableMetadata,
    /// The changes from the metadata read, in REST form.
    pub updates: Vec<TableUpdate>,
    /// The snapshot the commit adds, if any.
    pub snapshot: Option<Snapshot>,
}

impl NextMetadata {
    pub fn snapshot_id(&self) -> Option<i64> {
        self.snapshot.as_ref().map(Snapshot::snapshot_id)
    }
}

/// Carried-over manifests are merged into one data and one delete manifest once there are this
/// many.
pub(crate) const MERGE_MANIFESTS_AT: usize = 32;

/// What one snapshot changes.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// New data files.
    pub data: Vec<DataFile>,
    /// New position-delete files.
    pub deletes: Vec<DataFile>,
    /// Every live file is removed (truncate, full rewrite).
    pub remove_all: bool,
    /// Data files removed (copy-on-write rewrites of touched files, compaction).
    pub removed: Vec<LiveFile>,
    /// Delete files removed (compaction: every data file they name is gone).
    pub removed_deletes: Vec<LiveFile>,
    /// The evolved schema, when it changed.
    pub schema: Option<IcebergSchema>,
    /// Table properties to set.
    pub properties: HashMap<String, String>,
    /// The table's checkpoint after the snapshot (JSON).
    pub checkpoint: String,
    /// `replace` (compaction) instead of a row-level operation.
    pub replace: bool,
}

/// The table's metadata with the new schema and properties (no snapshot yet): files of the
/// new snapshot are written against its current schema.
pub(crate) fn evolve_metadata(
    table: &str,
    loaded: &Loaded,
    staged: &Staged,
) -> Result<NextMetadata> {
    let mut builder = TableMetadataBuilder::new_from_metadata(
        loaded.metadata.clone(),
        Some(loaded.metadata_location.clone()),
    );
    if let Some(schema) = &staged.schema {
        builder = builder
            .add_current_schema(schema.clone())
            .map_err(iceberg_err(&table, "evolving the schema"))?;
    }
    if !staged.properties.is_empty() {
        builder = builder
            .set_properties(staged.properties.clone())
            .map_err(iceberg_err(&table, "setting table properties"))?;
    }
    let built = builder
        .build()
        .map_err(iceberg_err(&table, "building table metadata"))?;
    Ok(NextMetadata {
        metadata: built.metadata,
        updates: built.changes,
        snapshot: None,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh positive snapshot id.
pub(crate) fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u64_pair().0 & (i64::MAX as u64)) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

struct ManifestOut<'a> {
    table: &'a str,
    io: &'a FileIO,
    metadata: &'a TableMetadata,
    schema: Arc<IcebergSchema>,
    snapshot_id: i64,
    seq: i64,
}

impl ManifestOut<'_> {
    fn builder(&self, location: &str) -> Result<ManifestWriterBuilder> {
        let output = self
            .io
            .new_output(location)
            .map_err(file_err(&self.table, location))?;
        Ok(ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            self.schema.clone(),
            self.metadata.default_partition_spec().as_ref().clone(),
        ))
    }

    fn location(&self, suffix: &str) -> String {
        format!(
            "{}/metadata/{}-{suffix}.avro",
            self.metadata.location(),
            uuid::Uuid::new_v4()
        )
    }

    /// A manifest of ADDED files.
    async fn added(
        &self,
        files: &[DataFile],
        content: ManifestContentType,
    ) -> Result<ManifestFile> {
        self.write("m-added", content, files.iter().map(Entry::Added))
            .await
    }

    /// A manifest of EXISTING entries (original snapshot ids and sequence numbers kept).
    async fn existing(
        &self,
        files: &[&LiveFile],
        content: ManifestContentType,
    ) -> Result<ManifestFile> {
        self.write(
            "m-merged",
            content,
            files.iter().map(|f| Entry::Existing(f)),
        )
        .await
    }

    /// A manifest of DELETED entries for removed files.
    async fn removed(
        &self,
        files: &[&LiveFile],
        content: ManifestContentType,
    ) -> Result<ManifestFile> {
        self.write(
            "m-removed",
            content,
            files.iter().map(|f| Entry::Deleted(f)),
        )
        .await
    }

    /// A new manifest of `content` with `entries`.
    async fn write<'f>(
        &self,
        suffix: &str,
        content: ManifestContentType,
        entries: impl Iterator<Item = Entry<'f>>,
    ) -> Result<ManifestFile> {
        let location = self.location(suffix);
        let builder = self.builder(&location)?;
        let mut writer = match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        };
        let context = || format!("writing manifest {location}");
        for entry in entries {
            match entry {
                Entry::Added(f) => writer.add_file(f.clone(), self.seq),
                Entry::Existing(f) => writer.add_existing_file(
                    f.entry.data_file.clone(),
                    f.entry.snapshot_id.unwrap_or(self.snapshot_id),
                    f.seq(),
                    f.entry.file_sequence_number.or(Some(f.seq())),
                ),
                Entry::Deleted(f) => writer.add_delete_file(
                    f.entry.data_file.clone(),
                    f.seq(),
                    f.entry.file_sequence_number.or(Some(f.seq())),
                ),
            }
            .map_err(|e| iceberg_err(&self.table, context())(e))?;
        }
        writer
            .write_manifest_file()
            .await
            .map_err(iceberg_err(&self.table, context()))
    }
}

/// One entry of a manifest being written, by status.
enum Entry<'f> {
    /// A file this snapshot adds (at its sequence number).
    Added(&'f DataFile),
    /// A live file carried over (its original snapshot id and sequence numbers).
    Existing(&'f LiveFile),
    /// A file this snapshot removes.
    Deleted(&'f LiveFile),
}

/// File count, record count and bytes of some files.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    files: u64,
    records: u64,
    bytes: u64,
}

impl Tally {
    fn of<'a>(files: impl Iterator<Item = &'a DataFile>, content: DataContentType) -> Tally {
        files
            .filter(|f| f.content_type() == content)
            .fold(Tally::default(), |t, f| Tally {
                files: t.files + 1,
                records: t.records + f.record_count(),
                bytes: t.bytes + f.file_size_in_bytes(),
            })
    }
}

/// Summary metrics of the snapshot (spec appendix F): added, removed and totals of data files,
/// position and equality deletes.
fn summary(loaded: &Loaded, staged: &Staged, operation: Operation) -> Summary {
    use DataContentType::{Data, EqualityDeletes, PositionDeletes};
    let old = |c| {
        Tally::of(
            loaded
                .data_files
                .iter()
                .chain(&loaded.delete_files)
                .map(|f| &f.entry.data_file),
            c,
        )
    };
    let added = |c| Tally::of(staged.data.iter().chain(&staged.deletes), c);
    let removed = |c| {
        if staged.remove_all {
            old(c)
        } else {
            Tally::of(
                (staged.removed.iter())
                    .chain(&staged.removed_deletes)
                    .map(|f| &f.entry.data_file),
                c,
            )
        }
    };
    let mut p = HashMap::new();
    let mut put = |k: &str, v: u64| {
        p.insert(k.to_string(), v.to_string());
    };
    let (a, r, o) = (added(Data), removed(Data), old(Data));
    let (ap, rp, op) = (
        added(PositionDeletes),
        removed(PositionDeletes),
        old(PositionDeletes),
    );
    let (ae, re, oe) = (
        added(EqualityDeletes),
        removed(EqualityDeletes),
        old(EqualityDeletes),
    );
    if a.files > 0 {
        put("added-data-files", a.files);
        put("added-records", a.records);
    }
    if ap.files + ae.files > 0 {
        put("added-delete-files", ap.files + ae.files);
    }
    if ap.files > 0 {
        put("added-position-delete-files", ap.files);
        put("added-position-deletes", ap.records);
    }
    if ae.files > 0 {
        put("added-equality-delete-files", ae.files);
        put("added-equality-deletes", ae.records);
    }
    put("added-files-size", a.bytes + ap.bytes + ae.bytes);
    if r.files > 0 {
        put("deleted-data-files", r.files);
        put("deleted-records", r.records);
    }
    if rp.files + re.files > 0 {
        put("removed-delete-files", rp.files + re.files);
    }
    if rp.files > 0 {
        put("removed-position-delete-files", rp.files);
        put("removed-position-deletes", rp.records);
    }
    if re.files > 0 {
        put("removed-equality-delete-files", re.files);
        put("removed-equality-deletes", re.records);
    }
    let removed_bytes = r.bytes + rp.bytes + re.bytes;
    if removed_bytes > 0 {
        put("removed-files-size", removed_bytes);
    }
    let total = |o: Tally, a: Tally, r: Tally| {
        (
            o.files + a.files - r.files,
            o.records + a.records - r.records,
            o.bytes + a.bytes - r.bytes,
        )
    };
    let (td, tr, tdb) = total(o, a, r);
    let (tpf, tp, tpb) = total(op, ap, rp);
    let (tef, te, teb) = total(oe, ae, re);
    put("total-data-files", td);
    put("total-delete-files", tpf + tef);
    put("total-records", tr);
    put("total-position-deletes", tp);
    put("total-equality-deletes", te);
    put("total-files-size", tdb + tpb + teb);
    if !staged.checkpoint.is_empty() {
        p.insert(CHECKPOINT_SUMMARY.to_string(), staged.checkpoint.clone());
    }
    Summary {
        operation,
        additional_properties: p,
    }
}

/// Writes the manifests and manifest list of one snapshot on top of `evolved` (from
/// [`evolve_metadata`]) and returns the metadata with the snapshot added as `main` (not yet
/// committed).
pub(crate) async fn write_snapshot(
    table: &str,
    io: &FileIO,
    loaded: &Loaded,
    evolved: NextMetadata,
    staged: &Staged,
) -> Result<NextMetadata> {
    let NextMetadata {
        metadata: evolved,
        mut updates,
        ..
    } = evolved;
    let snapshot_id = new_snapshot_id(&evolved);
    let seq = evolved.next_sequence_number();
    let out = ManifestOut {
        table,
        io,
        metadata: &evolved,
        schema: evolved.current_schema().clone(),
        snapshot_id,
        seq,
    };
    let mut manifests: Vec<ManifestFile> = Vec::new();
    if !staged.data.is_empty() {
        manifests.push(out.added(&staged.data, ManifestContentType::Data).await?);
    }
    if !staged.deletes.is_empty() {
        manifests.push(
            out.added(&staged.deletes, ManifestContentType::Deletes)
                .await?,
        );
    }
    if staged.remove_all {
        let data: Vec<&LiveFile> = loaded.data_files.iter().collect();
        let deletes: Vec<&LiveFile> = loaded.delete_files.iter().collect();
        if !data.is_empty() {
            manifests.push(out.removed(&data, ManifestContentType::Data).await?);
        }
        if !deletes.is_empty() {
            manifests.push(out.removed(&deletes, ManifestContentType::Deletes).await?);
        }
    } else {
        let carried: Vec<&ManifestFile> = loaded
            .manifests
            .iter()
            .filter(|m| m.added_files_count.unwrap_or(1) + m.existing_files_count.unwrap_or(1) > 0)
            .collect();
        if !staged.removed.is_empty() || carried.len() >= MERGE_MANIFESTS_AT {
            // Every commit adds two manifests; readers and the next commit read them all.
            // Fold the live entries into one data and one delete manifest (this also drops
            // the entries of removed files, which go into a manifest of DELETED entries).
            let removed: HashSet<&str> = (staged.removed.iter())
                .chain(&staged.removed_deletes)
                .map(|f| f.path())
                .collect();
            if !staged.removed.is_empty() {
                let gone: Vec<&LiveFile> = staged.removed.iter().collect();
                manifests.push(out.removed(&gone, ManifestContentType::Data).await?);
            }
            if !staged.removed_deletes.is_empty() {
                let gone: Vec<&LiveFile> = staged.removed_deletes.iter().collect();
                manifests.push(out.removed(&gone, ManifestContentType::Deletes).await?);
            }
            let data: Vec<&LiveFile> = loaded
                .data_files
                .iter()
                .filter(|f| !removed.contains(f.path()))
                .collect();
            let deletes: Vec<&LiveFile> = loaded
                .delete_files
                .iter()
                .filter(|f| !removed.contains(f.path()))
                .collect();
            if !data.is_empty() {
                manifests.push(out.existing(&data, ManifestContentType::Data).await?);
            }
            if !deletes.is_empty() {
                manifests.push(out.existing(&deletes, ManifestContentType::Deletes).await?);
            }
        } else {
            manifests.extend(carried.into_iter().cloned());
        }
    }

    let operation = if staged.replace {
        Operation::Replace
    } else if staged.remove_all
        || !staged.removed.is_empty()
        || (!staged.data.is_empty() && !staged.deletes.is_empty())
    {
        if staged.data.is_empty() {
            Operation::Delete
        } else {
            Operation::Overwrite
        }
    } else if !staged.deletes.is_empty() {
        Operation::Delete
    } else {
        Operation::Append
    };

    let list_location = format!(
        "{}/metadata/snap-{snapshot_id}-1-{}.avro",
        evolved.location(),
        uuid::Uuid::new_v4()
    );
    let parent = loaded.metadata.current_snapshot_id();
    let output = io
        .new_output(&list_location)
        .map_err(file_err(&table, &list_location))?;
    let writer = output
        .writer()
        .await
        .map_err(file_err(&table, &list_location))?;
    let mut list = ManifestListWriter::v2(writer, snapshot_id, parent, seq);
    list.add_manifests(manifests.into_iter())
        .map_err(iceberg_err(&table, "writing the manifest list"))?;
    list.close()
        .await
        .map_err(iceberg_err(&table, "writing the manifest list"))?;

    let timestamp = now_ms().max(evolved.last_updated_ms());
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent)
        .with_sequence_number(seq)
        .with_timestamp_ms(timestamp)
        .with_manifest_list(list_location)
        .with_summary(summary(loaded, staged, operation))
        .with_schema_id(evolved.current_schema_id())
        .build();
    let built = TableMetadataBuilder::new_from_metadata(evolved, None)
        .add_snapshot(snapshot.clone())
        .and_then(|b| {
            b.set_ref(
                MAIN_BRANCH,
                SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
            )
        })
        .and_then(|b| b.build())
        .map_err(iceberg_err(&table, "adding the snapshot"))?;
    updates.extend(built.changes);
    Ok(NextMetadata {
        metadata: built.metadata,
        updates,
        snapshot: Some(snapshot),
    })
}

/// Writes a new table's first metadata file (for catalogs that point at it) and returns its
/// location.
pub(crate) async fn write_first_metadata(
    io: &FileIO,
    table: &str,
    metadata: &TableMetadata,
) -> Result<String> {
    let location = MetadataLocation::new_with_metadata(metadata.location(), metadata);
    metadata
        .write_to(io, &location)
        .await
        .map_err(iceberg_err(&table, "writing the first metadata file"))?;
    Ok(location.to_string())
}

/// Writes `next`'s metadata to the metadata file after `base_location` (for catalogs that swap a
/// pointer to it) and returns that file's location.
pub(crate) async fn write_next_metadata(
    io: &FileIO,
    table: &str,
    base_location: &str,
    next: &NextMetadata,
) -> Result<String> {
    let location = next_metadata_location(table, base_location)?;
    next.metadata
        .write_to(io, &location)
        .await
        .map_err(iceberg_err(&table, format!("writing {location}")))?;
    Ok(location.to_string())
}

/// The location of the metadata file after `current`.
pub(crate) fn next_metadata_location(table: &str, current: &str) -> Result<MetadataLocation> {
    Ok(MetadataLocation::from_str(current)
        .map_err(iceberg_err(
            &table,
            format!("parsing metadata location {current}"),
        ))?
        .with_next_version())
}
