//! The data files a change set touches: each candidate file is read (its key columns first when
//! few changed keys fall in its range), and its changed rows are either marked in the file's
//! deletion vector (few changed rows: the file stays, only its key columns were read) or split
//! off with the kept rows handed back for rewriting (copy-on-write). Every read honours the
//! file's existing deletion vector: a row it deletes is never found, kept or replaced. Files are
//! processed concurrently, one task per core, while the caller writes the results in order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray, UInt32Array,
};
use arrow_schema::{Schema, SchemaRef};
use cdc_core::model::TableId;
use cdc_core::schema::evolve_batch;
use cdc_core::sink::upsert::{ChangedKeys, Touch};
use cdc_core::storage::{from_storage_columns, parquet_projection};
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::logstore::ObjectStoreRef;
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use roaring::RoaringTreemap;
use url::Url;

use crate::error::{DeltaSinkError, Result};

/// A candidate file with a changed key possibly inside.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// Partition values, as strings.
    pub partition_values: HashMap<String, String>,
    /// Read the key columns first and skip the file if it holds no changed key.
    pub probe: bool,
    /// Rewrite the file even if it holds no changed key (a schema change needs its rows
    /// rewritten).
    pub rewrite_anyway: bool,
    /// The file's deletion vector, if it has one.
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// The file may get a deletion vector instead of being rewritten.
    pub deletion_vector_allowed: bool,
}

/// What is shared by every file task of one change set.
#[derive(Debug)]
pub(crate) struct RewriteContext {
    pub table: TableId,
    pub store: ObjectStoreRef,
    /// The table root (deletion vectors with absolute paths are resolved against it).
    pub table_root: Url,
    /// Stored (Delta) schema of the merged table schema.
    pub stored: SchemaRef,
    /// Merged logical schema.
    pub merged: SchemaRef,
    /// Columns whose values live in the file's partition values, not in the file.
    pub partition_columns: Vec<String>,
    pub key_columns: Vec<String>,
    pub keys: ChangedKeys,
    /// For each upsert row: whether it has unchanged cells filled from its old row.
    pub needs_old_row: Vec<bool>,
    /// See [`crate::DeltaSinkConfig::deletion_vector_max_fraction`].
    pub deletion_vector_max_fraction: f64,
}

/// How a touched file changes.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Removed, its kept rows (logical types, merged schema) written to new files.
    Rewrite { kept: RecordBatch },
    /// Kept, with this deletion vector (the old one's rows included) of its `rows` rows.
    DeletionVector { deleted: RoaringTreemap, rows: u64 },
}

/// A file that held changed keys.
#[derive(Debug)]
pub(crate) struct Touched {
    pub plan: Plan,
    /// Old rows of upserted keys, with the upsert index of each (under a deletion vector only
    /// the rows whose unchanged cells need them).
    pub replaced: RecordBatch,
    pub replaced_upserts: Vec<usize>,
    /// Rows deleted.
    pub deleted: u64,
}

/// Processes one candidate: `None` when it holds no changed key (it stays as it is).
pub(crate) async fn rewrite_file(
    ctx: Arc<RewriteContext>,
    file: Candidate,
) -> Result<Option<Touched>> {
    let gone = match &file.deletion_vector {
        Some(dv) => crate::dv::read(&ctx.store, &ctx.table_root, dv)
            .await
            .map_err(|e| DeltaSinkError::DeletionVector {
                table: ctx.table.to_string(),
                path: file.path.clone(),
                message: e.to_string(),
            })?,
        None => RoaringTreemap::new(),
    };
    if file.probe {
        let key_rows = read_file(&ctx, &file, Some(&ctx.key_columns), None).await?;
        let touches = live_touches(
            ctx.keys
                .find(&from_storage_columns(&key_rows, &ctx.merged)?)?,
            &gone,
        );
        let changed = touches.iter().flatten().count();
        if changed == 0 && !file.rewrite_anyway {
            return Ok(None);
        }
        let rows = key_rows.num_rows() as u64;
        if use_deletion_vector(&ctx, &file, changed, rows, &gone) {
            return deletion_vector(&ctx, &file, &touches, gone, rows, None)
                .await
                .map(Some);
        }
    }
    let rows = read_file(&ctx, &file, None, None).await?;
    let rows = evolve_batch(
        &ctx.table,
        &from_storage_columns(&rows, &ctx.merged)?,
        &ctx.merged,
    )?;
    let touches = live_touches(ctx.keys.find(&rows)?, &gone);
    let changed = touches.iter().flatten().count();
    if changed == 0 && !file.rewrite_anyway {
        // Probing was skipped and the file holds none of the keys after all.
        return Ok(None);
    }
    let n = rows.num_rows() as u64;
    if use_deletion_vector(&ctx, &file, changed, n, &gone) {
        return deletion_vector(&ctx, &file, &touches, gone, n, Some(&rows))
            .await
            .map(Some);
    }
    let mut keep = Vec::with_capacity(rows.num_rows());
    let mut taken = Vec::new();
    let mut replaced_upserts = Vec::new();
    let mut deleted = 0;
    for (i, t) in touches.iter().enumerate() {
        match t {
            None => keep.push(!gone.contains(i as u64)),
            Some(Touch::Delete) => {
                keep.push(false);
                deleted += 1;
            }
            Some(Touch::Upsert(j)) => {
                keep.push(false);
                taken.push(i as u32);
                replaced_upserts.push(*j);
            }
        }
    }
    let replaced = arrow_select::take::take_record_batch(&rows, &UInt32Array::from(taken))
        .map_err(|e| cdc_core::Error::arrow("collecting replaced rows", e))?;
    let kept = arrow_select::filter::filter_record_batch(&rows, &BooleanArray::from(keep))
        .map_err(|e| cdc_core::Error::arrow("filtering a rewritten file", e))?;
    Ok(Some(Touched {
        plan: Plan::Rewrite { kept },
        replaced,
        replaced_upserts,
        deleted,
    }))
}

/// `touches` with the rows the file's deletion vector already deletes left out.
fn live_touches(mut touches: Vec<Option<Touch>>, gone: &RoaringTreemap) -> Vec<Option<Touch>> {
    for i in gone.iter() {
        if let Some(t) = touches.get_mut(i as usize) {
            *t = None;
        }
    }
    touches
}

/// Whether `changed` rows of a file of `rows` rows are few enough for a deletion vector.
fn use_deletion_vector(
    ctx: &RewriteContext,
    file: &Candidate,
    changed: usize,
    rows: u64,
    gone: &RoaringTreemap,
) -> bool {
    let live = rows.saturating_sub(gone.len());
    file.deletion_vector_allowed
        && !file.rewrite_anyway
        && changed as f64 <= ctx.deletion_vector_max_fraction * live as f64
}

/// The deletion-vector plan of a file: its changed rows added to `deleted`. Old rows are taken
/// only where an upsert's unchanged cells need them, from `rows` when the file was read whole,
/// else by reading just those rows.
async fn deletion_vector(
    ctx: &RewriteContext,
    file: &Candidate,
    touches: &[Option<Touch>],
    mut deleted_rows: RoaringTreemap,
    rows: u64,
    read: Option<&RecordBatch>,
) -> Result<Touched> {
    let mut deleted = 0;
    let mut taken = Vec::new();
    let mut replaced_upserts = Vec::new();
    for (i, t) in touches.iter().enumerate() {
        match t {
            None => {}
            Some(Touch::Delete) => {
                deleted_rows.insert(i as u64);
                deleted += 1;
            }
            Some(Touch::Upsert(j)) => {
                deleted_rows.insert(i as u64);
                if ctx.needs_old_row[*j] {
                    taken.push(i);
                    replaced_upserts.push(*j);
                }
            }
        }
    }
    let replaced = if taken.is_empty() {
        RecordBatch::new_empty(ctx.merged.clone())
    } else if let Some(all) = read {
        let indices = UInt32Array::from_iter_values(taken.iter().map(|&i| i as u32));
        arrow_select::take::take_record_batch(all, &indices)
            .map_err(|e| cdc_core::Error::arrow("collecting replaced rows", e))?
    } else {
        let old = read_file(ctx, file, None, Some(&taken)).await?;
        evolve_batch(
            &ctx.table,
            &from_storage_columns(&old, &ctx.merged)?,
            &ctx.merged,
        )?
    };
    Ok(Touched {
        plan: Plan::DeletionVector {
            deleted: deleted_rows,
            rows,
        },
        replaced,
        replaced_upserts,
        deleted,
    })
}

/// Reads one data file (all columns, or only `columns`; all rows, or only the rows at the
/// ascending positions `rows`), adding partition columns from the file's partition values.
/// Rows come back in file order, deleted ones included: callers apply the deletion vector.
async fn read_file(
    ctx: &RewriteContext,
    file: &Candidate,
    columns: Option<&[String]>,
    rows: Option<&[usize]>,
) -> Result<RecordBatch> {
    let read_err = |message: String| DeltaSinkError::ReadFile {
        table: ctx.table.to_string(),
        path: file.path.clone(),
        message,
    };
    let object_path = Path::parse(&file.path).map_err(|e| read_err(e.to_string()))?;
    let reader =
        ParquetObjectReader::new(ctx.store.clone(), object_path).with_file_size(file.size as u64);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| read_err(e.to_string()))?;
    let (mask, projected) = parquet_projection(builder.parquet_schema(), builder.schema(), columns);
    let mut builder = builder.with_projection(mask);
    if let Some(rows) = rows {
        let total = usize::try_from(builder.metadata().file_metadata().num_rows())
            .map_err(|e| read_err(e.to_string()))?;
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&i| i..i + 1),
            total,
        ));
    }
    let stream = builder.build().map_err(|e| read_err(e.to_string()))?;
    let batches: Vec<RecordBatch> = stream
        .try_collect()
        .await
        .map_err(|e| read_err(e.to_string()))?;
    let out_schema = batches.first().map_or(projected, |b| b.schema());
    let batch = arrow_select::concat::concat_batches(&out_schema, &batches)
        .map_err(|e| read_err(e.to_string()))?;
    add_partition_columns(batch, ctx, &file.partition_values, columns).map_err(read_err)
}

fn add_partition_columns(
    batch: RecordBatch,
    ctx: &RewriteContext,
    partition_values: &HashMap<String, String>,
    columns: Option<&[String]>,
) -> std::result::Result<RecordBatch, String> {
    // Only partition columns: any other column a file lacks was added to the table after the
    // file was written, and gets its default later (`evolve_batch`), not a null here.
    let wanted: Vec<&arrow_schema::FieldRef> = ctx
        .stored
        .fields()
        .iter()
        .filter(|f| ctx.partition_columns.contains(f.name()))
        .filter(|f| batch.schema().index_of(f.name()).is_err())
        .filter(|f| columns.is_none_or(|c| c.contains(f.name())))
        .collect();
    if wanted.is_empty() {
        return Ok(batch);
    }
    let n = batch.num_rows();
    let mut fields: Vec<arrow_schema::FieldRef> = batch.schema().fields().iter().cloned().collect();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    for f in wanted {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            partition_values
                .get(f.name())
                .cloned();
            n
        ]));
        cols.push(arrow_cast::cast(&text, f.data_type()).map_err(|e| e.to_string())?);
        fields.push(f.clone());
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .map_err(|e| e.to_string())
}
