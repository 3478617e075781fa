//! The table's commit lock. Checking that no other writer completed an instant and completing
//! ours must not interleave between two writers: both would check, see nothing, and complete
//! on the same base, so both change sets' new base-file versions of one file group would stand
//! side by side (Hudi itself requires a lock provider for more than one writer). The lock is a
//! file created only if absent, `.hoodie/.cdc-lake-commit.lock` (a conditional put on S3 and
//! Azure, an atomic link on a local disk), held for the few requests of check-and-complete and
//! deleted after. A lock older than [`LOCK_EXPIRY`], or one of our own writer id (a crashed
//! predecessor, as with pending instants), belongs to a writer that died holding it and is
//! broken. Breaking is a read and a delete, not one conditional step: two writers that find
//! the same dead lock at once can both go on (only after a writer died holding it).

use std::time::Duration;

use bytes::Bytes;

use crate::error::{HudiSinkError, Result};
use crate::files::{self, TableStore, HOODIE_DIR};

/// The lock file, relative to the table root.
const LOCK: &str = ".cdc-lake-commit.lock";
/// A lock this old is a dead holder's (check-and-complete takes a few requests).
pub(crate) const LOCK_EXPIRY: Duration = Duration::from_secs(60);
/// How long a writer waits for the lock before its attempt counts as a conflict (retried).
const LOCK_WAIT: Duration = Duration::from_secs(20);

/// A held commit lock; [`CommitLock::release`] it.
#[derive(Debug)]
pub(crate) struct CommitLock {
    store: TableStore,
    /// What the lock file says while we hold it.
    holder: Bytes,
    /// When we took it.
    taken: tokio::time::Instant,
}

impl CommitLock {
    /// Waits for the table's commit lock and takes it for `instant` of `writer`.
    pub async fn acquire(store: &TableStore, writer: &str, instant: &str) -> Result<CommitLock> {
        let rel = files::join(HOODIE_DIR, LOCK);
        // Writer ids are single lines: the first line names the holder.
        let holder = Bytes::from(format!("{writer}\n{instant}\n"));
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut wait = Duration::from_millis(10);
        loop {
            if store.create(&rel, holder.clone()).await? {
                return Ok(CommitLock {
                    store: store.clone(),
                    holder,
                    taken: tokio::time::Instant::now(),
                });
            }
            if let Some((held_by, since)) = store.get_with_modified(&rel).await? {
                let age = (chrono::Utc::now() - since).to_std().unwrap_or_default();
                let held_by = String::from_utf8_lossy(&held_by);
                // Our own id's lock is a crashed predecessor's, as its pending instants are.
                let ours = held_by.lines().next() == Some(writer);
                if ours || age > LOCK_EXPIRY {
                    tracing::warn!(table = %store.table, held_by = held_by.trim(), ?age, "breaking a dead writer's commit lock");
                    store.delete(&rel).await?;
                    continue;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HudiSinkError::Conflict {
                    table: store.table.clone(),
                    instant: instant.to_string(),
                    message: format!("another writer held the commit lock for over {LOCK_WAIT:?}"),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }

    /// Gives the lock up, unless it is no longer ours (broken as expired: then it is the new
    /// holder's). A failure is logged: the lock then expires.
    pub async fn release(self) {
        let rel = files::join(HOODIE_DIR, LOCK);
        // Held for well under the expiry, nobody can have broken it (with clocks up to half the
        // expiry apart): no read first, one round trip less on every commit.
        let still_ours = self.taken.elapsed() < LOCK_EXPIRY / 2
            || match self.store.get(&rel).await {
                Ok(held) => held.as_ref() == Some(&self.holder),
                Err(_) => true,
            };
        if !still_ours {
            tracing::warn!(table = %self.store.table, "the commit lock was broken while held (held over {LOCK_EXPIRY:?})");
            return;
        }
        if let Err(e) = self.store.delete(&rel).await {
            tracing::warn!(table = %self.store.table, error = %e, "releasing the commit lock failed; it expires in {LOCK_EXPIRY:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::memory_store as store;

    #[tokio::test]
    async fn a_lock_released_soon_is_deleted_and_one_broken_while_held_long_is_left_alone() {
        let store = store();
        let rel = files::join(HOODIE_DIR, LOCK);
        let lock = CommitLock::acquire(&store, "w1", "1").await.unwrap();
        assert!(store.exists(&rel).await.unwrap());
        lock.release().await;
        assert!(!store.exists(&rel).await.unwrap());

        // Held past the expiry, broken and taken by another writer meanwhile.
        let mut lock = CommitLock::acquire(&store, "w1", "2").await.unwrap();
        lock.taken -= LOCK_EXPIRY;
        let theirs = Bytes::from("w2\n3\n");
        store.put(&rel, theirs.clone(), false).await.unwrap();
        lock.release().await;
        assert_eq!(store.get(&rel).await.unwrap(), Some(theirs));

        // Our own id's lock is a crashed predecessor's: broken at once.
        let lock = CommitLock::acquire(&store, "w2", "4").await.unwrap();
        assert_eq!(store.get(&rel).await.unwrap(), Some(Bytes::from("w2\n4\n")));
        lock.release().await;
    }
}
