//! A Debezium backlog of any size in the shape of the `crud` fixture's `public.customers`: the
//! value schema is the fixture's own text (as the JsonConverter wrote it), the payloads follow
//! its events field for field. A snapshot of `snapshot_rows` rows, then `changes` changes
//! (70 % updates and 10 % deletes of live keys, 20 % inserts of new keys), Postgres-style:
//! `before` is null on updates and holds only the key on deletes, no tombstones
//! (`tombstones.on.delete=false`).
//!
//! [`write_s3_sink_layout`] writes it as the Confluent S3 sink does (`JsonFormat`, one file per
//! `file_events` records) into `<dir>/snapshot` (the snapshot's files) and `<dir>/all` (every
//! file; the snapshot's hard-linked), so a benchmark can sync the snapshot and then the rest.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::bench::Rng;
use super::fixtures_root;
use crate::source::RawRecord;

/// What to generate.
#[derive(Debug, Clone)]
pub struct BacklogSpec {
    /// Rows read by the snapshot (`op` `r`), keys `1..=snapshot_rows`.
    pub snapshot_rows: u64,
    /// Changes after the snapshot.
    pub changes: u64,
    /// Random seed.
    pub seed: u64,
    /// `{"schema", "payload"}` envelopes (`value.converter.schemas.enable=true`) or bare payloads.
    pub with_schema: bool,
}

/// The topic every event is on.
pub const TOPIC: &str = "dbserver1.public.customers";

/// The generated events, in offset order, and what the table holds after them.
#[derive(Debug)]
pub struct Backlog {
    /// One JSON value per event (no trailing newline).
    pub events: Vec<String>,
    /// Keys live after the last event.
    pub live_keys: usize,
}

/// The fixture's value schema, exactly as Debezium wrote it.
fn fixture_value_schema() -> String {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        topic: &'a str,
        #[serde(borrow)]
        value: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Value<'a> {
        #[serde(borrow)]
        schema: &'a RawValue,
    }
    let path = fixtures_root().join("postgres/crud/events.jsonl");
    let text = std::fs::read_to_string(&path).expect("crud fixture");
    for line in text.lines() {
        let l: Line = serde_json::from_str(line).expect("fixture line");
        if let (TOPIC, Some(v)) = (l.topic, l.value) {
            let v: Value = serde_json::from_str(v.get()).expect("fixture value");
            return v.schema.get().to_string();
        }
    }
    panic!("no {TOPIC} event in {}", path.display());
}

const NAMES: [&str; 8] = ["Eve", "Lena", "Omar", "Ada", "Kenji", "Zoe", "Ravi", "Ines"];
const FIRST_LSN: u64 = 156_105_240;
const FIRST_TS_MS: i64 = 1_795_585_908_775;

/// The backlog of `spec`.
pub fn generate(spec: &BacklogSpec) -> Backlog {
    let schema = spec.with_schema.then(fixture_value_schema);
    let mut rng = Rng(spec.seed.max(1));
    let mut live: Vec<u64> = (1..=spec.snapshot_rows).collect();
    let mut next_key = spec.snapshot_rows + 1;
    let mut events = Vec::with_capacity((spec.snapshot_rows + spec.changes) as usize);
    let wrap = |payload: String| match &schema {
        Some(s) => format!(r#"{{"schema":{s},"payload":{payload}}}"#),
        None => payload,
    };
    for (i, key) in live.iter().enumerate() {
        let snapshot = match i {
            0 => "first",
            _ if i as u64 + 1 == spec.snapshot_rows => "last",
            _ => "true",
        };
        let source = source_block(snapshot, FIRST_LSN, FIRST_TS_MS, 1135);
        let row = row_json(*key, &mut rng);
        events.push(wrap(payload("null", &row, &source, "r", FIRST_TS_MS + 177)));
    }
    for c in 0..spec.changes {
        let lsn = FIRST_LSN + 248 * (c + 1);
        let ts = FIRST_TS_MS + 2_517 + c as i64;
        let source = source_block("false", lsn, ts, 1136 + c as i64);
        let dice = rng.below(10);
        let event = if live.is_empty() || dice < 2 {
            live.push(next_key);
            next_key += 1;
            let row = row_json(next_key - 1, &mut rng);
            payload("null", &row, &source, "c", ts + 300)
        } else if dice < 9 {
            let key = live[rng.below(live.len() as u64) as usize];
            let row = row_json(key, &mut rng);
            payload("null", &row, &source, "u", ts + 300)
        } else {
            let key = live.swap_remove(rng.below(live.len() as u64) as usize);
            let before = format!(
                r#"{{"id":{key},"name":"","email":null,"balance":null,"updated_at":null}}"#
            );
            payload(&before, "null", &source, "d", ts + 300)
        };
        events.push(wrap(event));
    }
    Backlog {
        events,
        live_keys: live.len(),
    }
}

impl Backlog {
    /// The events as records of partition 0 of [`TOPIC`], offsets from 0, without keys (the
    /// S3 sink's default), as a source would hand them over.
    pub fn records(&self) -> Vec<RawRecord> {
        let topic: Arc<str> = Arc::from(TOPIC);
        self.events
            .iter()
            .enumerate()
            .map(|(offset, e)| RawRecord {
                topic: topic.clone(),
                partition: 0,
                offset: offset as i64,
                key: None,
                value: Some(Bytes::from(e.clone())),
                value_schema: None,
                key_schema: None,
            })
            .collect()
    }
}

fn row_json(key: u64, rng: &mut Rng) -> String {
    let name = NAMES[rng.below(NAMES.len() as u64) as usize];
    let email = match rng.below(5) {
        0 => "null".to_string(),
        n => format!(
            r#""user{}@example.{}""#,
            rng.below(100_000),
            ["com", "org"][n as usize % 2]
        ),
    };
    // A 2-byte big-endian unscaled decimal of scale 2, base64 as the JsonConverter writes it.
    let cents = rng.below(65_536) as u16;
    let balance = base64_2(cents.to_be_bytes());
    let updated_at = 1_600_000_000_000_000 + rng.below(120_000_000) as i64 * 1_000_000;
    format!(
        r#"{{"id":{key},"name":"{name}","email":{email},"balance":"{balance}","updated_at":{updated_at}}}"#
    )
}

fn base64_2(bytes: [u8; 2]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn source_block(snapshot: &str, lsn: u64, ts_ms: i64, tx_id: i64) -> String {
    let (us, ns) = (ts_ms * 1000 + 942, (ts_ms * 1000 + 942) * 1000);
    format!(
        r#"{{"version":"3.6.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":{ts_ms},"snapshot":"{snapshot}","db":"fx_crud_base_1","sequence":"[null,\"{lsn}\"]","ts_us":{us},"ts_ns":{ns},"schema":"public","table":"customers","txId":{tx_id},"lsn":{lsn},"xmin":null,"origin":null,"origin_lsn":null}}"#
    )
}

fn payload(before: &str, after: &str, source: &str, op: &str, ts_ms: i64) -> String {
    let (us, ns) = (ts_ms * 1000 + 397, (ts_ms * 1000 + 397) * 1000 + 73);
    format!(
        r#"{{"before":{before},"after":{after},"source":{source},"transaction":null,"op":"{op}","ts_ms":{ts_ms},"ts_us":{us},"ts_ns":{ns}}}"#
    )
}

/// Writes `backlog` in the S3 sink's layout under `<dir>/snapshot` and `<dir>/all`, files of
/// `file_events` records; the snapshot ends a file so the two phases split on a file boundary.
pub fn write_s3_sink_layout(
    backlog: &Backlog,
    snapshot_rows: u64,
    file_events: usize,
    dir: &Path,
) -> std::io::Result<()> {
    let part = |phase: &str| {
        dir.join(phase)
            .join("topics")
            .join(TOPIC)
            .join("partition=0")
    };
    let (snapshot_dir, all_dir) = (part("snapshot"), part("all"));
    std::fs::create_dir_all(&snapshot_dir)?;
    std::fs::create_dir_all(&all_dir)?;
    let mut start = 0usize;
    while start < backlog.events.len() {
        let phase_end = if start < snapshot_rows as usize {
            snapshot_rows as usize
        } else {
            backlog.events.len()
        };
        let end = (start + file_events).min(phase_end);
        let name = format!("{TOPIC}+0+{start:010}.json");
        let mut out = std::io::BufWriter::new(std::fs::File::create(all_dir.join(&name))?);
        for e in &backlog.events[start..end] {
            out.write_all(e.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        if start < snapshot_rows as usize {
            std::fs::hard_link(all_dir.join(&name), snapshot_dir.join(&name))?;
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DebeziumJsonDecoder, Decoded, DecoderConfig};
    use crate::model::TableId;

    #[test]
    fn events_decode_and_keep_the_counts() {
        let spec = BacklogSpec {
            snapshot_rows: 50,
            changes: 200,
            seed: 7,
            with_schema: true,
        };
        let backlog = generate(&spec);
        assert_eq!(backlog.events.len(), 250);
        let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default());
        let table = TableId::new("public", "customers");
        let (mut inserts, mut deletes) = (0usize, 0usize);
        for (e, record) in backlog.events.iter().zip(backlog.records()) {
            assert!(matches!(
                decoder.decode(Some(&table), &record).unwrap(),
                Decoded::Row(..)
            ));
            inserts += e.contains(r#""op":"c""#) as usize + e.contains(r#""op":"r""#) as usize;
            deletes += e.contains(r#""op":"d""#) as usize;
        }
        assert_eq!(inserts - deletes, backlog.live_keys);
        assert!(deletes > 0 && inserts > 50);
    }
}
