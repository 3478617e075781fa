//! Writing a rewrite of the table's live rows (compaction, a new column with a non-null
//! default) as it is read: one data file's live rows at a time are handed to a
//! [`RollingWriter`], which writes data files once it holds a file's worth of rows
//! ([`MAX_ROWS_PER_FILE`](crate::files::MAX_ROWS_PER_FILE)). Memory holds at most one input
//! file's rows plus one output file's worth, not the whole table.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, TableMetadata};

use crate::error::Result;
use crate::files::{write_data_files, MAX_ROWS_PER_FILE};

/// Collects batches of the merged logical schema and writes them as data files of
/// `metadata`'s schema and partition spec, rolling over at `max_rows` rows.
pub(crate) struct RollingWriter<'a> {
    table: &'a str,
    io: &'a FileIO,
    metadata: &'a TableMetadata,
    schema: SchemaRef,
    max_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
    files: Vec<DataFile>,
}

impl<'a> RollingWriter<'a> {
    pub fn new(
        table: &'a str,
        io: &'a FileIO,
        metadata: &'a TableMetadata,
        schema: SchemaRef,
    ) -> Self {
        RollingWriter {
            table,
            io,
            metadata,
            schema,
            max_rows: MAX_ROWS_PER_FILE,
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
            files: Vec::new(),
        }
    }

    /// Adds rows; writes data files when a file's worth is pending.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
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
        let batch = arrow_select::concat::concat_batches(&self.schema, &self.pending)
            .map_err(|e| cdc_core::Error::arrow("joining rows of a rewrite", e))?;
        self.pending.clear();
        self.pending_rows = 0;
        let files = write_data_files(self.table, self.io, self.metadata, &batch).await?;
        self.files.extend(files);
        Ok(())
    }

    /// Writes what is pending; the data files written and the rows in them.
    pub async fn finish(mut self) -> Result<(Vec<DataFile>, u64)> {
        self.flush().await?;
        Ok((self.files, self.rows))
    }
}
