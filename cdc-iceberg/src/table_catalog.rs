//! The catalog a warehouse commits through: the embedded SQLite catalog ([`SqlCatalog`]), a
//! REST catalog ([`RestCatalog`]) or (feature `glue`) the AWS Glue Data Catalog, behind the three things a writer does with one: read where
//! a table is, create it, and commit new metadata on top of what it read.

use cdc_core::model::TableId;
use iceberg::io::FileIO;
use iceberg::spec::{TableMetadata, MAIN_BRANCH};
use iceberg::{TableRequirement, TableUpdate};

use crate::catalog::SqlCatalog;
use crate::commit::{write_first_metadata, write_next_metadata, NextMetadata};
use crate::discard::discard;
use crate::error::{IcebergSinkError, Result};
use crate::rest::{RestCatalog, RestCommit};
use crate::table::Pointer;

/// The catalog of a warehouse.
#[derive(Debug)]
pub(crate) enum TableCatalog {
    Sql(SqlCatalog),
    Rest(RestCatalog),
    #[cfg(feature = "glue")]
    Glue(crate::glue::GlueCatalog),
}

impl TableCatalog {
    /// Where the catalog points for `table`, `None` when it has no such table.
    pub async fn load(&self, table: &TableId) -> Result<Option<Pointer>> {
        match self {
            TableCatalog::Sql(sql) => Ok(sql
                .metadata_location(&table.namespace, &table.name)
                .await?
                .map(|location| Pointer {
                    location,
                    metadata: None,
                })),
            TableCatalog::Rest(rest) => Ok(rest
                .load_table(&table.namespace, &table.name)
                .await?
                .map(|t| Pointer {
                    location: t.metadata_location,
                    metadata: Some(t.metadata),
                })),
            #[cfg(feature = "glue")]
            TableCatalog::Glue(glue) => glue.load(table).await,
        }
    }

    /// Registers a new table from `metadata` (built for the warehouse's own location; a REST
    /// catalog picks its location itself). Another writer creating it first is not an error.
    pub async fn create(
        &self,
        io: &FileIO,
        table: &TableId,
        metadata: TableMetadata,
    ) -> Result<()> {
        let name = table.to_string();
        match self {
            TableCatalog::Sql(sql) => {
                let location = write_first_metadata(io, &name, &metadata).await?;
                sql.create_table(&table.namespace, &table.name, &location)
                    .await?;
            }
            TableCatalog::Rest(rest) => {
                rest.create_table(
                    &table.namespace,
                    &table.name,
                    metadata.current_schema(),
                    metadata.default_partition_spec(),
                    metadata.default_sort_order(),
                    metadata.properties(),
                )
                .await?;
            }
            #[cfg(feature = "glue")]
            TableCatalog::Glue(glue) => glue.create(io, table, metadata).await?,
        }
        Ok(())
    }

    /// Makes `next` the table's metadata if the table is still at `base` (read from
    /// `base_location`). A lost race is [`IcebergSinkError::CommitConflict`], after the
    /// attempt's files are deleted; a REST commit with an unknown outcome that the table does
    /// not show is [`IcebergSinkError::CommitUnknown`] (its files are kept: it may still be in
    /// flight).
    pub async fn commit(
        &self,
        io: &FileIO,
        table: &TableId,
        base_location: &str,
        base: &TableMetadata,
        next: &NextMetadata,
    ) -> Result<Committed> {
        let name = table.to_string();
        match self {
            #[cfg(feature = "glue")]
            TableCatalog::Glue(glue) => glue.commit(io, table, base_location, next).await,
            TableCatalog::Sql(sql) => {
                let location = write_next_metadata(io, &name, base_location, next).await?;
                if sql
                    .swap(&table.namespace, &table.name, base_location, &location)
                    .await?
                {
                    return Ok(Committed {
                        location,
                        metadata: next.metadata.clone(),
                    });
                }
                // Definitive: nothing will ever reference this attempt's files.
                discard(&name, io, Some(&location), next.snapshot.as_ref()).await;
                Err(IcebergSinkError::CommitConflict {
                    table: name,
                    expected: base_location.to_string(),
                })
            }
            TableCatalog::Rest(rest) => {
                let requirements = requirements(base, next);
                let outcome = rest
                    .commit(&table.namespace, &table.name, &requirements, &next.updates)
                    .await?;
                let (answer, what) = match outcome {
                    RestCommit::Committed(Some(t)) if landed(&t.metadata, next) => {
                        return Ok(Committed {
                            location: t.metadata_location,
                            metadata: t.metadata,
                        })
                    }
                    RestCommit::Committed(_) => (None, "HTTP 2xx without the commit".to_string()),
                    RestCommit::Conflict(m) => (Some(true), m),
                    RestCommit::Unknown(m) => (Some(false), m),
                };
                // Read the table to learn the outcome: a commit can land although the answer
                // says otherwise (a lost answer, or a 409 to a request a proxy sent twice).
                tracing::info!(table = %name, answer = what, "REST commit outcome unclear; reading the table again");
                let now = rest.load_table(&table.namespace, &table.name).await?;
                if let Some(t) = now.filter(|t| landed(&t.metadata, next)) {
                    return Ok(Committed {
                        location: t.metadata_location,
                        metadata: t.metadata,
                    });
                }
                match answer {
                    Some(true) => {
                        // Refused and not in the table: nothing references the attempt's files.
                        discard(&name, io, None, next.snapshot.as_ref()).await;
                        Err(IcebergSinkError::CommitConflict {
                            table: name,
                            expected: base_location.to_string(),
                        })
                    }
                    Some(false) => Err(IcebergSinkError::CommitUnknown {
                        table: name,
                        message: what,
                    }),
                    None => Err(IcebergSinkError::Rest {
                        catalog: rest.uri().to_string(),
                        context: format!("committing {name}"),
                        status: 200,
                        message: "the catalog answered 2xx but the table does not show the \
                                  commit (a redirect or a proxy answering for it?)"
                            .into(),
                    }),
                }
            }
        }
    }
}

/// A committed metadata version.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// Its metadata file.
    pub location: String,
    /// The metadata as committed (for a REST catalog: as the catalog answered).
    pub metadata: TableMetadata,
}

/// Whether `metadata` shows the commit of `next`: its snapshot, or, for snapshot expiry, none
/// of the expired snapshots.
pub(crate) fn landed(metadata: &TableMetadata, next: &NextMetadata) -> bool {
    if let Some(snapshot) = &next.snapshot {
        return metadata.snapshot_by_id(snapshot.snapshot_id()).is_some();
    }
    let mut expired = next
        .updates
        .iter()
        .filter_map(|u| match u {
            TableUpdate::RemoveSnapshots { snapshot_ids } => Some(snapshot_ids),
            _ => None,
        })
        .flatten()
        .peekable();
    expired.peek().is_some() && expired.all(|id| metadata.snapshot_by_id(*id).is_none())
}

/// What a REST commit asserts of the table it builds on: the same table, the `main` branch at
/// the snapshot read (so two commits on one parent cannot both land, and a commit whose outcome
/// was lost cannot land after its retry), and, when the schema changes, the schema and last
/// column id read.
fn requirements(base: &TableMetadata, next: &NextMetadata) -> Vec<TableRequirement> {
    let mut out = vec![
        TableRequirement::UuidMatch { uuid: base.uuid() },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: base.current_snapshot_id(),
        },
    ];
    let schema_changes = next.updates.iter().any(|u| {
        matches!(
            u,
            TableUpdate::AddSchema { .. } | TableUpdate::SetCurrentSchema { .. }
        )
    });
    if schema_changes {
        out.push(TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: base.current_schema_id(),
        });
        out.push(TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id: base.last_column_id(),
        });
    }
    out
}
