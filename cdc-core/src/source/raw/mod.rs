//! Raw change-event files as the Confluent S3 sink connector writes them, on any object store.
//!
//! Layout (the connector's default partitioner and `JsonFormat`):
//! `<prefix>/<topic>/partition=<p>/<topic>+<p>+<startOffset>.json` (or `.json.gz`), one record
//! value per line (`null` for a tombstone, with `behavior.on.null.values=write`), and with
//! `store.kafka.keys=true` a `<topic>+<p>+<startOffset>.keys.json` beside it holding the keys
//! line by line. Record `i` of a file has offset `startOffset + i`.
//!
//! The sink's other formats of Debezium records are read too: `AvroFormat` (`.avro` object
//! container files, keys in `.keys.avro`), `ParquetFormat` (`.parquet`, `.snappy.parquet` and
//! the other codecs' names; with the `parquet` feature) and `ByteArrayFormat` of the records'
//! bytes as Kafka held them (`.bin`, `.bin.gz`; framed Avro needs a schema registry, see
//! [`RawFileSource::set_schema_registry`]).
//!
//! Files are taken one at a time, in offset order per topic-partition, round-robin across
//! partitions; [`RawFileSource::seek`] skips everything before a checkpoint without reading the
//! files that lie wholly before it. The next few files are read ahead on the runtime's threads
//! (at most [`READ_AHEAD_FILES`] and about [`READ_AHEAD_BYTES`]), so reading them overlaps the
//! caller's work on the batch before.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt};
use regex::Regex;

use super::{BatchLimits, RawRecord, Source};
use crate::decode::avro::container::read_container;
use crate::decode::avro::framed::FramedSplitter;
use crate::decode::SchemaRegistry;
use crate::error::{Error, Result};

mod location;
mod watch;

pub use location::object_store_from_url;

/// Files read ahead of need, at most.
pub const READ_AHEAD_FILES: usize = 4;
/// Bytes of files read ahead of need, about (one file is always read ahead).
pub const READ_AHEAD_BYTES: u64 = 64 << 20;

/// One data file of a topic-partition.
#[derive(Debug, Clone)]
struct RawFile {
    start_offset: i64,
    path: Path,
    keys: Option<Path>,
    /// Bytes of the file and its keys file, as listed.
    size: u64,
}

/// The records of one file: JSON lines, or the datums of an Avro container file with its
/// writer schema.
struct FileRecords {
    items: Vec<Bytes>,
    avro_schema: Option<Arc<str>>,
}

/// The value records and key records of a file.
type FileBytes = (FileRecords, Option<FileRecords>);

/// A file whose read has started (`None`: no runtime to read on; read when taken).
struct ReadAhead {
    tp: (String, i32),
    file: RawFile,
    read: Option<tokio::task::JoinHandle<Result<FileBytes>>>,
}

/// A topic-partition's files and read position.
#[derive(Debug)]
struct PartitionFiles {
    files: Vec<RawFile>,
    /// Index of the next file to read.
    next_file: usize,
    /// First offset not yet delivered: the checkpoint's, or after the last file read (`None`
    /// before either, when the first file may start anywhere).
    position: Option<i64>,
}

/// Reads the S3-sink layout from an object store.
pub struct RawFileSource {
    store: Arc<dyn ObjectStore>,
    /// Where the topics' directories are in the store.
    prefix: Path,
    location: String,
    partitions: BTreeMap<(String, i32), PartitionFiles>,
    round_robin: Vec<(String, i32)>,
    cursor: usize,
    /// Records read from files but not yet handed out (a file can hold more than a batch).
    pending: VecDeque<RawRecord>,
    pending_bytes: usize,
    exhausted: bool,
    /// Files whose reads have started, in the order they are taken.
    ahead: VecDeque<ReadAhead>,
    ahead_bytes: u64,
    /// Whether offsets missing between files (or between a checkpoint and the first file after
    /// it) are skipped with a warning instead of failing the read.
    allow_gaps: bool,
    progress: Arc<ReadProgress>,
    /// Splits `ByteArrayFormat` files into records.
    splitter: Arc<FramedSplitter>,
}

/// How far a read of the files has come since the source was started, shared with whatever
/// shows it (the CLI's progress bar).
#[derive(Debug, Default)]
pub struct ReadProgress {
    files_total: std::sync::atomic::AtomicU64,
    files_done: std::sync::atomic::AtomicU64,
    bytes_total: std::sync::atomic::AtomicU64,
    bytes_done: std::sync::atomic::AtomicU64,
}

impl ReadProgress {
    /// (files done, files to read in all, bytes done, bytes to read in all).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.files_done.load(Relaxed),
            self.files_total.load(Relaxed),
            self.bytes_done.load(Relaxed),
            self.bytes_total.load(Relaxed),
        )
    }

    fn add_total(&self, files: u64, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.files_total.fetch_add(files, Relaxed);
        self.bytes_total.fetch_add(bytes, Relaxed);
    }

    fn add_done(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.files_done.fetch_add(1, Relaxed);
        self.bytes_done.fetch_add(bytes, Relaxed);
    }
}

impl std::fmt::Debug for RawFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFileSource")
            .field("location", &self.location)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

fn file_name_pattern() -> Regex {
    Regex::new(
        r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<offset>\d+)(?P<keys>\.keys)?\.(?:json(?:\.gz)?|avro|(?:(?:snappy|gz|lzo|br|lz4|lz4raw|zstd)\.)?parquet|bin(?:\.gz)?)$",
    )
    .expect("valid regex")
}

impl RawFileSource {
    /// Lists the files under `url` (see [`object_store_from_url`]).
    pub async fn open(url: &str) -> Result<Self> {
        let (store, prefix) = object_store_from_url(url)?;
        Self::from_store(store, prefix, url).await
    }

    /// Lists the files under `prefix` of `store`.
    pub async fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        location: &str,
    ) -> Result<Self> {
        let listed: Vec<ObjectMeta> =
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| Error::ObjectStore {
                    path: location.to_string(),
                    source: e,
                })?;
        let mut source = RawFileSource {
            store,
            prefix,
            location: location.to_string(),
            partitions: BTreeMap::new(),
            round_robin: Vec::new(),
            cursor: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            exhausted: false,
            ahead: VecDeque::new(),
            ahead_bytes: 0,
            allow_gaps: false,
            progress: Arc::default(),
            splitter: Arc::default(),
        };
        source.add_listed(listed, false)?;
        Ok(source)
    }

    /// Adds the data files of `listed` (each with its keys file) that start after every file
    /// already known of their partition. With `wait_for_keys`, a data file whose keys file has
    /// not appeared yet while the partition's files before it have one is left, with the
    /// files after it, for a later listing (the S3 sink writes the two one after the other).
    /// Returns how many data files were added. Two data (or keys) files starting at the same
    /// offset (`.json` and `.avro`, or `.json` and `.json.gz`) are an error naming both: which
    /// one holds the records cannot be told.
    fn add_listed(&mut self, listed: Vec<ObjectMeta>, wait_for_keys: bool) -> Result<usize> {
        let pattern = file_name_pattern();
        let mut data: HashMap<(String, i32, i64), (Path, u64)> = HashMap::new();
        let mut keys: HashMap<(String, i32, i64), (Path, u64)> = HashMap::new();
        for meta in listed {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(c) = pattern.captures(name) else {
                continue;
            };
            let (Ok(partition), Ok(offset)) =
                (c["partition"].parse::<i32>(), c["offset"].parse::<i64>())
            else {
                continue;
            };
            let id = (c["topic"].to_string(), partition, offset);
            let files = match c.name("keys") {
                Some(_) => &mut keys,
                None => &mut data,
            };
            if let Some((other, _)) = files.insert(id, (meta.location.clone(), meta.size)) {
                return Err(Error::Source {
                    location: meta.location.to_string(),
                    message: format!("`{other}` starts at the same offset; remove one of them"),
                    source: None,
                });
            }
        }
        let mut found: BTreeMap<(String, i32), Vec<RawFile>> = BTreeMap::new();
        for ((topic, partition, offset), (path, size)) in data {
            let k = keys.remove(&(topic.clone(), partition, offset));
            found.entry((topic, partition)).or_default().push(RawFile {
                start_offset: offset,
                path,
                size: size + k.as_ref().map_or(0, |(_, s)| *s),
                keys: k.map(|(p, _)| p),
            });
        }
        let mut added = 0;
        for (tp, mut files) in found {
            files.sort_by_key(|f| f.start_offset);
            let p = self.partitions.entry(tp).or_insert_with(|| PartitionFiles {
                files: Vec::new(),
                next_file: 0,
                position: None,
            });
            let newest = p.files.last().map(|f| f.start_offset);
            let mut keyed = p.files.last().map(|f| f.keys.is_some());
            for file in files {
                if newest.is_some_and(|n| file.start_offset <= n) {
                    continue;
                }
                if wait_for_keys && keyed == Some(true) && file.keys.is_none() {
                    break;
                }
                keyed = Some(file.keys.is_some());
                p.files.push(file);
                added += 1;
            }
        }
        self.round_robin = self.partitions.keys().cloned().collect();
        Ok(added)
    }

    /// How far the read has come (files and bytes of those left to read when it started, and
    /// of files found since by [`RawFileSource::refresh`]).
    pub fn progress(&self) -> Arc<ReadProgress> {
        self.progress.clone()
    }

    /// Files and bytes from each partition's next file on.
    fn unread(&self) -> (u64, u64) {
        let unread = self
            .partitions
            .values()
            .flat_map(|p| &p.files[p.next_file..]);
        unread.fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }

    /// Skips offsets missing from the files (a deleted or never-written file) with a warning,
    /// instead of failing with [`Error::OffsetGap`].
    pub fn allow_gaps(&mut self, allow: bool) {
        self.allow_gaps = allow;
    }

    /// Where the writer schemas of framed Avro records in `ByteArrayFormat` files come from:
    /// each record is measured with its schema to find where it ends. Set before reading.
    pub fn set_schema_registry(&mut self, registry: Arc<dyn SchemaRegistry>) {
        self.splitter = Arc::new(self.splitter.with_registry(registry));
    }

    /// The bytes after each record of a `ByteArrayFormat` file (the sink's
    /// `format.bytearray.separator`; a newline by default). Set before reading.
    pub fn set_byte_array_separator(&mut self, separator: &[u8]) {
        self.splitter = Arc::new(self.splitter.with_separator(separator));
    }

    /// Topic-partitions found.
    pub fn topic_partitions(&self) -> Vec<(String, i32)> {
        self.round_robin.clone()
    }

    /// The offset after the last record of each topic-partition (its last file's start offset
    /// plus its records): where the sink's files end, for lag.
    pub async fn end_offsets(&self) -> Result<BTreeMap<(String, i32), i64>> {
        let mut ends = BTreeMap::new();
        for (tp, partition) in &self.partitions {
            let Some(last) = partition.files.last() else {
                continue;
            };
            let bytes = get(self.store.as_ref(), &last.path).await?;
            let records = records_of(&last.path, bytes, &self.splitter)?;
            ends.insert(tp.clone(), last.start_offset + records.items.len() as i64);
        }
        Ok(ends)
    }

    /// Starts a topic-partition at `next_offset` (everything before it is already in).
    pub fn seek(&mut self, topic: &str, partition: i32, next_offset: i64) {
        let tp = (topic.to_string(), partition);
        // Already there (a watching sync's next run): nothing to skip, nothing to read again.
        if self
            .partitions
            .get(&tp)
            .is_some_and(|p| p.position == Some(next_offset))
        {
            return;
        }
        // Reads started for this partition are of files the new position may skip.
        let (mine, others) = std::mem::take(&mut self.ahead)
            .into_iter()
            .partition(|a| a.tp == tp);
        self.ahead = others;
        for dropped in mine {
            self.ahead_bytes -= dropped.file.size;
            if let Some(read) = dropped.read {
                read.abort();
            }
        }
        if let Some(p) = self.partitions.get_mut(&tp) {
            p.position = Some(next_offset);
            // Skip files that end before the position: the next file starts at or before it.
            p.next_file = 0;
            while p
                .files
                .get(p.next_file + 1)
                .is_some_and(|f| f.start_offset <= next_offset)
            {
                p.next_file += 1;
            }
        }
    }

    /// The records of the next unread file (round-robin across topic-partitions), or `None` when
    /// every file was read.
    pub async fn next_file(&mut self) -> Result<Option<Vec<RawRecord>>> {
        self.read_ahead();
        let Some(next) = self.ahead.pop_front() else {
            return Ok(None);
        };
        self.ahead_bytes -= next.file.size;
        self.progress.add_done(next.file.size);
        let (values, keys) = match next.read {
            Some(read) => read.await.map_err(|e| Error::Source {
                location: next.file.path.to_string(),
                message: "reading the file failed".into(),
                source: Some(Box::new(e)),
            })??,
            None => read_pair(self.store.as_ref(), &next.file, self.splitter.clone()).await?,
        };
        // The reads of the files after this one go on while the caller works on this one.
        self.read_ahead();
        let (topic, partition) = &next.tp;
        let position = self.partitions[&next.tp].position;
        if let Some(expected) = position.filter(|&at| next.file.start_offset > at) {
            self.gap(&next.tp, expected, &next.file)?;
        }
        let records = parse_file(topic, *partition, &next.file, values, keys, position)?;
        let p = self.partitions.get_mut(&next.tp).expect("listed");
        if let Some(last) = records.last() {
            p.position = Some(
                p.position
                    .map_or(last.offset + 1, |at| at.max(last.offset + 1)),
            );
        }
        Ok(Some(records))
    }

    /// Offsets `first..file.start_offset` of `tp` are in no file: an error, or a warning when
    /// gaps are allowed.
    fn gap(&self, tp: &(String, i32), first: i64, file: &RawFile) -> Result<()> {
        let last = file.start_offset - 1;
        if self.allow_gaps {
            tracing::warn!(
                topic = %tp.0,
                partition = tp.1,
                first,
                last,
                next_file = %file.path,
                "offsets missing from the raw files; going on without them (gaps allowed)"
            );
            crate::metrics::offsets_skipped(&tp.0, tp.1, last - first + 1);
            return Ok(());
        }
        Err(Error::OffsetGap {
            table: None,
            topic: tp.0.clone(),
            partition: tp.1,
            first,
            last,
            reason: format!(
                "no file under {} holds them; the next file is {}",
                self.location, file.path
            ),
        })
    }

    /// Starts reading the files taken next, within the read-ahead bounds.
    fn read_ahead(&mut self) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        while self.ahead.len() < READ_AHEAD_FILES
            && (self.ahead.is_empty() || self.ahead_bytes < READ_AHEAD_BYTES)
        {
            let Some((tp, file)) = self.next_unread() else {
                return;
            };
            let read = runtime.as_ref().map(|rt| {
                let (store, file) = (self.store.clone(), file.clone());
                let splitter = self.splitter.clone();
                rt.spawn(async move { read_pair(store.as_ref(), &file, splitter).await })
            });
            self.ahead_bytes += file.size;
            self.ahead.push_back(ReadAhead { tp, file, read });
        }
    }

    /// The next file in round-robin order that no read has started for.
    fn next_unread(&mut self) -> Option<((String, i32), RawFile)> {
        for _ in 0..self.round_robin.len() {
            let tp = self.round_robin[self.cursor % self.round_robin.len()].clone();
            self.cursor += 1;
            let p = self.partitions.get_mut(&tp).expect("listed");
            if let Some(file) = p.files.get(p.next_file).cloned() {
                p.next_file += 1;
                return Some((tp, file));
            }
        }
        None
    }
}

/// A file's value and key lines. The first pass over the bytes (the page faults of a mapped
/// file, gunzip, finding the newlines) runs on a blocking thread, beside the caller's work and
/// off the runtime's workers.
async fn read_pair(
    store: &dyn ObjectStore,
    file: &RawFile,
    splitter: Arc<FramedSplitter>,
) -> Result<FileBytes> {
    let values = (file.path.clone(), get(store, &file.path).await?);
    let keys = match &file.keys {
        Some(k) => Some((k.clone(), get(store, k).await?)),
        None => None,
    };
    let lines = move || -> Result<FileBytes> {
        let keys = keys
            .map(|(path, bytes)| records_of(&path, bytes, &splitter))
            .transpose()?;
        Ok((records_of(&values.0, values.1, &splitter)?, keys))
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.spawn_blocking(lines).await.map_err(|e| Error::Source {
            location: file.path.to_string(),
            message: "reading the file failed".into(),
            source: Some(Box::new(e)),
        })?,
        Err(_) => lines(),
    }
}

/// An object's bytes as stored: a local file memory-mapped, anything else fetched.
async fn get(store: &dyn ObjectStore, path: &Path) -> Result<Bytes> {
    let err = |source| Error::ObjectStore {
        path: path.to_string(),
        source,
    };
    let got = store.get(path).await.map_err(err)?;
    match got.payload {
        GetResultPayload::File(file, local) => map_file(file, &local),
        GetResultPayload::Stream(_) => got.bytes().await.map_err(err),
    }
}

/// The records of a file: an Avro container file's datums (`.avro`), a Parquet file's rows as
/// Avro datums (`.parquet`), the records of a `ByteArrayFormat` file (`.bin`), else its lines.
fn records_of(path: &Path, bytes: Bytes, splitter: &FramedSplitter) -> Result<FileRecords> {
    let name = path.as_ref();
    let error = |message| Error::Source {
        location: path.to_string(),
        message,
        source: None,
    };
    let avro = |file: crate::decode::avro::container::ContainerFile| FileRecords {
        items: file.datums,
        avro_schema: Some(file.schema),
    };
    let plain = |items| FileRecords {
        items,
        avro_schema: None,
    };
    if name.ends_with(".avro") {
        return Ok(avro(read_container(bytes).map_err(error)?));
    }
    if name.ends_with(".parquet") {
        #[cfg(feature = "parquet")]
        return Ok(avro(
            crate::decode::avro::parquet::read_parquet(bytes).map_err(error)?,
        ));
        #[cfg(not(feature = "parquet"))]
        return Err(error(
            "built without cdc-core feature `parquet`: Parquet files cannot be read".into(),
        ));
    }
    let bytes = gunzipped(path, bytes)?;
    if name.ends_with(".bin") || name.ends_with(".bin.gz") {
        return Ok(plain(splitter.split(&bytes).map_err(error)?));
    }
    Ok(plain(split_lines(&bytes)))
}

/// An object's bytes, gunzipped first when its name ends in `.gz`.
fn gunzipped(path: &Path, bytes: Bytes) -> Result<Bytes> {
    if !path.as_ref().ends_with(".gz") {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes.as_ref())
        .read_to_end(&mut out)
        .map_err(|e| Error::Source {
            location: path.to_string(),
            message: "cannot gunzip".into(),
            source: Some(Box::new(e)),
        })?;
    Ok(Bytes::from(out))
}

/// A local file's bytes, memory-mapped: the page cache's pages themselves, instead of a fresh
/// buffer the size of the file that is zeroed and then copied into (object_store's local read
/// costs about a third of a backlog sync's CPU that way).
fn map_file(file: std::fs::File, path: &std::path::Path) -> Result<Bytes> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and stays alive as long as the `Bytes` that own it. The
    // S3 sink's files are written once and never changed in place; a file truncated by someone
    // else while it is mapped would fault the reader (documented in docs/operations.md).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Bytes::from_owner(map))
}

/// The records of a file read, from `position` on.
fn parse_file(
    topic: &str,
    partition: i32,
    file: &RawFile,
    values: FileRecords,
    keys: Option<FileRecords>,
    position: Option<i64>,
) -> Result<Vec<RawRecord>> {
    let position = position.unwrap_or(i64::MIN);
    let (value_lines, value_schema) = (values.items, values.avro_schema);
    let (key_lines, key_schema) = match keys {
        Some(k) => (Some(k.items), k.avro_schema),
        None => (None, None),
    };
    if let Some(k) = &key_lines {
        if k.len() != value_lines.len() {
            return Err(Error::Source {
                location: file.path.to_string(),
                message: format!(
                    "keys file has {} lines but the values file {}",
                    k.len(),
                    value_lines.len()
                ),
                source: None,
            });
        }
    }
    let topic: Arc<str> = Arc::from(topic);
    let mut records = Vec::with_capacity(value_lines.len());
    for (i, value) in value_lines.into_iter().enumerate() {
        let offset = file.start_offset + i as i64;
        if offset < position {
            continue;
        }
        // A JSON `null` line is a missing key or a tombstone; Avro datums are never null.
        let key = key_lines
            .as_ref()
            .map(|k| k[i].clone())
            .filter(|k| key_schema.is_some() || k.as_ref() != b"null");
        records.push(RawRecord {
            topic: topic.clone(),
            partition,
            offset,
            key,
            value: Some(value).filter(|v| value_schema.is_some() || v.as_ref() != b"null"),
            value_schema: value_schema.clone(),
            key_schema: key_schema.clone(),
        });
    }
    Ok(records)
}

/// Lines of a file as zero-copy slices, without `\r\n` endings and a trailing empty line; the
/// newlines found with `memchr`'s SIMD search.
fn split_lines(bytes: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', bytes) {
        let end = if i > start && bytes[i - 1] == b'\r' {
            i - 1
        } else {
            i
        };
        out.push(bytes.slice(start..end));
        start = i + 1;
    }
    if start < bytes.len() {
        out.push(bytes.slice(start..));
    }
    out
}

#[async_trait::async_trait]
impl Source for RawFileSource {
    async fn topic_partitions(&mut self) -> Result<Vec<(String, i32)>> {
        Ok(RawFileSource::topic_partitions(self))
    }

    fn is_bounded(&self) -> bool {
        true
    }

    async fn rewind(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        for ((topic, partition), next) in positions {
            let tp = |r: &RawRecord| r.partition == *partition && *r.topic == **topic;
            self.pending.retain(|r| !tp(r));
            if let Some(next) = next {
                self.seek(topic, *partition, *next);
                self.exhausted = false;
            }
        }
        self.pending_bytes = self.pending.iter().map(RawRecord::size).sum();
        Ok(())
    }

    async fn start(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        for ((topic, partition), next) in positions {
            if let Some(next) = next {
                self.seek(topic, *partition, *next);
            }
        }
        // What the read will cover, from here (files read ahead are taken again after seeks).
        let (files, bytes) = self.unread();
        let ahead = self
            .ahead
            .iter()
            .fold((0, 0), |(n, b), a| (n + 1, b + a.file.size));
        self.progress.add_total(files + ahead.0, bytes + ahead.1);
        Ok(())
    }

    /// Whole files are read until the batch is full; what is left of the last one opens the
    /// next batch.
    async fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Vec<RawRecord>>> {
        while !self.exhausted
            && self.pending.len() < limits.max_events
            && self.pending_bytes < limits.max_bytes
        {
            match self.next_file().await? {
                Some(records) => {
                    self.pending_bytes += records.iter().map(RawRecord::size).sum::<usize>();
                    match self.pending.is_empty() {
                        // The file's own vector, not a copy.
                        true => self.pending = VecDeque::from(records),
                        false => self.pending.extend(records),
                    }
                }
                None => self.exhausted = true,
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let take = self.pending.len().min(limits.max_events);
        let batch: Vec<RawRecord> = match take == self.pending.len() {
            // In place: a batch is ~100 000 records of 128 bytes.
            true => Vec::from(std::mem::take(&mut self.pending)),
            false => self.pending.drain(..take).collect(),
        };
        self.pending_bytes -= batch.iter().map(RawRecord::size).sum::<usize>();
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests;
