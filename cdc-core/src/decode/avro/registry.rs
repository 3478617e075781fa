//! A client of Confluent Schema Registry's REST API, for records framed by Confluent's
//! `AvroConverter`: schemas by id (`GET /schemas/ids/{id}`), and every version of a subject
//! (`GET /subjects/{subject}/versions[/{version}]`) to load a topic's schemas ahead of its
//! records. Basic auth (`USER:PASSWORD`, as Confluent's
//! `basic.auth.user.info`) or a bearer token; timeouts; retries with backoff on connection
//! errors, timeouts, 429 and 5xx; every schema fetched once per process.
//! Callable from the synchronous decoder through [`BlockingRegistry`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::blocking::{BlockingRegistry, Fetch};
use super::{RegistryError, SchemaId, SchemaRegistry};
use crate::secrets::Secret;

/// Where the registry is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Base URL (`https://registry:8081`), without credentials.
    pub url: String,
    /// `USER:PASSWORD` for basic auth.
    pub user_info: Option<Secret>,
    /// A bearer token.
    pub bearer_token: Option<Secret>,
    /// Per request.
    pub timeout: Duration,
    /// Tries per schema before giving up (at least 1).
    pub attempts: u32,
}

impl RegistrySettings {
    /// Settings for `url`, credentials from `CDC_LAKE_REGISTRY_USER_INFO` (`USER:PASSWORD`) or
    /// `CDC_LAKE_REGISTRY_TOKEN` when set.
    pub fn from_env(url: impl Into<String>) -> Self {
        let env = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        RegistrySettings {
            url: url.into(),
            user_info: env("CDC_LAKE_REGISTRY_USER_INFO"),
            bearer_token: env("CDC_LAKE_REGISTRY_TOKEN"),
            timeout: Duration::from_secs(10),
            attempts: 4,
        }
    }
}

/// A Confluent Schema Registry (or a compatible one: Redpanda, Apicurio's ccompat API, Karapace).
pub struct ConfluentRegistry(BlockingRegistry);

impl fmt::Debug for ConfluentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ConfluentRegistry {
    /// A client of the registry `settings` describe; starts its HTTP thread.
    pub fn new(settings: RegistrySettings) -> Result<Self, RegistryError> {
        let url = base_url(&settings.url)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| RegistryError(format!("schema registry client: {e}")))?;
        let fetcher = Fetcher {
            http,
            url: url.clone(),
            user_info: settings.user_info.clone(),
            bearer_token: settings.bearer_token.clone(),
            attempts: settings.attempts.max(1),
        };
        let name = format!("the schema registry at {url}");
        BlockingRegistry::start(name, fetcher).map(ConfluentRegistry)
    }
}

impl SchemaRegistry for ConfluentRegistry {
    fn schema(&self, id: SchemaId) -> Result<String, RegistryError> {
        self.0.schema(id)
    }

    fn preload(&self, subjects: &[String]) -> Result<usize, RegistryError> {
        self.0.preload(subjects)
    }
}

/// The HTTP side, on the client's own thread.
struct Fetcher {
    http: reqwest::Client,
    url: String,
    user_info: Option<Secret>,
    bearer_token: Option<Secret>,
    attempts: u32,
}

/// One try's failure: worth another try or not.
enum Failure {
    Retry(String),
    Final(String),
}

impl Fetch for Fetcher {
    fn fetch(
        &self,
        id: SchemaId,
    ) -> Pin<Box<dyn Future<Output = Result<String, RegistryError>> + Send + '_>> {
        Box::pin(async move {
            let SchemaId::Confluent(id) = id else {
                return Err(RegistryError(format!(
                    "a record framed for the AWS Glue Schema Registry ({id}), but the registry is \
                     a Confluent one"
                )));
            };
            self.fetch_id(id).await
        })
    }

    fn subjects(
        &self,
        subjects: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<(SchemaId, String)>, RegistryError>> + Send + '_>>
    {
        Box::pin(async move {
            let mut schemas = Vec::new();
            for subject in subjects {
                schemas.extend(self.subject_schemas(&subject).await?);
            }
            Ok(schemas)
        })
    }
}

/// A registry answer holding a schema (`/schemas/ids/{id}`, `/subjects/{s}/versions/{v}`).
#[derive(serde::Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    /// Given by the subject-version answer only.
    id: Option<u32>,
}

impl Fetcher {
    async fn fetch_id(&self, id: u32) -> Result<String, RegistryError> {
        let answer: SchemaAnswer = self
            .get_json(&format!("/schemas/ids/{id}"))
            .await?
            .map_err(RegistryError)?;
        avro_text(answer, &format!("schema id {id}"))
    }

    /// Every version registered under `subject` (TopicNameStrategy: `<topic>-value`,
    /// `<topic>-key`); none when the registry has no such subject.
    async fn subject_schemas(
        &self,
        subject: &str,
    ) -> Result<Vec<(SchemaId, String)>, RegistryError> {
        let subject_path = format!(
            "/subjects/{}/versions",
            url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
        );
        let Ok(versions) = self.get_json::<Vec<i64>>(&subject_path).await? else {
            return Ok(Vec::new());
        };
        let mut schemas = Vec::new();
        for version in versions {
            let path = format!("{subject_path}/{version}");
            // A version deleted since the listing: gone, nothing to hold.
            let Ok(answer) = self.get_json::<SchemaAnswer>(&path).await? else {
                continue;
            };
            let Some(id) = answer.id else {
                return Err(RegistryError(format!(
                    "GET {}{path}: no schema id in the answer",
                    self.url
                )));
            };
            // Other schema types under an Avro topic's subject are not ours to decode.
            if let Ok(text) = avro_text(answer, &format!("schema id {id}")) {
                schemas.push((SchemaId::Confluent(id), text));
            }
        }
        Ok(schemas)
    }

    /// GET `path` as JSON, or why the registry has nothing there (a 404, as text). Retried
    /// with backoff on connection errors, timeouts, 429 and 5xx.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Result<T, String>, RegistryError> {
        let url = format!("{}{path}", self.url);
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            match self.try_get(&url).await {
                Ok(Err(not_found)) => return Ok(Err(not_found)),
                Ok(Ok(body)) => {
                    return serde_json::from_str(&body).map(Ok).map_err(|e| {
                        RegistryError(format!("GET {url}: not the answer expected: {e}"))
                    })
                }
                Err(Failure::Final(e)) => return Err(RegistryError(e)),
                Err(Failure::Retry(e)) => {
                    tracing::warn!(registry = %self.url, path, attempt, error = %e, "schema registry call failed; retrying");
                    last = e;
                }
            }
        }
        Err(RegistryError(format!(
            "{last} (gave up after {} tries)",
            self.attempts
        )))
    }

    /// One GET: the body of a success, or the text of a 404; else why not.
    async fn try_get(&self, url: &str) -> Result<Result<String, String>, Failure> {
        let mut request = self.http.get(url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(user_info) = &self.user_info {
            let (user, password) = user_info
                .expose()
                .split_once(':')
                .unwrap_or((user_info.expose(), ""));
            request = request.basic_auth(user, Some(password));
        } else if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        // Errors name the URL only: reqwest's own text can carry the request's URL, never a
        // credential (those travel in headers).
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("GET {url}: {}", e.without_url())))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| Failure::Retry(format!("GET {url}: {}", e.without_url())))?;
        if status.is_success() {
            return Ok(Ok(body));
        }
        let text = format!("GET {url}: {status}{}", registry_message(&body));
        match status.as_u16() {
            404 => Ok(Err(text)),
            429 | 500..=599 => Err(Failure::Retry(text)),
            _ => Err(Failure::Final(text)),
        }
    }
}

/// The Avro schema text of an answer (other schema types are refused).
fn avro_text(answer: SchemaAnswer, what: &str) -> Result<String, RegistryError> {
    match answer.schema_type.as_deref() {
        None | Some("AVRO") => Ok(answer.schema),
        Some(other) => Err(RegistryError(format!(
            "{what} is a {other} schema, not Avro"
        ))),
    }
}

/// The registry's `{"error_code", "message"}` as `: message (code)`.
fn registry_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error_code: Option<i64>,
        message: Option<String>,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            error_code: Some(code),
            message: Some(message),
        }) => format!(": {message} ({code})"),
        _ => String::new(),
    }
}

/// The base URL, refused when it holds credentials (they would end up in configs and logs).
fn base_url(url: &str) -> Result<String, RegistryError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| RegistryError(format!("schema registry URL is not a URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(RegistryError(
            "the schema registry URL holds credentials: give them in CDC_LAKE_REGISTRY_USER_INFO \
             (USER:PASSWORD) or CDC_LAKE_REGISTRY_TOKEN instead"
                .into(),
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn credentials_stay_out_of_urls_and_messages() {
        assert_eq!(
            base_url("https://registry:8081/").unwrap(),
            "https://registry:8081"
        );
        let e = ConfluentRegistry::new(RegistrySettings::from_env("http://me:s3cret@127.0.0.1:9/"))
            .unwrap_err();
        assert!(!e.0.contains("s3cret"), "{e}");
        let settings = RegistrySettings {
            user_info: Some(Secret::new("me:s3cret")),
            ..RegistrySettings::from_env("http://127.0.0.1:9")
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
        let registry = ConfluentRegistry::new(settings).unwrap();
        assert!(!format!("{registry:?}").contains("s3cret"));
        assert!(base_url("not a url").is_err());
        assert_eq!(
            registry_message(r#"{"error_code":40403,"message":"Schema not found"}"#),
            ": Schema not found (40403)"
        );
    }

    #[test]
    fn the_arc_shares_one_client() {
        let registry: Arc<dyn SchemaRegistry> = Arc::new(
            ConfluentRegistry::new(RegistrySettings {
                attempts: 1,
                timeout: Duration::from_millis(200),
                ..RegistrySettings::from_env("http://127.0.0.1:9")
            })
            .unwrap(),
        );
        // Nothing listens on port 9: a clear error, not a hang or a panic.
        let e = registry.schema(SchemaId::Confluent(1)).unwrap_err().0;
        assert!(e.contains("127.0.0.1:9/schemas/ids/1"), "{e}");
    }
}
