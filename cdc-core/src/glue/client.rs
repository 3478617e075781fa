//! A client for the Glue calls the adapters make: AWS JSON 1.1 over HTTPS, signed with SigV4,
//! credentials from the AWS SDKs' default chain.
//!
//! Why not `aws-sdk-glue`: it is generated code for ~250 operations that takes minutes to build
//! on two cores, where we need six; the credential chain and the signer are the SDK's own
//! crates (already built for delta-rs's S3 support).

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{GlueConfig, GlueTable, PartitionInput, TableInput};
use crate::error::{Error, Result};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Calls whose error code says the same call may succeed later.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "InternalServiceException",
    "OperationTimeoutException",
    NETWORK,
    SERVER_ERROR,
];

/// The code of a call that got no answer.
const NETWORK: &str = "Network";
/// The code of a call answered with an HTTP 5xx.
const SERVER_ERROR: &str = "HTTP 5xx";

/// Whether a failed call may still have been applied (no answer, or a server error), as
/// opposed to a clear refusal.
pub fn outcome_unknown(e: &Error) -> bool {
    matches!(e, Error::Catalog { code, .. }
        if [NETWORK, SERVER_ERROR, "InternalServiceException", "OperationTimeoutException"]
            .contains(&code.as_str()))
}

/// What [`GlueClient::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The table was new.
    Created,
    /// The table was there and is now as asked.
    Updated,
    /// The table was already registered as asked.
    Unchanged,
}

/// A Glue Data Catalog client (one region, one catalog).
pub struct GlueClient {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    catalog_id: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
    max_attempts: usize,
}

impl std::fmt::Debug for GlueClient {
    /// Endpoint, region and catalog only: nothing of the credentials, not even the key id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("catalog_id", &self.catalog_id)
            .finish_non_exhaustive()
    }
}

impl GlueClient {
    /// A client for the catalog `config` names, its region and credentials from the AWS chain.
    pub async fn connect(config: &GlueConfig) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            Error::Config("the Glue catalog needs a region: set glue.region or AWS_REGION".into())
        })?;
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_GLUE").ok())
            .or_else(|| sdk.endpoint_url().map(str::to_string))
            .unwrap_or_else(|| format!("https://glue.{region}.amazonaws.com"));
        let url = url::Url::parse(&endpoint)
            .map_err(|e| Error::Config(format!("the Glue endpoint is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::Config(
                "the Glue endpoint must not carry credentials (AWS_ENDPOINT_URL*, glue.endpoint)"
                    .into(),
            ));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(Error::Config(format!(
                    "Glue endpoint `{endpoint}` has no host"
                )))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()
            .map_err(|e| Error::Config(format!("building the Glue HTTP client: {e}")))?;
        Ok(GlueClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host,
            region,
            catalog_id: config.catalog_id.clone(),
            credentials: sdk.credentials_provider(),
            cached: Mutex::new(None),
            max_attempts: config.max_attempts,
        })
    }

    /// The endpoint calls go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The table `database.name`, `None` when Glue has no such table (or database).
    pub async fn get_table(&self, database: &str, name: &str) -> Result<Option<GlueTable>> {
        let body = self.with_catalog(json!({ "DatabaseName": database, "Name": name }));
        match self
            .call("GetTable", &format!("{database}.{name}"), body)
            .await
        {
            Ok(mut answer) => {
                let found = answer.get_mut("Table").map(Value::take).unwrap_or_default();
                let table = serde_json::from_value(found)
                    .map_err(|e| self.bad_answer("GetTable", database, name, e))?;
                Ok(Some(table))
            }
            Err(e) if code_is(&e, "EntityNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A schema version of the Glue Schema Registry: its data format (`AVRO`, ...) and its
    /// definition text.
    pub async fn get_schema_version(&self, version_id: &str) -> Result<(String, String)> {
        let body = json!({ "SchemaVersionId": version_id });
        let answer = self.call("GetSchemaVersion", version_id, body).await?;
        let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_string);
        match (field("DataFormat"), field("SchemaDefinition")) {
            (Some(format), Some(definition)) => Ok((format, definition)),
            _ => Err(self.error(
                "GetSchemaVersion",
                version_id,
                "BadAnswer",
                "no DataFormat or SchemaDefinition in the answer".into(),
            )),
        }
    }

    /// Creates `database` unless it exists.
    pub async fn ensure_database(&self, database: &str) -> Result<()> {
        let get = self.with_catalog(json!({ "Name": database }));
        match self.call("GetDatabase", database, get).await {
            Ok(_) => return Ok(()),
            Err(e) if code_is(&e, "EntityNotFoundException") => {}
            Err(e) => return Err(e),
        }
        let create = self.with_catalog(json!({ "DatabaseInput": {
            "Name": database,
            "Description": "Tables kept in sync by cdc-lake",
        }}));
        match self.call("CreateDatabase", database, create).await {
            Err(e) if !code_is(&e, "AlreadyExistsException") => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates the table; `false` when a table of that name exists already.
    pub async fn create_table(&self, database: &str, input: &TableInput) -> Result<bool> {
        let body = self.with_catalog(json!({ "DatabaseName": database, "TableInput": input }));
        match self
            .call("CreateTable", &format!("{database}.{}", input.name), body)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code_is(&e, "AlreadyExistsException") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the table's definition if it is still at `version_id` (when given); `false`
    /// when Glue refuses because someone else changed it first.
    /// With `skip_archive`, Glue keeps no copy of the old definition (each archived version
    /// counts against a per-table quota: pointer swaps of every commit must not).
    pub async fn update_table(
        &self,
        database: &str,
        input: &TableInput,
        version_id: Option<&str>,
        skip_archive: bool,
    ) -> Result<bool> {
        let mut body = self.with_catalog(json!({
            "DatabaseName": database, "TableInput": input, "SkipArchive": skip_archive,
        }));
        if let Some(version) = version_id {
            body["VersionId"] = json!(version);
        }
        match self
            .call("UpdateTable", &format!("{database}.{}", input.name), body)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code_is(&e, "ConcurrentModificationException") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Registers `partitions` of the table; partitions that exist already are left as they are.
    pub async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[PartitionInput],
    ) -> Result<()> {
        let name = format!("{database}.{table}");
        // Glue takes at most 100 partitions per call.
        for chunk in partitions.chunks(100) {
            let body = self.with_catalog(json!({
                "DatabaseName": database, "TableName": table, "PartitionInputList": chunk,
            }));
            let answer = self.call("BatchCreatePartition", &name, body).await?;
            let failed =
                answer["Errors"].as_array().into_iter().flatten().find(|e| {
                    e["ErrorDetail"]["ErrorCode"].as_str() != Some("AlreadyExistsException")
                });
            if let Some(failed) = failed {
                return Err(self.error(
                    "BatchCreatePartition",
                    &name,
                    failed["ErrorDetail"]["ErrorCode"]
                        .as_str()
                        .unwrap_or("Unknown"),
                    format!(
                        "partition {}: {}",
                        failed["PartitionValues"],
                        failed["ErrorDetail"]["ErrorMessage"]
                            .as_str()
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Makes the table `database.<input.name>` registered as `input`: creates the database and
    /// the table when missing, and updates a table that differs (guarded by its `VersionId`,
    /// read again on a lost race). A table registered at another location is someone else's:
    /// an error, never overwritten.
    pub async fn register(&self, database: &str, input: &TableInput) -> Result<Registered> {
        self.ensure_database(database).await?;
        let name = format!("{database}.{}", input.name);
        for _ in 0..self.max_attempts.max(3) {
            let Some(current) = self.get_table(database, &input.name).await? else {
                if self.create_table(database, input).await? {
                    return Ok(Registered::Created);
                }
                continue;
            };
            if current.input.location() != input.location() {
                return Err(self.error(
                    "register",
                    &name,
                    "LocationMismatch",
                    format!(
                        "the table is registered at {:?}, not at {:?}: another table has this \
                         name (drop it, or map the schema to another database in glue.databases)",
                        current.input.location().unwrap_or("no location"),
                        input.location().unwrap_or("no location"),
                    ),
                ));
            }
            if input.registers_same(&current.input) {
                return Ok(Registered::Unchanged);
            }
            // Keep parameters others added (statistics, owners' notes); ours win.
            let mut merged = input.clone();
            for (k, v) in current.input.parameters {
                merged.parameters.entry(k).or_insert(v);
            }
            if self
                .update_table(database, &merged, current.version_id.as_deref(), false)
                .await?
            {
                return Ok(Registered::Updated);
            }
        }
        Err(self.error(
            "register",
            &name,
            "ConcurrentModificationException",
            "other writers changed the table on every attempt".into(),
        ))
    }

    fn with_catalog(&self, mut body: Value) -> Value {
        if let Some(id) = &self.catalog_id {
            body["CatalogId"] = json!(id);
        }
        body
    }

    /// One Glue call, retried with backoff while its error is worth retrying.
    async fn call(&self, operation: &str, table: &str, body: Value) -> Result<Value> {
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let mut attempt = 1;
        loop {
            match self.call_once(operation, table, &body).await {
                Err(Error::Catalog { code, .. })
                    if attempt < self.max_attempts && RETRYABLE.contains(&code.as_str()) =>
                {
                    tracing::debug!(operation, table, code, attempt, "retrying a Glue call");
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, operation: &str, table: &str, body: &[u8]) -> Result<Value> {
        let target = format!("AWSGlue.{operation}");
        let credentials = self.current_credentials(operation, table).await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("glue")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.error(operation, table, "Signing", e.to_string()))?
            .into();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", self.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let url = format!("{}/", self.endpoint);
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| self.error(operation, table, "Signing", e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| self.error(operation, table, "Signing", e.to_string()))?
            .into_parts();
        let mut request = self
            .http
            .post(&url)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", &target)
            .body(body.to_vec());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.error(operation, table, NETWORK, e.without_url().to_string()))?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .map_err(|e| self.error(operation, table, NETWORK, e.without_url().to_string()))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let error_type = error_type
            .as_deref()
            .or_else(|| answer["__type"].as_str())
            .map(error_code);
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        // Any 5xx is worth retrying and leaves the call's outcome unknown, whatever its type.
        Err(match (status.is_server_error(), error_type) {
            (true, t) => {
                let message = format!("{}: {message}", t.unwrap_or("HTTP error"));
                self.error(operation, table, SERVER_ERROR, message)
            }
            (false, t) => self.error(operation, table, t.unwrap_or("Unknown"), message),
        })
    }

    /// Credentials from the chain, fetched again when they expire within five minutes.
    async fn current_credentials(&self, operation: &str, table: &str) -> Result<Credentials> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| match c.expiry() {
            Some(at) => at > SystemTime::now() + Duration::from_secs(300),
            None => true,
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let Some(provider) = &self.credentials else {
            return Err(self.error(
                operation,
                table,
                "NoCredentials",
                "no AWS credentials found (AWS_ACCESS_KEY_ID, profile, role)".into(),
            ));
        };
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| self.error(operation, table, "NoCredentials", e.to_string()))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    fn error(&self, operation: &str, table: &str, code: &str, message: String) -> Error {
        Error::Catalog {
            catalog: self.endpoint.clone(),
            table: table.to_string(),
            operation: operation.to_string(),
            code: code.to_string(),
            message,
        }
    }

    fn bad_answer(&self, operation: &str, db: &str, name: &str, e: serde_json::Error) -> Error {
        self.error(
            operation,
            &format!("{db}.{name}"),
            "BadAnswer",
            e.to_string(),
        )
    }
}

/// The bare error code of an AWS JSON error type (`com.amazonaws.glue#EntityNotFoundException`
/// or `EntityNotFoundException:http://...`).
fn error_code(error_type: &str) -> &str {
    let code = error_type.rsplit('#').next().unwrap_or(error_type);
    code.split(':').next().unwrap_or(code)
}

/// Whether `e` is a catalog error with code `code`.
pub(crate) fn code_is(e: &Error, code: &str) -> bool {
    matches!(e, Error::Catalog { code: c, .. } if c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_lose_their_namespace() {
        assert_eq!(
            error_code("com.amazonaws.glue#EntityNotFoundException"),
            "EntityNotFoundException"
        );
        assert_eq!(
            error_code("AlreadyExistsException:http://internal.amazon.com/"),
            "AlreadyExistsException"
        );
        assert_eq!(error_code("ThrottlingException"), "ThrottlingException");
    }
}
