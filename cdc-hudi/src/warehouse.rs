//! A root under which every table of the pipeline is a Hudi table, and its sinks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{CommitControl, RetryPolicy, UpsertSink};
use cdc_core::sink::{TableSink, Warehouse};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::config::HudiSinkConfig;
use crate::driver::HudiDriver;
use crate::files::TableStore;
use crate::table::TableAt;

/// The Hudi sink of one table.
pub type HudiSink = UpsertSink<HudiDriver>;

/// Hudi tables under one root: table `<schema>.<table>` at `<root>/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct HudiWarehouse {
    location: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    config: Arc<HudiSinkConfig>,
    conflicts: Arc<std::sync::atomic::AtomicU64>,
    #[cfg(feature = "glue")]
    glue: Option<Arc<cdc_core::glue::GlueRegistry>>,
}

impl HudiWarehouse {
    /// A warehouse at `root`: a local path, `file://` URL, or `s3://bucket/prefix` (feature
    /// `s3`; credentials and endpoint from the standard `AWS_*` environment variables).
    pub fn new(root: &str, config: HudiSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let (store, prefix) = cdc_core::source::raw::object_store_from_url(root)?;
        let location = match url::Url::parse(root) {
            Ok(u) if u.scheme().len() > 1 => root.trim_end_matches('/').to_string(),
            _ => std::path::absolute(root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| root.to_string()),
        };
        Ok(HudiWarehouse {
            location,
            store,
            prefix,
            #[cfg(feature = "glue")]
            glue: (config.glue.clone()).map(|g| Arc::new(cdc_core::glue::GlueRegistry::new(g))),
            config: Arc::new(config),
            conflicts: Arc::default(),
        })
    }

    /// Where one table lives (a local path or URL), as Hudi readers take it.
    pub fn table_location(&self, table: &TableId) -> String {
        format!("{}/{}/{}", self.location, table.namespace, table.name)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> HudiSink {
        UpsertSink::new(HudiDriver::new(
            self.table_at(table),
            CommitControl::new(self.retry_policy(), self.config.test_hooks.clone()),
        ))
    }

    /// How the warehouse's writers retry a conflict: a writer in flight takes a while, so
    /// they wait longer between attempts than for a lost compare-and-swap.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.config.max_commit_attempts)
            .with_backoff(Duration::from_millis(50), Duration::from_secs(1))
            .counting_in(self.conflicts.clone())
    }

    /// Where one table is and how it is written.
    pub(crate) fn table_at(&self, table: &TableId) -> TableAt {
        let rel = format!("{}/{}", table.namespace, table.name);
        let root = if self.prefix.as_ref().is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix.as_ref()))
        };
        TableAt {
            table: table.clone(),
            store: TableStore {
                table: table.to_string(),
                store: self.store.clone(),
                root,
                local_dir: self.local_dir(table),
            },
            config: self.config.clone(),
            location: self.table_location(table),
            #[cfg(feature = "glue")]
            glue: self.glue.clone(),
        }
    }

    /// The directory of `table` when the warehouse is on the local file system.
    fn local_dir(&self, table: &TableId) -> Option<std::path::PathBuf> {
        let location = self.table_location(table);
        match url::Url::parse(&location) {
            Ok(u) if u.scheme() == "file" => u.to_file_path().ok(),
            Ok(u) if u.scheme().len() > 1 => None,
            _ => Some(location.into()),
        }
    }

    /// The warehouse's settings.
    pub fn config(&self) -> &HudiSinkConfig {
        &self.config
    }

    /// Write conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl Warehouse for HudiWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}
