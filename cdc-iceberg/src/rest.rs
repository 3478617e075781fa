//! A client of the Iceberg REST catalog API: the second catalog beside the embedded SQLite one.
//!
//! A REST catalog owns the metadata files: a commit sends the table's *requirements* (what the
//! writer read: table uuid, the `main` ref's snapshot, the schema it evolved) and *updates*
//! (add-schema, set-properties, add-snapshot, set-snapshot-ref, remove-snapshots), and the
//! catalog applies them atomically, or refuses with 409 when another writer changed the table.
//! Data, delete, manifest and manifest-list files are written by the sink itself under the
//! table location the catalog reports.
//!
//! Answers whose outcome is unknown (5xx, a connection lost after the request was sent) are
//! reported as [`RestCommit::Unknown`]; the caller reads the table again to learn whether the
//! commit landed. Nothing that was sent is deleted on an unknown outcome.
//!
//! Authentication: a bearer token from the environment, or OAuth2 client credentials from the
//! environment exchanged for one (`grant_type=client_credentials`). Neither ever reaches a log
//! line or an error.

use std::collections::HashMap;
use std::time::Duration;

use iceberg::spec::{PartitionSpec, Schema, SortOrder, TableMetadata};
use iceberg::{TableRequirement, TableUpdate};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::RwLock;

use crate::config::RestCatalogConfig;
use crate::error::{IcebergSinkError, Result};

/// A table as the catalog answers for it.
#[derive(Debug, Clone)]
pub struct RestTable {
    /// The metadata file the catalog points at.
    pub metadata_location: String,
    /// That file's contents.
    pub metadata: TableMetadata,
}

/// How a commit ended.
#[derive(Debug)]
pub enum RestCommit {
    /// The catalog answered 2xx, with the table after the commit (`None` when the answer could
    /// not be read: the caller reads the table to confirm).
    Committed(Option<Box<RestTable>>),
    /// The catalog refused it because a requirement no longer holds (409): definitive.
    Conflict(String),
    /// The outcome is unknown (5xx or a lost connection).
    Unknown(String),
}

#[derive(Deserialize)]
struct TableAnswer {
    #[serde(rename = "metadata-location")]
    metadata_location: Option<String>,
    metadata: TableMetadata,
}

#[derive(Deserialize)]
struct ConfigAnswer {
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    overrides: HashMap<String, String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// An Iceberg REST catalog.
pub struct RestCatalog {
    uri: String,
    /// `<uri>/v1/` or `<uri>/v1/<prefix>/`.
    base: String,
    http: reqwest::Client,
    credential_env: String,
    oauth2_uri: String,
    scope: String,
    /// Namespace levels before each table's namespace.
    parent_namespace: Vec<String>,
    /// The bearer token sent (never logged).
    token: RwLock<Option<String>>,
}

impl std::fmt::Debug for RestCatalog {
    // Not derived: the token must never be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestCatalog")
            .field("uri", &self.uri)
            .field("base", &self.base)
            .field("parent_namespace", &self.parent_namespace)
            .finish_non_exhaustive()
    }
}

/// A catalog answer read as (status, body).
type Answer = (StatusCode, String);

impl RestCatalog {
    /// Connects: reads the catalog's configuration (its `prefix`) and gets a token if
    /// credentials are configured.
    pub async fn connect(config: &RestCatalogConfig) -> Result<Self> {
        config.validate().map_err(|e| IcebergSinkError::Rest {
            catalog: config.uri.clone(),
            context: "checking the settings".into(),
            status: 0,
            message: e,
        })?;
        let uri = config.uri.trim_end_matches('/').to_string();
        // No redirects: a 301/302/303 would turn a commit POST into a GET whose 200 looks like
        // success, and a 307/308 would resend credentials elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()
            .map_err(|e| IcebergSinkError::Catalog {
                catalog: uri.clone(),
                context: "building the HTTP client".into(),
                source: Box::new(e),
            })?;
        let token = match &config.token {
            Some(token) => Some(token.expose().to_string()),
            None => std::env::var(&config.token_env)
                .ok()
                .filter(|t| !t.is_empty()),
        };
        let mut catalog = RestCatalog {
            base: format!("{uri}/v1/"),
            oauth2_uri: config
                .oauth2_server_uri
                .clone()
                .unwrap_or_else(|| format!("{uri}/v1/oauth/tokens")),
            uri,
            http,
            credential_env: config.credential_env.clone(),
            scope: config.scope.clone(),
            parent_namespace: config.parent_namespace.clone(),
            token: RwLock::new(token),
        };
        if catalog.token.read().await.is_none() && catalog.credential().is_some() {
            catalog.refresh_token().await?;
        }
        let mut path = "config".to_string();
        if let Some(warehouse) = &config.warehouse {
            path = format!(
                "config?warehouse={}",
                url::form_urlencoded::byte_serialize(warehouse.as_bytes()).collect::<String>()
            );
        }
        let (status, body) = catalog
            .send(
                Method::GET,
                &path,
                None,
                "reading the catalog configuration",
            )
            .await?;
        if !status.is_success() {
            return Err(catalog.refused("reading the catalog configuration", status, &body));
        }
        let answer: ConfigAnswer =
            serde_json::from_str(&body).map_err(|e| IcebergSinkError::Catalog {
                catalog: catalog.uri.clone(),
                context: "reading the catalog configuration".into(),
                source: Box::new(e),
            })?;
        // The catalog's overrides win over the client's settings, its defaults only fill gaps.
        let prefix = answer
            .overrides
            .get("prefix")
            .cloned()
            .or_else(|| config.prefix.clone())
            .or_else(|| answer.defaults.get("prefix").cloned());
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            catalog.base = format!("{}/v1/{}/", catalog.uri, prefix.trim_matches('/'));
        }
        Ok(catalog)
    }

    /// The catalog's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `client_id:client_secret` from the environment.
    fn credential(&self) -> Option<(String, String)> {
        let value = std::env::var(&self.credential_env).ok()?;
        let (id, secret) = value.split_once(':').unwrap_or(("", value.as_str()));
        (!secret.is_empty()).then(|| (id.to_string(), secret.to_string()))
    }

    /// Exchanges the client credentials for a new token.
    async fn refresh_token(&self) -> Result<()> {
        let context = "getting an OAuth2 token";
        let Some((id, secret)) = self.credential() else {
            return Ok(());
        };
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_secret", secret),
            ("scope", self.scope.clone()),
        ];
        if !id.is_empty() {
            form.push(("client_id", id));
        }
        let answer = self
            .http
            .post(&self.oauth2_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport(context, e))?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| self.transport(context, e))?;
        if !status.is_success() {
            return Err(self.refused(context, status, &body));
        }
        let token: TokenAnswer =
            serde_json::from_str(&body).map_err(|e| IcebergSinkError::Catalog {
                catalog: self.uri.clone(),
                context: context.into(),
                // The body holds the token: never quote it.
                source: format!("the token answer is not OAuth2 JSON ({:?})", e.classify()).into(),
            })?;
        *self.token.write().await = Some(token.access_token);
        Ok(())
    }

    fn transport(&self, context: &str, e: reqwest::Error) -> IcebergSinkError {
        IcebergSinkError::Catalog {
            catalog: self.uri.clone(),
            context: context.to_string(),
            // Without the URL: only the catalog's, already named, could be in it.
            source: Box::new(e.without_url()),
        }
    }

    /// An error for a refusal: the REST error model's type and message when the body has them.
    fn refused(&self, context: &str, status: StatusCode, body: &str) -> IcebergSinkError {
        IcebergSinkError::Rest {
            catalog: self.uri.clone(),
            context: context.to_string(),
            status: status.as_u16(),
            message: error_message(body),
        }
    }

    /// Sends one request (again once with a new token when the token was refused).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        context: &str,
    ) -> Result<Answer> {
        let mut refreshed = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = self.token.read().await.as_deref() {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = request
                .send()
                .await
                .map_err(|e| self.transport(context, e))?;
            let status = answer.status();
            let text = answer
                .text()
                .await
                .map_err(|e| self.transport(context, e))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.credential().is_some() {
                refreshed = true;
                self.refresh_token().await?;
                continue;
            }
            return Ok((status, text));
        }
    }

    /// The namespace levels of a table's (source) namespace.
    fn levels(&self, namespace: &str) -> Vec<String> {
        let mut levels = self.parent_namespace.clone();
        levels.push(namespace.to_string());
        levels
    }

    /// A namespace as one URL path segment: levels joined by the unit separator (0x1F).
    fn namespace_segment(levels: &[String]) -> String {
        levels
            .iter()
            .map(|l| segment(l))
            .collect::<Vec<_>>()
            .join("%1F")
    }

    fn table_path(&self, namespace: &str, table: &str) -> String {
        format!(
            "namespaces/{}/tables/{}",
            Self::namespace_segment(&self.levels(namespace)),
            segment(table)
        )
    }

    fn parse_table(&self, context: &str, body: &str) -> Result<RestTable> {
        let answer: TableAnswer =
            serde_json::from_str(body).map_err(|e| IcebergSinkError::Catalog {
                catalog: self.uri.clone(),
                context: format!("{context}: reading the answer"),
                source: Box::new(e),
            })?;
        let metadata_location = answer
            .metadata_location
            .ok_or_else(|| IcebergSinkError::Rest {
                catalog: self.uri.clone(),
                context: context.to_string(),
                status: 200,
                message: "the answer has no metadata-location (a staged table?)".into(),
            })?;
        Ok(RestTable {
            metadata_location,
            metadata: answer.metadata,
        })
    }

    /// The table, `None` when the catalog has no such table (or namespace).
    pub async fn load_table(&self, namespace: &str, table: &str) -> Result<Option<RestTable>> {
        let context = format!("loading {namespace}.{table}");
        let (status, body) = self
            .send(
                Method::GET,
                &self.table_path(namespace, table),
                None,
                &context,
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => self.parse_table(&context, &body).map(Some),
            s => Err(self.refused(&context, s, &body)),
        }
    }

    /// Creates the namespace, and each level above it, when missing.
    async fn create_namespace(&self, namespace: &str) -> Result<()> {
        let levels = self.levels(namespace);
        for depth in 1..=levels.len() {
            let level = &levels[..depth];
            let context = format!("creating namespace {}", level.join("."));
            let body = json!({ "namespace": level, "properties": {} });
            let (status, text) = self
                .send(Method::POST, "namespaces", Some(&body), &context)
                .await?;
            if !(status.is_success() || status == StatusCode::CONFLICT) {
                return Err(self.refused(&context, status, &text));
            }
        }
        Ok(())
    }

    /// Creates a table (and its namespace when missing) with the schema, partition spec, sort
    /// order and properties of `metadata`, as format version 2, at the location the catalog
    /// picks. `false` when the table already exists (another writer created it first).
    pub async fn create_table(
        &self,
        namespace: &str,
        table: &str,
        schema: &Schema,
        spec: &PartitionSpec,
        sort_order: &SortOrder,
        properties: &HashMap<String, String>,
    ) -> Result<bool> {
        let context = format!("creating {namespace}.{table}");
        let mut properties = properties.clone();
        properties.insert("format-version".into(), "2".into());
        let body = json!({
            "name": table,
            "schema": schema,
            "partition-spec": spec,
            "write-order": sort_order,
            "properties": properties,
            "stage-create": false,
        });
        let path = format!(
            "namespaces/{}/tables",
            Self::namespace_segment(&self.levels(namespace))
        );
        let mut created_namespace = false;
        loop {
            let (status, text) = self
                .send(Method::POST, &path, Some(&body), &context)
                .await?;
            match status {
                StatusCode::CONFLICT => return Ok(false),
                s if s.is_success() => return Ok(true),
                // Namespaces are created only when missing: creating an existing one can be
                // refused (403) by a catalog whose writers may create tables but not namespaces.
                StatusCode::NOT_FOUND if !created_namespace => {
                    self.create_namespace(namespace).await?;
                    created_namespace = true;
                }
                s => return Err(self.refused(&context, s, &text)),
            }
        }
    }

    /// Commits `updates` if `requirements` still hold.
    pub async fn commit(
        &self,
        namespace: &str,
        table: &str,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<RestCommit> {
        let context = format!("committing {namespace}.{table}");
        let body = json!({
            "identifier": { "namespace": self.levels(namespace), "name": table },
            "requirements": requirements,
            "updates": updates,
        });
        let answer = self
            .send(
                Method::POST,
                &self.table_path(namespace, table),
                Some(&body),
                &context,
            )
            .await;
        let (status, text) = match answer {
            Ok(answer) => answer,
            // The request may have reached the catalog before the connection broke.
            Err(IcebergSinkError::Catalog { source, .. }) => {
                return Ok(RestCommit::Unknown(format!("no answer: {source}")))
            }
            Err(e) => return Err(e),
        };
        match status {
            // Committed; the answer only confirms it (the caller checks it shows the commit).
            s if s.is_success() => Ok(RestCommit::Committed(
                self.parse_table(&context, &text).ok().map(Box::new),
            )),
            StatusCode::CONFLICT => Ok(RestCommit::Conflict(error_message(&text))),
            s if s.is_server_error() => Ok(RestCommit::Unknown(format!(
                "HTTP {}: {}",
                s.as_u16(),
                error_message(&text)
            ))),
            s => Err(self.refused(&context, s, &text)),
        }
    }
}

/// A (one-level) namespace or a table name as one URL path segment.
fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        // form encoding writes spaces as `+`; a path segment needs `%20`.
        .replace('+', "%20")
}

/// The `type: message` of a REST error body, or the body's first 300 characters.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
        if let Some(code) = error.as_str() {
            // An OAuth2 error answer: `error` and `error_description`.
            let description = parsed
                .as_ref()
                .and_then(|v| v.get("error_description"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return format!("{code}: {description}")
                .trim_end_matches(": ")
                .to_string();
        }
        let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return format!("{kind}: {message}")
            .trim_start_matches(": ")
            .to_string();
    }
    body.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_path_segments() {
        assert_eq!(segment("public"), "public");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("db.schema"), "db.schema");
        let levels = ["bronze".to_string(), "my schema".to_string()];
        assert_eq!(
            RestCatalog::namespace_segment(&levels),
            "bronze%1Fmy%20schema"
        );
    }

    #[test]
    fn error_bodies_give_type_and_message() {
        let body = r#"{"error":{"message":"Requirement failed: branch main has changed","type":"CommitFailedException","code":409}}"#;
        assert_eq!(
            error_message(body),
            "CommitFailedException: Requirement failed: branch main has changed"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(&"x".repeat(1000)).len(), 300);
    }
}
