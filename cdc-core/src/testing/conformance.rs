//! The sink conformance kit every format runs: the same crash, concurrent-writer and replay
//! cases against each format's warehouse, which the format's tests then read back with its own
//! independent reader.
//!
//! - [`crash_mid_sync`]: the writer stops at a fail point ([`FAIL_POINTS`]) in the middle of a
//!   scenario; [`restart_after_crash`] syncs again with a healthy writer.
//! - [`OtherWriter`]: a second writer (another pipeline, another topic) commits to
//!   `public.customers` just before the first writer's commits; the first must redo its
//!   attempt on the new version and keep both writers' rows ([`OtherWriter::undo`] removes the
//!   second writer's rows again, so the table can be compared with the fixture).
//! - Replay: [`super::assert_replay_commits_nothing`].

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::FutureExt;

use super::{other_writer_change, sync_scenario, Scenario};
use crate::model::TableId;
use crate::sink::upsert::{BeforeCommitHook, FailPoint, TestHooks};
use crate::sink::Warehouse;

/// Every fail point a crash test stops at.
pub const FAIL_POINTS: [FailPoint; 2] = [FailPoint::AfterDataFiles, FailPoint::AfterCommit];

/// Test hooks that stop the writer at `point` on the third commit of a table: crash in the
/// middle of a scenario.
pub fn crash_hooks(point: FailPoint) -> TestHooks {
    TestHooks::fail_at(point, 2)
}

/// Syncs `scenario` into `crashing` (opened with [`crash_hooks`]) and asserts that it stopped
/// at the fail point.
pub async fn crash_mid_sync(scenario: &Scenario, dir: &Path, crashing: &dyn Warehouse) {
    let err = sync_scenario(scenario, dir, 5, Default::default(), crashing)
        .await
        .expect_err("the fail point stops the sync");
    assert!(err.to_string().contains("fail point"), "{err}");
}

/// Syncs `scenario` again, into `healthy` (the same tables, no fail point): it resumes at
/// each table's checkpoint.
pub async fn restart_after_crash(scenario: &Scenario, dir: &Path, healthy: &dyn Warehouse) {
    sync_scenario(scenario, dir, 5, Default::default(), healthy)
        .await
        .expect("the restarted sync");
}

/// A second writer of `public.customers` that commits before the first writer's commits.
#[derive(Clone)]
pub struct OtherWriter {
    warehouse: Arc<dyn Warehouse>,
    commits: Arc<AtomicI64>,
    times: i64,
}

impl OtherWriter {
    /// The second writer commits through `warehouse`, before the first `times` commit attempts
    /// that find the table.
    pub fn new(warehouse: Arc<dyn Warehouse>, times: i64) -> Self {
        OtherWriter {
            warehouse,
            commits: Arc::default(),
            times,
        }
    }

    /// The table it writes.
    pub fn table() -> TableId {
        TableId::new("public", "customers")
    }

    /// The before-commit hook of the first writer: an upsert of key `100_000 + n` by the
    /// second writer (at offset `n` of its own topic).
    pub fn hook(&self) -> TestHooks {
        let other = self.clone();
        TestHooks::before_commit(BeforeCommitHook(Arc::new(move || {
            let other = other.clone();
            async move { other.commit_one().await }.boxed()
        })))
    }

    async fn commit_one(&self) {
        let n = self.commits.load(Ordering::SeqCst);
        if n >= self.times {
            return;
        }
        let mut sink = self.warehouse.open(&Self::table()).await.expect("opens");
        // Before the table's first commit there is nothing to write to yet.
        let Some(schema) = sink.schema().await.expect("reads the schema") else {
            return;
        };
        let set = other_writer_change(&schema.schema, 100_000 + n as i32, n, true);
        sink.apply(&set).await.expect("other writer commits");
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// How many rows the second writer committed.
    pub fn commits(&self) -> i64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// The keys of its rows.
    pub fn ids(&self) -> Vec<i32> {
        (0..self.commits()).map(|n| 100_000 + n as i32).collect()
    }

    /// Deletes its rows again (the table's logical schema is `schema`).
    pub async fn undo(&self, schema: &SchemaRef) {
        for n in 0..self.commits() {
            let set = other_writer_change(schema, 100_000 + n as i32, 100 + n, false);
            let mut sink = self.warehouse.open(&Self::table()).await.expect("opens");
            sink.apply(&set).await.expect("other writer deletes");
        }
    }
}
