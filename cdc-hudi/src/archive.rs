//! Timeline archival: once the active timeline holds more than
//! [`HudiSinkConfig::archive_max_commits`](crate::HudiSinkConfig::archive_max_commits)
//! completed writes, its oldest instants move to `.hoodie/archived/` until
//! [`archive_min_commits`](crate::HudiSinkConfig::archive_min_commits) are left, so that
//! `.hoodie/` (which every commit lists) stops growing with the table's age.
//!
//! Readers take a base file whose instant is older than the first write instant left in the
//! active timeline as committed (Hudi's "before the timeline starts", hudi-rs's archival
//! boundary), so archival never passes:
//! - a pending instant, ours or another writer's (`.hoodie/` is listed again first): a
//!   crashed write's files would look committed;
//! - the oldest commit the cleaner keeps readable (time travel inside the retention needs it);
//! - a `replacecommit` whose replaced file groups still have base files (readers learn that
//!   they are replaced only from its metadata).
//!
//! Each archived instant keeps its completed file, byte for byte, as
//! `.hoodie/archived/<time>.<action>`: the layout hudi-rs's archived-timeline loader lists.
//! Hudi's Java archiver writes Avro log files (`.commits_.archive.N`) instead; Spark does not
//! read ours, which only matters for incremental queries that start before the active
//! timeline (docs/operations.md).

use crate::error::Result;
use crate::files::{self, HOODIE_DIR};
use crate::table::{TableAt, TableState};
use crate::timeline::{self, Instant, State, Timeline, REPLACE_COMMIT};

/// Where archived instants go (`hoodie.archivelog.folder`, Hudi's default).
pub const ARCHIVE_DIR: &str = ".hoodie/archived";

/// The instants to archive, oldest first: every instant older than the write that starts the
/// last `keep_min` completed writes, once more than `keep_max` are active; none past
/// `earliest_retained`, a pending instant or a replacecommit whose replaced groups have files.
pub(crate) fn to_archive(
    state: &TableState,
    keep_min: usize,
    keep_max: usize,
    earliest_retained: Option<&str>,
) -> Vec<Instant> {
    let timeline = &state.timeline;
    let writes: Vec<&str> = timeline
        .completed_writes()
        .map(|i| i.time.as_str())
        .collect();
    if keep_max == 0 || writes.len() <= keep_max {
        return Vec::new();
    }
    let mut cut = writes[writes.len() - keep_min.max(1)];
    let unarchivable = timeline.instants.iter().filter(|i| {
        i.state != State::Completed
            || (i.action == REPLACE_COMMIT && replaced_groups_have_files(state, &i.time))
    });
    for i in unarchivable {
        cut = cut.min(i.time.as_str());
    }
    if let Some(retained) = earliest_retained {
        cut = cut.min(retained);
    }
    timeline
        .instants
        .iter()
        .filter(|i| i.time.as_str() < cut)
        .cloned()
        .collect()
}

fn replaced_groups_have_files(state: &TableState, instant: &str) -> bool {
    state
        .replaced
        .iter()
        .filter(|(_, by)| by.as_str() == instant)
        .any(|(id, _)| state.versions.get(id).is_some_and(|v| !v.is_empty()))
}

impl TableAt {
    /// Moves `instants` (oldest first) to the archive and out of `state`'s timeline. Every one
    /// is copied before any file leaves `.hoodie/`, then their requested and inflight files go,
    /// then their completed files, oldest first: a crash leaves an instant completed in the
    /// active timeline (and archived again next time), never pending, and the active timeline
    /// without gaps. Copies and pending files go many at once (each is a round trip on S3).
    pub(crate) async fn archive(&self, state: &mut TableState, instants: &[Instant]) -> Result<()> {
        // Another writer's pending instant is in no state of ours: look at `.hoodie/` as it is
        // now. An instant begun after this listing is newer than every instant archived here.
        let names = self.store.list_names(HOODIE_DIR).await?;
        let now = Timeline::from_names(names.iter().map(String::as_str));
        let pending = now
            .instants
            .iter()
            .filter(|i| i.state != State::Completed)
            .map(|i| i.time.as_str())
            .min();
        let instants: Vec<&Instant> = instants
            .iter()
            .take_while(|i| pending.is_none_or(|p| i.time.as_str() < p))
            .collect();
        let mut copies = Vec::with_capacity(instants.len());
        let mut pending_files = Vec::with_capacity(2 * instants.len());
        for i in &instants {
            let (store, completed) = (self.store.clone(), i.file_name());
            copies.push(async move {
                if let Some(body) = store.get(&files::join(HOODIE_DIR, &completed)).await? {
                    store
                        .put(&files::join(ARCHIVE_DIR, &completed), body, false)
                        .await?;
                }
                Ok(())
            });
            for s in [State::Requested, State::Inflight] {
                let store = self.store.clone();
                let name = files::join(HOODIE_DIR, &timeline::file_name(&i.time, &i.action, s));
                pending_files.push(async move { store.delete(&name).await });
            }
        }
        files::all_at_once(copies).await?;
        files::all_at_once(pending_files).await?;
        for i in &instants {
            self.store
                .delete(&files::join(HOODIE_DIR, &i.file_name()))
                .await?;
            state
                .timeline
                .instants
                .retain(|t| !(t.time == i.time && t.action == i.action));
        }
        let archived = instants.len();
        if archived > 0 {
            tracing::info!(table = %self.table, instants = archived, "archived timeline instants");
        }
        Ok(())
    }
}

/// The first write instant of the active timeline in any state: base files of older instants
/// were committed before their instants were archived.
pub(crate) fn timeline_start(timeline: &Timeline) -> Option<String> {
    timeline
        .instants
        .iter()
        .filter(|i| i.is_write())
        .map(|i| i.time.clone())
        .min()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clean::tests::{table_state, version};

    fn t(m: u32) -> String {
        format!("2026010100{m:02}00000")
    }

    fn commits(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|m| format!("{}.commit", t(m))).collect()
    }

    fn times(instants: &[Instant]) -> Vec<String> {
        instants.iter().map(|i| i.time.clone()).collect()
    }

    #[test]
    fn archives_down_to_the_minimum_once_past_the_maximum() {
        let state = table_state(&commits(1..=6), BTreeMap::new());
        assert!(to_archive(&state, 3, 6, None).is_empty(), "at the maximum");
        let mut names = commits(1..=7);
        names.push(format!("{}.clean", t(2)));
        let state = table_state(&names, BTreeMap::new());
        let archived = to_archive(&state, 3, 6, None);
        // Every action older than the first of the last three writes, the clean included.
        assert_eq!(times(&archived), [t(1), t(2), t(2), t(3), t(4)]);
        assert!(
            to_archive(&state, 3, 0, None).is_empty(),
            "0 never archives"
        );
    }

    #[test]
    fn stops_at_a_pending_instant_the_retention_and_a_live_replacement() {
        let mut names = commits(1..=8);
        names.push(format!("{}.commit.requested", t(3)));
        names.retain(|n| n != &format!("{}.commit", t(3)));
        let state = table_state(&names, BTreeMap::new());
        assert_eq!(times(&to_archive(&state, 2, 4, None)), [t(1), t(2)]);

        let state = table_state(&commits(1..=8), BTreeMap::new());
        assert_eq!(times(&to_archive(&state, 2, 4, Some(&t(2)))), [t(1)]);

        // A truncate at 3 replaced group `a`; while a version of `a` is left, readers need it.
        let mut names = commits(1..=8);
        names.retain(|n| n != &format!("{}.commit", t(3)));
        names.push(format!("{}.replacecommit", t(3)));
        let versions = BTreeMap::from([("a".to_string(), vec![version("a", &t(1))])]);
        let mut state = table_state(&names, versions);
        state.replaced.insert("a".into(), t(3));
        assert_eq!(times(&to_archive(&state, 2, 4, None)), [t(1), t(2)]);
        state.versions.get_mut("a").unwrap().clear();
        assert_eq!(times(&to_archive(&state, 2, 4, None)).len(), 6);
    }
}
