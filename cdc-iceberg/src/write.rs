//! The files of one Iceberg snapshot: the new data files (upserts, and the kept rows of files
//! that are rewritten), the delete files (position deletes per partition, or equality
//! deletes), and the manifests, manifest list and metadata that add them ([`crate::commit`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{
    locate, lookup_removal, lookup_rows, Attempt, ChangedKeys, OldRows, RowRemoval,
};
use iceberg::io::FileIO;
use iceberg::spec::Struct;

use crate::commit::{evolve_metadata, write_snapshot, NextMetadata, Staged};
use crate::config::{WriteMode, EQUALITY_PARTITIONED};
use crate::error::{IcebergSinkError, Result};
use crate::files::{write_equality_deletes, write_position_deletes, Positions};
use crate::locate::{candidates, IcebergFiles};
use crate::promote;
use crate::rewrite::RollingWriter;
use crate::schema::{iceberg_schema, schema_properties};
use crate::table::{FileCache, LiveFile, Loaded};

/// What one attempt wrote: the next metadata, ready for the catalog.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) loaded: Loaded,
    pub(crate) next: NextMetadata,
    pub(crate) rows_written: u64,
    pub(crate) rows_deleted: u64,
}

/// What locating a change set's rows found.
pub(crate) struct Found {
    /// Rows to delete by position.
    pub positions: Positions,
    /// Old rows of upserted keys whose unchanged cells need them.
    pub old: OldRows,
    /// Data files rewritten (their kept rows went to the writer).
    pub removed: Vec<LiveFile>,
    /// Rows the change set's deletes removed.
    pub deleted: u64,
}

impl Found {
    fn nothing(keys: &ChangedKeys) -> Self {
        Found {
            positions: Positions::new(),
            old: OldRows::new(keys),
            removed: Vec::new(),
            deleted: 0,
        }
    }
}

/// How an attempt finds its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub removal: RowRemoval,
    /// Every live row is rewritten (a new column with a default, compaction).
    pub rewrite_all: bool,
}

/// Locates the rows `keys` touch in `loaded`, one task per core: touched rows of kept files
/// become positions, rewritten files' kept rows go to `out`.
pub(crate) async fn locate_rows(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    keys: &Arc<ChangedKeys>,
    plan: Plan,
    cache: &mut FileCache,
    out: &mut RollingWriter<'_>,
) -> Result<Found> {
    let mut found = Found::nothing(keys);
    let key = &keys.key_columns()[0];
    let files = candidates(loaded, key, &keys.ranges(), plan.removal, plan.rewrite_all);
    if files.is_empty() {
        return Ok(found);
    }
    let wanted: Vec<&LiveFile> = files.iter().map(|(f, _)| f).collect();
    let merged = keys.schema();
    let reader = IcebergFiles::new(table, io, loaded, &wanted, &merged, cache).await?;
    let mut located = locate(Arc::new(reader), keys.clone(), files, plan.removal);
    while let Some(next) = located.next().await {
        let Some(mut f) = next? else { continue };
        found.deleted += f.deleted;
        let old = std::mem::replace(&mut f.old, RecordBatch::new_empty(merged.clone()));
        found.old.add(old, &f.old_upserts);
        match f.kept.take() {
            Some(kept) => {
                out.push_kept(kept).await?;
                found.removed.push(f.file);
            }
            None => {
                let rows = f.touched.iter().map(|&p| p as i64).collect();
                found.positions.insert(f.file.path().to_string(), rows);
            }
        }
    }
    Ok(found)
}

/// The live rows of `loaded` that `keys` asks for (every live row with `every_row`), for
/// `UpsertDriver::lookup`.
pub(crate) async fn lookup(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    keys: Arc<ChangedKeys>,
    every_row: bool,
    cache: &mut FileCache,
) -> Result<RecordBatch> {
    let removal = lookup_removal(every_row);
    let key = &keys.key_columns()[0];
    let files = candidates(loaded, key, &keys.ranges(), removal, every_row);
    if files.is_empty() {
        return Ok(RecordBatch::new_empty(keys.schema()));
    }
    let wanted: Vec<&LiveFile> = files.iter().map(|(f, _)| f).collect();
    let merged = keys.schema();
    let reader = IcebergFiles::new(table, io, loaded, &wanted, &merged, cache).await?;
    lookup_rows(Arc::new(reader), keys, files, every_row).await
}

/// The schema change of an attempt (`None` when the schema stays) and whether it rewrites the
/// live rows: widened types are promoted by readers at read time; only a new column with a
/// non-null default (or a change Iceberg cannot promote) rewrites them.
fn schema_change(name: &str, loaded: &Loaded, merged: &SchemaRef) -> Result<(Staged, bool)> {
    let mut staged = Staged::default();
    if *merged == loaded.logical {
        return Ok((staged, false));
    }
    let next = iceberg_schema(
        name,
        merged,
        Some(&loaded.schema()),
        loaded.metadata.last_column_id(),
        &loaded.key_columns,
    )?;
    let rewrite_all = !loaded.data_files.is_empty()
        && promote::rewrites_rows(&loaded.logical, merged, &loaded.schema(), &next);
    staged.schema = Some(next);
    staged.properties = schema_properties(merged, &loaded.key_columns);
    Ok((staged, rewrite_all))
}

/// Writes the files of one attempt and the metadata that adds them.
pub(crate) async fn stage(
    table: &TableId,
    io: &FileIO,
    mode: WriteMode,
    a: Attempt<'_, Loaded>,
    cache: &mut FileCache,
) -> Result<Snapshot> {
    let name = table.to_string();
    let (loaded, keys, changes) = (a.state, a.keys, a.changes);
    let (mut staged, rewrite_all) = schema_change(&name, &loaded, &a.merged)?;
    let evolved = evolve_metadata(&name, &loaded, &staged)?;
    let equality = mode == WriteMode::EqualityDeletes;
    if equality && !evolved.metadata.default_partition_spec().is_unpartitioned() {
        return Err(IcebergSinkError::Layout {
            table: name,
            message: EQUALITY_PARTITIONED.into(),
        });
    }
    staged.remove_all = changes.truncate || rewrite_all;
    let mut out = RollingWriter::new(table, io, &evolved.metadata, a.merged.clone());
    let removal = match mode {
        WriteMode::CopyOnWrite => RowRemoval::Rewrite,
        _ => RowRemoval::Mark,
    };
    // Equality deletes name keys, not rows: nothing to find unless old values are needed.
    let skip = changes.truncate || (equality && !rewrite_all && !keys.any_needs_old_row());
    let found = match skip {
        true => Found::nothing(&keys),
        false => {
            let plan = Plan {
                removal,
                rewrite_all,
            };
            locate_rows(table, io, &loaded, &keys, plan, cache, &mut out).await?
        }
    };
    let resolved = found.old.resolve(&keys, None)?;
    out.push_logical(resolved.clone()).await?;
    staged.data = out.finish().await?.0;
    if !staged.remove_all {
        staged.removed = found.removed;
        staged.deletes = if equality {
            equality_deletes(&name, io, &evolved, &keys).await?
        } else {
            position_deletes(&name, io, &loaded, &evolved, &found.positions).await?
        };
    }
    staged.checkpoint = a.checkpoint.to_json();
    let next = write_snapshot(&name, io, &loaded, evolved, &staged).await?;
    let rows_deleted = match () {
        _ if changes.truncate => loaded.live_rows(),
        _ if skip => changes.deletes.num_rows() as u64,
        _ => found.deleted,
    };
    Ok(Snapshot {
        loaded,
        next,
        rows_written: resolved.num_rows() as u64,
        rows_deleted,
    })
}

async fn equality_deletes(
    name: &str,
    io: &FileIO,
    evolved: &NextMetadata,
    keys: &ChangedKeys,
) -> Result<Vec<iceberg::spec::DataFile>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let key_rows = keys.key_batch()?;
    Ok(vec![
        write_equality_deletes(name, io, &evolved.metadata, &key_rows).await?,
    ])
}

async fn position_deletes(
    name: &str,
    io: &FileIO,
    loaded: &Loaded,
    evolved: &NextMetadata,
    positions: &Positions,
) -> Result<Vec<iceberg::spec::DataFile>> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let partitions: HashMap<&str, &Struct> = loaded
        .data_files
        .iter()
        .map(|f| (f.path(), f.entry.data_file.partition()))
        .collect();
    write_position_deletes(name, io, &evolved.metadata, positions, &partitions).await
}
