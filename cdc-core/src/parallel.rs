//! Independent pieces of CPU work (columns of a batch, mostly) spread over the cores.
//!
//! A batch's columns are copied, taken or encoded one after another by Arrow and Parquet; on a
//! 2-core machine that leaves one core idle for the longest serial steps of a commit (the fold's
//! concatenation and final images, a file's encoding). Columns are independent, so each goes to
//! whichever thread is free; the calling thread works too, and results come back in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, OnceLock};

use arrow_array::{BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_select::filter::FilterBuilder;

/// Runs `work(i)` for every `i` in `0..n`, on up to one thread per core (the caller's among
/// them), each index taken by whichever thread is free next, in index order (put the largest
/// pieces first); returns the results in index order. With `parallel` false, or one piece, or
/// one core, everything runs on the calling thread.
pub fn map_pieces<T: Send>(n: usize, parallel: bool, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = match parallel {
        true => crate::sink::upsert::parallelism().min(n),
        false => 1,
    };
    if threads <= 1 {
        return (0..n).map(work).collect();
    }
    let done: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return;
        }
        let out = work(i);
        *done[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
    done.into_iter()
        .map(|d| {
            (d.into_inner().unwrap_or_else(|e| e.into_inner()))
                .expect("every piece ran: a panic in one would have propagated")
        })
        .collect()
}

/// Drops `value` on a thread kept for it, off the caller's path: for what takes long to free
/// (a fold's per-event metadata, each holding shared strings). One value is dropped at a time
/// and none waits: a caller waits for the previous drop instead, so what is held for dropping
/// stays bounded. Without a thread to spare it is dropped here.
pub fn drop_aside<T: Send + 'static>(value: T) {
    type Aside = Box<dyn Send>;
    static DROPPER: OnceLock<Option<SyncSender<Aside>>> = OnceLock::new();
    let dropper = DROPPER.get_or_init(|| {
        // A rendezvous channel: `send` returns once the thread has taken the value.
        let (send, receive) = std::sync::mpsc::sync_channel::<Aside>(0);
        let spawned = std::thread::Builder::new()
            .name("cdc-lake-drop".into())
            .spawn(move || receive.into_iter().for_each(drop));
        spawned.ok().map(|_| send)
    });
    if let Some(dropper) = dropper {
        // Sent, or given back (and dropped here) when the thread is gone.
        let _ = dropper.send(Box::new(value));
    }
}

/// Rows from which spreading a batch's columns over the cores pays for the threads.
pub const PARALLEL_ROWS: usize = 16_384;

/// The rows of `batch` where `keep` is true, its columns filtered on every core when it has
/// [`PARALLEL_ROWS`] rows or more.
pub fn filter_batch(
    batch: &RecordBatch,
    keep: &BooleanArray,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut predicate = FilterBuilder::new(keep);
    if batch.num_columns() > 1 {
        predicate = predicate.optimize();
    }
    let predicate = predicate.build();
    let parallel = batch.num_rows() >= PARALLEL_ROWS;
    let columns = map_pieces(batch.num_columns(), parallel, |c| {
        predicate.filter(batch.column(c))
    });
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns.into_iter().collect::<Result<Vec<_>, _>>()?,
        &RecordBatchOptions::new().with_row_count(Some(predicate.count())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports the thread it is dropped on.
    struct Dropped(std::sync::mpsc::Sender<std::thread::ThreadId>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn values_dropped_aside_are_dropped_on_another_thread_one_after_another() {
        let (send, receive) = std::sync::mpsc::channel();
        for _ in 0..3 {
            drop_aside(Dropped(send.clone()));
        }
        drop(send);
        let threads: Vec<_> = receive.iter().collect();
        assert_eq!(threads.len(), 3, "every value dropped");
        assert!(threads.iter().all(|&t| t != std::thread::current().id()));
        assert!(
            threads.iter().all(|&t| t == threads[0]),
            "by the one thread kept for it"
        );
    }

    #[test]
    fn results_come_back_in_index_order_whichever_thread_ran_them() {
        for parallel in [false, true] {
            let out = map_pieces(100, parallel, |i| {
                // Uneven work, so threads finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((i % 7) as u64 * 50));
                i * 2
            });
            assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(map_pieces(0, true, |i| i).is_empty());
    }

    #[test]
    fn a_batch_filtered_on_every_core_keeps_the_rows_asked_for() {
        use arrow_array::{Array, Int64Array, StringArray};
        use std::sync::Arc;
        for n in [10, PARALLEL_ROWS + 3] {
            let ids = Int64Array::from_iter_values(0..n as i64);
            let names = StringArray::from_iter((0..n).map(|i| (i % 4 != 0).then(|| i.to_string())));
            let batch = RecordBatch::try_from_iter([
                ("id", Arc::new(ids) as arrow_array::ArrayRef),
                ("name", Arc::new(names)),
            ])
            .unwrap();
            let keep = BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 1)));
            let kept = filter_batch(&batch, &keep).unwrap();
            assert_eq!(
                kept,
                arrow_select::filter::filter_record_batch(&batch, &keep).unwrap()
            );
            assert_eq!(kept.num_rows(), (n + 1) / 3);
            let nulls = (0..n).filter(|i| i % 3 == 1 && i % 4 == 0).count();
            assert_eq!(kept.column(1).null_count(), nulls);
        }
    }

    #[test]
    #[should_panic]
    fn a_panic_in_a_piece_reaches_the_caller() {
        map_pieces(8, true, |i| assert!(i != 3, "piece 3"));
    }
}
