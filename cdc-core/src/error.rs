//! The one error type of `cdc-core`.
//!
//! Every variant carries the context needed to find the bad input again: the table, the Kafka
//! coordinates (topic, partition, offset) of the record and, where it is known, the column.

use std::fmt;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a record came from: its Kafka coordinates.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct RecordLocation {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

/// Errors of `cdc-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record could not be decoded.
    #[error("cannot decode record {location}{}: {message}", field.as_ref().map(|f| format!(" field `{f}`")).unwrap_or_default())]
    Decode {
        /// The record.
        location: RecordLocation,
        /// The field (column) that failed, when known.
        field: Option<String>,
        /// What was expected and what was seen.
        message: String,
    },

    /// A record's writer schema could not be had from its registry (unreachable, refusing,
    /// or without that id). The run stops: the record itself may be fine, so it is neither
    /// skipped nor dead-lettered.
    #[error("cannot get the writer schema of record {location} ({schema}): {message}")]
    SchemaUnavailable {
        /// The record.
        location: RecordLocation,
        /// Which schema (`schema id 7`, `schema version <uuid>`).
        schema: String,
        /// Why.
        message: String,
    },

    /// The schema of a record cannot be turned into an Arrow schema.
    #[error("unsupported schema for table `{table}` column `{column}`: {message}")]
    UnsupportedSchema {
        /// Target table.
        table: String,
        /// Column.
        column: String,
        /// Why.
        message: String,
    },

    /// A new schema cannot replace the table's current schema.
    #[error("incompatible schema change for table `{table}` column `{column}`: {message}")]
    IncompatibleSchema {
        /// Target table.
        table: String,
        /// Column.
        column: String,
        /// What changed and why it cannot be applied.
        message: String,
    },

    /// Records without a usable key.
    #[error("table `{table}` has no primary key: {message}")]
    MissingKey {
        /// Target table.
        table: String,
        /// What was tried.
        message: String,
    },

    /// A source (raw files, Kafka) failed.
    #[error("source error at {location}: {message}")]
    Source {
        /// Path, URL or topic.
        location: String,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Offsets of a topic-partition are missing from the source: raw files deleted or never
    /// written, or records the broker's retention removed before they were applied. Going on
    /// would leave the table without those changes, so it is an error unless gaps are allowed
    /// (`--allow-gaps`).
    #[error(
        "{}topic `{topic}` partition {partition}: offsets {first}..={last} are missing ({reason}); \
         allow gaps (`--allow-gaps`) to go on without them",
        table.as_ref().map(|t| format!("table `{t}`, ")).unwrap_or_default()
    )]
    OffsetGap {
        /// The table the topic routes to, once known.
        table: Option<String>,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// First missing offset.
        first: i64,
        /// Last missing offset.
        last: i64,
        /// Where they went, as far as the source can tell.
        reason: String,
    },

    /// A batch holds records its table already has: another writer committed them after this
    /// pipeline read the table (a consumer group moved the partition while the batch was in
    /// flight). Applying it would put older row images over newer ones; the pipeline drops it
    /// and reads the partition again from the table's checkpoint.
    #[error(
        "table `{table}`: topic `{topic}` partition {partition} is committed up to offset \
         {committed}, past this batch's first offset {first}: another writer applied part of it"
    )]
    StaleBatch {
        /// Target table.
        table: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The batch's first offset of the partition.
        first: i64,
        /// The table's next offset of the partition.
        committed: i64,
    },

    /// A sink failed to apply or read back a commit.
    #[error("sink error for table `{table}`: {message}")]
    Sink {
        /// Target table.
        table: String,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Bad configuration, found when it was built.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A call to a table catalog (the Glue Data Catalog) failed.
    #[error("catalog {catalog}: {operation} of `{table}` failed: {code}: {message}")]
    Catalog {
        /// The catalog's endpoint.
        catalog: String,
        /// The catalog's name of the table (`database.table`), or the database.
        table: String,
        /// The call, e.g. `UpdateTable`.
        operation: String,
        /// The catalog's error code, e.g. `EntityNotFoundException`; `Network` when no answer
        /// came.
        code: String,
        /// What the catalog said.
        message: String,
    },

    /// An Arrow computation failed.
    #[error("arrow error in {context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },

    /// Object store access failed.
    #[error("object store error at `{path}`: {source}")]
    ObjectStore {
        /// The path or URL.
        path: String,
        /// The error.
        #[source]
        source: object_store::Error,
    },

    /// A commit lost to other writers every time it was attempted.
    #[error(
        "table `{table}`: commit conflicts not resolved after {attempts} attempts; last: {last}"
    )]
    Conflict {
        /// Target table.
        table: String,
        /// Attempts made.
        attempts: usize,
        /// The last conflict.
        last: String,
    },

    /// A test hook stopped the writer (crash tests).
    #[doc(hidden)]
    #[error("table `{table}`: stopped at fail point {point}")]
    FailPoint {
        /// Target table.
        table: String,
        /// Where.
        point: String,
    },

    /// Local I/O failed.
    #[error("i/o error at `{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for an Arrow error with what was being done.
    pub fn arrow(context: impl Into<String>, source: arrow_schema::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for a sink error without a source error.
    pub fn sink(table: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Sink {
            table: table.to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// The record this error is about, if it is about one.
    pub fn location(&self) -> Option<&RecordLocation> {
        match self {
            Error::Decode { location, .. } | Error::SchemaUnavailable { location, .. } => {
                Some(location)
            }
            _ => None,
        }
    }
}
