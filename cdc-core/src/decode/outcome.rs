//! What a decoder says of each record ([`Decoded`]) and of all it decoded ([`DecodeStats`]).

use crate::model::{Op, TableId};

/// What one record was.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A row change, appended to its table's batch.
    Row(TableId, Op),
    /// A tombstone, taken as a delete of its key.
    Tombstone(TableId),
    /// A tombstone without a key right after a delete of the same partition: redundant (the
    /// delete event already removed the row), counted and skipped.
    RedundantTombstone,
    /// A transaction BEGIN/END record (`provide.transaction.metadata`).
    TransactionMarker {
        /// `BEGIN` or `END`.
        status: String,
        /// Transaction id.
        id: String,
        /// Events in the transaction (END only).
        event_count: Option<i64>,
    },
    /// A schema-change topic record (MySQL/MariaDB DDL history).
    SchemaChange {
        /// The DDL statement, when given.
        ddl: Option<String>,
    },
    /// A heartbeat.
    Heartbeat,
    /// A Postgres logical decoding message (`op: m`).
    Message,
}

/// Counts of what was decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Row changes.
    pub rows: u64,
    /// Tombstones turned into deletes.
    pub tombstones: u64,
    /// Redundant tombstones skipped.
    pub redundant_tombstones: u64,
    /// Transaction markers.
    pub transaction_markers: u64,
    /// Schema-change records.
    pub schema_changes: u64,
    /// Heartbeats.
    pub heartbeats: u64,
    /// Logical decoding messages.
    pub messages: u64,
}

impl DecodeStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DecodeStats) {
        self.rows += other.rows;
        self.tombstones += other.tombstones;
        self.redundant_tombstones += other.redundant_tombstones;
        self.transaction_markers += other.transaction_markers;
        self.schema_changes += other.schema_changes;
        self.heartbeats += other.heartbeats;
        self.messages += other.messages;
    }
}
