//! The table and change batch of the upsert benchmarks: one generator, so every format's
//! benchmark applies exactly the same keys to the same rows; and the process measurements they
//! report (peak memory, CPU time).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId, UnchangedMask};

/// The benchmark table `bench.accounts`: key `id bigint`, `name`, `amount`, `updated_at`.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// Its Arrow schema.
    pub schema: SchemaRef,
}

impl Accounts {
    /// Topic of the benchmark's change sets.
    pub const TOPIC: &'static str = "bench.bench.accounts";

    /// The table with `updated_at` in `timezone` (`None`: a timestamp without time zone).
    pub fn new(timezone: Option<&str>) -> Self {
        let updated_at = DataType::Timestamp(TimeUnit::Microsecond, timezone.map(Arc::from));
        Accounts {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
                Field::new("amount", DataType::Float64, true),
                Field::new("updated_at", updated_at, true),
            ])),
        }
    }

    /// `bench.accounts`.
    pub fn table() -> TableId {
        TableId::new("bench", "accounts")
    }

    /// Rows with the keys `ids`; `version` changes every other value.
    pub fn rows(&self, ids: &[i64], version: i64) -> RecordBatch {
        let name: StringArray = ids
            .iter()
            .map(|i| Some(format!("account-{i}-v{version}")))
            .collect();
        let amount: Float64Array = ids
            .iter()
            .map(|i| Some((*i % 10_000) as f64 * 1.25 + version as f64))
            .collect();
        let timezone = match self.schema.field(3).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let updated_at = TimestampMicrosecondArray::from(
            ids.iter()
                .map(|i| 1_700_000_000_000_000 + i * 1_000 + version)
                .collect::<Vec<_>>(),
        )
        .with_timezone_opt(timezone);
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
                Arc::new(name),
                Arc::new(amount),
                Arc::new(updated_at),
            ],
        )
        .expect("rows of the accounts schema")
    }

    /// The change set upserting `upserts` (rows of [`Self::rows`]) and deleting the keys
    /// `deletes`, at `offset` of [`Self::TOPIC`].
    pub fn change_set(&self, upserts: RecordBatch, deletes: &[i64], offset: i64) -> ChangeSet {
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance(Self::TOPIC, 0, offset);
        let key_schema = Arc::new(Schema::new(vec![self.schema.field(0).clone()]));
        let deletes = RecordBatch::try_new(
            key_schema,
            vec![Arc::new(Int64Array::from(deletes.to_vec()))],
        )
        .expect("keys of the accounts schema");
        ChangeSet {
            table: Self::table(),
            schema: self.schema.clone(),
            key_columns: Arc::from(vec!["id".to_string()]),
            truncate: false,
            upsert_unchanged: UnchangedMask::none(self.schema.fields().len()),
            ignore_table_values: BooleanArray::from(vec![false; upserts.num_rows()]),
            events: upserts.num_rows() + deletes.num_rows(),
            upserts,
            deletes,
            checkpoint,
            first_offsets: Default::default(),
            max_source_ts_ms: None,
            history: None,
        }
    }
}

/// Peak resident memory of this process so far (`VmHWM`), in MiB; NaN where unknown.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time (user + system, all threads) of this process so far, in seconds: unlike wall time,
/// barely affected by other processes competing for the cores.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    ticks / 100.0
}

/// Where the changed existing keys of a batch fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    /// Anywhere in the table.
    Uniform,
    /// 90 % in the newest 10 % of keys, the rest anywhere (the usual OLTP shape: recent rows
    /// change most).
    Skewed,
    /// Only in the newest 10 % of keys.
    Recent,
}

impl FromStr for KeyDistribution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(KeyDistribution::Uniform),
            "skewed" => Ok(KeyDistribution::Skewed),
            "recent" => Ok(KeyDistribution::Recent),
            other => Err(format!(
                "key distribution `{other}`: expected uniform, skewed or recent"
            )),
        }
    }
}

/// A xorshift generator with a fixed seed: runs and formats get the same keys.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The keys of one change batch on a table holding keys `0..rows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeKeys {
    /// Existing keys updated (70 % of the changes), in random order.
    pub updates: Vec<i64>,
    /// Existing keys deleted (10 %), distinct from the updated ones.
    pub deletes: Vec<i64>,
    /// New keys inserted (20 %): `rows..`.
    pub inserts: Vec<i64>,
}

/// Picks `changes` changed keys of a table of `rows` keys.
///
/// ```
/// use cdc_core::testing::bench::{change_keys, KeyDistribution};
/// let keys = change_keys(1_000, 100, KeyDistribution::Skewed);
/// assert_eq!((keys.updates.len(), keys.deletes.len(), keys.inserts.len()), (70, 10, 20));
/// let recent = keys.updates.iter().filter(|k| **k >= 900).count();
/// assert!(recent > 50, "{recent}");
/// assert_eq!(keys, change_keys(1_000, 100, KeyDistribution::Skewed));
/// ```
pub fn change_keys(rows: i64, changes: i64, distribution: KeyDistribution) -> ChangeKeys {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let existing = (changes * 8 / 10).min(rows);
    let recent_from = rows - rows / 10;
    let mut picked = HashSet::with_capacity(existing as usize);
    while (picked.len() as i64) < existing {
        let recent = match distribution {
            KeyDistribution::Recent => true,
            KeyDistribution::Skewed => rng.below(10) < 9,
            KeyDistribution::Uniform => false,
        };
        let key = if recent && rows > recent_from {
            recent_from + rng.below((rows - recent_from) as u64) as i64
        } else {
            rng.below(rows as u64) as i64
        };
        picked.insert(key);
    }
    let mut picked: Vec<i64> = picked.into_iter().collect();
    picked.sort_unstable();
    // Shuffle deterministically, then split 7:1 into updates and deletes.
    for i in (1..picked.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        picked.swap(i, j);
    }
    let split = ((changes * 7 / 10) as usize).min(picked.len());
    let deletes = picked.split_off(split);
    ChangeKeys {
        updates: picked,
        deletes,
        inserts: (rows..rows + changes * 2 / 10).collect(),
    }
}
