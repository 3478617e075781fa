//! Where raw files (and warehouses, and dead letters) are: a local path or an object-store URL,
//! with credentials from the environment only.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

use crate::error::{Error, Result};

/// An object store and the path prefix inside it, from a URL or a local path.
///
/// `file://` URLs and plain paths use the local filesystem; `s3://bucket/prefix` needs feature
/// `s3` and takes its credentials and endpoint from the standard `AWS_*` environment variables
/// (never from the URL, so they cannot leak into logs); `az://container/prefix` and
/// `abfs[s]://container@account.dfs.core.windows.net/prefix` need feature `azure` and take
/// theirs from the `AZURE_*` variables (`AZURE_STORAGE_ACCOUNT_NAME`, `..._KEY`, a SAS or
/// service principal; `AZURE_STORAGE_USE_EMULATOR` for Azurite).
pub fn object_store_from_url(url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let config = |m: String| Error::Config(m);
    let parsed = match Url::parse(url) {
        Ok(u) if u.scheme().len() > 1 => u,
        _ => {
            let abs =
                std::path::absolute(url).map_err(|e| config(format!("bad path `{url}`: {e}")))?;
            Url::from_directory_path(&abs)
                .map_err(|_| config(format!("bad path `{}`", abs.display())))?
        }
    };
    match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| config(format!("bad file URL `{url}`")))?;
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
            let store =
                object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
                    Error::ObjectStore {
                        path: dir.display().to_string(),
                        source: e,
                    }
                })?;
            Ok((Arc::new(store), Path::default()))
        }
        #[cfg(feature = "s3")]
        "s3" | "s3a" => {
            let bucket = parsed
                .host_str()
                .ok_or_else(|| config(format!("no bucket in `{url}`")))?;
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| Error::ObjectStore {
                    path: format!("s3://{bucket}"),
                    source: e,
                })?;
            let prefix = Path::from(parsed.path().trim_matches('/'));
            Ok((Arc::new(store), prefix))
        }
        #[cfg(not(feature = "s3"))]
        "s3" | "s3a" => Err(config(
            "built without feature `s3`; rebuild with `--features s3` to read s3:// URLs".into(),
        )),
        #[cfg(feature = "azure")]
        "az" | "abfs" | "abfss" | "azure" => {
            // Account, key or token (or the Azurite emulator) from the `AZURE_*` environment.
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(|e| Error::ObjectStore {
                    path: format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or("")),
                    source: e,
                })?;
            let prefix = Path::from(parsed.path().trim_matches('/'));
            Ok((Arc::new(store), prefix))
        }
        #[cfg(not(feature = "azure"))]
        "az" | "abfs" | "abfss" | "azure" => Err(config(
            "built without feature `azure`; rebuild with `--features azure` for Azure URLs".into(),
        )),
        other => Err(config(format!(
            "unsupported URL scheme `{other}` in `{url}` (use a local path, file://, s3:// or az://)"
        ))),
    }
}
