//! What every format's maintenance shares: which files a compaction rewrites
//! ([`files_to_rewrite`]) and how often a sink runs maintenance on its own ([`Every`]).

/// Which data files a compaction (Delta `optimize`, Iceberg `compact`) rewrites.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteLimits {
    /// A file smaller than this is small; small files are packed together (at least two).
    pub small_file_size: u64,
    /// A file whose deletes (deletion vector, position deletes) hide more than this fraction
    /// of its rows is rewritten without them.
    pub max_deleted_fraction: f64,
    /// At most this many bytes of files are read in one run (bounds how long a run inside a
    /// stream takes; the next run goes on).
    pub max_bytes: u64,
}

impl Default for RewriteLimits {
    /// Files under 32 MiB are small; deletes hiding over 10 % of a file's rows; 1 GiB a run.
    fn default() -> Self {
        RewriteLimits {
            small_file_size: 32 << 20,
            max_deleted_fraction: 0.1,
            max_bytes: 1 << 30,
        }
    }
}

impl RewriteLimits {
    /// The defaults, with files under a quarter of `target_file_size` small.
    pub fn for_target(target_file_size: u64) -> Self {
        RewriteLimits {
            small_file_size: target_file_size / 4,
            ..Self::default()
        }
    }
}

/// A live data file as a compaction sees it.
#[derive(Debug, Clone)]
pub struct FileToRewrite<F> {
    /// The format's file.
    pub file: F,
    /// Its size.
    pub bytes: u64,
    /// Its physical rows, when known.
    pub rows: Option<u64>,
    /// Of those, the rows its deletes hide.
    pub deleted_rows: u64,
}

/// The files worth rewriting: every file whose deletes hide many rows, and the small files
/// when there are at least two, in that order, up to `limits.max_bytes` (at least one file).
/// A lone small file without deletes is not worth a commit: then none.
pub fn files_to_rewrite<F>(
    files: impl IntoIterator<Item = FileToRewrite<F>>,
    limits: &RewriteLimits,
) -> Vec<F> {
    let (mut dead, mut small) = (Vec::new(), Vec::new());
    for f in files {
        let many_deleted = f
            .rows
            .is_some_and(|n| f.deleted_rows as f64 > limits.max_deleted_fraction * n as f64);
        if many_deleted {
            dead.push(f);
        } else if f.bytes < limits.small_file_size {
            small.push(f);
        }
    }
    if small.len() < 2 {
        small.clear();
    }
    let mut chosen = Vec::new();
    let mut bytes = 0;
    for f in dead.into_iter().chain(small) {
        if bytes > 0 && bytes + f.bytes > limits.max_bytes {
            break;
        }
        bytes += f.bytes;
        chosen.push(f);
    }
    if chosen.len() == 1 && chosen[0].deleted_rows == 0 {
        chosen.clear();
    }
    chosen.into_iter().map(|f| f.file).collect()
}

/// A sink's own maintenance schedule: due after every `every` commits (never when 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Every {
    every: u64,
    since: u64,
}

impl Every {
    /// Due after every `every` commits.
    pub fn new(every: u64) -> Self {
        Every { every, since: 0 }
    }

    /// Counts a commit; true (and the count starts again) when the run is due.
    pub fn due(&mut self) -> bool {
        self.since += 1;
        if self.every == 0 || self.since < self.every {
            return false;
        }
        self.since = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(
        name: &'static str,
        bytes: u64,
        rows: u64,
        deleted: u64,
    ) -> FileToRewrite<&'static str> {
        FileToRewrite {
            file: name,
            bytes,
            rows: Some(rows),
            deleted_rows: deleted,
        }
    }

    #[test]
    fn dead_files_first_then_small_ones_up_to_the_byte_limit() {
        let limits = RewriteLimits {
            small_file_size: 100,
            max_deleted_fraction: 0.1,
            max_bytes: 250,
        };
        let files = vec![
            file("small-1", 50, 10, 0),
            file("big-dead", 1000, 10, 5),
            file("big", 1000, 10, 0),
            file("small-2", 60, 10, 0),
            file("small-3", 70, 10, 1),
        ];
        // The first file always goes in; the byte limit stops the rest.
        assert_eq!(files_to_rewrite(files, &limits), vec!["big-dead"]);
        let limits = RewriteLimits {
            max_bytes: 10_000,
            ..limits
        };
        let files = vec![file("small-1", 50, 10, 0), file("small-2", 60, 10, 0)];
        assert_eq!(files_to_rewrite(files, &limits), vec!["small-1", "small-2"]);
        assert!(files_to_rewrite(vec![file("lone", 50, 10, 0)], &limits).is_empty());
    }

    #[test]
    fn a_schedule_is_due_every_n_commits() {
        let mut every = Every::new(3);
        let due: Vec<bool> = (0..7).map(|_| every.due()).collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
        assert!(!(0..10).any(|_| Every::new(0).due()));
    }
}
