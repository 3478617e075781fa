//! What keys each data file holds, remembered by a long-running process across commits.
//!
//! Key bounds cannot prune the files of a stream's own commits: each holds the keys changed
//! in one batch, scattered over the whole key range, so every later change set's keys fall
//! inside every such file's `[min, max]` and each commit would read the key columns of every
//! file the stream wrote before (on S3, a few requests per file per commit, growing with the
//! table's history). Data files never change once written, so the first read of a file's keys
//! is remembered as a sorted list of 32-bit fingerprints; later commits skip a file none of
//! whose fingerprints is a changed key's. A fingerprint match only means "read it" (a false
//! match costs a read, never a missed row), and no entry means "read it" too.
//!
//! Memory: 4 bytes per row of the files remembered, at most [`PROCESS_BUDGET`] fingerprints
//! over every table of the process; past that a table forgets its oldest files first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_schema::FieldRef;

/// Fingerprints all tables of the process may hold together (64 MB).
pub const PROCESS_BUDGET: usize = 16 << 20;

/// The largest file remembered (4 M rows): a quarter of the budget.
const FILE_BUDGET: usize = PROCESS_BUDGET / 4;

/// Fingerprints held by every [`FileKeyCache`] of the process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The fingerprint of an integer key (the upper half of a multiplicative hash).
pub(crate) fn int_fingerprint(v: i64) -> u32 {
    ((v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The fingerprint of a key in Arrow's row encoding (SipHash with fixed keys: the same in
/// every call of the process).
pub(crate) fn encoded_fingerprint(bytes: &[u8]) -> u32 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// `prints` ascending and distinct, as the cache and the changed keys hold them.
pub(crate) fn ascending(mut prints: Vec<u32>) -> Vec<u32> {
    prints.sort_unstable();
    prints.dedup();
    prints
}

/// Whether two ascending lists share a value (each value of the shorter searched in the
/// longer).
fn intersects(a: &[u32], b: &[u32]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.iter().any(|v| long.binary_search(v).is_ok())
}

/// The key fingerprints of one table's data files, by file name.
#[derive(Debug, Default)]
pub struct FileKeyCache {
    inner: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    /// The key the fingerprints were taken of: keys of other columns or types clear them.
    key_fields: Vec<FieldRef>,
    by_name: HashMap<String, Arc<[u32]>>,
    /// Names in the order remembered (the oldest forgotten first).
    order: VecDeque<String>,
    held: usize,
}

impl Files {
    fn clear_for(&mut self, key_fields: &[FieldRef]) {
        if self.key_fields != key_fields {
            self.forget_all();
            self.key_fields = key_fields.to_vec();
        }
    }

    fn forget_all(&mut self) {
        HELD.fetch_sub(self.held, Ordering::Relaxed);
        self.held = 0;
        self.by_name.clear();
        self.order.clear();
    }

    fn forget(&mut self, name: &str) {
        if let Some(gone) = self.by_name.remove(name) {
            self.held -= gone.len();
            HELD.fetch_sub(gone.len(), Ordering::Relaxed);
        }
    }

    /// Forgets the oldest files until `more` fingerprints fit the process budget; false when
    /// they cannot.
    fn make_room(&mut self, more: usize) -> bool {
        while HELD.load(Ordering::Relaxed) + more > PROCESS_BUDGET {
            let Some(oldest) = self.order.pop_front() else {
                return false;
            };
            self.forget(&oldest);
        }
        true
    }
}

impl FileKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The remembered fingerprints of `file`, when its keys were `key_fields` too.
    pub fn fingerprints(&self, key_fields: &[FieldRef], file: &str) -> Option<Arc<[u32]>> {
        let files = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if files.key_fields != key_fields {
            return None;
        }
        files.by_name.get(file).cloned()
    }

    /// Whether `file` may hold a key of `changed` (ascending fingerprints): `None` when its
    /// keys are not known.
    pub fn may_hold(
        &self,
        key_fields: &[FieldRef],
        file: &str,
        changed: impl FnOnce() -> Arc<[u32]>,
    ) -> Option<bool> {
        let held = self.fingerprints(key_fields, file)?;
        Some(intersects(&held, &changed()))
    }

    /// Remembers that `file` holds the keys (of `key_fields`) with `fingerprints` (ascending,
    /// distinct), forgetting older files if the process budget needs it.
    pub fn remember(&self, key_fields: &[FieldRef], file: &str, fingerprints: Vec<u32>) {
        let mut files = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        files.clear_for(key_fields);
        files.forget(file);
        if fingerprints.len() > FILE_BUDGET || !files.make_room(fingerprints.len()) {
            return;
        }
        files.held += fingerprints.len();
        HELD.fetch_add(fingerprints.len(), Ordering::Relaxed);
        files.by_name.insert(file.to_string(), fingerprints.into());
        files.order.push_back(file.to_string());
    }

    /// Forgets `file` (it is being replaced).
    pub fn forget(&self, file: &str) {
        let mut files = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        files.forget(file);
    }

    /// Fingerprints this cache holds.
    pub fn held(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).held
    }
}

impl Drop for FileKeyCache {
    fn drop(&mut self) {
        let files = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        files.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    fn id() -> Vec<FieldRef> {
        vec![Arc::new(Field::new("id", DataType::Int64, false))]
    }

    fn prints(keys: &[i64]) -> Vec<u32> {
        ascending(keys.iter().map(|&k| int_fingerprint(k)).collect())
    }

    #[test]
    fn a_remembered_file_is_skipped_only_when_no_changed_key_matches() {
        let cache = FileKeyCache::new();
        let changed = |keys: &'static [i64]| move || Arc::from(prints(keys));
        assert_eq!(cache.may_hold(&id(), "a", changed(&[1])), None);
        cache.remember(&id(), "a", prints(&[1, 5, 9]));
        assert_eq!(cache.may_hold(&id(), "a", changed(&[2, 3, 4])), Some(false));
        assert_eq!(cache.may_hold(&id(), "a", changed(&[4, 9])), Some(true));
        assert_eq!(cache.may_hold(&id(), "b", changed(&[9])), None);
        // Another key (here the same name, another type) clears what was remembered.
        let other = vec![Arc::new(Field::new("id", DataType::Utf8, false))];
        assert_eq!(cache.may_hold(&other, "a", changed(&[1])), None);
        cache.remember(&other, "b", vec![1]);
        assert_eq!(cache.may_hold(&id(), "a", changed(&[1])), None);
        assert_eq!(cache.held(), 1);
        cache.forget("b");
        assert_eq!(cache.held(), 0);
    }

    #[test]
    fn the_process_budget_forgets_the_oldest_files_first() {
        let cache = FileKeyCache::new();
        // Four fill the budget but for what other tests' caches of this process may hold.
        let each = FILE_BUDGET - 4096;
        for name in ["f0", "f1", "f2", "f3", "f4"] {
            cache.remember(&id(), name, vec![0; each]);
        }
        assert!(cache.fingerprints(&id(), "f0").is_none());
        for name in ["f1", "f2", "f3", "f4"] {
            assert!(cache.fingerprints(&id(), name).is_some(), "{name}");
        }
        // A file beyond a quarter of the budget is not remembered (nor anything forgotten).
        cache.remember(&id(), "huge", vec![3; FILE_BUDGET + 1]);
        assert!(cache.fingerprints(&id(), "huge").is_none());
        assert!(cache.fingerprints(&id(), "f1").is_some());
        assert_eq!(cache.held(), 4 * each);
        drop(cache);
        assert!(HELD.load(Ordering::Relaxed) < 4 * each);
    }

    #[test]
    fn fingerprints_of_distinct_integers_rarely_collide() {
        let prints = prints(&(0..100_000).collect::<Vec<i64>>());
        assert!(prints.len() > 99_990, "{}", prints.len());
        assert_ne!(encoded_fingerprint(b"a"), encoded_fingerprint(b"b"));
    }
}
