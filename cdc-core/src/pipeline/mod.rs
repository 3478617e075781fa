//! The pipeline: source → route → decode → fold → sink → checkpoint, in bounded batches.
//!
//! Every table's sink is the source of truth for where to resume: on start the pipeline reads
//! each table's committed checkpoint, starts each topic-partition there and skips any record the
//! table already holds. A batch ends at `max_events` records or `max_bytes` of raw input, so
//! memory is bounded by the batch, not the topic; from files (a bounded source) a commit
//! gathers decoded batches up to `max_events` records, since decoded records hold a fraction of
//! their raw bytes and every commit of a copy-on-write table rewrites the files it touches.
//!
//! Bad records stop the pipeline with an error naming topic, partition, offset and field, or,
//! with a dead-letter location configured, are written there (record and error) and the
//! pipeline goes on; the bad record's offset then counts as consumed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::ObjectStore;

use crate::decode::{DebeziumJsonDecoder, Decoder, DecoderConfig, TableHint};
use crate::error::{Error, Result};
use crate::fold::{folded_schema, ChangeSet};
use crate::model::{ChangeBatch, Checkpoint, TableId};
use crate::shape::ShapeConfig;
use crate::sink::{TableSchema, TableSink, Warehouse};
use crate::source::raw::object_store_from_url;
use crate::source::{RawRecord, Source};

mod batch;
mod dead_letter;
mod router;
mod tables;

use batch::{decode_routed, lost_decoder, DecodedBatch};
pub use router::TableRouter;

pub use crate::source::BatchLimits;

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Topic → table.
    pub router: TableRouter,
    /// Batch bounds.
    pub limits: BatchLimits,
    /// Decoder settings.
    pub decoder: DecoderConfig,
    /// Where bad records go; `None` stops the pipeline on the first one.
    pub dead_letter: Option<String>,
    /// Schemas and keys given by the user (they win over what the table says).
    pub table_hints: HashMap<TableId, TableHint>,
    /// Tables that are not mirrors of their source, or order their events by a column (see
    /// [`crate::shape`]).
    pub shapes: HashMap<TableId, ShapeConfig>,
    /// How often a streaming source is asked for topic-partitions created since the start
    /// (matching topics created while it runs are read from then on).
    pub partition_refresh: Duration,
    /// Stop after this many batches (crash tests).
    #[doc(hidden)]
    pub stop_after_batches: Option<usize>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            router: TableRouter::default(),
            limits: BatchLimits::default(),
            decoder: DecoderConfig::default(),
            dead_letter: None,
            table_hints: HashMap::new(),
            shapes: HashMap::new(),
            partition_refresh: Duration::from_secs(30),
            stop_after_batches: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PipelineStats {
    /// Records read from the source.
    pub records_read: u64,
    /// Records skipped because their table already holds them.
    pub records_already_committed: u64,
    /// Records that were not row changes (transaction markers, schema changes, heartbeats,
    /// redundant tombstones).
    pub control_records: u64,
    /// Records written to the dead-letter location.
    pub dead_lettered: u64,
    /// Row events folded and applied.
    pub events_applied: u64,
    /// Commits made.
    pub commits: u64,
    /// Rows upserted.
    pub rows_upserted: u64,
    /// Keys deleted.
    pub rows_deleted: u64,
    /// Batches processed.
    pub batches: u64,
    /// Latest database timestamp (`source.ts_ms`) of any event applied, for lag.
    pub last_source_ts_ms: Option<i64>,
}

impl PipelineStats {
    /// How far the tables trail the database: now minus the newest applied change's database
    /// timestamp.
    pub fn lag(&self) -> Option<Duration> {
        let ts = self.last_source_ts_ms?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis() as i64;
        Some(Duration::from_millis(now.saturating_sub(ts).max(0) as u64))
    }
}

/// A progress report after each batch.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// Totals so far.
    pub stats: &'a PipelineStats,
    /// Time since start.
    pub elapsed: Duration,
    /// Last commit per table (format's version).
    pub last_commits: &'a BTreeMap<TableId, String>,
}

struct TableState {
    sink: Box<dyn TableSink>,
    schema: Option<TableSchema>,
    checkpoint: Checkpoint,
}

/// Runs the pipeline.
pub struct Pipeline<'w> {
    config: PipelineConfig,
    warehouse: &'w dyn Warehouse,
    tables: BTreeMap<TableId, TableState>,
    /// Away (on a blocking thread) only while it decodes the next batch.
    decoder: Option<Box<dyn Decoder>>,
    dead_letter: Option<(Arc<dyn ObjectStore>, Path)>,
    stats: PipelineStats,
    last_commits: BTreeMap<TableId, String>,
    /// Topic → table, so the router's regexes run once per topic, not once per record.
    routes: HashMap<Arc<str>, Option<Arc<TableId>>>,
    readiness: Arc<crate::metrics::Readiness>,
    /// Checkpoints of change sets dropped because another writer overtook them: their
    /// partitions are read again from their tables.
    overtaken: Vec<Checkpoint>,
    /// Topics whose writer schemas the decoder was asked to load ahead.
    schemas_loaded: HashSet<String>,
}

impl<'w> Pipeline<'w> {
    /// A pipeline decoding Debezium JSON into `warehouse`. Validates the configuration.
    pub fn new(config: PipelineConfig, warehouse: &'w dyn Warehouse) -> Result<Self> {
        match &config.decoder.schema_registry {
            Some(url) => {
                let registry = crate::decode::avro::registry_for(url)?;
                Self::with_schema_registry(config, warehouse, registry)
            }
            None => {
                let decoder = DebeziumJsonDecoder::new(config.decoder.clone());
                Self::with_decoder(config, warehouse, Box::new(decoder))
            }
        }
    }

    /// A pipeline decoding Debezium JSON and Avro, with writer schemas from `registry` (a
    /// client shared with a source that needs the schemas too, such as a raw source of
    /// `ByteArrayFormat` files).
    pub fn with_schema_registry(
        config: PipelineConfig,
        warehouse: &'w dyn Warehouse,
        registry: Arc<dyn crate::decode::SchemaRegistry>,
    ) -> Result<Self> {
        let decoder =
            DebeziumJsonDecoder::new(config.decoder.clone()).with_schema_registry(registry);
        Self::with_decoder(config, warehouse, Box::new(decoder))
    }

    /// A pipeline decoding records with `decoder` (any wire format) into `warehouse`.
    pub fn with_decoder(
        config: PipelineConfig,
        warehouse: &'w dyn Warehouse,
        decoder: Box<dyn Decoder>,
    ) -> Result<Self> {
        let dead_letter = match &config.dead_letter {
            Some(url) => Some(object_store_from_url(url)?),
            None => None,
        };
        Ok(Pipeline {
            decoder: Some(decoder),
            config,
            warehouse,
            tables: BTreeMap::new(),
            dead_letter,
            stats: PipelineStats::default(),
            last_commits: BTreeMap::new(),
            routes: HashMap::new(),
            readiness: Arc::default(),
            overtaken: Vec::new(),
            schemas_loaded: HashSet::new(),
        })
    }

    /// Whether this pipeline is assigned and caught up, as it runs (for `/ready`).
    pub fn readiness(&self) -> Arc<crate::metrics::Readiness> {
        self.readiness.clone()
    }

    /// Reads `source` to its end, committing batch by batch. `progress` is called after each.
    pub async fn run_to_end(
        &mut self,
        source: &mut dyn Source,
        progress: impl FnMut(&Progress<'_>),
    ) -> Result<PipelineStats> {
        self.run(source, &AtomicBool::new(false), progress).await
    }

    /// Streams from `source` until `stop` is set, committing micro-batch by micro-batch; the
    /// batch being processed when `stop` is set is finished and committed first.
    ///
    /// Every matching topic-partition is assigned at the start (or, in a consumer group, when
    /// the group assigns it), positioned at its table's checkpoint; matching topics created
    /// later are found every `partition_refresh`.
    pub async fn run_stream(
        &mut self,
        source: &mut dyn Source,
        stop: &AtomicBool,
        progress: impl FnMut(&Progress<'_>),
    ) -> Result<PipelineStats> {
        self.run(source, stop, progress).await
    }

    /// Reads `source` until it ends or `stop` is set, one committed batch at a time: every
    /// topic-partition starts at its table's checkpoint.
    ///
    /// From a bounded source (files) the next batch is read and decoded while the current one
    /// is written and committed, so both cores work; it is dropped, never applied, when the run
    /// stops first.
    pub async fn run(
        &mut self,
        source: &mut dyn Source,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Progress<'_>),
    ) -> Result<PipelineStats> {
        let start = Instant::now();
        let partitions = source.topic_partitions().await?;
        self.preload_schemas(&partitions)?;
        let mut assigned: HashSet<(String, i32)> = partitions.iter().cloned().collect();
        let positions = self.positions(partitions).await?;
        let router = &self.config.router;
        source
            .start(&positions)
            .await
            .map_err(|e| router.with_table(e))?;
        let mut refreshed = Instant::now();
        let overlap = source.is_bounded() && tokio::runtime::Handle::try_current().is_ok();
        let mut ahead: Option<DecodedBatch> = None;
        while !stop.load(Ordering::Relaxed) {
            if !source.is_bounded() && refreshed.elapsed() >= self.config.partition_refresh {
                self.add_new_partitions(source, &mut assigned).await?;
                refreshed = Instant::now();
            }
            self.start_assigned(source).await?;
            self.readiness.set_assigned(source.is_assigned());
            let mut decoded = match ahead.take() {
                Some(decoded) => decoded,
                None => {
                    let step = self.read_step(source);
                    let Some(batch) = self.next_batch(source, &step).await? else {
                        self.readiness.set_caught_up(true);
                        break;
                    };
                    if !source.is_bounded() {
                        let full = batch.len() >= self.config.limits.max_events;
                        self.readiness.set_caught_up(!full);
                    }
                    if batch.is_empty() {
                        // Idle: the partitions' ends may have moved (or become known).
                        self.record_lag(source);
                        continue;
                    }
                    let routed = self.route_batch(batch).await?;
                    decode_routed(self.decoder()?, routed)?
                }
            };
            let mut ended = false;
            if source.is_bounded() {
                ended = self.decode_more(&mut decoded, source, stop).await?;
            }
            let folded = self.fold_decoded(decoded).await?;
            if overlap && !ended {
                ahead = self.apply_reading_ahead(folded, source).await?;
            } else {
                self.apply_folded(folded).await?;
            }
            if !self.overtaken.is_empty() {
                // What was read after an overtaken batch goes too: it is read again after it.
                ahead = None;
                self.rewind_overtaken(source).await?;
            }
            self.stats.batches += 1;
            source.committed(&self.committed());
            self.record_lag(source);
            progress(&Progress {
                stats: &self.stats,
                elapsed: start.elapsed(),
                last_commits: &self.last_commits,
            });
            if self
                .config
                .stop_after_batches
                .is_some_and(|n| self.stats.batches as usize >= n)
            {
                break;
            }
        }
        Ok(self.stats.clone())
    }

    /// Adds the next batches of a bounded `source` to `decoded` until it holds `max_events`
    /// records or the source ends (`true`): a backlog commits `max_events` events at a time,
    /// while `max_bytes` bounds the raw bytes read and held at once (decoded records let theirs
    /// go). The decoder learns each table's schema from every part, as a fold would give it.
    async fn decode_more(
        &mut self,
        decoded: &mut DecodedBatch,
        source: &mut dyn Source,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let max_events = self.config.limits.max_events;
        let mut will_have: HashMap<TableId, TableSchema> = HashMap::new();
        self.teach_from(&decoded.batches, &mut will_have)?;
        while decoded.records < max_events && !stop.load(Ordering::Relaxed) {
            let limits = BatchLimits {
                max_events: max_events - decoded.records,
                ..self.read_step(source)
            };
            let Some(batch) = self.next_batch(source, &limits).await? else {
                return Ok(true);
            };
            if batch.is_empty() {
                break;
            }
            let routed = self.route_batch(batch).await?;
            let more = decode_routed(self.decoder()?, routed)?;
            self.teach_from(&more.batches, &mut will_have)?;
            decoded.extend(more);
        }
        Ok(false)
    }

    /// Teaches the decoder the schema and key each table of `batches` will have once they are
    /// folded onto what it has (`will_have`, else what the table holds).
    fn teach_from(
        &mut self,
        batches: &[ChangeBatch],
        will_have: &mut HashMap<TableId, TableSchema>,
    ) -> Result<()> {
        for b in batches {
            let holds = match will_have.get(&b.table) {
                Some(s) => Some(s.clone()),
                None => self.tables.get(&b.table).and_then(|t| t.schema.clone()),
            };
            let next = folded_schema(&b.table, holds.as_ref(), b)?;
            if holds.as_ref() != Some(&next) {
                self.teach_decoder(&b.table, Some(&next))?;
                will_have.insert(b.table.clone(), next);
            }
        }
        Ok(())
    }

    /// Applies `folded` while the next batch of `source` is decoded on a blocking thread;
    /// returns that batch decoded (`None` at the source's end).
    async fn apply_reading_ahead(
        &mut self,
        folded: Vec<ChangeSet>,
        source: &mut dyn Source,
    ) -> Result<Option<DecodedBatch>> {
        let step = self.read_step(source);
        let next = match self.next_batch(source, &step).await? {
            Some(batch) if !batch.is_empty() => Some(self.route_batch(batch).await?),
            _ => None,
        };
        let Some(routed) = next else {
            self.apply_folded(folded).await?;
            return Ok(None);
        };
        let mut decoder = self.decoder.take().ok_or_else(lost_decoder)?;
        let decode = tokio::task::spawn_blocking(move || {
            let decoded = decode_routed(decoder.as_mut(), routed);
            (decoder, decoded)
        });
        let applied = self.apply_folded(folded).await;
        let (decoder, decoded) = decode.await.map_err(|e| Error::Source {
            location: "the decode of the next batch".into(),
            message: "the decode task failed".into(),
            source: Some(Box::new(e)),
        })?;
        self.decoder = Some(decoder);
        applied?;
        decoded.map(Some)
    }

    /// Where each of `partitions` starts: its table's checkpoint (the table opened), or its
    /// beginning.
    async fn positions(
        &mut self,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<((String, i32), Option<i64>)>> {
        let routed: Vec<Option<TableId>> = (partitions.iter())
            .map(|(topic, _)| self.config.router.route(topic))
            .collect();
        self.open_tables(routed.iter().flatten().cloned()).await?;
        let mut positions = Vec::with_capacity(partitions.len());
        for ((topic, partition), table) in partitions.into_iter().zip(routed) {
            let next = match table {
                Some(table) => self.tables[&table]
                    .checkpoint
                    .next_offset(&topic, partition),
                None => None,
            };
            positions.push(((topic, partition), next));
        }
        Ok(positions)
    }

    /// Starts reading the topic-partitions `source` has now that are not `assigned` yet (a
    /// topic created while the pipeline runs), each at its table's checkpoint.
    async fn add_new_partitions(
        &mut self,
        source: &mut dyn Source,
        assigned: &mut HashSet<(String, i32)>,
    ) -> Result<()> {
        // The broker may be away (the source retries its own reads): ask again next time.
        let found = match source.topic_partitions().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list topic-partitions; trying again later");
                return Ok(());
            }
        };
        let new: Vec<(String, i32)> = (found.into_iter())
            .filter(|tp| !assigned.contains(tp))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        tracing::info!(partitions = ?new, "new topic-partitions; reading them from their tables' checkpoints");
        self.preload_schemas(&new)?;
        assigned.extend(new.iter().cloned());
        let positions = self.positions(new).await?;
        let router = &self.config.router;
        source
            .add(&positions)
            .await
            .map_err(|e| router.with_table(e))
    }

    /// Starts the partitions a consumer group assigned since the last batch at their tables'
    /// checkpoints, read again from the tables: the partitions' previous owner committed to
    /// them since this pipeline read them.
    async fn start_assigned(&mut self, source: &mut dyn Source) -> Result<()> {
        let assigned = source.take_assigned();
        if assigned.is_empty() {
            return Ok(());
        }
        let tables: BTreeSet<TableId> = (assigned.iter())
            .filter_map(|(topic, _)| self.config.router.route(topic))
            .collect();
        for table in &tables {
            self.tables.remove(table);
        }
        let positions = self.positions(assigned).await?;
        let router = &self.config.router;
        source
            .start_assigned(&positions)
            .await
            .map_err(|e| router.with_table(e))
    }

    /// Moves the partitions of overtaken change sets back to their tables' checkpoints (read
    /// again: another writer advanced them).
    async fn rewind_overtaken(&mut self, source: &mut dyn Source) -> Result<()> {
        let partitions: BTreeSet<(String, i32)> = (std::mem::take(&mut self.overtaken).iter())
            .flat_map(|c| c.offsets.iter())
            .flat_map(|(topic, parts)| parts.keys().map(|p| (topic.clone(), *p)))
            .collect();
        let positions = self.positions(partitions.into_iter().collect()).await?;
        let router = &self.config.router;
        source
            .rewind(&positions)
            .await
            .map_err(|e| router.with_table(e))
    }

    /// Records the lag in offsets and, where partition ends are known, whether the tables have
    /// caught up with them.
    fn record_lag(&self, source: &dyn Source) {
        if let Some(behind) = self.record_lag_offsets(source) {
            self.readiness.set_caught_up(!behind);
        }
    }

    /// Each table's distance in offsets from the ends of its partitions, where the source knows
    /// them; returns whether any is behind (`None`: no end known).
    fn record_lag_offsets(&self, source: &dyn Source) -> Option<bool> {
        let mut behind = None;
        for (table, state) in &self.tables {
            for (topic, partitions) in &state.checkpoint.offsets {
                for (partition, next) in partitions {
                    if let Some(end) = source.end_offset(topic, *partition) {
                        crate::metrics::lag_offsets(table, topic, *partition, end - next);
                        *behind.get_or_insert(false) |= end > *next;
                    }
                }
            }
        }
        behind
    }

    /// How much of `source` one read takes. A bounded source is read in steps of a quarter of
    /// the batch's bytes: the first files decode while the next are still read (the batch
    /// still commits `max_events` at a time, see [`Pipeline::decode_more`]). Reading a whole
    /// batch's bytes ahead during a commit measured no faster, with 100 MB more memory.
    fn read_step(&self, source: &dyn Source) -> BatchLimits {
        let limits = self.config.limits;
        if !source.is_bounded() {
            return limits;
        }
        BatchLimits {
            max_bytes: (limits.max_bytes / READ_STEPS).max(1),
            ..limits
        }
    }

    /// The source's next batch; its errors name the table their topic routes to.
    async fn next_batch(
        &self,
        source: &mut dyn Source,
        limits: &BatchLimits,
    ) -> Result<Option<Vec<RawRecord>>> {
        let router = &self.config.router;
        source
            .next_batch(limits)
            .await
            .map_err(|e| router.with_table(e))
    }

    /// The checkpoint every open table has committed, merged.
    pub fn committed(&self) -> Checkpoint {
        let mut all = Checkpoint::default();
        for t in self.tables.values() {
            all.merge(&t.checkpoint);
        }
        all
    }

    /// The table `topic` routes to, from the cache after the first time.
    fn route(&mut self, topic: &Arc<str>) -> Option<Arc<TableId>> {
        if let Some(table) = self.routes.get(topic) {
            return table.clone();
        }
        let table = self.config.router.route(topic).map(Arc::new);
        self.routes.insert(topic.clone(), table.clone());
        table
    }

    /// What the decoder and the fold expect of `table`'s source rows when the table holds
    /// `holds` (the table without the columns its shape adds).
    fn source_view(&self, table: &TableId, holds: &TableSchema) -> TableSchema {
        match self.config.shapes.get(table) {
            Some(shape) => crate::shape::source_view(shape.shape, holds),
            None => holds.clone(),
        }
    }

    /// Tells the decoder `table`'s schema and key (what the table holds, the user's winning),
    /// for records that carry none.
    fn teach_decoder(&mut self, table: &TableId, holds: Option<&TableSchema>) -> Result<()> {
        let user = self.config.table_hints.get(table);
        let hint = TableHint {
            schema: user
                .and_then(|h| h.schema.clone())
                .or_else(|| holds.map(|s| s.schema.clone())),
            key_columns: user
                .and_then(|h| h.key_columns.clone())
                .or_else(|| holds.map(|s| s.key_columns.clone())),
        };
        self.decoder()?.set_table_hint(table.clone(), hint);
        Ok(())
    }

    /// Has the decoder load the writer schemas of the partitions' topics ahead of their
    /// records, once per topic (a watching sync runs again and again).
    fn preload_schemas(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        let mut topics: Vec<String> = (partitions.iter())
            .filter(|(t, _)| !self.schemas_loaded.contains(t.as_str()))
            .map(|(t, _)| t.clone())
            .collect();
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            return Ok(());
        }
        self.decoder()?.preload_schemas(&topics);
        self.schemas_loaded.extend(topics);
        Ok(())
    }

    fn decoder(&mut self) -> Result<&mut dyn Decoder> {
        match self.decoder.as_deref_mut() {
            Some(decoder) => Ok(decoder),
            None => Err(lost_decoder()),
        }
    }

    /// Totals so far.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Each table committed to so far, with the format's version of its last commit.
    pub fn last_commits(&self) -> &BTreeMap<TableId, String> {
        &self.last_commits
    }
}

/// Reads a batch of a bounded source takes (see [`Pipeline::read_step`]).
const READ_STEPS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = TableRouter::default();
        assert_eq!(
            r.route("dbserver1.public.customers"),
            Some(TableId::new("public", "customers"))
        );
        assert_eq!(r.route("dbserver1"), None);
        assert_eq!(r.route("dbserver1.transaction"), None);
        let r = TableRouter::with_rules(&[(r"cdc_(\w+)".into(), "raw.$1".into())]).unwrap();
        assert_eq!(r.route("cdc_orders"), Some(TableId::new("raw", "orders")));
    }
}
