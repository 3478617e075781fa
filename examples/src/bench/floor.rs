//! The floors: the least work any writer must do for the change batch, with no table format —
//! no manifests, no log, no commit, no retries. Both prune files by their Parquet statistics of
//! `id`, as every format can, and use every core.
//!
//! - `floor` (copy-on-write): the files whose key range holds a changed key are read, the
//!   changed keys dropped, the kept rows written back; the upserts are written as new files.
//! - `floor-mor` (merge-on-read): only the key column of those files is read, and the changed
//!   rows' positions are written as one delete file beside the upserts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
use cdc_core::fold::ChangeSet;
use cdc_core::testing::bench::cpu_seconds;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;

use super::{ids, snappy, write_parquet, BoxError, FILE_ROWS};

/// The `id` range of a Parquet file, from its row-group statistics.
fn id_range(path: &Path) -> Result<Option<(i64, i64)>, BoxError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    let schema = builder.parquet_schema();
    let Some(col) = (0..schema.num_columns()).find(|&i| schema.column(i).name() == "id") else {
        return Ok(None);
    };
    let mut range: Option<(i64, i64)> = None;
    for rg in builder.metadata().row_groups() {
        let Some(Statistics::Int64(s)) = rg.column(col).statistics() else {
            return Ok(None);
        };
        let (Some(&lo), Some(&hi)) = (s.min_opt(), s.max_opt()) else {
            return Ok(None);
        };
        range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    Ok(range)
}

/// The files (of `files`) whose id range holds one of the sorted `changed` keys.
fn touched(files: &[String], changed: &[i64]) -> Result<Vec<PathBuf>, BoxError> {
    let mut out = Vec::new();
    for f in files {
        let hit = match id_range(Path::new(f))? {
            Some((lo, hi)) => {
                let p = changed.partition_point(|k| *k < lo);
                changed.get(p).is_some_and(|k| *k <= hi)
            }
            None => true,
        };
        if hit {
            out.push(PathBuf::from(f));
        }
    }
    Ok(out)
}

/// Runs `work` on every file of `files`, split over every core.
fn on_every_core<T: Send>(
    files: &[PathBuf],
    work: impl Fn(usize, &Path) -> Result<T, BoxError> + Sync,
) -> Result<Vec<T>, BoxError> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<Vec<T>, BoxError> {
                    files
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, f)| work(i, f))
                        .collect()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.join().map_err(|_| "floor thread panicked")??);
        }
        Ok(out)
    })
}

/// Runs a floor (`mor`: merge-on-read) over `files`, writing into `out_dir`.
pub fn run(
    files: &[String],
    changes: &ChangeSet,
    out_dir: &Path,
    mor: bool,
) -> Result<serde_json::Value, BoxError> {
    std::fs::create_dir_all(out_dir)?;
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let mut changed = ids(&changes.upserts);
    changed.extend(ids(&changes.deletes));
    let set: HashSet<i64> = changed.iter().copied().collect();
    changed.sort_unstable();
    let touched = touched(files, &changed)?;
    if mor {
        let positions = on_every_core(&touched, |_, f| changed_positions(f, &set))?;
        let (paths, pos): (Vec<String>, Vec<i64>) = positions.into_iter().flatten().unzip();
        let deletes = RecordBatch::try_from_iter([
            (
                "file_path",
                std::sync::Arc::new(StringArray::from(paths)) as _,
            ),
            ("pos", std::sync::Arc::new(Int64Array::from(pos)) as _),
        ])?;
        write_parquet(&out_dir.join("deletes.parquet"), &deletes)?;
    } else {
        on_every_core(&touched, |i, f| {
            rewrite_without(f, &out_dir.join(format!("{i}.parquet")), &set)
        })?;
    }
    let upserts = &changes.upserts;
    for (i, first) in (0..upserts.num_rows()).step_by(FILE_ROWS).enumerate() {
        let len = FILE_ROWS.min(upserts.num_rows() - first);
        write_parquet(
            &out_dir.join(format!("upserts-{i}.parquet")),
            &upserts.slice(first, len),
        )?;
    }
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "cpu_seconds": cpu_seconds() - cpu,
        "files_touched": touched.len(),
        "files": files.len(),
    }))
}

/// (file, position) of every row of `path` whose id is in `changed` (only `id` is read).
fn changed_positions(path: &Path, changed: &HashSet<i64>) -> Result<Vec<(String, i64)>, BoxError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    let schema = builder.parquet_schema();
    let col = (0..schema.num_columns())
        .find(|&i| schema.column(i).name() == "id")
        .ok_or("no id column")?;
    let mask = parquet::arrow::ProjectionMask::leaves(schema, [col]);
    let name = path.display().to_string();
    let (mut out, mut pos) = (Vec::new(), 0i64);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        for (i, id) in ids(&batch).into_iter().enumerate() {
            if changed.contains(&id) {
                out.push((name.clone(), pos + i as i64));
            }
        }
        pos += batch.num_rows() as i64;
    }
    Ok(out)
}

/// Copies `input` to `output` without the rows whose key is in `changed`.
fn rewrite_without(input: &Path, output: &Path, changed: &HashSet<i64>) -> Result<(), BoxError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(input)?)?.build()?;
    let mut writer: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    for batch in reader {
        let batch = batch?;
        let keep: BooleanArray = ids(&batch)
            .iter()
            .map(|id| Some(!changed.contains(id)))
            .collect();
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(output)?,
                kept.schema(),
                Some(snappy()),
            )?),
        };
        w.write(&kept)?;
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(())
}
