//! The data files a change set may touch and how they are read: candidates pruned by their
//! min/max statistics of the first key column, read (key columns first, or whole) with their
//! partition values added back, and their existing deletion vectors honoured.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{FilePlan, FileReader, KeyBounds, KeyRanges, RowRemoval};
use cdc_core::storage::read_parquet_file;
use deltalake::logstore::ObjectStoreRef;
use object_store::path::Path;
use parquet::arrow::async_reader::ParquetObjectReader;
use url::Url;

use crate::error::{DeltaSinkError, Result};
use crate::files::{FileIndex, LiveFile};

/// The files of `files` a change set must read, with how; `removal` says whether a touched
/// file may get a deletion vector.
pub(crate) fn candidates(
    files: &FileIndex,
    ranges: &KeyRanges,
    removal: RowRemoval,
    rewrite_all: bool,
) -> Vec<(LiveFile, FilePlan)> {
    files
        .iter()
        .filter_map(|file| {
            let bounds = file
                .key_bounds
                .map_or(KeyBounds::Unknown, |(a, b)| KeyBounds::Ints(a, b));
            let plan = ranges.plan(&bounds, file.live_rows(), removal, rewrite_all)?;
            Some((file.clone(), plan))
        })
        .collect()
}

/// Reads the table's data files.
#[derive(Debug)]
pub(crate) struct DeltaFiles {
    pub table: TableId,
    pub store: ObjectStoreRef,
    /// The table root (deletion vectors with absolute paths are resolved against it).
    pub table_root: Url,
    /// Stored (Delta) schema of the merged table schema.
    pub stored: SchemaRef,
    /// Columns whose values live in the file's partition values, not in the file.
    pub partition_columns: Vec<String>,
}

#[async_trait]
impl FileReader for DeltaFiles {
    type File = LiveFile;
    type Error = DeltaSinkError;

    async fn read(
        &self,
        file: &LiveFile,
        columns: Option<&[String]>,
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch> {
        let read_err = |message: String| DeltaSinkError::ReadFile {
            table: self.table.to_string(),
            path: file.path().to_string(),
            message,
        };
        let object_path = Path::parse(file.path()).map_err(|e| read_err(e.to_string()))?;
        let reader =
            ParquetObjectReader::new(self.store.clone(), object_path).with_file_size(file.size());
        let batch = read_parquet_file(reader, file.size(), columns, rows)
            .await
            .map_err(read_err)?;
        self.add_partition_columns(batch, &file.add.partition_values, columns)
            .map_err(read_err)
    }

    async fn deleted(&self, file: &LiveFile, _keys: &RecordBatch) -> Result<Vec<u64>> {
        let Some(dv) = file.deletion_vector() else {
            return Ok(Vec::new());
        };
        let gone = crate::dv::read(&self.store, &self.table_root, dv)
            .await
            .map_err(|e| DeltaSinkError::DeletionVector {
                table: self.table.to_string(),
                path: file.path().to_string(),
                message: e.to_string(),
            })?;
        Ok(gone.iter().collect())
    }

    fn file_name<'a>(&self, file: &'a LiveFile) -> Option<&'a str> {
        Some(file.path())
    }
}

impl DeltaFiles {
    fn add_partition_columns(
        &self,
        batch: RecordBatch,
        partition_values: &HashMap<String, Option<String>>,
        columns: Option<&[String]>,
    ) -> std::result::Result<RecordBatch, String> {
        // Only partition columns: any other column a file lacks was added to the table after
        // the file was written, and gets its default later (`evolve_batch`), not a null here.
        let wanted: Vec<&arrow_schema::FieldRef> = self
            .stored
            .fields()
            .iter()
            .filter(|f| self.partition_columns.contains(f.name()))
            .filter(|f| batch.schema().index_of(f.name()).is_err())
            .filter(|f| columns.is_none_or(|c| c.contains(f.name())))
            .collect();
        if wanted.is_empty() {
            return Ok(batch);
        }
        let n = batch.num_rows();
        let mut fields: Vec<arrow_schema::FieldRef> =
            batch.schema().fields().iter().cloned().collect();
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for f in wanted {
            let value = partition_values.get(f.name()).cloned().flatten();
            let text: ArrayRef = Arc::new(StringArray::from(vec![value; n]));
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
}
