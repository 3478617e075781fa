//! The one retry policy of commits that lose to another writer: the attempt is redone on the
//! table's new state after a short jittered exponential backoff (writers that collided do not
//! collide again at once), at most a bounded number of times. What counts as a conflict is the
//! format's to say ([`super::UpsertDriver::is_conflict`]).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::TableId;

/// How often and how patiently a commit is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: usize,
    /// The first retry's backoff; doubled per attempt up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Conflicts retried, shared by every sink of a warehouse.
    pub conflicts: Arc<AtomicU64>,
}

impl RetryPolicy {
    /// `max_attempts` attempts with backoffs from 5 ms to 500 ms.
    pub fn new(max_attempts: usize) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(500),
            conflicts: Arc::default(),
        }
    }

    /// The same policy with other backoff bounds (a format whose conflicts last longer, such
    /// as a writer in flight, waits longer).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// The same policy counting its conflicts in `conflicts`.
    pub fn counting_in(mut self, conflicts: Arc<AtomicU64>) -> Self {
        self.conflicts = conflicts;
        self
    }

    /// How long to wait before attempt `attempt + 1` (after `attempt` attempts lost, 1-based):
    /// the exponential step, with jitter, uniformly in `[step / 2, step]`.
    pub fn backoff(&self, attempt: usize) -> Duration {
        let step = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let half = step / 2;
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let jitter = random % (half.as_micros().max(1) as u64);
        half + Duration::from_micros(jitter)
    }

    /// After attempt `attempt` (1-based) of a commit of `table` lost to another writer: `None`
    /// once the backoff has passed and the attempt is to be redone (the conflict is counted), or
    /// the error that ends the commit when no attempt is left.
    pub async fn settle_conflict<E>(&self, table: &TableId, attempt: usize, error: E) -> Option<E>
    where
        E: From<Error> + std::fmt::Display,
    {
        if attempt >= self.max_attempts {
            return Some(
                Error::Conflict {
                    table: table.to_string(),
                    attempts: self.max_attempts,
                    last: error.to_string(),
                }
                .into(),
            );
        }
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        crate::metrics::commit_conflict(table);
        tracing::info!(%table, attempt, error = %error, "commit conflict; retrying on the new table version");
        tokio::time::sleep(self.backoff(attempt)).await;
        None
    }

    /// Runs `attempt` until it succeeds, fails otherwise than by a conflict (`is_conflict`), or
    /// runs out of attempts: for commits other than upserts (compaction, snapshot expiry).
    pub async fn run<T, E, F, Fut>(
        &self,
        table: &TableId,
        is_conflict: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: From<Error> + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut n = 0;
        loop {
            n += 1;
            match attempt().await {
                Err(e) if is_conflict(&e) => {
                    if let Some(end) = self.settle_conflict(table, n, e).await {
                        return Err(end);
                    }
                }
                other => return other,
            }
        }
    }

    /// Conflicts retried so far.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy::new(10);
        for attempt in 1..40 {
            let step = policy
                .first_backoff
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(policy.max_backoff);
            let d = policy.backoff(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
        let samples: std::collections::HashSet<Duration> =
            (0..20).map(|_| policy.backoff(5)).collect();
        assert!(samples.len() > 1, "no jitter: {samples:?}");
        let slow =
            RetryPolicy::new(3).with_backoff(Duration::from_millis(50), Duration::from_secs(1));
        assert!(slow.backoff(1) >= Duration::from_millis(25));
        assert!(slow.backoff(30) <= Duration::from_secs(1));
    }
}
