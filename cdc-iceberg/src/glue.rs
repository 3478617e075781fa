//! The AWS Glue Data Catalog as an Iceberg catalog, registered as Iceberg's own `GlueCatalog`
//! (Java, pyiceberg) does, so Athena, EMR/Spark, Trino and pyiceberg open the same tables:
//! an `EXTERNAL_TABLE` with parameters `table_type=ICEBERG`, `metadata_location` and
//! `previous_metadata_location`, the table location, and the current schema's columns with
//! their Iceberg field ids.
//!
//! A commit writes the next metadata file, checks that Glue still points at the metadata it
//! built on, and swaps the pointer with `UpdateTable` guarded by the table's `VersionId`: a
//! writer that moved the table in between makes Glue refuse the swap. An answer that is lost
//! or unclear is resolved by reading the table back (landed, or refused and retried, never
//! both).

use std::collections::BTreeMap;

use cdc_core::glue::{
    columns_of, outcome_unknown, GlueClient, GlueConfig, GlueTable, StorageDescriptor, TableInput,
};
use cdc_core::model::TableId;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use crate::commit::{write_first_metadata, write_next_metadata, NextMetadata};
use crate::discard::discard;
use crate::error::{iceberg_err, IcebergSinkError, Result};
use crate::table::Pointer;
use crate::table_catalog::{landed, Committed};

const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

/// Iceberg tables in the Glue Data Catalog.
#[derive(Debug)]
pub(crate) struct GlueCatalog {
    client: GlueClient,
    config: GlueConfig,
    /// The warehouse root: table `s.t` belongs at `<root>/s/t`.
    root: String,
}

impl GlueCatalog {
    pub async fn connect(config: &GlueConfig, root: &str) -> Result<Self> {
        Ok(GlueCatalog {
            client: GlueClient::connect(config).await?,
            config: config.clone(),
            root: root.to_string(),
        })
    }

    /// The endpoint the catalog is reached at.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// Where Glue points for `table`, `None` when it has no such table.
    pub async fn load(&self, table: &TableId) -> Result<Option<Pointer>> {
        let Some(found) = self.get(table).await? else {
            return Ok(None);
        };
        let ours = format!("{}/{}/{}", self.root, table.namespace, table.name);
        if found.input.location() != Some(ours.as_str()) {
            return Err(IcebergSinkError::Layout {
                table: table.to_string(),
                message: format!(
                    "the Glue table {} is at {:?}, not at {ours}: another table has this name \
                     (drop it, or map the schema to another database in glue.databases)",
                    found.input.name,
                    found.input.location().unwrap_or("no location"),
                ),
            });
        }
        Ok(Some(Pointer {
            location: self.metadata_location_of(table, &found)?,
            metadata: None,
        }))
    }

    /// Writes the first metadata file and registers the table (creating its database). Another
    /// writer registering it first is not an error.
    pub async fn create(
        &self,
        io: &FileIO,
        table: &TableId,
        metadata: TableMetadata,
    ) -> Result<()> {
        let name = table.to_string();
        let location = write_first_metadata(io, &name, &metadata).await?;
        let (database, _) = self.config.names_of(table);
        self.client.ensure_database(&database).await?;
        let input = self.table_input(table, &location, None, &metadata)?;
        if !self.client.create_table(&database, &input).await? {
            // Someone else's registration won, unless a retried request of ours found its own
            // first attempt: only a file nothing references is deleted.
            let now = self.get(table).await?;
            let ours =
                now.is_some_and(|t| t.input.parameters.get(METADATA_LOCATION) == Some(&location));
            if !ours {
                discard(&name, io, Some(&location), None).await;
            }
        }
        Ok(())
    }

    /// Makes `next` the table's metadata if Glue still points at `base_location`.
    pub async fn commit(
        &self,
        io: &FileIO,
        table: &TableId,
        base_location: &str,
        next: &NextMetadata,
    ) -> Result<Committed> {
        let name = table.to_string();
        let location = write_next_metadata(io, &name, base_location, next).await?;
        let committed = Committed {
            location: location.clone(),
            metadata: next.metadata.clone(),
        };
        let conflict = || IcebergSinkError::CommitConflict {
            table: name.clone(),
            expected: base_location.to_string(),
        };
        let current = self.get(table).await?.ok_or_else(conflict)?;
        if self.metadata_location_of(table, &current)? != base_location {
            discard(&name, io, Some(&location), next.snapshot.as_ref()).await;
            return Err(conflict());
        }
        let mut input = self.table_input(table, &location, Some(base_location), &next.metadata)?;
        // Parameters others keep on the table (Athena, Lake Formation, users) stay; ours win.
        for (k, v) in current.input.parameters {
            input.parameters.entry(k).or_insert(v);
        }
        let (database, _) = self.config.names_of(table);
        let answer = self
            .client
            .update_table(&database, &input, current.version_id.as_deref(), true)
            .await;
        if let Ok(true) = answer {
            return Ok(committed);
        }
        // Refused, or no clear answer: the table tells whether the swap landed (a retried
        // request may have found its own first attempt, and others may have built on it).
        tracing::info!(table = %name, "Glue swap refused or unanswered; reading the table again");
        if let Some(landed) = self.landed_at(io, table, &location, next).await? {
            return Ok(landed);
        }
        match answer {
            Ok(_) => {
                discard(&name, io, Some(&location), next.snapshot.as_ref()).await;
                Err(conflict())
            }
            // A clear refusal (access, validation, limits): nothing landed.
            Err(e) if !outcome_unknown(&e) => {
                discard(&name, io, Some(&location), next.snapshot.as_ref()).await;
                Err(e.into())
            }
            // Kept: a request still in flight may land it.
            Err(e) => Err(IcebergSinkError::CommitUnknown {
                table: name,
                message: e.to_string(),
            }),
        }
    }

    /// The table's commit if it shows `next` landed: Glue at `location`, or at later metadata
    /// that holds `next`'s snapshot.
    async fn landed_at(
        &self,
        io: &FileIO,
        table: &TableId,
        location: &str,
        next: &NextMetadata,
    ) -> Result<Option<Committed>> {
        let Some(found) = self.get(table).await? else {
            return Ok(None);
        };
        let now = self.metadata_location_of(table, &found)?;
        if now == location {
            return Ok(Some(Committed {
                location: now,
                metadata: next.metadata.clone(),
            }));
        }
        let metadata = TableMetadata::read_from(io, &now)
            .await
            .map_err(iceberg_err(&table.to_string(), format!("reading {now}")))?;
        Ok(landed(&metadata, next).then_some(Committed {
            location: now,
            metadata,
        }))
    }

    async fn get(&self, table: &TableId) -> Result<Option<GlueTable>> {
        let (database, name) = self.config.names_of(table);
        Ok(self.client.get_table(&database, &name).await?)
    }

    fn metadata_location_of(&self, table: &TableId, found: &GlueTable) -> Result<String> {
        let params = &found.input.parameters;
        let is_iceberg = params
            .get("table_type")
            .is_some_and(|t| t.eq_ignore_ascii_case("ICEBERG"));
        match params.get(METADATA_LOCATION) {
            Some(location) if is_iceberg => Ok(location.clone()),
            _ => Err(IcebergSinkError::Layout {
                table: table.to_string(),
                message: format!(
                    "the Glue table {} at {} is not an Iceberg table (no table_type=ICEBERG \
                     and metadata_location parameters)",
                    found.input.name,
                    self.client.endpoint()
                ),
            }),
        }
    }

    /// The Glue definition of the table at `metadata_location`.
    fn table_input(
        &self,
        table: &TableId,
        metadata_location: &str,
        previous: Option<&str>,
        metadata: &TableMetadata,
    ) -> Result<TableInput> {
        let name = table.to_string();
        let arrow = schema_to_arrow_schema(metadata.current_schema())
            .map_err(iceberg_err(&name, "converting the schema for Glue"))?;
        let columns = columns_of(&arrow, &[], |f| {
            let mut p = BTreeMap::from([
                ("iceberg.field.current".to_string(), "true".to_string()),
                (
                    "iceberg.field.optional".to_string(),
                    f.is_nullable().to_string(),
                ),
            ]);
            if let Some(id) = f.metadata().get("PARQUET:field_id") {
                p.insert("iceberg.field.id".into(), id.clone());
            }
            p
        })
        .map_err(|(column, message)| IcebergSinkError::Schema {
            table: name.clone(),
            column,
            message,
        })?;
        let mut parameters = BTreeMap::from([
            ("table_type".to_string(), "ICEBERG".to_string()),
            (METADATA_LOCATION.to_string(), metadata_location.to_string()),
        ]);
        if let Some(previous) = previous {
            parameters.insert(PREVIOUS_METADATA_LOCATION.into(), previous.to_string());
        }
        Ok(TableInput {
            name: self.config.names_of(table).1,
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters,
            storage_descriptor: Some(StorageDescriptor {
                columns,
                location: Some(metadata.location().to_string()),
                ..StorageDescriptor::default()
            }),
            ..TableInput::default()
        })
    }
}
