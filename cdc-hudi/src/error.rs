//! Errors of the Hudi sink.

/// Result with [`HudiSinkError`].
pub type Result<T, E = HudiSinkError> = std::result::Result<T, E>;

/// Errors of the Hudi sink. Every variant names the table; paths are relative to the table
/// root and never carry credentials (those come from the environment, never from URLs).
#[derive(Debug, thiserror::Error)]
pub enum HudiSinkError {
    /// The object store failed.
    #[error("hudi table `{table}`: {context} `{path}`: {source}")]
    Store {
        /// Table.
        table: String,
        /// Path relative to the table root.
        path: String,
        /// What was being done.
        context: &'static str,
        /// The object-store error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// Reading or writing a base file failed.
    #[error("hudi table `{table}`: base file `{path}`: {message}")]
    BaseFile {
        /// Table.
        table: String,
        /// Path relative to the table root.
        path: String,
        /// What failed.
        message: String,
    },
    /// A timeline instant is unreadable or cannot be written.
    #[error("hudi table `{table}` instant {instant}: {message}")]
    Timeline {
        /// Table.
        table: String,
        /// Instant time.
        instant: String,
        /// What is wrong.
        message: String,
    },
    /// `hoodie.properties` or the table layout is not what cdc-lake writes.
    #[error("hudi table `{table}`: {message}")]
    Layout {
        /// Table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A column cannot be stored in Hudi.
    #[error("hudi table `{table}` column `{column}`: {message}")]
    Column {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Why.
        message: String,
    },
    /// Another writer completed an instant, or rolled ours back, while this one was writing;
    /// or another writer's instant is in flight.
    #[error("hudi table `{table}` instant {instant}: {message}")]
    Conflict {
        /// Table.
        table: String,
        /// Our instant (rolled back), or the other writer's instant in flight.
        instant: String,
        /// What the other writer did.
        message: String,
    },
    /// A core error (schema evolution, keys, storage casts).
    #[error(transparent)]
    Core(#[from] cdc_core::Error),
}

impl HudiSinkError {
    /// Whether another writer got in the way (the write or clustering is redone).
    pub fn is_conflict(&self) -> bool {
        matches!(self, HudiSinkError::Conflict { .. })
    }

    fn table(&self) -> Option<&str> {
        match self {
            HudiSinkError::Store { table, .. }
            | HudiSinkError::BaseFile { table, .. }
            | HudiSinkError::Timeline { table, .. }
            | HudiSinkError::Layout { table, .. }
            | HudiSinkError::Column { table, .. }
            | HudiSinkError::Conflict { table, .. } => Some(table),
            HudiSinkError::Core(_) => None,
        }
    }
}

impl From<HudiSinkError> for cdc_core::Error {
    fn from(e: HudiSinkError) -> Self {
        match e {
            HudiSinkError::Core(core) => core,
            HudiSinkError::Column {
                table,
                column,
                message,
            } => cdc_core::Error::UnsupportedSchema {
                table,
                column,
                message,
            },
            other => cdc_core::Error::Sink {
                table: other.table().unwrap_or_default().to_string(),
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}
