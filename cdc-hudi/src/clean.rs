//! Cleaning: which base-file versions no query can read any more (Hudi's
//! KEEP_LATEST_COMMITS, plus an optional time-based floor like KEEP_LATEST_BY_HOURS), and
//! deleting them so that the sink's state forgets a version only once it is gone.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::table::{FileVersion, TableState};
use crate::timeline::{parse_instant_time, State, CLEAN};

/// Whether cleaning is due: `every` (at least 1) writes completed after the last completed
/// clean of the active timeline (after its start when it holds none).
pub(crate) fn clean_due(state: &TableState, every: usize) -> bool {
    let instants = &state.timeline.instants;
    let last_clean = (instants.iter().rev())
        .find(|i| i.action == CLEAN && i.state == State::Completed)
        .map(|i| i.time.as_str());
    let since = (state.timeline.completed_writes().rev())
        .take_while(|i| last_clean.is_none_or(|c| i.time.as_str() > c))
        .count();
    since >= every.max(1)
}

/// The oldest instant whose snapshot must stay readable, or `None` to keep everything.
///
/// Only commits that changed files count toward `commits_retained` (a checkpoint-only commit
/// reads the same files as the one before it). With `retain_hours`, the snapshot a query
/// started `retain_hours` ago reads (the latest commit at that time) stays readable too.
pub(crate) fn earliest_retained(
    state: &TableState,
    commits_retained: usize,
    retain_hours: Option<u64>,
    now: DateTime<Utc>,
) -> Option<String> {
    if commits_retained == 0 {
        return None;
    }
    let mut changing: BTreeSet<&str> = state
        .versions
        .values()
        .flatten()
        .map(|v| v.instant.as_str())
        .collect();
    changing.extend(state.replaced.values().map(String::as_str));
    let writes: Vec<&str> = state
        .timeline
        .completed_writes()
        .map(|i| i.time.as_str())
        .filter(|t| changing.contains(t))
        .collect();
    if writes.len() <= commits_retained {
        return None;
    }
    let mut earliest = writes[writes.len() - commits_retained];
    if let Some(hours) = retain_hours {
        let cutoff = now - chrono::Duration::hours(hours.min(1 << 20) as i64);
        // The snapshot at the cutoff: the latest completed write at or before it.
        let at_cutoff = state
            .timeline
            .completed_writes()
            .map(|i| i.time.as_str())
            .take_while(|t| parse_instant_time(t).is_none_or(|t| t <= cutoff))
            .last();
        match at_cutoff {
            Some(t) => earliest = earliest.min(t),
            // Every commit is younger than the cutoff: keep them all.
            None => return None,
        }
    }
    Some(earliest.to_string())
}

/// Per file id, how many of its oldest versions no snapshot as of `earliest` or later reads.
pub(crate) fn doomed(state: &TableState, earliest: &str) -> Vec<(String, usize)> {
    state
        .versions
        .iter()
        .filter_map(|(id, versions)| {
            let dead = state
                .replaced
                .get(id)
                .is_some_and(|r| r.as_str() <= earliest);
            let cut = if dead {
                versions.len()
            } else {
                // Keep the version live at `earliest` and every newer one.
                versions
                    .iter()
                    .rposition(|v| v.instant.as_str() <= earliest)
                    .unwrap_or(0)
            };
            (cut > 0).then(|| (id.clone(), cut))
        })
        .collect()
}

/// Deletes the `doomed` versions, oldest first, removing each from the state only after its
/// delete succeeded; stops at the first failure (returned), leaving the rest for next time.
pub(crate) async fn delete_versions<E, F, Fut>(
    state: &mut TableState,
    doomed: Vec<(String, usize)>,
    mut delete: F,
) -> Result<usize, E>
where
    F: FnMut(FileVersion) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut deleted = 0;
    let mut failure = None;
    for (id, cut) in doomed {
        let Some(versions) = state.versions.get_mut(&id) else {
            continue;
        };
        let mut done = 0;
        for v in versions.iter().take(cut) {
            match delete(v.clone()).await {
                Ok(()) => done += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        versions.drain(..done);
        deleted += done;
        if versions.is_empty() {
            state.versions.remove(&id);
        }
        if failure.is_some() {
            break;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::timeline::{TableProperties, Timeline};
    use object_store::path::Path;
    use std::collections::BTreeMap;

    pub(crate) fn version(id: &str, instant: &str) -> FileVersion {
        FileVersion {
            location: Path::from(format!("{id}_{instant}.parquet")),
            path: format!("{id}_{instant}.parquet"),
            instant: instant.into(),
        }
    }

    /// Commits 1..=5 (17-digit times a minute apart); file group `a` rewritten by 1, 2, 4;
    /// `b` by 1 and 5; 3 is checkpoint-only.
    fn state() -> TableState {
        let t = |m: u32| format!("2026010100{m:02}00000");
        let names: Vec<String> = (1..=5).map(|m| format!("{}.commit", t(m))).collect();
        let mut versions = BTreeMap::new();
        versions.insert(
            "a".to_string(),
            vec![
                version("a", &t(1)),
                version("a", &t(2)),
                version("a", &t(4)),
            ],
        );
        versions.insert(
            "b".to_string(),
            vec![version("b", &t(1)), version("b", &t(5))],
        );
        table_state(&names, versions)
    }

    /// A table whose `.hoodie/` holds `names`, with base-file `versions`.
    pub(crate) fn table_state(
        names: &[String],
        versions: BTreeMap<String, Vec<FileVersion>>,
    ) -> TableState {
        TableState {
            props: TableProperties {
                name: "t".into(),
                key_columns: vec!["id".into()],
                partition_fields: Vec::new(),
                hive_style: true,
                precombine_field: None,
                create_schema: None,
            },
            timeline: Timeline::from_names(names.iter().map(String::as_str)),
            latest: None,
            groups: BTreeMap::new(),
            versions,
            replaced: BTreeMap::new(),
            unfinished: Vec::new(),
        }
    }

    #[test]
    fn cleaning_is_due_every_so_many_writes_after_the_last_clean() {
        let t = |m: u32| format!("2026010100{m:02}00000");
        let commits = |range: std::ops::RangeInclusive<u32>| {
            range
                .map(|m| format!("{}.commit", t(m)))
                .collect::<Vec<_>>()
        };
        let no_clean = table_state(&commits(1..=4), BTreeMap::new());
        assert!(clean_due(&no_clean, 4));
        assert!(!clean_due(&no_clean, 5));
        assert!(clean_due(&no_clean, 0), "0 counts as 1");
        // A clean after 2 (and one still in flight after 3): 3 and 4 follow it.
        let mut names = commits(1..=4);
        names.push("20260101000230000.clean".to_string());
        names.push("20260101000330000.clean.inflight".to_string());
        let cleaned = table_state(&names, BTreeMap::new());
        assert!(clean_due(&cleaned, 2));
        assert!(!clean_due(&cleaned, 3));
        assert!(clean_due(&cleaned, 1));
    }

    #[test]
    fn checkpoint_only_commits_do_not_count() {
        let s = state();
        let now = parse_instant_time("20260101010000000").unwrap();
        // Two file-changing commits retained: 4 and 5 (3 changed no file), so a query as of
        // 4 needs a@4 and b@1.
        assert_eq!(
            earliest_retained(&s, 2, None, now).as_deref(),
            Some("20260101000400000")
        );
        let doomed = doomed(&s, "20260101000400000");
        assert_eq!(doomed, vec![("a".to_string(), 2)]);
        assert_eq!(earliest_retained(&s, 4, None, now), None);
    }

    #[test]
    fn retain_hours_keeps_young_commits() {
        let s = state();
        // Every commit is younger than an hour: nothing goes.
        let now = parse_instant_time("20260101003000000").unwrap();
        assert_eq!(earliest_retained(&s, 1, Some(1), now), None);
        // An hour after commit 2 (and before 3): the snapshot at the cutoff is 2.
        let now = parse_instant_time("20260101010230000").unwrap();
        assert_eq!(
            earliest_retained(&s, 1, Some(1), now).as_deref(),
            Some("20260101000200000")
        );
        // Long after: only the commit count matters.
        let now = parse_instant_time("20260102000000000").unwrap();
        assert_eq!(
            earliest_retained(&s, 1, Some(1), now).as_deref(),
            Some("20260101000500000")
        );
    }

    #[tokio::test]
    async fn a_failed_delete_keeps_the_version_in_state() {
        let mut s = state();
        let doomed = doomed(&s, "20260101000500000");
        assert_eq!(doomed, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
        // The second delete fails: the first version is gone, the rest stay known.
        let mut calls = 0;
        let result = delete_versions(&mut s, doomed.clone(), |_v| {
            calls += 1;
            let fail = calls == 2;
            async move {
                if fail {
                    Err("store down")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(result, Err("store down"));
        assert_eq!(s.versions["a"].len(), 2);
        assert_eq!(s.versions["b"].len(), 2);
        // Next time every doomed version is deleted.
        let doomed = super::doomed(&s, "20260101000500000");
        let n = delete_versions(&mut s, doomed, |_v| async { Ok::<(), ()>(()) })
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.versions["a"].len(), 1);
        assert_eq!(s.versions["b"].len(), 1);
    }
}
