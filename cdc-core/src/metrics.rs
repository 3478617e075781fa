//! What the pipeline and the sources measure, through the `metrics` facade: nothing is recorded
//! until the application installs a recorder (the CLI's `--metrics-addr` serves them as
//! Prometheus text). Every name is here, with its description (docs/operations.md lists them).
//!
//! Labels are table names, topics and partitions only: never a value from a record, never a
//! setting (no secret can reach a label).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Unit};

use crate::model::TableId;

/// Records read from the source, per table (`table=""` for topics no route matches).
pub const EVENTS_READ: &str = "cdc_lake_events_read_total";
/// Raw bytes (keys and values) read from the source, per table.
pub const BYTES_READ: &str = "cdc_lake_bytes_read_total";
/// Row events applied to the table (after folding), per table.
pub const EVENTS_APPLIED: &str = "cdc_lake_events_applied_total";
/// Records written to the dead-letter location, per table.
pub const DEAD_LETTERED: &str = "cdc_lake_events_dead_lettered_total";
/// Rows written (inserted or updated) by commits, per table.
pub const ROWS_UPSERTED: &str = "cdc_lake_rows_upserted_total";
/// Keys deleted by commits, per table.
pub const ROWS_DELETED: &str = "cdc_lake_rows_deleted_total";
/// Commits made, per table.
pub const COMMITS: &str = "cdc_lake_commits_total";
/// Seconds one table's commit took (files written, conflicts retried, catalog updated).
pub const COMMIT_SECONDS: &str = "cdc_lake_commit_seconds";
/// Commit attempts that lost to another writer and were redone, per table.
pub const COMMIT_CONFLICTS: &str = "cdc_lake_commit_conflicts_total";
/// Records per batch read from the source.
pub const BATCH_EVENTS: &str = "cdc_lake_batch_events";
/// Seconds from the newest applied change's database commit to now, per table.
pub const LAG_SECONDS: &str = "cdc_lake_lag_seconds";
/// Offsets between a partition's end (as the broker last said) and the table's checkpoint.
pub const LAG_OFFSETS: &str = "cdc_lake_lag_offsets";
/// Transient consumer errors (broker unavailable, restarted) after which consuming went on.
pub const CONSUMER_ERRORS: &str = "cdc_lake_consumer_errors_total";
/// Offsets skipped because the source no longer had them (only with gaps allowed).
pub const OFFSETS_SKIPPED: &str = "cdc_lake_offsets_skipped_total";

/// Histogram buckets of [`COMMIT_SECONDS`].
pub const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets of [`BATCH_EVENTS`].
pub const BATCH_EVENTS_BUCKETS: &[f64] = &[
    1.0,
    10.0,
    100.0,
    1_000.0,
    10_000.0,
    50_000.0,
    100_000.0,
    200_000.0,
    1_000_000.0,
];

/// Registers the descriptions and units of every metric with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(EVENTS_READ, "Records read from the source, per table");
    describe_counter!(
        BYTES_READ,
        Unit::Bytes,
        "Raw bytes read from the source, per table"
    );
    describe_counter!(EVENTS_APPLIED, "Row events applied, per table");
    describe_counter!(
        DEAD_LETTERED,
        "Records sent to the dead-letter location, per table"
    );
    describe_counter!(
        ROWS_UPSERTED,
        "Rows inserted or updated by commits, per table"
    );
    describe_counter!(ROWS_DELETED, "Keys deleted by commits, per table");
    describe_counter!(COMMITS, "Commits made, per table");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Time of one table's commit");
    describe_counter!(
        COMMIT_CONFLICTS,
        "Commit attempts lost to another writer, redone"
    );
    describe_histogram!(
        BATCH_EVENTS,
        Unit::Count,
        "Records per batch read from the source"
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Now minus the newest applied change's time"
    );
    describe_gauge!(
        LAG_OFFSETS,
        Unit::Count,
        "Partition end minus the table's checkpoint"
    );
    describe_counter!(
        CONSUMER_ERRORS,
        "Transient consumer errors, consuming went on"
    );
    describe_counter!(
        OFFSETS_SKIPPED,
        "Offsets skipped because the source lost them"
    );
}

/// Counts of one batch's records per table, added to the counters once per batch (not per
/// record: a counter's label lookup costs more than the record's routing).
#[derive(Debug, Default)]
pub(crate) struct ReadCounts {
    by_table: HashMap<Option<Arc<TableId>>, (u64, u64)>,
}

impl ReadCounts {
    /// `events` records of `bytes` in all for `table`.
    pub(crate) fn add_many(&mut self, table: &Option<Arc<TableId>>, events: u64, bytes: u64) {
        let entry = match self.by_table.get_mut(table) {
            Some(entry) => entry,
            None => self.by_table.entry(table.clone()).or_default(),
        };
        entry.0 += events;
        entry.1 += bytes;
    }

    /// Adds the counts to the counters.
    pub(crate) fn record(self) {
        let mut total = 0;
        for (table, (events, bytes)) in self.by_table {
            let table = table.map(|t| t.to_string()).unwrap_or_default();
            counter!(EVENTS_READ, "table" => table.clone()).increment(events);
            counter!(BYTES_READ, "table" => table).increment(bytes);
            total += events;
        }
        histogram!(BATCH_EVENTS).record(total as f64);
    }
}

/// One table's commit: its events, rows, time and the lag it leaves.
pub(crate) struct CommitRecord<'a> {
    pub table: &'a TableId,
    pub committed: bool,
    pub events: u64,
    pub rows_upserted: u64,
    pub rows_deleted: u64,
    pub took: Duration,
    pub max_source_ts_ms: Option<i64>,
}

impl CommitRecord<'_> {
    /// Adds the commit to the metrics.
    pub(crate) fn record(self) {
        let table = self.table.to_string();
        if self.committed {
            // A change set the table already held (another writer's, a replay) applied nothing.
            counter!(EVENTS_APPLIED, "table" => table.clone()).increment(self.events);
            counter!(COMMITS, "table" => table.clone()).increment(1);
            counter!(ROWS_UPSERTED, "table" => table.clone()).increment(self.rows_upserted);
            counter!(ROWS_DELETED, "table" => table.clone()).increment(self.rows_deleted);
            histogram!(COMMIT_SECONDS, "table" => table.clone()).record(self.took.as_secs_f64());
        }
        if let Some(ts) = self.max_source_ts_ms {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            gauge!(LAG_SECONDS, "table" => table).set((now - ts).max(0) as f64 / 1000.0);
        }
    }
}

/// A record sent to the dead-letter location.
pub(crate) fn dead_lettered(table: Option<&TableId>) {
    let table = table.map(|t| t.to_string()).unwrap_or_default();
    counter!(DEAD_LETTERED, "table" => table).increment(1);
}

/// A commit attempt of `table` lost to another writer and is redone.
pub(crate) fn commit_conflict(table: &TableId) {
    counter!(COMMIT_CONFLICTS, "table" => table.to_string()).increment(1);
}

/// Offsets behind the partition's end, for `table`'s checkpoint of `topic`/`partition`.
pub(crate) fn lag_offsets(table: &TableId, topic: &str, partition: i32, behind: i64) {
    gauge!(
        LAG_OFFSETS,
        "table" => table.to_string(),
        "topic" => topic.to_string(),
        "partition" => partition.to_string()
    )
    .set(behind.max(0) as f64);
}

/// A transient consumer error, consuming went on.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) fn consumer_error() {
    counter!(CONSUMER_ERRORS).increment(1);
}

/// `count` offsets of `topic`/`partition` skipped (gaps allowed).
pub(crate) fn offsets_skipped(topic: &str, partition: i32, count: i64) {
    counter!(
        OFFSETS_SKIPPED,
        "topic" => topic.to_string(),
        "partition" => partition.to_string()
    )
    .increment(count.max(0) as u64);
}

/// Whether a running pipeline is ready, for a health endpoint: its partitions are assigned
/// and positioned at the tables' checkpoints, and its last read found less than a full batch
/// (it has caught up with the source).
#[derive(Debug, Default)]
pub struct Readiness {
    assigned: std::sync::atomic::AtomicBool,
    caught_up: std::sync::atomic::AtomicBool,
}

impl Readiness {
    /// Assigned and caught up.
    pub fn is_ready(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.assigned.load(Relaxed) && self.caught_up.load(Relaxed)
    }

    pub(crate) fn set_assigned(&self, assigned: bool) {
        self.assigned
            .store(assigned, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_caught_up(&self, caught_up: bool) {
        self.caught_up
            .store(caught_up, std::sync::atomic::Ordering::Relaxed);
    }
}
