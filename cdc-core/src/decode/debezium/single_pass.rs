//! One pass over an envelope's payload for the common case (the schema is the one seen last,
//! the topic routes to a table): the top-level fields and the `source` block are read by the
//! [`Scan`]ner in place, and `after` streams straight into the table's builders, instead of
//! first splitting the payload into raw fields and then parsing `after` and `source` again.
//!
//! Anything unusual (a repeated field, a value of the wrong type, escapes where a key or a
//! read string is, a payload that is not an envelope) makes the pass give up; the caller then
//! takes the general path, which reports it.

use std::borrow::Cow;

use serde::de::DeserializeSeed;

use super::columns::{Cell, CellSeed, ColumnBuilder, Placeholder};
use super::envelope::{SourceBlock, TransactionBlock};
use super::scan::{KeyOrder, Scan};
use super::table::TableDecoder;
use crate::decode::avro::schema::Node;
use crate::decode::UnknownColumns;

/// A row image still to decode: JSON text, or an Avro record value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowInput<'p> {
    Json(&'p str),
    Avro(&'p Node, &'p [u8]),
}

/// An envelope's `after` image as the row decode takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum After<'p> {
    /// `null` or no `after` field.
    Missing,
    /// Still to decode (the general path).
    Image(RowInput<'p>),
    /// Already decoded into the builders as one more row (the single pass).
    Decoded,
}

/// The envelope's fields other than the decoded `after` row.
#[derive(Default)]
pub(crate) struct EnvelopeParts<'p> {
    pub(crate) op: Option<&'p str>,
    /// `Some(None)` for `"source": null`.
    pub(crate) source: Option<Option<SourceBlock<'p>>>,
    pub(crate) transaction: Option<TransactionBlock<'p>>,
    /// Its raw text, `null` included (the field is there).
    pub(crate) before: Option<&'p str>,
    /// `None` when the payload has no `after` field.
    pub(crate) after: Option<After<'p>>,
}

impl EnvelopeParts<'_> {
    /// Whether the general path would take the payload for an envelope.
    pub(crate) fn is_envelope(&self) -> bool {
        self.op.is_some()
            && self.source.is_some()
            && (self.after.is_some() || self.before.is_some())
    }
}

/// What the single pass does with a top-level key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopKey {
    After,
    Before,
    Source,
    Op,
    Transaction,
    Other,
}

impl TopKey {
    fn of(name: &str) -> Self {
        match name {
            "after" => TopKey::After,
            "before" => TopKey::Before,
            "source" => TopKey::Source,
            "op" => TopKey::Op,
            "transaction" => TopKey::Transaction,
            _ => TopKey::Other,
        }
    }
}

/// The `source` fields [`SourceBlock`] holds, by their bit in the seen-set; the rest are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKey {
    Connector,
    TsMs,
    Db,
    Schema,
    Table,
    Lsn,
    Sequence,
    TxId,
    File,
    Pos,
    Row,
    Gtid,
    Other,
}

impl SourceKey {
    fn of(name: &str) -> Self {
        match name {
            "connector" => SourceKey::Connector,
            "ts_ms" => SourceKey::TsMs,
            "db" => SourceKey::Db,
            "schema" => SourceKey::Schema,
            "table" => SourceKey::Table,
            "lsn" => SourceKey::Lsn,
            "sequence" => SourceKey::Sequence,
            "txId" => SourceKey::TxId,
            "file" => SourceKey::File,
            "pos" => SourceKey::Pos,
            "row" => SourceKey::Row,
            "gtid" => SourceKey::Gtid,
            _ => SourceKey::Other,
        }
    }
}

/// The key orders of the envelopes read before: Debezium writes every envelope of a
/// connector with its keys in the same order, so the next one's keys are compared as bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvelopeOrders {
    top: KeyOrder<TopKey>,
    source: KeyOrder<SourceKey>,
}

/// Where an envelope's `after` row goes.
pub(crate) struct RowTarget<'a> {
    pub(crate) td: &'a mut TableDecoder,
    pub(crate) placeholder: &'a Placeholder,
    pub(crate) unknown: UnknownColumns,
}

/// Reads an envelope payload into `parts` (the caller's, so that the `source` block is
/// filled in place rather than moved around), decoding `after` into `row`; `None` when the
/// pass gives up (the caller rolls back a row it may have decoded).
pub(crate) fn envelope<'p>(
    text: &'p str,
    row: RowTarget<'_>,
    orders: &mut EnvelopeOrders,
    parts: &mut EnvelopeParts<'p>,
) -> Option<()> {
    let mut scan = Scan::new(text);
    let mut row = Some(row);
    let (mut index, mut transaction_seen) = (0, false);
    scan.open_object()?;
    while let Some(key) = scan.next_key_in(&mut orders.top, &mut index, TopKey::of)? {
        match key {
            TopKey::After => {
                let row = row.take()?;
                parts.after = Some(match scan.null() {
                    true => After::Missing,
                    false => scan_row(&mut scan, row).map(|()| After::Decoded)?,
                });
            }
            TopKey::Before if parts.before.is_none() => parts.before = Some(scan.value()?),
            TopKey::Source if parts.source.is_none() => {
                let block = parts.source.insert(None);
                if !scan.null() {
                    source_block(
                        &mut scan,
                        &mut orders.source,
                        block.insert(Default::default()),
                    )?;
                }
            }
            TopKey::Op if parts.op.is_none() => parts.op = Some(scan.plain_string()?),
            TopKey::Transaction if !transaction_seen => {
                transaction_seen = true;
                if !scan.null() {
                    parts.transaction = Some(serde_json::from_str(scan.value()?).ok()?);
                }
            }
            TopKey::Other => scan.skip_value_in(&mut orders.top, index)?,
            // A repeated field: serde says so on the general path.
            _ => return None,
        }
    }
    scan.at_end().then_some(())
}

/// Streams a row object into the table's builders: plain strings, integers, booleans and
/// nulls straight from the scanner, any other value through the column's serde seed. `None`
/// when a cell is refused or the row is not one the general path would take as it is (a
/// repeated or unknown field); the general path then reports it.
fn scan_row(scan: &mut Scan<'_>, row: RowTarget<'_>) -> Option<()> {
    let RowTarget {
        td,
        placeholder,
        unknown,
    } = row;
    let at = td.begin_row();
    let mut index = 0;
    scan.open_object()?;
    while let Some(column) = scan.next_key_in(&mut td.key_order, &mut index, |name| {
        td.index.get(name).copied()
    })? {
        let Some(c) = column else {
            (unknown == UnknownColumns::Ignore).then_some(())?;
            scan.value()?;
            continue;
        };
        if std::mem::replace(&mut td.seen[c], true) {
            return None;
        }
        if scan_cell(scan, &mut td.builders[c], placeholder)? == Cell::Unavailable {
            td.mark_unchanged(c, at);
        }
    }
    td.end_row(at);
    Some(())
}

/// One cell: a plain scalar appended as serde would hand it to the column, anything else
/// (escapes, floats, `-0`, objects, arrays) through [`CellSeed`]. `None` when refused.
fn scan_cell(
    scan: &mut Scan<'_>,
    column: &mut ColumnBuilder,
    placeholder: &Placeholder,
) -> Option<Cell> {
    let mark = scan.mark();
    let plain = match scan.peek()? {
        b'n' => scan.null().then(|| {
            column.push_null();
            Ok(Cell::Value)
        }),
        b'"' => scan.plain_string().map(|s| column.push_str(s, placeholder)),
        b't' | b'f' => scan
            .bool()
            .map(|v| column.push_bool(v).map(|()| Cell::Value)),
        b'-' | b'0'..=b'9' => scan
            .int::<i64>()
            .map(|v| column.push_i64(v).map(|()| Cell::Value)),
        _ => None,
    };
    if let Some(cell) = plain {
        return cell.ok();
    }
    scan.reset(mark);
    let mut de = serde_json::Deserializer::from_str(scan.value()?);
    let cell = CellSeed {
        column,
        placeholder,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(cell)
}

/// The `source` block's fields as [`SourceBlock`]'s `Deserialize` reads them (others skipped),
/// into `s`.
fn source_block<'p>(
    scan: &mut Scan<'p>,
    order: &mut KeyOrder<SourceKey>,
    s: &mut SourceBlock<'p>,
) -> Option<()> {
    let (mut seen, mut index) = (0u16, 0);
    scan.open_object()?;
    while let Some(key) = scan.next_key_in(order, &mut index, SourceKey::of)? {
        match key {
            SourceKey::Connector => s.connector = text(scan)?,
            SourceKey::TsMs => s.ts_ms = scan.optional_int()?,
            SourceKey::Db => s.db = text(scan)?,
            SourceKey::Schema => s.schema = text(scan)?,
            SourceKey::Table => s.table = text(scan)?,
            SourceKey::Lsn => s.lsn = scan.optional_int()?,
            SourceKey::Sequence => s.sequence = nullable_raw(scan)?,
            SourceKey::TxId => s.tx_id = scan.optional_int()?,
            SourceKey::File => s.file = text(scan)?,
            SourceKey::Pos => s.pos = scan.optional_int()?,
            SourceKey::Row => s.row = scan.optional_int()?,
            SourceKey::Gtid => s.gtid = text(scan)?,
            SourceKey::Other => {
                scan.skip_value_in(order, index)?;
                continue;
            }
        }
        // serde refuses a repeated field: leave it to serde to say so.
        let bit = 1u16 << key as u16;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    Some(())
}

fn text<'p>(scan: &mut Scan<'p>) -> Option<Option<Cow<'p, str>>> {
    scan.optional_plain_string().map(|s| s.map(Cow::Borrowed))
}

/// A value's raw text, `None` for `null` (as `Option<&RawValue>` deserializes).
fn nullable_raw<'p>(scan: &mut Scan<'p>) -> Option<Option<&'p str>> {
    match scan.null() {
        true => Some(None),
        false => scan.value().map(Some),
    }
}
