//! What a soft-delete, SCD type 2 or change-log table of a fixture must hold, derived from the
//! fixture's raw JSON records alone (op, Kafka coordinates, key, `source.ts_ms`: nothing of the
//! decoder, the fold or the shapes), and the check of the rows an independent reader returned.
//!
//! Cell values are checked where the source's own final state says what they are: the live
//! rows of a soft-delete table and the current versions of an SCD type 2 table are returned
//! (source columns only) for the caller to compare with `expected/` as it compares a mirror.

use std::collections::BTreeMap;

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use serde_json::Value;

use super::Scenario;
use crate::model::TableId;
use crate::shape::{self, TableShape};

/// One row event (or truncate) of a fixture, as its JSON says.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// Kafka topic, partition and offset.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Debezium's op code.
    pub op: String,
    /// `source.ts_ms`.
    pub ts_ms: i64,
    /// The key's values joined by `|` (`None` for a truncate).
    pub key: Option<String>,
}

/// Every row event and truncate of the scenario, per table, in offset order.
pub fn raw_events(scenario: &Scenario) -> BTreeMap<TableId, Vec<RawEvent>> {
    let mut out: BTreeMap<TableId, Vec<RawEvent>> = BTreeMap::new();
    for r in scenario.records() {
        let Some(value) = &r.value else { continue };
        let value: Value = serde_json::from_str(value).expect("fixture value");
        let body = value.get("payload").unwrap_or(&value);
        // An envelope has `op` and `source`; an unwrapped row `__op` and `__source_ts_ms`.
        let (op, ts) = match body.get("op") {
            Some(op) => (op.clone(), body["source"]["ts_ms"].clone()),
            None => (body["__op"].clone(), body["__source_ts_ms"].clone()),
        };
        let Some(op) = op.as_str().map(str::to_string) else {
            continue;
        };
        let parts: Vec<&str> = r.topic.rsplitn(3, '.').collect();
        let table = TableId::new(parts[1], parts[0]);
        let Some((_, key_columns)) = scenario.tables.iter().find(|(t, _)| *t == table) else {
            continue;
        };
        let key = r.key.as_deref().filter(|_| op != "t").map(|k| {
            let k: Value = serde_json::from_str(k).expect("fixture key");
            let k = k.get("payload").unwrap_or(&k);
            key_columns
                .iter()
                .map(|c| text(&k[c]))
                .collect::<Vec<_>>()
                .join("|")
        });
        out.entry(table).or_default().push(RawEvent {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            op,
            ts_ms: ts.as_i64().expect("source.ts_ms"),
            key,
        });
    }
    for events in out.values_mut() {
        events.sort_by_key(|e| (e.partition, e.offset));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks `rows` (a `shape` table of `table` as a reader returned it) against the history the
/// raw events say; returns the rows the source still has (soft delete: the live rows; SCD type
/// 2: the current versions; a change log: none), source columns only.
pub fn check_shape(
    table: &TableId,
    key_columns: &[String],
    shape: TableShape,
    events: &[RawEvent],
    rows: &RecordBatch,
) -> Result<RecordBatch, String> {
    let keys = key_texts(rows, key_columns)?;
    match shape {
        TableShape::Mirror => Ok(rows.clone()),
        TableShape::ChangeLog => check_change_log(table, events, rows, &keys)
            .map(|_| RecordBatch::new_empty(rows.schema())),
        TableShape::SoftDelete => check_soft_delete(table, events, rows, &keys),
        TableShape::Scd2 => check_scd2(table, events, rows, &keys),
    }
}

fn check_change_log(
    table: &TableId,
    events: &[RawEvent],
    rows: &RecordBatch,
    keys: &[String],
) -> Result<(), String> {
    let topics = strings(rows, shape::TOPIC)?;
    let partitions = ints(rows, shape::PARTITION, DataType::Int64)?;
    let offsets = ints(rows, shape::OFFSET, DataType::Int64)?;
    let ops = strings(rows, shape::OP)?;
    let ts = ints(rows, shape::SOURCE_TS, micros_type())?;
    let mut ours: Vec<String> = (0..rows.num_rows())
        .map(|i| {
            let key = match ops[i].as_deref() {
                Some("t") => String::new(),
                _ => keys[i].clone(),
            };
            format!(
                "{:?} {:?} {:?} {:?} {:?} {key}",
                topics[i], partitions[i], offsets[i], ops[i], ts[i]
            )
        })
        .collect();
    let mut expected: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {}",
                Some(&e.topic),
                Some(i64::from(e.partition)),
                Some(e.offset),
                Some(&e.op),
                Some(e.ts_ms * 1000),
                e.key.clone().unwrap_or_default()
            )
        })
        .collect();
    ours.sort();
    expected.sort();
    same(table, "change log", &ours, &expected)
}

fn check_soft_delete(
    table: &TableId,
    events: &[RawEvent],
    rows: &RecordBatch,
    keys: &[String],
) -> Result<RecordBatch, String> {
    // key → the time of its delete, if its last event is one.
    let mut state: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for e in events {
        match (e.op.as_str(), &e.key) {
            ("t", _) => state.clear(),
            ("d", Some(k)) => {
                state.insert(k.clone(), Some(e.ts_ms * 1000));
            }
            (_, Some(k)) => {
                state.insert(k.clone(), None);
            }
            _ => {}
        }
    }
    let deleted = bools(rows, shape::DELETED)?;
    let at = ints(rows, shape::DELETED_AT, micros_type())?;
    let mut ours: Vec<String> = (0..rows.num_rows())
        .map(|i| format!("{} {:?} {:?}", keys[i], deleted[i], at[i]))
        .collect();
    let mut expected: Vec<String> = state
        .iter()
        .map(|(k, d)| format!("{k} {:?} {d:?}", Some(d.is_some())))
        .collect();
    ours.sort();
    expected.sort();
    same(table, "soft deletes", &ours, &expected)?;
    let live: Vec<bool> = deleted.iter().map(|d| *d == Some(false)).collect();
    source_rows(rows, TableShape::SoftDelete, live)
}

fn check_scd2(
    table: &TableId,
    events: &[RawEvent],
    rows: &RecordBatch,
    keys: &[String],
) -> Result<RecordBatch, String> {
    // key → its versions: (from, to) in µs; the last one open while current.
    let mut versions: BTreeMap<String, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    let close = |v: &mut Vec<(i64, Option<i64>)>, at: i64| {
        if let Some(last) = v.last_mut().filter(|l| l.1.is_none()) {
            last.1 = Some(at);
        }
    };
    for e in events {
        let at = e.ts_ms * 1000;
        match (e.op.as_str(), &e.key) {
            ("t", _) => versions.values_mut().for_each(|v| close(v, at)),
            ("d", Some(k)) => close(versions.entry(k.clone()).or_default(), at),
            (_, Some(k)) => {
                let v = versions.entry(k.clone()).or_default();
                close(v, at);
                v.push((at, None));
            }
            _ => {}
        }
    }
    let from = ints(rows, shape::VALID_FROM, micros_type())?;
    let to = ints(rows, shape::VALID_TO, micros_type())?;
    let current = bools(rows, shape::IS_CURRENT)?;
    let mut ours: Vec<String> = (0..rows.num_rows())
        .map(|i| format!("{} {:?} {:?} {:?}", keys[i], from[i], to[i], current[i]))
        .collect();
    let mut expected: Vec<String> = versions
        .iter()
        .flat_map(|(k, vs)| {
            vs.iter()
                .map(move |(f, t)| format!("{k} {:?} {t:?} {:?}", Some(f), Some(t.is_none())))
        })
        .collect();
    ours.sort();
    expected.sort();
    same(table, "versions", &ours, &expected)?;
    let live: Vec<bool> = current.iter().map(|c| *c == Some(true)).collect();
    source_rows(rows, TableShape::Scd2, live)
}

fn same(table: &TableId, what: &str, ours: &[String], expected: &[String]) -> Result<(), String> {
    if ours == expected {
        return Ok(());
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !ours.contains(e))
        .take(8)
        .collect();
    let extra: Vec<&String> = ours
        .iter()
        .filter(|o| !expected.contains(o))
        .take(8)
        .collect();
    Err(format!(
        "{table}: {what} differ ({} rows, {} expected)\nmissing: {missing:#?}\nunexpected: {extra:#?}",
        ours.len(),
        expected.len()
    ))
}

/// The rows marked in `keep`, without the shape's columns.
fn source_rows(
    rows: &RecordBatch,
    shape: TableShape,
    keep: Vec<bool>,
) -> Result<RecordBatch, String> {
    let added: Vec<String> = shape::shape_columns(shape)
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let indices: Vec<usize> = (0..rows.num_columns())
        .filter(|&c| !added.contains(rows.schema().field(c).name()))
        .collect();
    let kept = arrow_select::filter::filter_record_batch(rows, &BooleanArray::from(keep))
        .map_err(|e| e.to_string())?;
    kept.project(&indices).map_err(|e| e.to_string())
}

fn micros_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn column<'a>(rows: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::ArrayRef, String> {
    rows.column_by_name(name)
        .ok_or_else(|| format!("no column `{name}` in {:?}", rows.schema()))
}

/// A column as `i64`s, through `via` (a timestamp type: whatever unit the reader gave).
fn ints(rows: &RecordBatch, name: &str, via: DataType) -> Result<Vec<Option<i64>>, String> {
    let col = arrow_cast::cast(column(rows, name)?, &via).map_err(|e| e.to_string())?;
    let col = arrow_cast::cast(&col, &DataType::Int64).map_err(|e| e.to_string())?;
    let col = col
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .expect("int64");
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| col.value(i)))
        .collect())
}

fn strings(rows: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, String> {
    let col = arrow_cast::cast(column(rows, name)?, &DataType::Utf8).map_err(|e| e.to_string())?;
    let col = col
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .expect("utf8");
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| col.value(i).to_string()))
        .collect())
}

fn bools(rows: &RecordBatch, name: &str) -> Result<Vec<Option<bool>>, String> {
    let col =
        arrow_cast::cast(column(rows, name)?, &DataType::Boolean).map_err(|e| e.to_string())?;
    let col = col.as_any().downcast_ref::<BooleanArray>().expect("bool");
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| col.value(i)))
        .collect())
}

/// Each row's key values joined by `|`.
fn key_texts(rows: &RecordBatch, key_columns: &[String]) -> Result<Vec<String>, String> {
    let columns = key_columns
        .iter()
        .map(|k| strings(rows, k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..rows.num_rows())
        .map(|i| {
            columns
                .iter()
                .map(|c| c[i].clone().unwrap_or_else(|| "null".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}

/// Every shape but the mirror.
pub const SHAPES: [TableShape; 3] = [
    TableShape::SoftDelete,
    TableShape::Scd2,
    TableShape::ChangeLog,
];

/// Asserts that `rows`, table `table` of `scenario` in `shape` as a reader returned it, holds
/// the history the raw events say, and that its live rows equal `expected/`: compared as
/// engines return them when `raw` (see [`super::compare_raw_with_expected`]), else in logical
/// types.
pub fn assert_shape_rows(
    scenario: &Scenario,
    shape: TableShape,
    table: &TableId,
    rows: &RecordBatch,
    raw: bool,
) {
    assert_history_rows(scenario, scenario, shape, table, rows, raw)
}

/// [`assert_shape_rows`] for a scenario delivered otherwise ([`delivered_as`]) than
/// `history_of`, whose events say what the history is.
pub fn assert_history_rows(
    scenario: &Scenario,
    history_of: &Scenario,
    shape: TableShape,
    table: &TableId,
    rows: &RecordBatch,
    raw: bool,
) {
    let keys = &scenario
        .tables
        .iter()
        .find(|(t, _)| t == table)
        .expect("scenario table")
        .1;
    let events = raw_events(history_of).remove(table).unwrap_or_default();
    let live = check_shape(table, keys, shape, &events, rows)
        .unwrap_or_else(|e| panic!("{} as {shape}:\n{e}", scenario.name));
    if shape == TableShape::ChangeLog {
        return;
    }
    let expected = &scenario.expected()[table];
    let compared = match raw {
        true => super::compare_raw_with_expected(
            table,
            keys,
            &live,
            expected,
            super::VariantLoss::of(&scenario.name),
        ),
        false => super::compare_with_expected(table, keys, &live, expected),
    };
    compared.unwrap_or_else(|e| panic!("{} as {shape}, live rows:\n{e}", scenario.name));
}

/// How a scenario's records reach cdc-lake other than as captured.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// After a connector restart, the last `n` records of each topic again, at new offsets
    /// (Debezium delivers at least once).
    Redelivered(usize),
    /// Each topic's records spread over two partitions, five at a time (a tombstone stays with
    /// its delete): a key's changes arrive out of order across partitions and batches.
    TwoPartitions,
}

/// `base`'s records delivered as `delivery` says, as a scenario of its own under `dir` (its
/// `expected/` is `base`'s: the source is the same).
pub fn delivered_as(base: &Scenario, dir: &std::path::Path, delivery: Delivery) -> Scenario {
    let name = format!("{}-{delivery:?}", base.name).to_lowercase();
    let out = dir.join(&name);
    std::fs::create_dir_all(out.join("expected")).expect("scenario dir");
    std::fs::copy(base.dir.join("scenario.json"), out.join("scenario.json")).expect("copy");
    for (table, _) in &base.tables {
        let file = format!("{table}.json");
        std::fs::copy(
            base.dir.join("expected").join(&file),
            out.join("expected").join(&file),
        )
        .expect("copy expected");
    }
    let text = std::fs::read_to_string(base.dir.join("events.jsonl")).expect("events.jsonl");
    let mut by_topic: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("event JSON");
        by_topic
            .entry(v["topic"].as_str().expect("topic").to_string())
            .or_default()
            .push(v);
    }
    let mut lines = String::new();
    for (_, mut records) in by_topic {
        records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
        match delivery {
            Delivery::Redelivered(n) => {
                let next = records
                    .last()
                    .and_then(|r| r["offset"].as_i64())
                    .unwrap_or(0)
                    + 1;
                let again: Vec<Value> = records[records.len().saturating_sub(n)..].to_vec();
                for (i, mut r) in again.into_iter().enumerate() {
                    r["offset"] = (next + i as i64).into();
                    records.push(r);
                }
            }
            Delivery::TwoPartitions => {
                let mut next = [0i64; 2];
                let mut partition = 0usize;
                for (i, r) in records.iter_mut().enumerate() {
                    if !r["value"].is_null() {
                        partition = (i / 5) % 2;
                    }
                    r["partition"] = (partition as i64).into();
                    r["offset"] = next[partition].into();
                    next[partition] += 1;
                }
            }
        }
        for r in records {
            lines.push_str(&r.to_string());
            lines.push('\n');
        }
    }
    std::fs::write(out.join("events.jsonl"), lines).expect("events.jsonl");
    Scenario {
        name,
        dir: out,
        tables: base.tables.clone(),
    }
}

/// Every shape of scenario `name`, each synced into a fresh warehouse `open` makes in its own
/// directory, every table read back by `read` and checked as [`assert_shape_rows`] says (`raw`:
/// as the reader returns it); syncing again commits nothing.
pub async fn check_every_shape<W: crate::sink::Warehouse>(
    name: &str,
    open: impl Fn(&std::path::Path) -> W,
    read: impl Fn(&W, &TableId) -> RecordBatch,
    raw: bool,
) {
    let scenario = Scenario::load(name);
    for shape in SHAPES {
        let dir = Scratch::new("shape");
        let warehouse = open(dir.path());
        let config = crate::shape::ShapeConfig {
            shape,
            ..Default::default()
        };
        let stats = super::sync_shaped(&scenario, dir.path(), config.clone(), &warehouse)
            .await
            .unwrap_or_else(|e| panic!("{name} as {shape}: {e}"));
        assert!(stats.commits > 0, "{name} as {shape}: nothing committed");
        for (table, _) in &scenario.tables {
            assert_shape_rows(&scenario, shape, table, &read(&warehouse, table), raw);
        }
        let again = super::sync_shaped(&scenario, dir.path(), config, &warehouse)
            .await
            .unwrap_or_else(|e| panic!("{name} as {shape}, again: {e}"));
        assert_eq!(again.commits, 0, "{name} as {shape}: the replay committed");
    }
}

/// The `crud` fixture delivered as `delivery` into an SCD type 2 table of a warehouse `open`
/// makes, read back by `read`: the history its events delivered once, in order, make.
pub async fn check_history_delivered_as<W: crate::sink::Warehouse>(
    base: &str,
    delivery: Delivery,
    open: impl Fn(&std::path::Path) -> W,
    read: impl Fn(&W, &TableId) -> RecordBatch,
    raw: bool,
) {
    let scenarios = Scratch::new("delivered");
    let base = Scenario::load(base);
    let delivered = delivered_as(&base, scenarios.path(), delivery);
    let dir = Scratch::new("history");
    let warehouse = open(dir.path());
    let config = crate::shape::ShapeConfig {
        shape: TableShape::Scd2,
        ..Default::default()
    };
    super::sync_shaped(&delivered, dir.path(), config, &warehouse)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", delivered.name));
    for (table, _) in &base.tables {
        let rows = read(&warehouse, table);
        assert_history_rows(&delivered, &base, TableShape::Scd2, table, &rows, raw);
    }
}

/// A directory of its own under the system's temp directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cdc-lake-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
