//! Incremental compaction: only the data files worth rewriting — small ones, packed together,
//! and those whose position deletes hide many of their rows — are rewritten, in one `replace`
//! snapshot that keeps the checkpoint; a position-delete file goes with the last data file it
//! names. Merge-on-read commits add a small data file and a delete file each: this keeps a
//! long stream's table (and so its commits and reads) the size of its data, not of its history.
//!
//! A table with equality deletes is compacted whole ([`crate::maintenance::compact`]): an
//! equality delete applies to every older data file, so none of them can go alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cdc_core::model::TableId;
use cdc_core::sink::maintenance::{files_to_rewrite, FileToRewrite};
use cdc_core::sink::upsert::{locate, ChangedKeys, FilePlan, RowRemoval};
use iceberg::io::FileIO;
use iceberg::spec::DataContentType;

use crate::commit::{evolve_metadata, write_snapshot, Staged};
use crate::error::{IcebergSinkError, Result};
use crate::locate::IcebergFiles;
use crate::maintenance::{load, Compacted};
use crate::rewrite::RollingWriter;
use crate::table::{FileCache, LiveFile, Loaded};
use crate::warehouse::IcebergWarehouse;

/// Which data files [`compact_files`] rewrites (shared with Delta's optimize).
pub use cdc_core::sink::maintenance::RewriteLimits as CompactOptions;

/// Rewrites the data files of `table` worth rewriting (see the module docs) in one `replace`
/// snapshot; `None` when none is.
pub async fn compact_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    options: &CompactOptions,
) -> Result<Option<Compacted>> {
    let retry = warehouse.retry_policy();
    retry
        .run(table, IcebergSinkError::is_retryable, || async {
            let Some(loaded) = load(warehouse, table).await? else {
                return Ok(None);
            };
            let equality = (loaded.delete_files.iter())
                .any(|d| d.content() == DataContentType::EqualityDeletes);
            if equality {
                return crate::maintenance::compact(warehouse, table).await;
            }
            compact_once(warehouse, table, &loaded, options).await
        })
        .await
}

/// One run on `loaded`; its commit fails as a conflict when the table moved on.
async fn compact_once(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    loaded: &Loaded,
    options: &CompactOptions,
) -> Result<Option<Compacted>> {
    let name = table.to_string();
    let io = warehouse.file_io();
    let mut cache = FileCache::default();
    let deletes = PositionDeletes::read(&name, io, loaded, &mut cache).await?;
    let chosen = choose(loaded, &deletes, options);
    if chosen.is_empty() {
        return Ok(None);
    }
    let gone: HashSet<&str> = chosen.iter().map(|f| f.path()).collect();
    let live: HashSet<&str> = loaded.data_files.iter().map(|f| f.path()).collect();
    let dropped_deletes: Vec<LiveFile> = (loaded.delete_files.iter())
        .filter(|d| {
            deletes.names.get(d.path()).is_some_and(|named| {
                named
                    .iter()
                    .all(|p| gone.contains(p.as_str()) || !live.contains(p.as_str()))
            })
        })
        .cloned()
        .collect();
    let mut staged = Staged {
        replace: true,
        checkpoint: loaded.checkpoint(&name)?.to_json(),
        ..Staged::default()
    };
    let evolved = evolve_metadata(&name, loaded, &staged)?;
    let merged = loaded.logical.clone();
    let mut out = RollingWriter::new(table, io, &evolved.metadata, merged.clone());
    let rows = rewrite(table, io, loaded, &chosen, &mut out, &mut cache).await?;
    (staged.data, _) = out.finish().await?;
    let written = staged.data.len();
    staged.removed = chosen;
    staged.removed_deletes = dropped_deletes;
    let next = write_snapshot(&name, io, loaded, evolved, &staged).await?;
    let snapshot_id = next.snapshot_id().unwrap_or_default();
    warehouse.commit(table, loaded, &next).await?;
    Ok(Some(Compacted {
        snapshot_id,
        data_files: (staged.removed.len(), written),
        delete_files: staged.removed_deletes.len(),
        rows,
    }))
}

/// Streams the live rows of `files` into `out`; the rows written.
async fn rewrite(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    files: &[LiveFile],
    out: &mut RollingWriter<'_>,
    cache: &mut FileCache,
) -> Result<u64> {
    let merged = loaded.logical.clone();
    let keys = Arc::new(ChangedKeys::none(table, &merged, &loaded.key_columns)?);
    let wanted: Vec<&LiveFile> = files.iter().collect();
    let reader = IcebergFiles::new(table, io, loaded, &wanted, &merged, cache).await?;
    let candidates = files
        .iter()
        .map(|f| (f.clone(), FilePlan::REWRITE))
        .collect();
    let mut located = locate(Arc::new(reader), keys, candidates, RowRemoval::Rewrite);
    let mut rows = 0;
    while let Some(found) = located.next().await {
        if let Some(kept) = found?.and_then(|f| f.kept) {
            rows += kept.num_rows() as u64;
            out.push_kept(kept).await?;
        }
    }
    Ok(rows)
}

/// What the table's position-delete files say.
struct PositionDeletes {
    /// Rows deleted per data file.
    per_file: HashMap<String, u64>,
    /// The data files each delete file names.
    names: HashMap<String, Vec<String>>,
}

impl PositionDeletes {
    async fn read(
        table: &str,
        io: &FileIO,
        loaded: &Loaded,
        cache: &mut FileCache,
    ) -> Result<Self> {
        let mut per_file: HashMap<String, u64> = HashMap::new();
        let mut names = HashMap::new();
        for d in &loaded.delete_files {
            if d.content() != DataContentType::PositionDeletes {
                continue;
            }
            let positions = cache.deletes(table, io, &d.entry.data_file).await?;
            for (path, rows) in positions.iter() {
                *per_file.entry(path.clone()).or_default() += rows.len() as u64;
            }
            names.insert(d.path().to_string(), positions.keys().cloned().collect());
        }
        Ok(PositionDeletes { per_file, names })
    }
}

/// The data files worth rewriting (see [`files_to_rewrite`]).
fn choose(loaded: &Loaded, deletes: &PositionDeletes, options: &CompactOptions) -> Vec<LiveFile> {
    let files = loaded.data_files.iter().map(|f| FileToRewrite {
        file: f.clone(),
        bytes: f.entry.data_file.file_size_in_bytes(),
        rows: Some(f.entry.data_file.record_count()),
        deleted_rows: deletes.per_file.get(f.path()).copied().unwrap_or(0),
    });
    files_to_rewrite(files, options)
}
