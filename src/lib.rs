//! cdc-lake keeps data-lake tables in sync with operational databases through Debezium change
//! data capture: it decodes Debezium change events, folds them per primary key and upserts them,
//! in order and exactly once, into table formats.
//!
//! This facade re-exports the parts an application picks by feature:
//! - always: [`core`] (`cdc-core`: model, decoders, folding, sources, the `TableSink` trait and
//!   the reference / `jsonl` sinks);
//! - `delta`, `iceberg`, `hudi`: the format adapters;
//! - `s3`: raw files on S3; `kafka`: the streaming source; `cli`: the `cdc-lake` binary.

#![warn(missing_docs)]

pub use cdc_core as core;

#[cfg(feature = "query")]
pub mod query;
#[cfg(feature = "query")]
pub mod status;
#[cfg(feature = "delta")]
pub use cdc_delta as delta;
#[cfg(feature = "hudi")]
pub use cdc_hudi as hudi;
#[cfg(feature = "iceberg")]
pub use cdc_iceberg as iceberg;

/// Table formats the `cdc-lake` binary can write, and whether this build has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The reference table as JSON lines on the local filesystem (always available).
    Jsonl,
    /// Delta Lake (feature `delta`).
    Delta,
    /// Apache Iceberg (feature `iceberg`).
    Iceberg,
    /// Apache Hudi (feature `hudi`).
    Hudi,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Delta => "delta",
            Format::Iceberg => "iceberg",
            Format::Hudi => "hudi",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "jsonl" => Format::Jsonl,
            "delta" => Format::Delta,
            "iceberg" => Format::Iceberg,
            "hudi" => Format::Hudi,
            other => {
                return Err(format!(
                    "unknown format `{other}`: use jsonl, delta, iceberg or hudi"
                ))
            }
        })
    }
}

/// `AWS_*` and `AZURE_*` settings from the environment, for formats whose object stores take
/// them as options.
#[cfg_attr(not(feature = "delta"), allow(dead_code))]
pub fn storage_options_from_env() -> std::collections::HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("AZURE_"))
        .collect()
}

/// Crash tests of the end-to-end harness set `CDC_LAKE_CRASH_TEST_STALL_BEFORE_COMMIT=<file>`:
/// the first commit whose data files are written creates `<file>` and then waits forever
/// instead of committing, so the test can SIGKILL the process exactly between data-file write
/// and commit. Once `<file>` exists (a restarted process), commits go through.
#[cfg_attr(
    not(any(feature = "delta", feature = "iceberg", feature = "hudi")),
    allow(dead_code)
)]
fn crash_test_hooks() -> cdc_core::sink::upsert::TestHooks {
    use cdc_core::sink::upsert::{BeforeCommitHook, TestHooks};
    let Some(marker) = std::env::var_os("CDC_LAKE_CRASH_TEST_STALL_BEFORE_COMMIT") else {
        return TestHooks::default();
    };
    let marker = std::path::PathBuf::from(marker);
    TestHooks::before_commit(BeforeCommitHook(std::sync::Arc::new(move || {
        Box::pin(stall_once(marker.clone()))
    })))
}

#[cfg_attr(
    not(any(feature = "delta", feature = "iceberg", feature = "hudi")),
    allow(dead_code)
)]
async fn stall_once(marker: std::path::PathBuf) {
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok();
    if first {
        std::future::pending::<()>().await;
    }
}

/// The error for a format this build was compiled without.
#[cfg_attr(
    all(feature = "delta", feature = "iceberg", feature = "hudi"),
    allow(dead_code)
)]
fn missing_format(feature: &str) -> cdc_core::Error {
    cdc_core::Error::Config(format!(
        "format `{feature}` is not in this build; rebuild with `--features {feature}`"
    ))
}

/// Opens the warehouse of `format` at `warehouse` (a local path or URL) with the format's
/// default sink settings.
pub fn open_warehouse(
    format: Format,
    warehouse: &str,
) -> cdc_core::Result<Box<dyn cdc_core::sink::Warehouse>> {
    open_warehouse_with(format, warehouse, None)
}

/// The format's sink settings from JSON (unknown fields are errors), or its defaults.
pub fn sink_config<T: serde::de::DeserializeOwned + Default>(
    format: Format,
    json: Option<&str>,
) -> cdc_core::Result<T> {
    match json {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| cdc_core::Error::Config(format!("{} sink settings: {e}", format.name()))),
    }
}

/// Iceberg sink settings from JSON (as `--sink-config` takes them), or the defaults.
#[cfg(feature = "iceberg")]
pub fn iceberg_sink_config(
    settings: Option<&str>,
) -> cdc_core::Result<cdc_iceberg::IcebergSinkConfig> {
    sink_config(Format::Iceberg, settings)
}

/// Opens the warehouse of `format` at `warehouse` with sink settings given as JSON:
/// `cdc_delta::DeltaSinkConfig` (partition columns, table properties, deletion vectors, ...),
/// `cdc_iceberg::IcebergSinkConfig` (write mode, partition spec, catalog, ...) or
/// `cdc_hudi::HudiSinkConfig` (partition fields, file sizes, retention, ...).
pub fn open_warehouse_with(
    format: Format,
    warehouse: &str,
    settings: Option<&str>,
) -> cdc_core::Result<Box<dyn cdc_core::sink::Warehouse>> {
    match format {
        Format::Jsonl if settings.is_some() => Err(cdc_core::Error::Config(
            "the jsonl format has no sink settings".into(),
        )),
        Format::Jsonl => {
            let path = warehouse.strip_prefix("file://").unwrap_or(warehouse);
            if path.contains("://") {
                return Err(cdc_core::Error::Config(format!(
                    "the jsonl format writes to a local directory, not `{warehouse}`"
                )));
            }
            Ok(Box::new(cdc_core::sink::JsonlWarehouse::new(path)))
        }
        #[cfg(feature = "delta")]
        Format::Delta => Ok(Box::new(delta_warehouse(warehouse, settings)?)),
        #[cfg(not(feature = "delta"))]
        Format::Delta => Err(missing_format("delta")),
        #[cfg(feature = "iceberg")]
        Format::Iceberg => Ok(Box::new(iceberg_warehouse(warehouse, settings)?)),
        #[cfg(not(feature = "iceberg"))]
        Format::Iceberg => Err(missing_format("iceberg")),
        #[cfg(feature = "hudi")]
        Format::Hudi => Ok(Box::new(hudi_warehouse(warehouse, settings)?)),
        #[cfg(not(feature = "hudi"))]
        Format::Hudi => Err(missing_format("hudi")),
    }
}

/// The Delta warehouse at `warehouse` with sink settings given as JSON; object-store settings
/// (endpoint, region, credentials) come from the environment.
#[cfg(feature = "delta")]
pub fn delta_warehouse(
    warehouse: &str,
    settings: Option<&str>,
) -> cdc_core::Result<cdc_delta::DeltaWarehouse> {
    let mut config: cdc_delta::DeltaSinkConfig = sink_config(Format::Delta, settings)?;
    config.storage_options.extend(storage_options_from_env());
    config.test_hooks = crash_test_hooks();
    cdc_delta::DeltaWarehouse::new(warehouse, config)
}

/// The Iceberg warehouse at `warehouse` with sink settings given as JSON.
#[cfg(feature = "iceberg")]
pub fn iceberg_warehouse(
    warehouse: &str,
    settings: Option<&str>,
) -> cdc_core::Result<cdc_iceberg::IcebergWarehouse> {
    let mut config = iceberg_sink_config(settings)?;
    config.test_hooks = crash_test_hooks();
    cdc_iceberg::IcebergWarehouse::new(warehouse, config)
}

/// The Hudi warehouse at `warehouse` with sink settings given as JSON.
#[cfg(feature = "hudi")]
pub fn hudi_warehouse(
    warehouse: &str,
    settings: Option<&str>,
) -> cdc_core::Result<cdc_hudi::HudiWarehouse> {
    let mut config: cdc_hudi::HudiSinkConfig = sink_config(Format::Hudi, settings)?;
    config.test_hooks = crash_test_hooks();
    cdc_hudi::HudiWarehouse::new(warehouse, config)
}
