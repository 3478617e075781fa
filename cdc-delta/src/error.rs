//! Errors of the Delta sink.

use deltalake::DeltaTableError;

/// Result with [`DeltaSinkError`].
pub type Result<T, E = DeltaSinkError> = std::result::Result<T, E>;

/// Errors of the Delta sink. Locations never carry credentials (they come from storage
/// options or the environment, never from URLs).
#[derive(Debug, thiserror::Error)]
pub enum DeltaSinkError {
    /// delta-rs failed.
    #[error("delta table `{table}` at {location}: {context}: {source}")]
    Delta {
        /// Table.
        table: String,
        /// Table URL.
        location: String,
        /// What was being done.
        context: &'static str,
        /// The delta-rs error.
        #[source]
        source: Box<DeltaTableError>,
    },
    /// Reading a data file failed.
    #[error("delta table `{table}`: cannot read data file `{path}`: {message}")]
    ReadFile {
        /// Table.
        table: String,
        /// File path relative to the table root.
        path: String,
        /// What failed.
        message: String,
    },
    /// Reading or writing a deletion vector failed.
    #[error("delta table `{table}`: deletion vector of `{path}`: {message}")]
    DeletionVector {
        /// Table.
        table: String,
        /// The data file the deletion vector belongs to (empty for the DV file of a commit).
        path: String,
        /// What failed.
        message: String,
    },
    /// A table property or the table's layout is not what cdc-lake wrote.
    #[error("delta table `{table}`: {message}")]
    Layout {
        /// Table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A core error (schema evolution, keys).
    #[error(transparent)]
    Core(#[from] cdc_core::Error),
}

impl DeltaSinkError {
    /// True for errors a retry on the new table version can resolve.
    pub fn is_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        match self {
            DeltaSinkError::Delta { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_)
                        | TransactionError::MaxCommitAttempts(_)
                        | TransactionError::VersionAlreadyExists(_)
                } | DeltaTableError::VersionAlreadyExists(_)
            ),
            _ => false,
        }
    }
}

impl From<DeltaSinkError> for cdc_core::Error {
    fn from(e: DeltaSinkError) -> Self {
        match e {
            DeltaSinkError::Core(core) => core,
            other => {
                let table = match &other {
                    DeltaSinkError::Delta { table, .. }
                    | DeltaSinkError::ReadFile { table, .. }
                    | DeltaSinkError::DeletionVector { table, .. }
                    | DeltaSinkError::Layout { table, .. } => table.clone(),
                    DeltaSinkError::Core(_) => unreachable!(),
                };
                cdc_core::Error::Sink {
                    table,
                    message: other.to_string(),
                    source: Some(Box::new(other)),
                }
            }
        }
    }
}
