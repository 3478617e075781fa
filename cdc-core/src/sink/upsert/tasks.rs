//! Per-file work on every core: futures run as tokio tasks, a bounded number at once, their
//! results handed out in the order the futures were given (so a commit's files and rows come
//! out the same whatever finishes first).
//!
//! A task's error stops the others, and waits until they have stopped, before it is returned:
//! nothing a task writes lands after the attempt gave up (where a rollback or a retry would miss
//! it). Dropping [`OrderedTasks`] aborts whatever still runs.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinSet;

use crate::error::Error;
use crate::model::TableId;

/// How many file tasks run at once: one per core.
pub fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Tasks yielding `Result<T, E>`, handed out in order.
pub struct OrderedTasks<T, E> {
    table: TableId,
    waiting: VecDeque<BoxFuture<'static, Result<T, E>>>,
    running: JoinSet<(usize, Result<T, E>)>,
    done: BTreeMap<usize, Result<T, E>>,
    started: usize,
    next: usize,
    limit: usize,
    failed: bool,
}

impl<T, E> OrderedTasks<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    /// Runs `tasks` at most `limit` at once (tasks of `table`, for errors).
    pub fn new<F>(table: &TableId, tasks: impl IntoIterator<Item = F>, limit: usize) -> Self
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        OrderedTasks {
            table: table.clone(),
            waiting: tasks.into_iter().map(FutureExt::boxed).collect(),
            running: JoinSet::new(),
            done: BTreeMap::new(),
            started: 0,
            next: 0,
            limit: limit.max(1),
            failed: false,
        }
    }

    /// The next result in order, `None` when all are handed out (or after an error).
    pub async fn next(&mut self) -> Option<Result<T, E>> {
        if self.failed {
            return None;
        }
        loop {
            while self.running.len() < self.limit {
                let Some(task) = self.waiting.pop_front() else {
                    break;
                };
                let index = self.started;
                self.started += 1;
                self.running.spawn(task.map(move |r| (index, r)));
            }
            if let Some(result) = self.done.remove(&self.next) {
                self.next += 1;
                if result.is_err() {
                    self.stop().await;
                }
                return Some(result);
            }
            let joined = self.running.join_next().await?;
            match joined {
                Ok((index, result)) if result.is_err() => {
                    // Fail fast, even ahead of the results still due before it.
                    self.stop().await;
                    let _ = index;
                    return Some(result);
                }
                Ok((index, result)) => {
                    self.done.insert(index, result);
                }
                Err(e) => {
                    self.stop().await;
                    return Some(Err(Error::sink(
                        &self.table,
                        format!("file task failed: {e}"),
                    )
                    .into()));
                }
            }
        }
    }

    /// Stops every task still waiting or running and waits until they have stopped.
    pub async fn stop(&mut self) {
        self.failed = true;
        self.waiting.clear();
        self.running.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_come_in_order() {
        let table = TableId::new("public", "t");
        let tasks = (0..8u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis((8 - i) * 5)).await;
            Ok::<u64, Error>(i)
        });
        let mut q = OrderedTasks::new(&table, tasks, 3);
        let mut got = Vec::new();
        while let Some(r) = q.next().await {
            got.push(r.unwrap());
        }
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_task_stops_the_others() {
        let table = TableId::new("public", "t");
        let landed = Arc::new(AtomicBool::new(false));
        let slow_landed = landed.clone();
        let failing = table.clone();
        let tasks: Vec<BoxFuture<'static, Result<(), Error>>> = vec![
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                // A file written after the attempt was given up.
                slow_landed.store(true, Ordering::SeqCst);
                Ok(())
            }),
            Box::pin(async move { Err(Error::sink(&failing, "disk full")) }),
        ];
        let mut q = OrderedTasks::new(&table, tasks, 2);
        let err = q.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(q.next().await.is_none());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !landed.load(Ordering::SeqCst),
            "a task kept running after the error"
        );
    }
}
