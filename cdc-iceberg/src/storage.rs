//! Iceberg's file I/O for every location a warehouse can have: `s3://` (and any other URL
//! `object_store` opens for us) through `object_store`, local paths and `file://` through
//! iceberg's own local storage. iceberg 0.10 ships only local and in-memory storage (its S3
//! support lives in a separate opendal crate with a second S3 client and a second set of
//! credential rules); going through `object_store` keeps one S3 client, configured the same way
//! for every format (the `AWS_*` environment, never the URL, never logged).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage,
    OutputFile, Storage, StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// The [`FileIO`] of a warehouse: object stores for URLs, the local file system otherwise.
pub(crate) fn lake_file_io() -> FileIO {
    FileIOBuilder::new(Arc::new(LakeStorageFactory)).build()
}

/// Whether `location` is a URL an object store serves (not a local path or `file://`).
pub(crate) fn is_remote(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme != "file" && !scheme.contains('/'))
}

/// Builds [`LakeStorage`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LakeStorageFactory;

#[typetag::serde(name = "CdcLakeStorageFactory")]
impl StorageFactory for LakeStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(LakeStorage::default()))
    }
}

/// Routes each path to the object store of its bucket (opened once) or to local storage.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LakeStorage {
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl std::fmt::Debug for LakeStorage {
    /// The buckets only: object stores' own Debug shows their credentials' key ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buckets: Vec<String> = match self.stores.lock() {
            Ok(stores) => stores.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        f.debug_struct("LakeStorage")
            .field("buckets", &buckets)
            .finish()
    }
}

/// Where one path lives.
enum Target {
    Local,
    Remote(Arc<dyn ObjectStore>, Path),
}

fn io_error(path: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{what} `{path}`: {e}"))
}

impl LakeStorage {
    fn target(&self, path: &str) -> Result<Target> {
        if !is_remote(path) {
            return Ok(Target::Local);
        }
        let (scheme, rest) = path.split_once("://").expect("a URL");
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let root = format!("{scheme}://{bucket}");
        let store = {
            let mut stores = self.stores.lock().expect("store cache");
            match stores.get(&root) {
                Some(s) => s.clone(),
                None => {
                    let (store, _) = cdc_core::source::raw::object_store_from_url(&root)
                        .map_err(|e| io_error(&root, "opening", e))?;
                    stores.insert(root, store.clone());
                    store
                }
            }
        };
        // The key as written in metadata and manifests, not percent-encoded a second time.
        let key = Path::parse(key).unwrap_or_else(|_| Path::from(key));
        Ok(Target::Remote(store, key))
    }

    /// Every object under the directory `prefix` (a URL) with its last modification time,
    /// as URLs of the same scheme and bucket.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, SystemTime)>> {
        let Target::Remote(store, key) = self.target(prefix)? else {
            return Err(io_error(prefix, "listing", "not an object store URL"));
        };
        let (scheme, rest) = prefix.split_once("://").expect("a URL");
        let bucket = rest.split('/').next().unwrap_or(rest);
        let root = format!("{scheme}://{bucket}");
        let objects: Vec<_> = store
            .list(Some(&key))
            .try_collect()
            .await
            .map_err(|e| io_error(prefix, "listing", e))?;
        Ok(objects
            .into_iter()
            .map(|o| {
                let modified = SystemTime::from(o.last_modified);
                (format!("{root}/{}", o.location), modified)
            })
            .collect())
    }
}

#[async_trait]
#[typetag::serde(name = "CdcLakeStorage")]
impl Storage for LakeStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().exists(path).await,
            Target::Remote(store, key) => match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(io_error(path, "checking", e)),
            },
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().metadata(path).await,
            Target::Remote(store, key) => {
                let meta = store
                    .head(&key)
                    .await
                    .map_err(|e| io_error(path, "reading metadata of", e))?;
                Ok(FileMetadata { size: meta.size })
            }
        }
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().read(path).await,
            Target::Remote(store, key) => {
                let got = store.get(&key).await;
                let got = got.map_err(|e| io_error(path, "reading", e))?;
                got.bytes().await.map_err(|e| io_error(path, "reading", e))
            }
        }
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().reader(path).await,
            Target::Remote(store, key) => Ok(Box::new(RemoteRead {
                store,
                key,
                path: path.to_string(),
            })),
        }
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().write(path, bs).await,
            Target::Remote(store, key) => {
                let put = store.put(&key, PutPayload::from(bs)).await;
                put.map(|_| ()).map_err(|e| io_error(path, "writing", e))
            }
        }
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().writer(path).await,
            Target::Remote(store, key) => Ok(Box::new(RemoteWrite {
                writer: Some(BufWriter::new(store, key)),
                path: path.to_string(),
            })),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().delete(path).await,
            Target::Remote(store, key) => match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(io_error(path, "deleting", e)),
            },
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        match self.target(path)? {
            Target::Local => LocalFsStorage::new().delete_prefix(path).await,
            Target::Remote(..) => {
                let dir = format!("{}/", path.trim_end_matches('/'));
                for (object, _) in self.list(&dir).await? {
                    self.delete(&object).await?;
                }
                Ok(())
            }
        }
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object.
struct RemoteRead {
    store: Arc<dyn ObjectStore>,
    key: Path,
    path: String,
}

#[async_trait]
impl FileRead for RemoteRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        let got = self.store.get_range(&self.key, range).await;
        got.map_err(|e| io_error(&self.path, "reading", e))
    }
}

/// A streamed upload: one `PUT` for a small file, a multipart upload for a big one.
struct RemoteWrite {
    writer: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for RemoteWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        let writer = self.writer.as_mut().ok_or_else(|| closed(&self.path))?;
        let put = writer.put(bs).await;
        put.map_err(|e| io_error(&self.path, "writing", e))
    }

    async fn close(&mut self) -> Result<()> {
        let mut writer = self.writer.take().ok_or_else(|| closed(&self.path))?;
        let done = writer.shutdown().await;
        done.map_err(|e| io_error(&self.path, "writing", e))
    }
}

fn closed(path: &str) -> Error {
    io_error(path, "writing", "the file was already closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_go_to_object_stores_and_paths_stay_local() {
        assert!(is_remote("s3://lake/wh/t/data/a.parquet"));
        assert!(is_remote("s3a://lake/x"));
        assert!(!is_remote("/tmp/wh/t/data/a.parquet"));
        assert!(!is_remote("file:///tmp/wh"));
        assert!(!is_remote("relative/dir"));
        assert!(!is_remote("/tmp/odd/name://x"));
    }

    #[tokio::test]
    async fn local_paths_read_and_write_through_iceberg_local_storage() {
        let dir = tempfile::tempdir().unwrap();
        let io = lake_file_io();
        let path = dir.path().join("a/b.txt").display().to_string();
        let out = io.new_output(&path).unwrap();
        out.write(Bytes::from_static(b"hello")).await.unwrap();
        assert!(io.exists(&path).await.unwrap());
        let read = io.new_input(&path).unwrap().read().await.unwrap();
        assert_eq!(&read[..], b"hello");
        io.delete(&path).await.unwrap();
        assert!(!io.exists(&path).await.unwrap());
    }
}
