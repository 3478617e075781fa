//! Where new keys go: the rows of keys no file group holds (and of keys whose partition value
//! changed) fill the small file groups of their partition first, smallest first, then new file
//! groups of at most `max_file_size`.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};

use crate::base_file::{carry_meta, take_keyed, Ctx, Output};
use crate::config::HudiSinkConfig;
use crate::error::{HudiSinkError, Result};
use crate::index::{record_keys, rows_by_partition};
use crate::locate::HudiFiles;
use crate::table::FileGroup;
use cdc_core::sink::upsert::FileReader;

/// The rows to insert (stored data columns) with their record keys and partition paths.
pub(crate) struct Inserts {
    rows: RecordBatch,
    keys: StringArray,
    /// Partition paths in order, with their rows.
    by_partition: Vec<(String, Vec<usize>)>,
}

impl Inserts {
    pub fn new(ctx: &Ctx, rows: RecordBatch) -> Result<Self> {
        let layout = |message: String| HudiSinkError::Layout {
            table: ctx.table.to_string(),
            message,
        };
        let keys =
            record_keys(&rows, &ctx.key_columns, ctx.partition_fields.len()).map_err(layout)?;
        let by_partition =
            rows_by_partition(&rows, &ctx.partition_fields, ctx.hive_style).map_err(layout)?;
        Ok(Inserts {
            rows,
            keys,
            by_partition,
        })
    }

    /// Gives `o` as many of `rest` as fit under `max_size` (at least one when `at_least_one`).
    fn fill(
        &self,
        o: &mut Output,
        rest: &mut &[usize],
        avg: u64,
        max_size: u64,
        at_least_one: bool,
    ) -> Result<()> {
        let cap = (max_size.saturating_sub(o.estimated_size(avg)) / avg) as usize;
        let n = cap
            .min(rest.len())
            .max(usize::from(at_least_one && !rest.is_empty()));
        if n > 0 {
            o.new_rows = Some(take_keyed(&self.rows, &self.keys, &rest[..n])?);
            o.num_inserts = n;
        }
        *rest = &rest[n..];
        Ok(())
    }
}

/// The base files that take `inserts`: small file groups of `live` (not rewritten already,
/// none after a truncate) carried over with inserts added, then new file groups.
pub(crate) async fn route(
    ctx: &Arc<Ctx>,
    config: &HudiSinkConfig,
    inserts: &Inserts,
    live: &[FileGroup],
    rewritten: &HashSet<String>,
    truncate: bool,
) -> Result<Vec<Output>> {
    let (total_size, total_rows) = live
        .iter()
        .filter(|g| g.rows > 0)
        .fold((0u64, 0u64), |(s, r), g| (s + g.size, r + g.rows));
    let avg = total_size
        .checked_div(total_rows)
        .map_or(config.record_size_estimate, |a| a.max(1));
    let reader = HudiFiles {
        store: ctx.store.clone(),
    };
    let mut outputs = Vec::new();
    for (partition, rows) in &inserts.by_partition {
        let mut rest: &[usize] = rows;
        let mut small: Vec<&FileGroup> = live
            .iter()
            .filter(|g| !truncate && &g.partition == partition)
            .filter(|g| g.size < config.small_file_limit && !rewritten.contains(&g.file_id))
            .collect();
        small.sort_by_key(|g| g.size);
        for g in small {
            if rest.is_empty() {
                break;
            }
            let candidate = crate::locate::Candidate {
                idx: 0,
                group: g.clone(),
            };
            let rows = reader.read(&candidate, None, None).await?;
            let mut o = Output::next_of(g.clone(), carry_meta(ctx, &g.path(), &rows)?);
            inserts.fill(&mut o, &mut rest, avg, config.max_file_size, false)?;
            if o.num_inserts > 0 {
                outputs.push(o);
            }
        }
        let dir = live
            .iter()
            .find(|g| &g.partition == partition)
            .map_or_else(|| ctx.store.path(partition), |g| g.dir.clone());
        while !rest.is_empty() {
            // A record bigger than a whole file still gets a file of its own.
            let mut o = Output::new_group(partition, &dir);
            inserts.fill(&mut o, &mut rest, avg, config.max_file_size, true)?;
            outputs.push(o);
        }
    }
    Ok(outputs)
}
