//! The Hudi timeline (layout version 1, files directly under `.hoodie/`), `hoodie.properties`
//! and the JSON commit metadata.
//!
//! A write is one instant `t` (`yyyyMMddHHmmssSSS`, UTC) that goes through three files:
//! `t.commit.requested` (empty), `t.inflight` (empty), then `t.commit` holding the
//! [`CommitMetadata`]. A truncate is a `replacecommit` (`t.replacecommit.requested`,
//! `t.replacecommit.inflight`, `t.replacecommit`) whose metadata lists every file group it
//! replaces. Only completed instants are visible to readers; base files of any other instant
//! are ignored by them and deleted by the next writer (rollback).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `commit`: a copy-on-write write.
pub const COMMIT: &str = "commit";
/// `replacecommit`: a write that replaces whole file groups (our truncate).
pub const REPLACE_COMMIT: &str = "replacecommit";
/// The cleaner's action.
pub const CLEAN: &str = "clean";

/// The state of an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Planned.
    Requested,
    /// Being written.
    Inflight,
    /// Done: visible to readers.
    Completed,
}

/// One timeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    /// Instant time, `yyyyMMddHHmmssSSS`.
    pub time: String,
    /// `commit`, `replacecommit`, `clean`, `rollback`, ...
    pub action: String,
    /// State.
    pub state: State,
}

impl Instant {
    /// The instant of a `.hoodie/` file name, or `None` for other files.
    pub fn parse(name: &str) -> Option<Instant> {
        let (time, rest) = name.split_once('.')?;
        if !matches!(time.len(), 14 | 17) || !time.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (action, state) = match rest.split_once('.') {
            Some((a, "requested")) => (a, State::Requested),
            Some((a, "inflight")) => (a, State::Inflight),
            Some(_) => return None,
            None if rest == "inflight" => (COMMIT, State::Inflight),
            None => (rest, State::Completed),
        };
        if action.is_empty() || !action.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        Some(Instant {
            time: time.to_string(),
            action: action.to_string(),
            state,
        })
    }

    /// Its file name under `.hoodie/`.
    pub fn file_name(&self) -> String {
        file_name(&self.time, &self.action, self.state)
    }

    /// A data write (`commit` or `replacecommit`).
    pub fn is_write(&self) -> bool {
        self.action == COMMIT || self.action == REPLACE_COMMIT
    }
}

/// The `.hoodie/` file name of an instant in a state.
pub fn file_name(time: &str, action: &str, state: State) -> String {
    match (action, state) {
        (_, State::Completed) => format!("{time}.{action}"),
        (COMMIT, State::Inflight) => format!("{time}.inflight"),
        (_, State::Inflight) => format!("{time}.{action}.inflight"),
        (_, State::Requested) => format!("{time}.{action}.requested"),
    }
}

/// The instants of a table, one per (time, action) in its latest state, ordered by time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Instants by time.
    pub instants: Vec<Instant>,
}

impl Timeline {
    /// The timeline of the file names of `.hoodie/`.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Timeline {
        let mut latest: BTreeMap<(String, String), State> = BTreeMap::new();
        for i in names.into_iter().filter_map(Instant::parse) {
            let e = latest.entry((i.time, i.action)).or_insert(i.state);
            *e = (*e).max(i.state);
        }
        Timeline {
            instants: latest
                .into_iter()
                .map(|((time, action), state)| Instant {
                    time,
                    action,
                    state,
                })
                .collect(),
        }
    }

    /// Completed writes, oldest first.
    pub fn completed_writes(&self) -> impl DoubleEndedIterator<Item = &Instant> {
        self.instants
            .iter()
            .filter(|i| i.is_write() && i.state == State::Completed)
    }

    /// Writes and cleans that never completed (a crashed writer's, or one at work).
    pub fn pending_writes(&self) -> impl Iterator<Item = &Instant> {
        self.instants
            .iter()
            .filter(|i| (i.is_write() || i.action == CLEAN) && i.state != State::Completed)
    }

    /// The latest instant time of any action.
    pub fn last_time(&self) -> Option<&str> {
        self.instants.iter().map(|i| i.time.as_str()).max()
    }

    /// Whether `time` is a completed write.
    pub fn is_completed_write(&self, time: &str) -> bool {
        self.completed_writes().any(|i| i.time == time)
    }
}

/// The instant time of `now`, moved past `last` so times strictly increase.
pub fn next_instant_time(last: Option<&str>, now: DateTime<Utc>) -> String {
    let mut t = now;
    if let Some(last) = last.and_then(parse_instant_time) {
        if t <= last {
            t = last + chrono::Duration::milliseconds(1);
        }
    }
    t.format("%Y%m%d%H%M%S%3f").to_string()
}

/// The UTC time of an instant time.
pub fn parse_instant_time(s: &str) -> Option<DateTime<Utc>> {
    let (secs, millis) = match s.len() {
        17 => (s.get(..14)?, s.get(14..)?.parse::<i64>().ok()?),
        14 => (s, 0),
        _ => return None,
    };
    let naive = NaiveDateTime::parse_from_str(secs, "%Y%m%d%H%M%S").ok()?;
    Some(naive.and_utc() + chrono::Duration::milliseconds(millis))
}

/// Timing of a write (Hudi's `runtimeStats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeStats {
    /// Milliseconds reading the old base file.
    pub total_scan_time: i64,
    /// Milliseconds merging updates.
    pub total_upsert_time: i64,
    /// Milliseconds writing a new file group.
    pub total_create_time: i64,
}

/// One base file written by an instant (Hudi's `HoodieWriteStat`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WriteStat {
    /// File group id.
    pub file_id: String,
    /// Base file path relative to the table root.
    pub path: Option<String>,
    /// Change-data-capture files (never written).
    pub cdc_stats: Option<Value>,
    /// The instant of the file group's previous base file, or `"null"` for a new group.
    pub prev_commit: String,
    /// Records in the new base file.
    pub num_writes: i64,
    /// Records deleted from the file group.
    pub num_deletes: i64,
    /// Records updated in place.
    pub num_update_writes: i64,
    /// Records inserted.
    pub num_inserts: i64,
    /// Bytes written.
    pub total_write_bytes: i64,
    /// Records that failed.
    pub total_write_errors: i64,
    /// Temporary path (none).
    pub temp_path: Option<String>,
    /// Partition path (`""` when not partitioned).
    pub partition_path: Option<String>,
    /// Log records (copy-on-write: 0).
    pub total_log_records: i64,
    /// Log files compacted (0).
    pub total_log_files_compacted: i64,
    /// Log bytes compacted (0).
    pub total_log_size_compacted: i64,
    /// Records updated by compaction (0).
    pub total_updated_records_compacted: i64,
    /// Log blocks (0).
    pub total_log_blocks: i64,
    /// Corrupt log blocks (0).
    pub total_corrupt_log_block: i64,
    /// Rollback blocks (0).
    pub total_rollback_blocks: i64,
    /// Size of the new base file.
    pub file_size_in_bytes: i64,
    /// Earliest event time (not tracked).
    pub min_event_time: Option<i64>,
    /// Latest event time (not tracked).
    pub max_event_time: Option<i64>,
    /// Timing.
    pub runtime_stats: Option<RuntimeStats>,
}

/// The JSON content of a completed `commit` / `replacecommit` (Hudi's `HoodieCommitMetadata`
/// and `HoodieReplaceCommitMetadata`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CommitMetadata {
    /// Partition path → base files written.
    pub partition_to_write_stats: BTreeMap<String, Vec<WriteStat>>,
    /// Replace commits: partition path → file group ids replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_to_replace_file_ids: Option<BTreeMap<String, Vec<String>>>,
    /// Written by compaction (never).
    pub compacted: bool,
    /// `schema` (Avro) and cdc-lake's keys.
    pub extra_metadata: BTreeMap<String, String>,
    /// `UPSERT`, `INSERT_OVERWRITE_TABLE`, ...
    pub operation_type: String,
}

/// `hoodie.properties`: what cdc-lake writes and reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProperties {
    /// `hoodie.table.name`.
    pub name: String,
    /// `hoodie.table.recordkey.fields`.
    pub key_columns: Vec<String>,
    /// `hoodie.table.partition.fields`.
    pub partition_fields: Vec<String>,
    /// `hoodie.datasource.write.hive_style_partitioning`.
    pub hive_style: bool,
    /// `hoodie.table.precombine.field`.
    pub precombine_field: Option<String>,
    /// `hoodie.table.create.schema` (Avro).
    pub create_schema: Option<String>,
}

const KEYGEN_NONPARTITIONED: &str = "org.apache.hudi.keygen.NonpartitionedKeyGenerator";
const KEYGEN_SIMPLE: &str = "org.apache.hudi.keygen.SimpleKeyGenerator";
const KEYGEN_COMPLEX: &str = "org.apache.hudi.keygen.ComplexKeyGenerator";

impl TableProperties {
    /// The key generator class that makes our record keys and partition paths.
    pub fn key_generator(&self) -> &'static str {
        match (self.key_columns.len(), self.partition_fields.len()) {
            (_, 0) => KEYGEN_NONPARTITIONED,
            (1, 1) => KEYGEN_SIMPLE,
            _ => KEYGEN_COMPLEX,
        }
    }

    /// The file text (Java properties).
    pub fn to_text(&self) -> String {
        let mut props: Vec<(&str, String)> = vec![
            ("hoodie.table.name", self.name.clone()),
            ("hoodie.table.type", "COPY_ON_WRITE".into()),
            ("hoodie.table.version", "6".into()),
            ("hoodie.timeline.layout.version", "1".into()),
            ("hoodie.table.recordkey.fields", self.key_columns.join(",")),
            (
                "hoodie.table.partition.fields",
                self.partition_fields.join(","),
            ),
            (
                "hoodie.table.keygenerator.class",
                self.key_generator().into(),
            ),
            ("hoodie.populate.meta.fields", "true".into()),
            ("hoodie.table.base.file.format", "PARQUET".into()),
            (
                "hoodie.datasource.write.hive_style_partitioning",
                self.hive_style.to_string(),
            ),
            (
                "hoodie.datasource.write.partitionpath.urlencode",
                // Partition values are escaped (see `index::escape_path_name`).
                (!self.partition_fields.is_empty()).to_string(),
            ),
            (
                "hoodie.datasource.write.drop.partition.columns",
                "false".into(),
            ),
            ("hoodie.table.metadata.partitions", String::new()),
            ("hoodie.table.cdc.enabled", "false".into()),
            ("hoodie.table.timeline.timezone", "UTC".into()),
            ("hoodie.archivelog.folder", "archived".into()),
            ("hoodie.partition.metafile.use.base.format", "false".into()),
        ];
        if let Some(p) = &self.precombine_field {
            props.push(("hoodie.table.precombine.field", p.clone()));
        }
        if let Some(s) = &self.create_schema {
            props.push(("hoodie.table.create.schema", s.clone()));
        }
        props.push(("hoodie.table.checksum", checksum(&self.name).to_string()));
        let mut text = String::from("#Properties saved on table creation by cdc-lake\n");
        for (k, v) in props {
            text.push_str(k);
            text.push('=');
            text.push_str(&escape(&v));
            text.push('\n');
        }
        text
    }

    /// Parses the file text; the error says which property is missing or wrong.
    pub fn parse(text: &str) -> Result<TableProperties, String> {
        let map: BTreeMap<String, String> = text
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| {
                let (k, v) = l.split_once(['=', ':'])?;
                Some((k.trim().to_string(), unescape(v.trim_start())))
            })
            .collect();
        let get = |k: &str| map.get(k).map(String::as_str);
        let require = |k: &str, want: &str| match get(k) {
            Some(v) if v.eq_ignore_ascii_case(want) => Ok(()),
            other => Err(format!(
                "`{k}` is {other:?}, expected `{want}`: cdc-lake writes only copy-on-write tables \
                 of version 6"
            )),
        };
        require("hoodie.table.type", "COPY_ON_WRITE")?;
        require("hoodie.table.version", "6")?;
        let list = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let key_columns = list("hoodie.table.recordkey.fields");
        if key_columns.is_empty() {
            return Err("`hoodie.table.recordkey.fields` is missing".into());
        }
        Ok(TableProperties {
            name: get("hoodie.table.name")
                .ok_or("`hoodie.table.name` is missing")?
                .to_string(),
            key_columns,
            partition_fields: list("hoodie.table.partition.fields"),
            hive_style: get("hoodie.datasource.write.hive_style_partitioning")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            precombine_field: get("hoodie.table.precombine.field").map(str::to_string),
            create_schema: get("hoodie.table.create.schema").map(str::to_string),
        })
    }
}

/// Java-properties escaping of a value, as `Properties.store` writes it: the file is read as
/// ISO-8859-1 by `Properties.load`, so every character outside printable ASCII is `\uXXXX`
/// (UTF-16 code units).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ':' | '=' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    out
}

/// Reads a Java-properties value: `\n`, `\t`, ... and `\uXXXX` (surrogate pairs joined).
fn unescape(v: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(v.len());
    let mut chars = v.chars();
    let push = |units: &mut Vec<u16>, c: char| {
        let mut buf = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buf));
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            push(&mut units, c);
            continue;
        }
        match chars.next() {
            Some('n') => units.push(u16::from(b'\n')),
            Some('r') => units.push(u16::from(b'\r')),
            Some('t') => units.push(u16::from(b'\t')),
            Some('f') => units.push(0x0c),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match (hex.len(), u16::from_str_radix(&hex, 16)) {
                    (4, Ok(u)) => {
                        units.push(u);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    _ => push(&mut units, 'u'),
                }
            }
            Some(other) => push(&mut units, other),
            None => {}
        }
    }
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `hoodie.table.checksum`: CRC-32 of `"<database>.<table>"` (no database here).
pub fn checksum(table_name: &str) -> u32 {
    crc32(format!(".{table_name}").as_bytes())
}

/// CRC-32 (IEEE, as `java.util.zip.CRC32`).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_file_names_parse_and_print() {
        let i = Instant::parse("20240102030405678.inflight").unwrap();
        assert_eq!((i.action.as_str(), i.state), ("commit", State::Inflight));
        assert_eq!(i.file_name(), "20240102030405678.inflight");
    }

    #[test]
    fn checksum_matches_spark_fixture() {
        // hudi-rs's `table_props_valid` fixture, written by Spark for table `trips`.
        assert_eq!(checksum("trips"), 3_761_586_722);
    }

    #[test]
    fn file_names_round_trip() {
        for name in [
            "20240102030405678.commit.requested",
            "20240102030405678.inflight",
            "20240102030405678.commit",
            "20240102030405678.replacecommit.inflight",
            "20240102030405678.clean",
        ] {
            assert_eq!(Instant::parse(name).unwrap().file_name(), name);
        }
        assert!(Instant::parse("hoodie.properties").is_none());
        assert!(Instant::parse("20240102030405678.commit.crc").is_none());
        let t = Timeline::from_names([
            "20240102030405678.commit.requested",
            "20240102030405678.inflight",
            "20240102030405678.commit",
            "20240102030405679.commit.requested",
        ]);
        assert_eq!(t.completed_writes().count(), 1);
        assert_eq!(t.pending_writes().next().unwrap().time, "20240102030405679");
    }

    #[test]
    fn odd_instant_times_are_no_times() {
        for s in [
            "",
            "2024",
            "2024010203040ü56",
            "ü202401020304056",
            "20240102030405",
            "x".repeat(17).as_str(),
        ] {
            let _ = parse_instant_time(s);
        }
        assert!(parse_instant_time("2024010203040ü56").is_none());
        assert!(parse_instant_time("ü202401020304056").is_none());
        assert!(parse_instant_time("2024").is_none());
        assert_eq!(
            parse_instant_time("20240102030405678").map(|t| t.timestamp_millis()),
            parse_instant_time("20240102030405").map(|t| t.timestamp_millis() + 678)
        );
    }

    #[test]
    fn instant_times_increase() {
        let now = parse_instant_time("20240102030405678").unwrap();
        assert_eq!(next_instant_time(None, now), "20240102030405678");
        assert_eq!(
            next_instant_time(Some("20240102030405678"), now),
            "20240102030405679"
        );
        assert_eq!(
            next_instant_time(Some("20250102030405999"), now),
            "20250102030406000"
        );
    }

    #[test]
    fn properties_round_trip() {
        let p = TableProperties {
            name: "orders".into(),
            key_columns: vec!["id".into(), "region".into()],
            partition_fields: vec![],
            hive_style: true,
            precombine_field: None,
            create_schema: Some(r#"{"type":"record","name":"a:b=c"}"#.into()),
        };
        let text = p.to_text();
        assert!(text.contains(
            "hoodie.table.keygenerator.class=org.apache.hudi.keygen.NonpartitionedKeyGenerator"
        ));
        assert!(text.contains("hoodie.timeline.layout.version=1"));
        assert_eq!(TableProperties::parse(&text).unwrap(), p);
        // Non-ASCII is written as \uXXXX (Java reads the file as ISO-8859-1), and read back.
        let p = TableProperties {
            name: "kündigungen_😀".into(),
            ..p
        };
        let text = p.to_text();
        assert!(text.is_ascii(), "{text}");
        assert!(
            text.contains("hoodie.table.name=k\\u00FCndigungen_\\uD83D\\uDE00\n"),
            "{text}"
        );
        let back = TableProperties::parse(&text).unwrap();
        assert_eq!(back, p);
        assert!(text.contains(&format!(
            "hoodie.table.checksum={}",
            checksum("kündigungen_😀")
        )));
        assert_eq!(unescape("a\\u00e9\\uZZ\\tb\\:"), "aéuZZ\tb:");
        let err = TableProperties::parse("hoodie.table.type=MERGE_ON_READ\n").unwrap_err();
        assert!(err.contains("COPY_ON_WRITE"), "{err}");
    }
}
