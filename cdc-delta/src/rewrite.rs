//! Copy-on-write of the data files a change set touches: each candidate file is read (its key
//! columns first when few changed keys fall in its range), its changed rows are split off, and
//! its kept rows are handed back for rewriting. Files are processed concurrently, one task per
//! core, while the caller writes the results in order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray, UInt32Array,
};
use arrow_schema::{Schema, SchemaRef};
use cdc_core::model::TableId;
use cdc_core::schema::evolve_batch;
use cdc_core::sink::upsert::{ChangedKeys, Touch};
use cdc_core::storage::from_storage;
use deltalake::logstore::ObjectStoreRef;
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;

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
}

/// What is shared by every file task of one change set.
#[derive(Debug)]
pub(crate) struct RewriteContext {
    pub table: TableId,
    pub store: ObjectStoreRef,
    /// Stored (Delta) schema of the merged table schema.
    pub stored: SchemaRef,
    /// Merged logical schema.
    pub merged: SchemaRef,
    /// Columns whose values live in the file's partition values, not in the file.
    pub partition_columns: Vec<String>,
    pub key_columns: Vec<String>,
    pub keys: ChangedKeys,
}

/// A file that held changed keys.
#[derive(Debug)]
pub(crate) struct Rewritten {
    /// Rows to keep (logical types, merged schema).
    pub kept: RecordBatch,
    /// The old rows of upserted keys, with the upsert index of each.
    pub replaced: RecordBatch,
    pub replaced_upserts: Vec<usize>,
    /// Rows deleted.
    pub deleted: u64,
}

/// Processes one candidate: `None` when it holds no changed key (it stays as it is).
pub(crate) async fn rewrite_file(
    ctx: Arc<RewriteContext>,
    file: Candidate,
) -> Result<Option<Rewritten>> {
    if file.probe {
        let key_rows = read_file(&ctx, &file, Some(&ctx.key_columns)).await?;
        let touches = ctx.keys.find(&logical(&key_rows, &ctx.merged)?)?;
        if touches.iter().all(Option::is_none) {
            return Ok(None);
        }
    }
    let rows = read_file(&ctx, &file, None).await?;
    let rows = evolve_batch(&ctx.table, &logical(&rows, &ctx.merged)?, &ctx.merged)?;
    let touches = ctx.keys.find(&rows)?;
    let mut keep = Vec::with_capacity(rows.num_rows());
    let mut taken = Vec::new();
    let mut replaced_upserts = Vec::new();
    let mut deleted = 0;
    for (i, t) in touches.iter().enumerate() {
        match t {
            None => keep.push(true),
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
    if taken.is_empty() && deleted == 0 && !file.rewrite_anyway {
        // Probing was skipped and the file holds none of the keys after all.
        return Ok(None);
    }
    let replaced = arrow_select::take::take_record_batch(&rows, &UInt32Array::from(taken))
        .map_err(|e| cdc_core::Error::arrow("collecting replaced rows", e))?;
    let kept = arrow_select::filter::filter_record_batch(&rows, &BooleanArray::from(keep))
        .map_err(|e| cdc_core::Error::arrow("filtering a rewritten file", e))?;
    Ok(Some(Rewritten {
        kept,
        replaced,
        replaced_upserts,
        deleted,
    }))
}

/// A stored batch (possibly a projection, possibly an older schema) in logical types: every
/// column it has converted to the merged logical type of the same name.
fn logical(batch: &RecordBatch, merged: &SchemaRef) -> cdc_core::Result<RecordBatch> {
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .filter_map(|f| merged.field_with_name(f.name()).ok().cloned())
        .map(Arc::new)
        .collect();
    let logical = Arc::new(Schema::new(fields));
    let indices: Vec<usize> = logical
        .fields()
        .iter()
        .map(|f| batch.schema().index_of(f.name()).expect("filtered"))
        .collect();
    let projected = batch
        .project(&indices)
        .map_err(|e| cdc_core::Error::arrow("projecting a data file", e))?;
    from_storage(&projected, &logical)
}

/// Reads one data file (all columns, or only `columns`), adding partition columns from the
/// file's partition values.
async fn read_file(
    ctx: &RewriteContext,
    file: &Candidate,
    columns: Option<&[String]>,
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
    let file_schema = builder.schema().clone();
    let mask = match columns {
        Some(cols) => {
            let indices: Vec<usize> = cols
                .iter()
                .filter_map(|c| file_schema.index_of(c).ok())
                .collect();
            ProjectionMask::roots(builder.parquet_schema(), indices)
        }
        None => ProjectionMask::all(),
    };
    let stream = builder
        .with_projection(mask)
        .build()
        .map_err(|e| read_err(e.to_string()))?;
    let batches: Vec<RecordBatch> = stream
        .try_collect()
        .await
        .map_err(|e| read_err(e.to_string()))?;
    let out_schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let projected: Vec<_> = file_schema
                .fields()
                .iter()
                .filter(|f| columns.is_none_or(|c| c.contains(f.name())))
                .cloned()
                .collect();
            Arc::new(Schema::new(projected))
        }
    };
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
