//! Keeping the Glue definitions of a warehouse's tables in step with the tables, for formats
//! whose own metadata is the truth (Delta, Hudi): registered when a sink first sees its table
//! and after commits that change what is registered (columns, partitions, parameters), one
//! `GetTable` per table per process otherwise.

use std::collections::{HashMap, HashSet};

use tokio::sync::{Mutex, OnceCell};

use super::{GlueClient, GlueConfig, PartitionInput, Registered, TableInput};
use crate::error::Result;
use crate::model::TableId;

/// The Glue registrations of one warehouse's tables, shared by its sinks.
#[derive(Debug)]
pub struct GlueRegistry {
    config: GlueConfig,
    client: OnceCell<GlueClient>,
    /// What each table is registered as, as far as this process knows.
    tables: Mutex<HashMap<TableId, TableInput>>,
    /// Partitions (values) each table has registered, as far as this process knows.
    partitions: Mutex<HashMap<TableId, HashSet<Vec<String>>>>,
}

impl GlueRegistry {
    /// Registrations in the catalog `config` names (connected on first use).
    pub fn new(config: GlueConfig) -> Self {
        GlueRegistry {
            config,
            client: OnceCell::new(),
            tables: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &GlueConfig {
        &self.config
    }

    async fn client(&self) -> Result<&GlueClient> {
        self.client
            .get_or_try_init(|| GlueClient::connect(&self.config))
            .await
    }

    /// Makes `table` registered as `input` (named by [`GlueConfig::names_of`]) with its
    /// `partitions`. Nothing is called when this process registered the same definition and
    /// all those partitions already; otherwise the table is created or updated, with
    /// `volatile` parameters (such as the last commit synced) added, and the new partitions are
    /// registered.
    pub async fn sync(
        &self,
        table: &TableId,
        mut input: TableInput,
        volatile: &[(&str, &str)],
        partitions: Vec<PartitionInput>,
    ) -> Result<()> {
        let (database, name) = self.config.names_of(table);
        input.name = name.clone();
        let mut tables = self.tables.lock().await;
        let mut known = self.partitions.lock().await;
        let known = known.entry(table.clone()).or_default();
        let new: Vec<PartitionInput> = (partitions.into_iter())
            .filter(|p| !known.contains(&p.values))
            .collect();
        if tables.get(table) == Some(&input) && new.is_empty() {
            return Ok(());
        }
        let mut registered = input.clone();
        for (k, v) in volatile {
            registered.parameters.insert(k.to_string(), v.to_string());
        }
        let client = self.client().await?;
        let outcome = client.register(&database, &registered).await?;
        if outcome != Registered::Unchanged {
            tracing::info!(%table, database, glue_table = name, ?outcome, "registered in Glue");
        }
        tables.insert(table.clone(), input);
        if !new.is_empty() {
            client.create_partitions(&database, &name, &new).await?;
            tracing::info!(%table, database, partitions = new.len(), "partitions registered in Glue");
            known.extend(new.into_iter().map(|p| p.values));
        }
        Ok(())
    }
}
