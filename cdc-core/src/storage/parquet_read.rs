//! Reading a table's Parquet file into one batch. A file read whole (a copy-on-write commit
//! rewrites it, a merge-on-read commit compacts it) is decoded column by column on every core:
//! the Parquet reader decodes one column after another on one thread, which was the longest
//! serial step of a commit that rewrites a large file group.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{FieldRef, Schema, SchemaRef};
use bytes::{Buf, Bytes};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::SchemaDescriptor;

use crate::parallel::{map_pieces, PARALLEL_ROWS};

/// Files up to this size are fetched whole in one request: reading the footer, then its
/// metadata, then the column chunks would take three (on S3, three round trips per file a
/// commit probes).
pub const FETCH_WHOLE_AT_MOST: u64 = 1 << 20;

/// [`read_parquet`] of a file of `size` bytes: one of at most [`FETCH_WHOLE_AT_MOST`] is
/// fetched in one request and read from memory.
pub async fn read_parquet_file<R>(
    mut reader: R,
    size: u64,
    columns: Option<&[String]>,
    rows: Option<&[u32]>,
) -> Result<RecordBatch, String>
where
    R: AsyncFileReader + Send + Unpin + 'static,
{
    if size > FETCH_WHOLE_AT_MOST {
        return read_parquet(reader, columns, rows).await;
    }
    let bytes = reader.get_bytes(0..size).await.map_err(|e| e.to_string())?;
    read_parquet(std::io::Cursor::new(bytes), columns, rows).await
}

/// Reads a Parquet file through `reader`: all columns or only the top-level `columns` it has
/// (see [`parquet_projection`]), all rows or only those at the ascending positions `rows`;
/// only the column chunks (and pages) asked for are fetched. The error is the Parquet or
/// Arrow message, for the format to wrap with the table and the file.
pub async fn read_parquet<R>(
    mut reader: R,
    columns: Option<&[String]>,
    rows: Option<&[u32]>,
) -> Result<RecordBatch, String>
where
    R: AsyncFileReader + Send + Unpin + 'static,
{
    let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let total_rows = metadata.metadata().file_metadata().num_rows();
    let large = usize::try_from(total_rows).unwrap_or(0) >= PARALLEL_ROWS;
    // Only a whole file: the column chunks are fetched as one span, which for a projection
    // would take in the columns between those asked for.
    if rows.is_none() && columns.is_none() && large && metadata.schema().fields().len() > 1 {
        let roots: Vec<usize> = (0..metadata.schema().fields().len()).collect();
        if let Some(span) = chunk_span(&metadata, &roots) {
            return read_columns_in_parallel(reader, &metadata, &roots, span).await;
        }
    }
    let (mask, out_schema) =
        parquet_projection(metadata.parquet_schema(), metadata.schema(), columns);
    let size = batch_size(metadata.metadata().row_groups(), rows);
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
        .with_projection(mask)
        .with_batch_size(size);
    if let Some(rows) = rows {
        let total = usize::try_from(total_rows).map_err(|e| e.to_string())?;
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&i| i as usize..i as usize + 1),
            total,
        ));
    }
    let stream = builder.build().map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| e.to_string())?;
    let schema = batches.first().map_or(out_schema, |b| b.schema());
    arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

/// A batch per row group (or for all rows asked for): the batches are concatenated, and
/// smaller ones would only be copied once more.
fn batch_size(groups: &[parquet::file::metadata::RowGroupMetaData], rows: Option<&[u32]>) -> usize {
    let largest_group = (groups.iter())
        .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let size = rows.map_or(largest_group, |r| r.len().min(largest_group));
    size.max(1024)
}

/// The byte span (start, end) holding every column chunk of the top-level columns `roots`;
/// `None` when they have no column chunk.
fn chunk_span(metadata: &ArrowReaderMetadata, roots: &[usize]) -> Option<(u64, u64)> {
    let groups = metadata.metadata().row_groups();
    let chunks = chunk_ranges(metadata.parquet_schema(), groups, roots);
    chunks.reduce(|(s, e), (a, b)| (s.min(a), e.max(b)))
}

/// Reads the top-level columns `roots` of every row: their column chunks (`span`) fetched in
/// one request, then each column decoded by whichever core is free.
async fn read_columns_in_parallel<R: AsyncFileReader>(
    mut reader: R,
    metadata: &ArrowReaderMetadata,
    roots: &[usize],
    (start, end): (u64, u64),
) -> Result<RecordBatch, String> {
    let parquet = metadata.parquet_schema();
    let bytes = reader
        .get_bytes(start..end.max(start))
        .await
        .map_err(|e| e.to_string())?;
    let fetched = Fetched { start, bytes };
    let size = batch_size(metadata.metadata().row_groups(), None);
    let read_root = |i: usize| -> Result<RecordBatch, String> {
        let mask = ProjectionMask::roots(parquet, [roots[i]]);
        let builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(fetched.clone(), metadata.clone());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(size)
            .build()
            .map_err(|e| e.to_string())?;
        let schema = arrow_array::RecordBatchReader::schema(&reader);
        let batches = reader.collect::<Result<Vec<_>, _>>();
        let batches = batches.map_err(|e| e.to_string())?;
        arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())
    };
    let pieces = map_pieces(roots.len(), true, read_root);
    let mut fields: Vec<FieldRef> = Vec::with_capacity(roots.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(roots.len());
    let mut file_metadata = None;
    for piece in pieces {
        let piece = piece?;
        file_metadata.get_or_insert_with(|| piece.schema().metadata().clone());
        fields.push(piece.schema().fields()[0].clone());
        columns.push(piece.column(0).clone());
    }
    let schema = Schema::new_with_metadata(fields, file_metadata.unwrap_or_default());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())
}

/// The byte ranges (start, end) of the column chunks of the top-level columns `roots`.
fn chunk_ranges<'a>(
    parquet: &'a SchemaDescriptor,
    groups: &'a [parquet::file::metadata::RowGroupMetaData],
    roots: &'a [usize],
) -> impl Iterator<Item = (u64, u64)> + 'a {
    let leaves: Vec<usize> = (0..parquet.num_columns())
        .filter(|&l| roots.contains(&parquet.get_column_root_idx(l)))
        .collect();
    groups.iter().flat_map(move |g| {
        let ranges = leaves.iter().map(|&l| g.column(l).byte_range());
        ranges
            .map(|(start, len)| (start, start + len))
            .collect::<Vec<_>>()
    })
}

/// The fetched part of a file, from offset `start`, read as the file.
#[derive(Clone)]
struct Fetched {
    start: u64,
    bytes: Bytes,
}

impl Fetched {
    fn range(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let out_of_range = || ParquetError::EOF(format!("offset {start} was not fetched"));
        let from = usize::try_from(start.checked_sub(self.start).ok_or_else(out_of_range)?)
            .map_err(|_| out_of_range())?;
        let to = length.map_or(Some(self.bytes.len()), |n| from.checked_add(n));
        match to {
            Some(to) if from <= to && to <= self.bytes.len() => Ok(self.bytes.slice(from..to)),
            _ => Err(out_of_range()),
        }
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.range(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.range(start, Some(length))
    }
}

/// The projection of a Parquet file onto the top-level columns of `columns` that the file has
/// (every column for `None`), and the Arrow schema of what it reads (in file order). Columns a
/// file lacks (it was written under an older schema) are left to the caller.
pub fn parquet_projection(
    parquet: &SchemaDescriptor,
    file: &SchemaRef,
    columns: Option<&[String]>,
) -> (ProjectionMask, SchemaRef) {
    let Some(columns) = columns else {
        return (ProjectionMask::all(), file.clone());
    };
    let mut indices: Vec<usize> = columns
        .iter()
        .filter_map(|c| file.index_of(c).ok())
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let fields: Vec<FieldRef> = indices.iter().map(|&i| file.fields()[i].clone()).collect();
    (
        ProjectionMask::roots(parquet, indices),
        Arc::new(Schema::new(fields)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, ListArray, StringArray};
    use arrow_schema::{DataType, Field};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use std::io::Cursor;
    use std::sync::atomic::Ordering;

    /// `n` rows (above `PARALLEL_ROWS`, so read whole they are read in parallel) in row
    /// groups of 7 000, with nulls and a nested column.
    fn file(n: i64) -> (RecordBatch, Vec<u8>) {
        let ids = Int64Array::from_iter_values(0..n);
        let names = StringArray::from_iter((0..n).map(|i| (i % 5 != 0).then(|| format!("n{i}"))));
        let tags = ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(
            (0..n).map(|i| (i % 3 != 0).then(|| vec![Some(i), None])),
        );
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("tags", tags.data_type().clone(), true),
        ]);
        let columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(names), Arc::new(tags)];
        let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(7_000))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        (batch, writer.into_inner().unwrap())
    }

    async fn read(bytes: &[u8], columns: Option<&[String]>, rows: Option<&[u32]>) -> RecordBatch {
        read_parquet(Cursor::new(bytes.to_vec()), columns, rows)
            .await
            .unwrap()
    }

    /// A reader counting the requests a store would get.
    struct Counting {
        file: Cursor<Vec<u8>>,
        requests: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Counting {
        fn new(bytes: Vec<u8>) -> (Self, Arc<std::sync::atomic::AtomicUsize>) {
            let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let file = Cursor::new(bytes);
            let counted = requests.clone();
            (Counting { file, requests }, counted)
        }

        fn count(&self) {
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl AsyncFileReader for Counting {
        fn get_bytes(
            &mut self,
            range: std::ops::Range<u64>,
        ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Bytes>> {
            self.count();
            self.file.get_bytes(range)
        }

        fn get_metadata<'a>(
            &'a mut self,
            options: Option<&'a ArrowReaderOptions>,
        ) -> futures::future::BoxFuture<
            'a,
            parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
        > {
            self.count();
            self.file.get_metadata(options)
        }
    }

    #[tokio::test]
    async fn a_small_file_is_fetched_in_one_request() {
        let (_, bytes) = file(3_000);
        let size = bytes.len() as u64;
        assert!(size <= FETCH_WHOLE_AT_MOST);
        let id = ["id".to_string()];
        let expected = read(&bytes, Some(&id), Some(&[1, 5])).await;
        let (counting, requests) = Counting::new(bytes.clone());
        let got = read_parquet_file(counting, size, Some(&id), Some(&[1, 5]))
            .await
            .unwrap();
        assert_eq!((got, requests.load(Ordering::SeqCst)), (expected, 1));
        // A file past the limit: the footer first, then only the column chunks asked for.
        let (counting, requests) = Counting::new(bytes);
        read_parquet_file(counting, FETCH_WHOLE_AT_MOST + 1, Some(&id), None)
            .await
            .unwrap();
        assert!(requests.load(Ordering::SeqCst) > 1, "{requests:?}");
    }

    #[tokio::test]
    async fn a_file_read_column_by_column_on_every_core_is_the_file() {
        let (written, bytes) = file(40_000);
        assert!(written.num_rows() >= PARALLEL_ROWS);
        assert_eq!(read(&bytes, None, None).await, written);
        let some = ["tags".to_string(), "id".to_string(), "gone".to_string()];
        assert_eq!(
            read(&bytes, Some(&some), None).await,
            written.project(&[0, 2]).unwrap()
        );
        // The streaming paths: a projection, or positions.
        let one = ["name".to_string()];
        assert_eq!(
            read(&bytes, Some(&one), None).await,
            written.project(&[1]).unwrap()
        );
        let rows: Vec<u32> = vec![0, 6_999, 7_000, 39_999];
        let indices = arrow_array::UInt32Array::from(rows.clone());
        let expected = arrow_select::take::take_record_batch(&written, &indices).unwrap();
        assert_eq!(read(&bytes, None, Some(&rows)).await, expected);
    }

    #[test]
    fn a_fetched_range_refuses_offsets_it_does_not_hold() {
        let fetched = Fetched {
            start: 10,
            bytes: Bytes::from_static(b"abcdef"),
        };
        assert_eq!(
            fetched.get_bytes(12, 3).unwrap(),
            Bytes::from_static(b"cde")
        );
        assert_eq!(fetched.len(), 16);
        assert!(fetched.get_bytes(9, 1).is_err());
        assert!(fetched.get_bytes(14, 3).is_err());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut fetched.get_read(13).unwrap(), &mut rest).unwrap();
        assert_eq!(rest, "def");
    }
}
