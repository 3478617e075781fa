//! A root under which every table of the pipeline is a Delta table, and its sinks.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{CommitControl, RetryPolicy, UpsertSink};
use cdc_core::sink::{TableSink, Warehouse};
use url::Url;

use crate::config::DeltaSinkConfig;
use crate::driver::DeltaDriver;
use crate::table::TableLocation;

/// Delta tables under one root: table `<schema>.<table>` at `<root>/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct DeltaWarehouse {
    root: Url,
    config: Arc<DeltaSinkConfig>,
    conflicts: Arc<AtomicU64>,
    #[cfg(feature = "glue")]
    glue: Option<Arc<cdc_core::glue::GlueRegistry>>,
}

impl DeltaWarehouse {
    /// A warehouse at `root` (local path, `file://` or `s3://` URL).
    pub fn new(root: &str, config: DeltaSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let mut root = deltalake::ensure_table_uri(root)
            .map_err(|e| cdc_core::Error::Config(format!("bad Delta warehouse `{root}`: {e}")))?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(DeltaWarehouse {
            root,
            #[cfg(feature = "glue")]
            glue: (config.glue.clone()).map(|g| Arc::new(cdc_core::glue::GlueRegistry::new(g))),
            config: Arc::new(config),
            conflicts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The URL of one table.
    pub fn table_url(&self, table: &TableId) -> Url {
        self.root
            .join(&format!("{}/{}/", table.namespace, table.name))
            .expect("table names join onto the root")
    }

    /// The warehouse's settings.
    pub fn config(&self) -> &DeltaSinkConfig {
        &self.config
    }

    /// Commit conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> DeltaSink {
        let retry =
            RetryPolicy::new(self.config.max_commit_attempts).counting_in(self.conflicts.clone());
        UpsertSink::new(DeltaDriver::new(
            self.location(table),
            CommitControl::new(retry, self.config.test_hooks.clone()),
        ))
    }

    /// Where one table is and how it is written.
    pub(crate) fn location(&self, table: &TableId) -> TableLocation {
        TableLocation {
            table: table.clone(),
            url: self.table_url(table),
            config: self.config.clone(),
            #[cfg(feature = "glue")]
            glue: self.glue.clone(),
        }
    }
}

#[async_trait]
impl Warehouse for DeltaWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The Delta sink of one table.
pub type DeltaSink = UpsertSink<DeltaDriver>;
