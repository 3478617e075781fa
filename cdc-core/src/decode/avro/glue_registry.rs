//! The AWS Glue Schema Registry (Debezium on MSK with AWS's `AWSKafkaAvroConverter`): records
//! framed with the schema version's UUID, schemas fetched with `GetSchemaVersion` through the
//! Glue client (the AWS credential chain, SigV4, retries on throttling and 5xx).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::OnceCell;

use super::blocking::{BlockingRegistry, Fetch};
use super::{RegistryError, SchemaId, SchemaRegistry};
use crate::glue::{GlueClient, GlueConfig};

/// A client of the Glue Schema Registry of the account and region `GlueConfig` names.
pub struct GlueSchemaRegistry(BlockingRegistry);

impl fmt::Debug for GlueSchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl GlueSchemaRegistry {
    /// A client with `config`'s region and endpoint (connected on first use).
    pub fn new(config: GlueConfig) -> Result<Self, RegistryError> {
        let fetcher = GlueFetcher {
            config,
            client: OnceCell::new(),
        };
        BlockingRegistry::start("the AWS Glue Schema Registry".into(), fetcher)
            .map(GlueSchemaRegistry)
    }
}

impl SchemaRegistry for GlueSchemaRegistry {
    fn schema(&self, id: SchemaId) -> Result<String, RegistryError> {
        self.0.schema(id)
    }
}

struct GlueFetcher {
    config: GlueConfig,
    client: OnceCell<GlueClient>,
}

impl Fetch for GlueFetcher {
    fn fetch(
        &self,
        id: SchemaId,
    ) -> Pin<Box<dyn Future<Output = Result<String, RegistryError>> + Send + '_>> {
        Box::pin(async move {
            let Some(version) = id.glue_version_id() else {
                return Err(RegistryError(format!(
                    "a record framed for a Confluent registry ({id}), but the registry is AWS Glue's"
                )));
            };
            let client = self
                .client
                .get_or_try_init(|| GlueClient::connect(&self.config))
                .await
                .map_err(|e| RegistryError(e.to_string()))?;
            let (format, definition) = client
                .get_schema_version(&version)
                .await
                .map_err(|e| RegistryError(e.to_string()))?;
            match format.as_str() {
                "AVRO" => Ok(definition),
                other => Err(RegistryError(format!("{id} is a {other} schema, not Avro"))),
            }
        })
    }
}
