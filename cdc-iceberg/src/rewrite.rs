//! Writing new data files as rows arrive: upserted rows (logical) and the kept rows of files
//! that are rewritten (as they were read) are handed to a [`RollingWriter`], which writes data
//! files once it holds a file's worth of rows
//! ([`MAX_ROWS_PER_FILE`](crate::files::MAX_ROWS_PER_FILE)). Memory holds at most one input
//! file's rows plus one output file's worth, not the whole table.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::carry_over;
use cdc_core::storage::to_storage;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, TableMetadata};

use crate::error::Result;
use crate::files::{write_data_files, MAX_ROWS_PER_FILE};
use crate::schema::stored_arrow_schema;

/// Collects rows of the merged schema and writes them as data files of `metadata`'s schema
/// and partition spec, rolling over at `max_rows` rows.
pub(crate) struct RollingWriter<'a> {
    table: TableId,
    io: &'a FileIO,
    metadata: &'a TableMetadata,
    merged: SchemaRef,
    stored: SchemaRef,
    max_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
    files: Vec<DataFile>,
}

impl<'a> RollingWriter<'a> {
    pub fn new(
        table: &TableId,
        io: &'a FileIO,
        metadata: &'a TableMetadata,
        merged: SchemaRef,
    ) -> Self {
        RollingWriter {
            table: table.clone(),
            io,
            metadata,
            stored: Arc::new(stored_arrow_schema(&merged)),
            merged,
            max_rows: MAX_ROWS_PER_FILE,
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
            files: Vec::new(),
        }
    }

    /// Adds rows of the merged logical schema.
    pub async fn push_logical(&mut self, rows: RecordBatch) -> Result<()> {
        let stored = to_storage(&rows, &self.stored)?;
        self.push(stored).await
    }

    /// Adds rows as a data file held them (its schema possibly older).
    pub async fn push_kept(&mut self, rows: RecordBatch) -> Result<()> {
        let stored = carry_over(&self.table, &rows, &self.stored, &self.merged)?;
        self.push(stored).await
    }

    async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= self.max_rows {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = arrow_select::concat::concat_batches(&self.stored, &self.pending)
            .map_err(|e| cdc_core::Error::arrow("joining rows of a rewrite", e))?;
        self.pending.clear();
        self.pending_rows = 0;
        let name = self.table.to_string();
        let files = write_data_files(&name, self.io, self.metadata, &batch).await?;
        self.files.extend(files);
        Ok(())
    }

    /// Writes what is pending; the data files written and the rows in them.
    pub async fn finish(mut self) -> Result<(Vec<DataFile>, u64)> {
        self.flush().await?;
        Ok((self.files, self.rows))
    }
}
