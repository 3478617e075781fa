//! Encoding one Parquet file with its columns spread over the cores. A copy-on-write table
//! often has one file group that takes a whole batch (a growing small file, or the one group a
//! batch's updates all land in), and `ArrowWriter` encodes column after column on one thread,
//! which left the second core idle for the longest part of a commit. Columns are independent,
//! so each is encoded by whichever thread is free, largest first, and the chunks are laid out in
//! schema order: the file is the same as `ArrowWriter` writes.

use std::sync::Mutex;

use arrow_array::RecordBatch;
use cdc_core::parallel::map_pieces;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;

/// Writes `parts` (one schema) through `writer` as row groups of at most its properties'
/// `max_row_group_row_count` rows, encoding the columns of each row group in parallel;
/// returns what the writer wrote to.
pub(crate) fn write_parallel<W: std::io::Write + Send>(
    writer: ArrowWriter<W>,
    parts: &[RecordBatch],
) -> Result<W, String> {
    let (mut file, factory) = writer.into_serialized_writer().map_err(|e| e.to_string())?;
    let max_rows = file.properties().max_row_group_row_count();
    let max_rows = max_rows.unwrap_or(usize::MAX).max(1);
    for (index, group) in row_groups(parts, max_rows).iter().enumerate() {
        let writers = factory
            .create_column_writers(index)
            .map_err(|e| e.to_string())?;
        let chunks = encode_columns(group, writers)?;
        let mut row_group = file.next_row_group().map_err(|e| e.to_string())?;
        for chunk in chunks {
            chunk
                .append_to_row_group(&mut row_group)
                .map_err(|e| e.to_string())?;
        }
        row_group.close().map_err(|e| e.to_string())?;
    }
    file.into_inner().map_err(|e| e.to_string())
}

/// `parts` cut into row groups of at most `max_rows` rows (slices, no copies).
fn row_groups(parts: &[RecordBatch], max_rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut groups = Vec::new();
    let (mut group, mut rows) = (Vec::new(), 0);
    for part in parts {
        let mut offset = 0;
        while offset < part.num_rows() {
            let take = (max_rows - rows).min(part.num_rows() - offset);
            group.push(part.slice(offset, take));
            (offset, rows) = (offset + take, rows + take);
            if rows == max_rows {
                groups.push(std::mem::take(&mut group));
                rows = 0;
            }
        }
    }
    if rows > 0 || groups.is_empty() {
        groups.push(group);
    }
    groups
}

/// The leaf chunks of one top-level column, or why it could not be encoded.
type Encoded = Result<Vec<ArrowColumnChunk>, String>;

/// One top-level column of a row group: its leaf writers.
struct ColumnJob {
    field: usize,
    writers: Vec<ArrowColumnWriter>,
}

/// The column chunks of one row group (`slices` of one schema), in schema order.
fn encode_columns(
    slices: &[RecordBatch],
    mut writers: Vec<ArrowColumnWriter>,
) -> Result<Vec<ArrowColumnChunk>, String> {
    let Some(first) = slices.first() else {
        return writers
            .into_iter()
            .map(|w| w.close().map_err(|e| e.to_string()))
            .collect();
    };
    let schema = first.schema();
    // Leaves per top-level field, to hand each job its own writers.
    let mut jobs = Vec::with_capacity(schema.fields().len());
    for (field, f) in schema.fields().iter().enumerate() {
        let leaves = compute_leaves(f, first.column(field))
            .map_err(|e| e.to_string())?
            .len();
        let rest = writers.split_off(leaves.min(writers.len()));
        jobs.push(ColumnJob {
            field,
            writers: std::mem::replace(&mut writers, rest),
        });
    }
    let size = |j: &ColumnJob| -> usize {
        let columns = slices.iter().map(|s| s.column(j.field));
        columns.map(|c| c.get_array_memory_size()).sum()
    };
    jobs.sort_by_key(|j| std::cmp::Reverse(size(j)));
    let fields: Vec<usize> = jobs.iter().map(|j| j.field).collect();
    let jobs: Vec<Mutex<Option<ColumnJob>>> =
        jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let done = map_pieces(jobs.len(), true, |i| {
        let job = jobs[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        encode_column(slices, job.expect("each job runs once"))
    });
    // Back to schema order.
    let mut by_field: Vec<(usize, Vec<ArrowColumnChunk>)> = Vec::with_capacity(fields.len());
    for (field, chunks) in fields.into_iter().zip(done) {
        by_field.push((field, chunks?));
    }
    by_field.sort_by_key(|(field, _)| *field);
    Ok(by_field.into_iter().flat_map(|(_, c)| c).collect())
}

/// Encodes one top-level column of every slice into its leaf chunks.
fn encode_column(slices: &[RecordBatch], job: ColumnJob) -> Encoded {
    let ColumnJob { field, mut writers } = job;
    for slice in slices {
        let f = &slice.schema_ref().fields()[field];
        let leaves = compute_leaves(f, slice.column(field)).map_err(|e| e.to_string())?;
        for (writer, leaf) in writers.iter_mut().zip(&leaves) {
            writer.write(leaf).map_err(|e| e.to_string())?;
        }
    }
    writers
        .into_iter()
        .map(|w| w.close().map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Array, ArrayRef, Int64Array, ListArray, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;

    fn part(from: i64, n: i64) -> RecordBatch {
        let ids = Int64Array::from_iter_values(from..from + n);
        let names = StringArray::from_iter_values((from..from + n).map(|i| format!("name {i}")));
        let tags = ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(
            (from..from + n).map(|i| Some(vec![Some(i), None])),
        );
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("tags", tags.data_type().clone(), true),
        ]);
        let columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(names), Arc::new(tags)];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    #[test]
    fn a_file_encoded_in_parallel_reads_back_as_written_in_row_groups_of_the_limit() {
        let parts = vec![part(0, 7), part(7, 5), part(12, 4)];
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(6))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), parts[0].schema(), Some(props)).unwrap();
        let bytes = Bytes::from(write_parallel(writer, &parts).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let sizes: Vec<i64> = (reader.metadata().row_groups().iter())
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [6, 6, 4]);
        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let read = arrow_select::concat::concat_batches(&read[0].schema(), &read).unwrap();
        let written = arrow_select::concat::concat_batches(&parts[0].schema(), &parts).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn no_rows_make_a_file_with_one_empty_row_group() {
        let parts = vec![part(0, 0)];
        let writer = ArrowWriter::try_new(Vec::new(), parts[0].schema(), None).unwrap();
        let bytes = Bytes::from(write_parallel(writer, &parts).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        assert_eq!(reader.schema().fields().len(), 3);
    }
}
