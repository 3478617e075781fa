//! Locating the rows a change set touches, file by file and in parallel: a candidate file is
//! probed (key columns only) or read whole, the rows the table already deleted are left out,
//! and its touched rows are either marked (the file stays; see [`RowRemoval`]) or split off
//! the kept rows for a rewrite. Old rows are taken only for upserts whose unchanged cells need
//! them, and converted to logical types only then: rows that are merely carried over stay as
//! they were read.

use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use async_trait::async_trait;

use super::file_keys::FileKeyCache;
use super::keys::{ChangedKeys, Touch};
use super::prune::{FilePlan, RowRemoval};
use super::tasks::{parallelism, OrderedTasks};
use crate::error::{Error, Result};
use crate::model::TableId;
use crate::schema::evolve_batch;
use crate::storage::{from_storage_columns, to_storage};

/// Reads a format's data files for [`locate`].
#[async_trait]
pub trait FileReader: Send + Sync + 'static {
    /// A data file of the table.
    type File: Send + Sync + 'static;
    /// The format's error.
    type Error: From<Error> + Send + 'static;

    /// Columns `columns` (all when `None`) of `file` in storage form, with every physical row
    /// (deleted ones too) or only those at the ascending positions `rows`.
    async fn read(
        &self,
        file: &Self::File,
        columns: Option<&[String]>,
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch, Self::Error>;

    /// Positions of the rows of `file` the table already deleted (deletion vectors, position
    /// or equality deletes), ascending; `keys` holds the file's key columns, logical, all rows.
    async fn deleted(
        &self,
        _file: &Self::File,
        _keys: &RecordBatch,
    ) -> Result<Vec<u64>, Self::Error> {
        Ok(Vec::new())
    }

    /// A name of `file` no other file of the table ever has (its path), by which the process
    /// remembers the keys it holds ([`FileKeyCache`](super::FileKeyCache)); `None` remembers nothing.
    fn file_name<'a>(&self, _file: &'a Self::File) -> Option<&'a str> {
        None
    }
}

/// What a change set does to one data file that holds changed keys.
#[derive(Debug)]
pub struct Located<F> {
    /// The file.
    pub file: F,
    /// Its physical rows (deleted ones included).
    pub rows: u64,
    /// Rows the table had deleted before, ascending.
    pub deleted_before: Vec<u64>,
    /// Live rows the change set deletes or replaces, ascending.
    pub touched: Vec<u64>,
    /// How many of them are deletes.
    pub deleted: u64,
    /// Every upsert whose key this file held.
    pub upserts: Vec<usize>,
    /// Old rows (table schema, logical) of the upserts that need them...
    pub old: RecordBatch,
    /// ...and the upsert of each.
    pub old_upserts: Vec<usize>,
    /// For a rewrite, the file's other live rows as they were read (storage form); `None` when
    /// the touched rows are marked instead.
    pub kept: Option<RecordBatch>,
}

/// What every file task of one attempt shares.
struct Shared<R> {
    reader: Arc<R>,
    keys: Arc<ChangedKeys>,
    merged: SchemaRef,
    removal: RowRemoval,
}

/// Locates the changed keys in `candidates`, one task per core; results come in the order of
/// `candidates`, `None` for a file that holds no changed key (and need not be rewritten).
pub fn locate<R: FileReader>(
    reader: Arc<R>,
    keys: Arc<ChangedKeys>,
    candidates: Vec<(R::File, FilePlan)>,
    removal: RowRemoval,
) -> OrderedTasks<Option<Located<R::File>>, R::Error> {
    locate_then(reader, keys, candidates, removal, |l| async move { Ok(l) })
}

/// [`locate`], with `then` run on each file found in the file's own task (a format that writes
/// a file's replacement as soon as it is read keeps only the files in flight in memory).
pub fn locate_then<R, T, Then, Fut>(
    reader: Arc<R>,
    keys: Arc<ChangedKeys>,
    candidates: Vec<(R::File, FilePlan)>,
    removal: RowRemoval,
    then: Then,
) -> OrderedTasks<Option<T>, R::Error>
where
    R: FileReader,
    T: Send + 'static,
    Then: Fn(Located<R::File>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, R::Error>> + Send + 'static,
{
    let table = keys.table().clone();
    let limit = file_tasks(&candidates, removal);
    let shared = Arc::new(Shared {
        merged: keys.schema(),
        reader,
        keys,
        removal,
    });
    let tasks = candidates.into_iter().map(move |(file, plan)| {
        let (shared, then) = (shared.clone(), then.clone());
        async move {
            match locate_file(&shared, file, plan).await? {
                Some(found) => then(found).await.map(Some),
                None => Ok(None),
            }
        }
    });
    OrderedTasks::new(&table, tasks, limit)
}

/// File tasks run at once when every file is probed and its touched rows marked (a file
/// read whole is then a small one): the reads wait on the store, not on a core, and on S3
/// each is a round trip.
pub const PROBES_AT_ONCE: usize = 16;

/// How many file tasks of `candidates` run at once: [`PROBES_AT_ONCE`] when each reads only
/// key columns (or a small file) and nothing is rewritten; else one per core, which bounds
/// the whole files held in memory.
fn file_tasks<F>(candidates: &[(F, FilePlan)], removal: RowRemoval) -> usize {
    let marked = !matches!(removal, RowRemoval::Rewrite);
    let probes = candidates.iter().all(|(_, p)| p.probe && !p.rewrite_anyway);
    match marked && probes {
        true => PROBES_AT_ONCE.max(parallelism()),
        false => parallelism(),
    }
}

/// The live rows of `candidates` whose keys are `keys`' upserts (all of them, however many
/// each key has), or with `every_row` every live row (the candidates then being every file), in
/// `keys`' schema: nothing is removed or rewritten.
pub async fn lookup_rows<R: FileReader>(
    reader: Arc<R>,
    keys: Arc<ChangedKeys>,
    candidates: Vec<(R::File, FilePlan)>,
    every_row: bool,
) -> Result<RecordBatch, R::Error> {
    let schema = keys.schema();
    let table = keys.table().clone();
    let mut found = locate(reader, keys, candidates, lookup_removal(every_row));
    let mut parts = Vec::new();
    while let Some(file) = found.next().await {
        let Some(f) = file? else { continue };
        parts.push(f.old);
        if let Some(kept) = f.kept.filter(|k| k.num_rows() > 0) {
            let logical = from_storage_columns(&kept, &schema)?;
            parts.push(evolve_batch(&table, &logical, &schema)?);
        }
    }
    Ok(arrow_select::concat::concat_batches(&schema, &parts)
        .map_err(|e| Error::arrow(format!("collecting looked-up rows of {table}"), e))?)
}

/// How [`lookup_rows`] reads a candidate: marked (only the rows asked for), or with
/// `every_row` whole (the rows kept are every other live row). Formats plan their candidates
/// with it.
pub fn lookup_removal(every_row: bool) -> RowRemoval {
    match every_row {
        true => RowRemoval::Rewrite,
        false => RowRemoval::Mark,
    }
}

/// The touched live rows of one file.
struct Touched {
    rows: Vec<(u32, Touch)>,
    deleted: u64,
}

fn touched(touches: Vec<Option<Touch>>, deleted_before: &[u64]) -> Touched {
    let mut touches = touches;
    for &i in deleted_before {
        if let Some(t) = touches.get_mut(i as usize) {
            *t = None;
        }
    }
    let rows: Vec<(u32, Touch)> = touches
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i as u32, t?)))
        .collect();
    let deleted = rows.iter().filter(|(_, t)| *t == Touch::Delete).count() as u64;
    Touched { rows, deleted }
}

async fn locate_file<R: FileReader>(
    shared: &Shared<R>,
    file: R::File,
    plan: FilePlan,
) -> Result<Option<Located<R::File>>, R::Error> {
    let (keys, reader) = (&shared.keys, &shared.reader);
    let remembered = keys
        .file_keys()
        .zip(reader.file_name(&file).map(str::to_string));
    if let Some((cache, name)) = remembered.as_ref().filter(|_| !plan.rewrite_anyway) {
        if cache.may_hold(keys.key_fields(), name, || keys.fingerprints()) == Some(false) {
            return Ok(None);
        }
    }
    let mut whole = None;
    let key_rows = if plan.probe {
        reader.read(&file, Some(keys.key_columns()), None).await?
    } else {
        let all = reader.read(&file, None, None).await?;
        whole = Some(all.clone());
        all
    };
    // Only the key columns are converted: a file read whole is carried over as it is.
    let logical_keys = from_storage_columns(&key_columns(&key_rows, keys)?, &shared.merged)?;
    let deleted_before = reader.deleted(&file, &logical_keys).await?;
    let found = touched(keys.find(&logical_keys)?, &deleted_before);
    if found.rows.is_empty() && !plan.rewrite_anyway {
        remember_keys(remembered.as_ref(), keys, &logical_keys)?;
        return Ok(None);
    }
    let rows = key_rows.num_rows() as u64;
    let live = rows.saturating_sub(deleted_before.len() as u64);
    let mark = !plan.rewrite_anyway
        && match shared.removal {
            RowRemoval::Mark => true,
            RowRemoval::Rewrite => false,
            RowRemoval::MarkUpTo(f) => found.rows.len() as f64 <= f * live as f64,
        };
    let upserts: Vec<usize> = found
        .rows
        .iter()
        .filter_map(|(_, t)| match t {
            Touch::Upsert(j) => Some(*j),
            Touch::Delete => None,
        })
        .collect();
    let needing: Vec<(u32, usize)> = found
        .rows
        .iter()
        .filter_map(|&(i, t)| match t {
            Touch::Upsert(j) if keys.needs_old_row(j) => Some((i, j)),
            _ => None,
        })
        .collect();
    let raw = match whole {
        Some(all) => Some(all),
        None if !mark => Some(reader.read(&file, None, None).await?),
        None => None,
    };
    let old = match &raw {
        Some(all) => take_rows(all, needing.iter().map(|(i, _)| *i))?,
        None if needing.is_empty() => RecordBatch::new_empty(key_rows.schema()),
        None => {
            let positions: Vec<u32> = needing.iter().map(|(i, _)| *i).collect();
            reader.read(&file, None, Some(&positions)).await?
        }
    };
    let old = if needing.is_empty() {
        RecordBatch::new_empty(shared.merged.clone())
    } else {
        evolve_batch(
            keys.table(),
            &from_storage_columns(&old, &shared.merged)?,
            &shared.merged,
        )?
    };
    let kept = match raw.filter(|_| !mark) {
        Some(all) => Some(kept_rows(&all, &deleted_before, &found)?),
        None => None,
    };
    match (&remembered, &kept) {
        // Rewritten: the file leaves the table.
        (Some((cache, name)), Some(_)) => cache.forget(name),
        // Marked: it stays, with the same keys.
        (_, None) => remember_keys(remembered.as_ref(), keys, &logical_keys)?,
        (None, Some(_)) => {}
    }
    Ok(Some(Located {
        file,
        rows,
        deleted_before,
        touched: found.rows.iter().map(|(i, _)| u64::from(*i)).collect(),
        deleted: found.deleted,
        upserts,
        old,
        old_upserts: needing.iter().map(|(_, j)| *j).collect(),
        kept,
    }))
}

/// Remembers the fingerprints of the keys a file that stays in the table holds (every
/// physical row's, `logical_keys`), unless they are known.
fn remember_keys(
    remembered: Option<&(&FileKeyCache, String)>,
    keys: &ChangedKeys,
    logical_keys: &RecordBatch,
) -> Result<()> {
    if let Some((cache, name)) = remembered {
        if cache.fingerprints(keys.key_fields(), name).is_none() {
            cache.remember(keys.key_fields(), name, keys.fingerprints_of(logical_keys)?);
        }
    }
    Ok(())
}

/// The key columns of `rows` (a whole file or a projection of it).
fn key_columns(rows: &RecordBatch, keys: &ChangedKeys) -> Result<RecordBatch> {
    let indices: Vec<usize> = keys
        .key_columns()
        .iter()
        .filter_map(|k| rows.schema().index_of(k).ok())
        .collect();
    rows.project(&indices)
        .map_err(|e| Error::arrow("projecting key columns", e))
}

fn take_rows(batch: &RecordBatch, rows: impl Iterator<Item = u32>) -> Result<RecordBatch> {
    arrow_select::take::take_record_batch(batch, &UInt32Array::from_iter_values(rows))
        .map_err(|e| Error::arrow("collecting replaced rows", e))
}

/// The rows of `all` neither deleted before nor touched now.
fn kept_rows(all: &RecordBatch, deleted_before: &[u64], found: &Touched) -> Result<RecordBatch> {
    let mut keep = vec![true; all.num_rows()];
    let gone = deleted_before
        .iter()
        .map(|&i| i as usize)
        .chain(found.rows.iter().map(|(i, _)| *i as usize));
    for i in gone {
        if let Some(k) = keep.get_mut(i) {
            *k = false;
        }
    }
    crate::parallel::filter_batch(all, &BooleanArray::from(keep))
        .map_err(|e| Error::arrow("keeping the rows of a rewritten file", e))
}

/// Rows read from a file (storage form, possibly of an older schema), in the table's current
/// stored schema `stored`: the columns taken by name as they are when every one is there with
/// its stored type, else converted through the logical schema `merged` (new columns get their
/// default, widened types are widened).
pub fn carry_over(
    table: &TableId,
    rows: &RecordBatch,
    stored: &SchemaRef,
    merged: &SchemaRef,
) -> Result<RecordBatch> {
    let as_is: Option<Vec<_>> = stored
        .fields()
        .iter()
        .map(|f| {
            let col = rows.column_by_name(f.name())?;
            (col.data_type() == f.data_type() && (f.is_nullable() || col.null_count() == 0))
                .then(|| col.clone())
        })
        .collect();
    if let Some(columns) = as_is {
        return RecordBatch::try_new_with_options(
            stored.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
        )
        .map_err(|e| Error::arrow("carrying rows over", e));
    }
    let logical = evolve_batch(table, &from_storage_columns(rows, merged)?, merged)?;
    to_storage(&logical, stored)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::fold::ChangeSet;
    use crate::model::UnchangedMask;
    use crate::sink::upsert::FileKeyCache;

    /// Files held in memory, counting reads.
    struct Files {
        rows: HashMap<String, RecordBatch>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl FileReader for Files {
        type File = String;
        type Error = Error;

        async fn read(
            &self,
            file: &String,
            columns: Option<&[String]>,
            rows: Option<&[u32]>,
        ) -> Result<RecordBatch> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let all = &self.rows[file];
            let all = match columns {
                Some(names) => {
                    let indices: Vec<usize> = names
                        .iter()
                        .map(|n| all.schema().index_of(n).unwrap())
                        .collect();
                    all.project(&indices).unwrap()
                }
                None => all.clone(),
            };
            match rows {
                Some(rows) => take_rows(&all, rows.iter().copied()),
                None => Ok(all),
            }
        }

        fn file_name<'a>(&self, file: &'a String) -> Option<&'a str> {
            Some(file)
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]))
    }

    fn rows(ids: &[i64]) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    /// Upserts of `ids` keyed by `key`, locating with `cache`.
    fn upserting(ids: &[i64], key: &str, cache: &Arc<FileKeyCache>) -> Arc<ChangedKeys> {
        let schema = schema();
        let key_field = schema.field_with_name(key).unwrap().clone();
        let changes = ChangeSet {
            table: TableId::new("public", "t"),
            schema: schema.clone(),
            key_columns: Arc::from(vec![key.to_string()]),
            truncate: false,
            upserts: rows(ids),
            upsert_unchanged: UnchangedMask::none(2),
            ignore_table_values: BooleanArray::from(vec![false; ids.len()]),
            deletes: RecordBatch::new_empty(Arc::new(Schema::new(vec![key_field]))),
            checkpoint: Default::default(),
            first_offsets: Default::default(),
            events: ids.len(),
            max_source_ts_ms: None,
            history: None,
        };
        let keys = ChangedKeys::new(&changes, &schema, &[key.to_string()]).unwrap();
        Arc::new(keys.with_file_keys(cache.clone()))
    }

    /// Which of the files `a`, `b`, `c` hold a key of `keys`, and how many reads it took.
    async fn found(
        files: &Arc<Files>,
        keys: Arc<ChangedKeys>,
        removal: RowRemoval,
    ) -> (Vec<bool>, usize) {
        files.reads.store(0, Ordering::SeqCst);
        let probe = FilePlan {
            probe: true,
            rewrite_anyway: false,
        };
        let candidates = ["a", "b", "c"].map(|f| (f.to_string(), probe)).to_vec();
        let mut located = locate(files.clone(), keys, candidates, removal);
        let mut holds = Vec::new();
        while let Some(file) = located.next().await {
            holds.push(file.unwrap().is_some());
        }
        (holds, files.reads.load(Ordering::SeqCst))
    }

    /// A file's keys are read once: later change sets skip the files none of their keys is
    /// in without reading them, and still find every file that holds one; a rewritten file is
    /// forgotten. With an integer key and with an encoded (string) one.
    #[tokio::test]
    async fn files_known_to_hold_no_changed_key_are_not_read_again() {
        for key in ["id", "name"] {
            let files = Arc::new(Files {
                rows: HashMap::from([
                    ("a".to_string(), rows(&[1, 2, 3])),
                    ("b".to_string(), rows(&[10, 20, 30])),
                    ("c".to_string(), rows(&[2, 20])),
                ]),
                reads: AtomicUsize::new(0),
            });
            let cache = Arc::new(FileKeyCache::new());
            let (holds, reads) =
                found(&files, upserting(&[2], key, &cache), RowRemoval::Mark).await;
            assert_eq!(holds, [true, false, true], "{key}");
            assert!(reads >= 3, "{key}: every file read first ({reads})");

            let (holds, reads) =
                found(&files, upserting(&[20], key, &cache), RowRemoval::Mark).await;
            assert_eq!(holds, [false, true, true], "{key}");
            assert_eq!(reads, 2, "{key}: only b and c read again");

            let (holds, reads) =
                found(&files, upserting(&[7], key, &cache), RowRemoval::Mark).await;
            assert_eq!((holds, reads), (vec![false; 3], 0), "{key}");

            // Rewritten (copy-on-write): `a` leaves the table and is forgotten.
            let (holds, _) = found(&files, upserting(&[3], key, &cache), RowRemoval::Rewrite).await;
            assert_eq!(holds, [true, false, false], "{key}");
            let key_fields = upserting(&[], key, &cache).key_fields().to_vec();
            assert!(cache.fingerprints(&key_fields, "a").is_none(), "{key}");
            assert!(cache.fingerprints(&key_fields, "b").is_some(), "{key}");
        }
    }

    #[test]
    fn probes_of_files_marked_run_many_at_once_and_rewrites_one_per_core() {
        let probe = FilePlan {
            probe: true,
            rewrite_anyway: false,
        };
        let whole = FilePlan {
            probe: false,
            rewrite_anyway: false,
        };
        let up_to = RowRemoval::MarkUpTo(0.2);
        let many = PROBES_AT_ONCE.max(parallelism());
        assert_eq!(file_tasks(&[((), probe); 3], up_to), many);
        assert_eq!(file_tasks(&[((), probe); 3], RowRemoval::Mark), many);
        assert_eq!(
            file_tasks(&[((), probe), ((), whole)], up_to),
            parallelism()
        );
        assert_eq!(
            file_tasks(&[((), probe)], RowRemoval::Rewrite),
            parallelism()
        );
        assert_eq!(file_tasks(&[((), FilePlan::REWRITE)], up_to), parallelism());
    }
}
