//! Following a bucket the S3 sink keeps writing to (`sync --watch`): each poll lists only what
//! is new, namely each known partition's files after its newest known one, and the directories
//! of partitions not seen before; files wholly consumed are forgotten, so a source that runs for
//! months holds only what it has not read.

use std::collections::HashSet;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use super::RawFileSource;
use crate::error::{Error, Result};

impl RawFileSource {
    /// Lists the files written since the last listing (in the connector's default layout,
    /// `<prefix>/<topic>/partition=<p>/`) and makes them readable; returns how many data files
    /// were added. The pipeline's next run starts each partition at its table's checkpoint.
    pub async fn refresh(&mut self) -> Result<usize> {
        let mut listed = Vec::new();
        let mut known_dirs = HashSet::new();
        for p in self.partitions.values() {
            let Some(newest) = p.files.last() else {
                continue;
            };
            let dir = parent(&newest.path);
            let after = self.store.list_with_offset(Some(&dir), &newest.path);
            listed.extend(collect(after, &self.location).await?);
            known_dirs.insert(dir);
        }
        for dir in self.partition_dirs().await? {
            if !known_dirs.contains(&dir) {
                listed.extend(collect(self.store.list(Some(&dir)), &self.location).await?);
            }
        }
        let added = self.add_listed(listed, true)?;
        self.forget_consumed();
        self.exhausted = false;
        Ok(added)
    }

    /// The partition directories under the prefix: two delimiter listings deep.
    async fn partition_dirs(&self) -> Result<Vec<Path>> {
        let err = |source| Error::ObjectStore {
            path: self.location.clone(),
            source,
        };
        let topics = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(err)?;
        let mut dirs = Vec::new();
        for topic in topics.common_prefixes {
            let partitions = self
                .store
                .list_with_delimiter(Some(&topic))
                .await
                .map_err(err)?;
            dirs.extend(partitions.common_prefixes);
        }
        Ok(dirs)
    }

    /// Drops the files that end before their partition's position (the newest file stays: the
    /// next listing starts after it).
    fn forget_consumed(&mut self) {
        for p in self.partitions.values_mut() {
            let Some(position) = p.position else {
                continue;
            };
            let consumed = p
                .files
                .windows(2)
                .take_while(|w| w[1].start_offset <= position)
                .count()
                .min(p.next_file);
            p.files.drain(..consumed);
            p.next_file -= consumed;
        }
    }
}

/// The directory `path` is in.
fn parent(path: &Path) -> Path {
    let parts: Vec<_> = path.parts().collect();
    Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

async fn collect(
    listing: futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>>,
    location: &str,
) -> Result<Vec<ObjectMeta>> {
    listing.try_collect().await.map_err(|e| Error::ObjectStore {
        path: location.to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, lines: std::ops::Range<i64>) {
        let d = dir.join("t/partition=0");
        std::fs::create_dir_all(&d).unwrap();
        let text: Vec<String> = lines.map(|i| i.to_string()).collect();
        std::fs::write(d.join(name), text.join("\n")).unwrap();
    }

    async fn offsets(source: &mut RawFileSource) -> Vec<i64> {
        let mut seen = Vec::new();
        while let Some(records) = source.next_file().await.unwrap() {
            seen.extend(records.iter().map(|r| r.offset));
        }
        seen
    }

    #[tokio::test]
    async fn a_refresh_adds_new_files_and_waits_for_a_keys_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "t+0+0000000000.json", 0..3);
        write(dir.path(), "t+0+0000000000.keys.json", 0..3);
        let mut source = RawFileSource::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(offsets(&mut source).await, [0, 1, 2]);

        // A data file whose keys file has not landed yet waits for it.
        write(dir.path(), "t+0+0000000003.json", 3..5);
        assert_eq!(source.refresh().await.unwrap(), 0);
        write(dir.path(), "t+0+0000000003.keys.json", 3..5);
        // A new partition's directory is found too.
        let other = dir.path().join("u/partition=2");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("u+2+0000000007.json"), "7").unwrap();
        assert_eq!(source.refresh().await.unwrap(), 2);
        let mut seen = offsets(&mut source).await;
        seen.sort();
        assert_eq!(seen, [3, 4, 7]);
        // Nothing new: nothing added, nothing read again (a seek to where the partition is
        // changes nothing); consumed files are forgotten.
        assert_eq!(source.refresh().await.unwrap(), 0);
        let files_read = source.progress().snapshot().0;
        source.seek("t", 0, 5);
        assert!(offsets(&mut source).await.is_empty());
        assert_eq!(
            source.progress().snapshot().0,
            files_read,
            "no file read again"
        );
        let t = &source.partitions[&("t".to_string(), 0)];
        assert_eq!(t.files.len(), 1, "only the newest file is kept");
    }
}
