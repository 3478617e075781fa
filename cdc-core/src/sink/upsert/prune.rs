//! Which files a change set must open: every format keeps per-file bounds of the key (Delta
//! statistics, Iceberg manifest bounds, Hudi footers), and a file whose `[min, max]` holds no
//! changed key is never read. A file with few changed keys in its range is probed (its key
//! columns read first); with more, it almost surely holds one and is read whole at once.
//!
//! ```
//! use cdc_core::sink::upsert::{KeyBounds, KeyRanges, RowRemoval, SortedInts};
//! let ranges = KeyRanges::new(Some(SortedInts::new(vec![5, 17, 42])), None);
//! assert_eq!(ranges.count_in(&KeyBounds::Ints(10, 20)), Some(1));
//! // No changed key in [20, 40]: the file is skipped.
//! assert!(ranges.plan(&KeyBounds::Ints(20, 40), None, RowRemoval::Rewrite, false).is_none());
//! // One key in range: read its key columns first.
//! let plan = ranges.plan(&KeyBounds::Ints(0, 10), None, RowRemoval::Rewrite, false).unwrap();
//! assert!(plan.probe);
//! ```

/// A file with at most this many changed keys in its key range has its key columns read first
/// (it likely holds none of them); with more it almost surely holds one and is read whole.
pub const PROBE_AT_MOST_KEYS: usize = 16;

/// The key bounds a format keeps for one file (of the first key column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBounds<'a> {
    /// Integer bounds, inclusive.
    Ints(i64, i64),
    /// String bounds in byte order, inclusive, that hold every value of the file.
    Strings(&'a str, &'a str),
    /// No usable bounds (none kept, truncated, another key type).
    Unknown,
}

/// How a format removes the changed rows of a file it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowRemoval {
    /// Mark the rows deleted (Iceberg position deletes): the file stays.
    Mark,
    /// Rewrite the file without them (copy-on-write).
    Rewrite,
    /// Mark them (Delta deletion vectors) when at most this fraction of the file's live rows
    /// change, else rewrite.
    MarkUpTo(f64),
}

/// How one candidate file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePlan {
    /// Read the key columns first and skip the file if it holds no changed key.
    pub probe: bool,
    /// Rewrite the file even if it holds no changed key (a schema change rewrites every row).
    pub rewrite_anyway: bool,
}

impl FilePlan {
    /// Read whole and rewrite, whatever keys it holds (a schema change, compaction).
    pub const REWRITE: FilePlan = FilePlan {
        probe: false,
        rewrite_anyway: true,
    };
}

/// Integers sorted once, counted by range many times (changed keys against file key bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedInts(Vec<i64>);

impl SortedInts {
    /// Sorts and deduplicates `values`.
    pub fn new(mut values: Vec<i64>) -> Self {
        values.sort_unstable();
        values.dedup();
        SortedInts(values)
    }

    /// How many values lie in `[min, max]` (0 when `min > max`).
    pub fn count_in(&self, min: i64, max: i64) -> usize {
        let lo = self.0.partition_point(|&k| k < min);
        let hi = self.0.partition_point(|&k| k <= max);
        hi.saturating_sub(lo)
    }

    /// The values, ascending.
    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }
}

/// Distinct string keys in byte order (the order of Iceberg's, Parquet's and Hudi's string
/// bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedStrings(Vec<String>);

impl SortedStrings {
    /// Sorts and deduplicates `values`.
    pub fn new(mut values: Vec<String>) -> Self {
        values.sort_unstable();
        values.dedup();
        SortedStrings(values)
    }

    /// How many values lie in `[min, max]` (0 when `min > max`).
    pub fn count_in(&self, min: &str, max: &str) -> usize {
        let lo = self.0.partition_point(|k| k.as_str() < min);
        let hi = self.0.partition_point(|k| k.as_str() <= max);
        hi.saturating_sub(lo)
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The changed keys' first-key values, as integers and/or strings, counted against file bounds.
#[derive(Debug, Clone, Default)]
pub struct KeyRanges {
    ints: Option<SortedInts>,
    strings: Option<SortedStrings>,
}

impl KeyRanges {
    /// Ranges over integer values, string values, or both (Hudi keeps integer ranges in some
    /// files and record-key text ranges in others).
    pub fn new(ints: Option<SortedInts>, strings: Option<SortedStrings>) -> Self {
        KeyRanges { ints, strings }
    }

    /// How many changed keys fall inside `bounds`; `None` when unknown.
    pub fn count_in(&self, bounds: &KeyBounds<'_>) -> Option<usize> {
        match (bounds, &self.ints, &self.strings) {
            (KeyBounds::Ints(min, max), Some(ints), _) => Some(ints.count_in(*min, *max)),
            (KeyBounds::Strings(min, max), _, Some(strings)) => Some(strings.count_in(min, max)),
            _ => None,
        }
    }

    /// How a file with `bounds` (and `live_rows` rows not deleted yet, when known) is read, or
    /// `None` when it cannot hold a changed key. `rewrite_all` rewrites every file.
    pub fn plan(
        &self,
        bounds: &KeyBounds<'_>,
        live_rows: Option<u64>,
        removal: RowRemoval,
        rewrite_all: bool,
    ) -> Option<FilePlan> {
        if rewrite_all {
            return Some(FilePlan::REWRITE);
        }
        let in_range = self.count_in(bounds);
        if in_range == Some(0) {
            return None;
        }
        // Marked rows need only the key columns: so few changed keys in range that the file is
        // marked whichever of them it holds.
        let surely_marked = match removal {
            RowRemoval::Mark => true,
            RowRemoval::Rewrite => false,
            RowRemoval::MarkUpTo(fraction) => matches!(
                (in_range, live_rows),
                (Some(k), Some(live)) if k as f64 <= fraction * live as f64
            ),
        };
        Some(FilePlan {
            probe: surely_marked || in_range.is_none_or(|n| n <= PROBE_AT_MOST_KEYS),
            rewrite_anyway: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_strings_count_closed_ranges_in_byte_order() {
        let keys = SortedStrings::new(
            ["b", "a", "ab", "é", "Z", "b"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        // Byte order: upper case before lower case, multi-byte UTF-8 after ASCII.
        assert_eq!(keys.count_in("a", "b"), 3);
        assert_eq!(keys.count_in("A", "Z"), 1);
        assert_eq!(keys.count_in("c", "\u{10ffff}"), 1);
        assert_eq!(keys.count_in("ac", "az"), 0);
        // A truncated lower bound ("a" for "ab...") and upper bound ("ac" for "ab...").
        assert_eq!(keys.count_in("a", "ac"), 2);
        assert_eq!(keys.count_in("b", "a"), 0);
    }

    #[test]
    fn sorted_ints_count_closed_ranges() {
        let keys = SortedInts::new(vec![42, 3, 17, 3, -5]);
        assert_eq!(keys.as_slice(), &[-5, 3, 17, 42]);
        assert_eq!(keys.count_in(3, 17), 2);
        assert_eq!(keys.count_in(4, 16), 0);
        assert_eq!(keys.count_in(i64::MIN, i64::MAX), 4);
        assert_eq!(keys.count_in(50, 10), 0);
    }

    #[test]
    fn plans_follow_the_keys_in_range() {
        let many: Vec<i64> = (0..100).collect();
        let ranges = KeyRanges::new(
            Some(SortedInts::new(many)),
            Some(SortedStrings::new(vec!["m".into()])),
        );
        let rewrite = RowRemoval::Rewrite;
        // Out of range, few keys, many keys, unknown bounds.
        assert_eq!(
            ranges.plan(&KeyBounds::Ints(200, 300), None, rewrite, false),
            None
        );
        assert!(
            ranges
                .plan(&KeyBounds::Ints(0, 3), None, rewrite, false)
                .unwrap()
                .probe
        );
        assert!(
            !ranges
                .plan(&KeyBounds::Ints(0, 99), None, rewrite, false)
                .unwrap()
                .probe
        );
        assert!(
            ranges
                .plan(&KeyBounds::Unknown, None, rewrite, false)
                .unwrap()
                .probe
        );
        assert_eq!(
            ranges.plan(&KeyBounds::Strings("a", "c"), None, rewrite, false),
            None
        );
        assert!(ranges
            .plan(&KeyBounds::Strings("a", "z"), None, rewrite, false)
            .is_some());
        // Marking reads only key columns; marking up to a fraction when few rows change.
        assert!(
            ranges
                .plan(&KeyBounds::Ints(0, 99), None, RowRemoval::Mark, false)
                .unwrap()
                .probe
        );
        let up_to = RowRemoval::MarkUpTo(0.2);
        assert!(
            ranges
                .plan(&KeyBounds::Ints(0, 99), Some(1_000), up_to, false)
                .unwrap()
                .probe
        );
        assert!(
            !ranges
                .plan(&KeyBounds::Ints(0, 99), Some(100), up_to, false)
                .unwrap()
                .probe
        );
        // A rewrite of everything reads every file whole.
        let all = ranges
            .plan(&KeyBounds::Ints(200, 300), None, rewrite, true)
            .unwrap();
        assert_eq!(
            all,
            FilePlan {
                probe: false,
                rewrite_anyway: true
            }
        );
    }
}
