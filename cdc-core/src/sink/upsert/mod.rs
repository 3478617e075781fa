//! The upsert engine every format shares: applying a [`ChangeSet`](crate::fold::ChangeSet)
//! to a table whose rows live in immutable data files.
//!
//! The template ([`apply`], run by [`UpsertSink`]) is the same for Delta, Iceberg and Hudi:
//!
//! 1. load the table state, or create the table ([`UpsertDriver::load_table`] / `create_table`);
//! 2. skip a change set the table's checkpoint already covers;
//! 3. merge the table's schema with the change set's ([`crate::schema::merge_schemas`]);
//! 4. index the changed keys ([`ChangedKeys`]);
//! 5. the format stages its files ([`UpsertDriver::stage`]), with the shared steps:
//!    prune candidate files by their key bounds ([`KeyRanges::plan`]), locate the changed rows
//!    in parallel ([`locate`], over the format's [`FileReader`]), resolve the upserts'
//!    unchanged cells from the rows they replace ([`OldRows`], [`resolve`]);
//! 6. fail points and the before-commit hook of the tests ([`TestHooks`]);
//! 7. commit with the checkpoint ([`UpsertDriver::commit`]);
//! 8. on a conflict, redo it all on the new version ([`RetryPolicy`]).
//!
//! The reference sink ([`crate::sink::MemoryWarehouse`]) shows the same steps on rows held in
//! memory.

mod engine;
mod file_keys;
mod hooks;
mod keys;
mod locate;
mod prune;
mod resolve;
mod retry;
mod tasks;

pub use engine::{apply, Attempt, CommitControl, Committed, TableView, UpsertDriver, UpsertSink};
pub use file_keys::{FileKeyCache, PROCESS_BUDGET};
pub use hooks::{BeforeCommitHook, FailPoint, TestHooks};
pub use keys::{int_keys, ChangedKeys, Touch};
pub use locate::{
    carry_over, locate, locate_then, lookup_removal, lookup_rows, FileReader, Located,
};
pub use prune::{
    FilePlan, KeyBounds, KeyRanges, RowRemoval, SortedInts, SortedStrings, PROBE_AT_MOST_KEYS,
};
pub use resolve::{resolve, resolve_upserts, OldRows};
pub use retry::RetryPolicy;
pub use tasks::{parallelism, OrderedTasks};
