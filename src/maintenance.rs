//! The table-maintenance commands: `cdc-lake iceberg ...` and `cdc-lake delta ...`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cdc_core::model::TableId;
use clap::Subcommand;

use crate::read_settings;
#[cfg(feature = "iceberg")]
use crate::Catalog;

/// The time `hours` ago: files (or snapshots) older than it are fair game.
fn hours_ago(hours: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(hours * 3600)
}

#[cfg(feature = "iceberg")]
#[derive(Debug, Subcommand)]
pub enum IcebergCommand {
    /// Rewrite the data files worth it — small ones packed, ones with many position deletes
    /// without them — in one snapshot that keeps the checkpoint; the delete files that name
    /// only rewritten files go. `--full` rewrites every live row (tables with equality deletes
    /// always are).
    Compact {
        #[command(flatten)]
        tables: IcebergTables,
        /// Rewrite every data file, dropping every delete file.
        #[arg(long)]
        full: bool,
        /// Data files smaller than this (MiB) are packed.
        #[arg(long, default_value_t = 32)]
        small_file_mib: u64,
        /// Read at most this much (MiB) in one run.
        #[arg(long, default_value_t = 1024)]
        max_mib: u64,
    },
    /// Drop snapshots older than `--older-than-hours` except the newest `--retain-last`, and
    /// delete the files only they reached.
    ExpireSnapshots {
        #[command(flatten)]
        tables: IcebergTables,
        /// Keep snapshots younger than this.
        #[arg(long, default_value_t = 24)]
        older_than_hours: u64,
        /// Keep at least this many of the newest snapshots.
        #[arg(long, default_value_t = 1)]
        retain_last: usize,
    },
    /// Delete files no snapshot references (left by crashed or lost commits) that are older
    /// than `--older-than-hours` (younger ones may belong to a commit in flight).
    RemoveOrphans {
        #[command(flatten)]
        tables: IcebergTables,
        #[arg(long, default_value_t = 1)]
        older_than_hours: u64,
    },
}

/// The tables a maintenance command works on, and where they are.
#[derive(Debug, clap::Args)]
pub struct Tables {
    /// The warehouse (`<warehouse>/<schema>/<table>/` is each table; Iceberg:
    /// `<warehouse>/catalog.db` is its catalog).
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// `SCHEMA.TABLE`; repeatable.
    #[arg(long = "table", required = true)]
    tables: Vec<String>,
    /// The sink settings the tables were synced with, a JSON file (`--sink-config` of `sync`):
    /// Iceberg's catalog (`rest`, `catalog_name`, `glue`) is where its tables are found,
    /// Delta's `storage_options` reach them.
    #[arg(long, value_name = "FILE")]
    sink_config: Option<PathBuf>,
}

#[cfg(feature = "iceberg")]
#[derive(Debug, clap::Args)]
pub struct IcebergTables {
    #[command(flatten)]
    at: Tables,
    /// The catalog the tables were synced into (`--catalog` of `sync`).
    #[arg(long, value_enum)]
    catalog: Option<Catalog>,
}

#[cfg(feature = "iceberg")]
pub async fn iceberg(command: IcebergCommand) -> Result<(), Box<dyn std::error::Error>> {
    use cdc_iceberg::maintenance;
    let hours = hours_ago;
    let (IcebergCommand::Compact { tables: t, .. }
    | IcebergCommand::ExpireSnapshots { tables: t, .. }
    | IcebergCommand::RemoveOrphans { tables: t, .. }) = &command;
    let settings = read_settings(t.at.sink_config.as_deref(), t.catalog)?;
    let warehouse = cdc_iceberg::IcebergWarehouse::new(
        &t.at.warehouse,
        cdc_lake::iceberg_sink_config(settings.as_deref())?,
    )?;
    for name in &t.at.tables {
        let table = TableId::parse(name)?;
        // A misspelt table or the wrong catalog is an error, not "nothing to do".
        if warehouse.metadata_location(&table).await?.is_none() {
            return Err(format!(
                "table {table} is not in the catalog `{}` of `{}` (give the sync's --sink-config)",
                warehouse.catalog_name(),
                t.at.warehouse
            )
            .into());
        }
        match &command {
            IcebergCommand::Compact {
                full,
                small_file_mib,
                max_mib,
                ..
            } => match compact(&warehouse, &table, *full, *small_file_mib, *max_mib).await? {
                Some(c) => println!(
                    "{table}: compacted {} rows from {} data files (+{} delete files) into {} in snapshot {}",
                    c.rows, c.data_files.0, c.delete_files, c.data_files.1, c.snapshot_id
                ),
                None => println!("{table}: nothing to compact"),
            },
            IcebergCommand::ExpireSnapshots {
                older_than_hours,
                retain_last,
                ..
            } => {
                let cutoff = hours(*older_than_hours)
                    .duration_since(SystemTime::UNIX_EPOCH)?
                    .as_millis() as i64;
                let deleted =
                    maintenance::expire_snapshots(&warehouse, &table, cutoff, *retain_last).await?;
                println!("{table}: expired snapshots, deleted {} files", deleted.len());
            }
            IcebergCommand::RemoveOrphans {
                older_than_hours, ..
            } => {
                let removed =
                    maintenance::remove_orphan_files(&warehouse, &table, hours(*older_than_hours))
                        .await?;
                println!("{table}: removed {} orphan files", removed.len());
            }
        }
    }
    Ok(())
}

/// `iceberg compact`: the whole table, or only the files worth it.
#[cfg(feature = "iceberg")]
async fn compact(
    warehouse: &cdc_iceberg::IcebergWarehouse,
    table: &TableId,
    full: bool,
    small_file_mib: u64,
    max_mib: u64,
) -> cdc_iceberg::Result<Option<cdc_iceberg::maintenance::Compacted>> {
    if full {
        return cdc_iceberg::maintenance::compact(warehouse, table).await;
    }
    let options = cdc_iceberg::compact::CompactOptions {
        small_file_size: small_file_mib << 20,
        max_bytes: max_mib << 20,
        ..Default::default()
    };
    cdc_iceberg::compact::compact_files(warehouse, table, &options).await
}

#[cfg(feature = "delta")]
#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// Delete files no log entry names (left by crashed or abandoned commits) that are older
    /// than `--older-than-hours` (younger ones may belong to a commit in flight). Files that
    /// a commit removed are kept: they are time travel's.
    RemoveOrphans {
        #[command(flatten)]
        at: Tables,
        /// Keep orphans younger than this.
        #[arg(long, default_value_t = 1)]
        older_than_hours: u64,
        /// List the orphans instead of deleting them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the files no version inside the retention window reads: files the current
    /// version does not use (deletion-vector files included) that a commit removed, or no
    /// commit names, longer ago than the retention; then the log entries older than
    /// `delta.logRetentionDuration` up to a checkpoint. Time travel ends at the retention.
    Vacuum {
        #[command(flatten)]
        at: Tables,
        /// The retention; default: the table's `delta.deletedFileRetentionDuration` (a week
        /// unless set).
        #[arg(long)]
        retention_hours: Option<u64>,
    },
    /// Pack small files into files of the target size and rewrite files whose deletion
    /// vectors hide many rows, in one OPTIMIZE commit that keeps the checkpoint (a concurrent
    /// sync loses nothing; the replaced files stay for time travel until vacuum).
    Optimize {
        #[command(flatten)]
        at: Tables,
        /// Files smaller than this (MiB) are packed; default: a quarter of the target size.
        #[arg(long)]
        small_file_mib: Option<u64>,
        /// Files whose deletion vectors hide more than this fraction of rows are rewritten.
        #[arg(long, default_value_t = 0.1)]
        max_deleted_fraction: f64,
        /// Read at most this much (MiB) in one run.
        #[arg(long, default_value_t = 1024)]
        max_mib: u64,
    },
}

#[cfg(feature = "delta")]
pub async fn delta(command: DeltaCommand) -> Result<(), Box<dyn std::error::Error>> {
    use cdc_delta::maintenance::{orphan_files, remove_orphan_files, vacuum};
    let (DeltaCommand::RemoveOrphans { at, .. }
    | DeltaCommand::Vacuum { at, .. }
    | DeltaCommand::Optimize { at, .. }) = &command;
    let settings = read_settings(at.sink_config.as_deref(), None)?;
    let config = cdc_lake::sink_config(cdc_lake::Format::Delta, settings.as_deref())?;
    let warehouse = cdc_delta::DeltaWarehouse::new(&at.warehouse, config)?;
    for name in &at.tables {
        let table = TableId::parse(name)?;
        let (older_than_hours, dry_run) = match &command {
            DeltaCommand::Vacuum {
                retention_hours, ..
            } => {
                let retention = retention_hours.map(|h| Duration::from_secs(h * 3600));
                let done = vacuum(&warehouse, &table, retention, SystemTime::now()).await?;
                println!(
                    "{table}: vacuumed {} files and {} log entries",
                    done.files.len(),
                    done.log_entries
                );
                continue;
            }
            DeltaCommand::Optimize {
                small_file_mib,
                max_deleted_fraction,
                max_mib,
                ..
            } => {
                let mut options = cdc_delta::optimize::OptimizeOptions::for_target(
                    warehouse.config().target_file_size,
                );
                if let Some(mib) = small_file_mib {
                    options.small_file_size = mib << 20;
                }
                options.max_deleted_fraction = *max_deleted_fraction;
                options.max_bytes = max_mib << 20;
                let done = cdc_delta::optimize::optimize(&warehouse, &table, &options).await?;
                match done.version {
                    Some(v) => println!(
                        "{table}: optimized {} rows from {} files into {} in version {v}",
                        done.rows, done.files.0, done.files.1
                    ),
                    None => println!("{table}: nothing to optimize"),
                }
                continue;
            }
            DeltaCommand::RemoveOrphans {
                older_than_hours,
                dry_run,
                ..
            } => (*older_than_hours, *dry_run),
        };
        if dry_run {
            let orphans = orphan_files(&warehouse, &table).await?;
            for orphan in &orphans {
                println!("{table}: {orphan}");
            }
            println!("{table}: {} orphan files", orphans.len());
            continue;
        }
        let removed = remove_orphan_files(&warehouse, &table, hours_ago(older_than_hours)).await?;
        println!("{table}: removed {} orphan files", removed.len());
    }
    Ok(())
}

#[cfg(feature = "hudi")]
#[derive(Debug, Subcommand)]
pub enum HudiCommand {
    /// Rewrite the small file groups of each partition (at least two) into new ones, in one
    /// replacecommit (operation CLUSTER) that keeps the checkpoint; the replaced groups stay
    /// readable by time travel until the cleaner retires them.
    Cluster {
        #[command(flatten)]
        at: Tables,
        /// File groups smaller than this (MiB) are small.
        #[arg(long, default_value_t = 32)]
        small_file_mib: u64,
        /// Read at most this much (MiB) in one run.
        #[arg(long, default_value_t = 1024)]
        max_mib: u64,
    },
}

#[cfg(feature = "hudi")]
pub async fn hudi(command: HudiCommand) -> Result<(), Box<dyn std::error::Error>> {
    let HudiCommand::Cluster {
        at,
        small_file_mib,
        max_mib,
    } = command;
    let settings = read_settings(at.sink_config.as_deref(), None)?;
    let config = cdc_lake::sink_config(cdc_lake::Format::Hudi, settings.as_deref())?;
    let warehouse = cdc_hudi::HudiWarehouse::new(&at.warehouse, config)?;
    let options = cdc_hudi::cluster::ClusterOptions {
        small_file_size: small_file_mib << 20,
        max_bytes: max_mib << 20,
    };
    for name in &at.tables {
        let table = TableId::parse(name)?;
        if warehouse.sink(&table).file_groups().await?.is_empty() {
            return Err(format!("no Hudi table {table} in `{}`", at.warehouse).into());
        }
        match cdc_hudi::cluster::cluster(&warehouse, &table, &options).await? {
            Some(c) => println!(
                "{table}: clustered {} rows from {} file groups into {} at instant {}",
                c.rows, c.groups.0, c.groups.1, c.instant
            ),
            None => println!("{table}: nothing to cluster"),
        }
    }
    Ok(())
}
