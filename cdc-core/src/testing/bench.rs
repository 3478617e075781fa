//! The change batch of the upsert benchmarks: one generator, so every format's benchmark
//! applies exactly the same keys to the same table.

use std::collections::HashSet;
use std::str::FromStr;

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
