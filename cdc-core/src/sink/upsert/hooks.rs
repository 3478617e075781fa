//! Test hooks every format's sink runs at the same two points of a commit: crash tests stop
//! the writer there ([`FailPoint`]), concurrency tests make another writer commit just before
//! the commit ([`BeforeCommitHook`]). They are hidden from the docs and off unless a test sets
//! them ([`TestHooks`]).

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::TableId;

/// Where a crash test stops the writer.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailPoint {
    /// After the new data files are written, before the commit.
    AfterDataFiles,
    /// After the commit, before the sink reports it (the pipeline's own bookkeeping).
    AfterCommit,
}

/// A test hook a sink runs just before each commit, after every file of the attempt is written:
/// concurrency tests make another writer commit there, crash tests stop the process there.
#[doc(hidden)]
#[derive(Clone)]
pub struct BeforeCommitHook(pub Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>);

impl fmt::Debug for BeforeCommitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BeforeCommitHook")
    }
}

/// The test hooks of a sink's settings (all off by default).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Crash tests: stop an `apply` at this point...
    pub fail_point: Option<FailPoint>,
    /// ...after this many successful commits of the sink.
    pub fail_after_commits: usize,
    /// Concurrency tests: runs before every commit.
    pub before_commit: Option<BeforeCommitHook>,
}

impl TestHooks {
    /// Stop once at `point`, after `commits` successful commits.
    pub fn fail_at(point: FailPoint, commits: usize) -> Self {
        TestHooks {
            fail_point: Some(point),
            fail_after_commits: commits,
            before_commit: None,
        }
    }

    /// Run `hook` before every commit.
    pub fn before_commit(hook: BeforeCommitHook) -> Self {
        TestHooks {
            before_commit: Some(hook),
            ..TestHooks::default()
        }
    }
}

/// One sink's hooks as it runs them: the fail point fires once, counted in its own commits.
#[derive(Debug, Clone, Default)]
pub(crate) struct HookState {
    hooks: TestHooks,
    armed: Option<FailPoint>,
    commits: usize,
}

impl HookState {
    pub fn new(hooks: TestHooks) -> Self {
        HookState {
            armed: hooks.fail_point,
            hooks,
            commits: 0,
        }
    }

    /// An error when a crash test stops here (once).
    pub fn check(&mut self, table: &TableId, point: FailPoint) -> Result<()> {
        let n = self.hooks.fail_after_commits;
        let due = match point {
            FailPoint::AfterDataFiles => self.commits >= n,
            FailPoint::AfterCommit => self.commits > n,
        };
        if self.armed == Some(point) && due {
            self.armed = None;
            return Err(Error::FailPoint {
                table: table.to_string(),
                point: format!("{point:?}"),
            });
        }
        Ok(())
    }

    /// The hook to run before the commit, if any.
    pub fn before_commit(&self) -> Option<BeforeCommitHook> {
        self.hooks.before_commit.clone()
    }

    /// Counts a successful commit.
    pub fn committed(&mut self) {
        self.commits += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_point_fires_once_after_its_commits() {
        let table = TableId::new("public", "t");
        let mut before = HookState::new(TestHooks::fail_at(FailPoint::AfterDataFiles, 1));
        assert!(before.check(&table, FailPoint::AfterDataFiles).is_ok());
        before.committed();
        assert!(before.check(&table, FailPoint::AfterCommit).is_ok());
        let err = before.check(&table, FailPoint::AfterDataFiles).unwrap_err();
        assert!(
            err.to_string().contains("fail point AfterDataFiles"),
            "{err}"
        );
        assert!(
            before.check(&table, FailPoint::AfterDataFiles).is_ok(),
            "fired twice"
        );

        let mut after = HookState::new(TestHooks::fail_at(FailPoint::AfterCommit, 1));
        after.committed();
        assert!(after.check(&table, FailPoint::AfterCommit).is_ok());
        after.committed();
        assert!(after.check(&table, FailPoint::AfterCommit).is_err());
    }
}
