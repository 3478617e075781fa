//! Debezium's own documented MySQL, MariaDB and Postgres events (`../shared/fixtures/
//! debezium-docs/`): MySQL cannot be captured live here, so these pin down its shapes — binlog
//! positions, table ids from `source.db`, transaction-metadata and schema-change records, and
//! the schemaless and unwrapped forms of the same event.

use std::sync::Arc;

use bytes::Bytes;
use cdc_core::decode::{DebeziumJsonDecoder, Decoded, DecoderConfig, TableHint, UnknownColumns};
use cdc_core::fold::fold;
use cdc_core::model::{DbPosition, Op, TableId};
use cdc_core::render::render_rows;
use cdc_core::source::RawRecord;
use cdc_core::testing::fixtures_root;
use serde_json::Value;

fn doc(name: &str) -> String {
    std::fs::read_to_string(fixtures_root().join("../debezium-docs").join(name)).unwrap()
}

/// The `value` (or `key`) of a `<connector>-<what>.json` file, as JSON text.
fn part(name: &str, field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(&doc(name)).unwrap();
    Some(v[field].clone())
        .filter(|v| !v.is_null())
        .map(|v| v.to_string())
}

fn record(topic: &str, key: Option<String>, value: Option<String>) -> RawRecord {
    RawRecord {
        topic: Arc::from(topic),
        partition: 0,
        offset: 42,
        key: key.map(Bytes::from),
        value: value.map(Bytes::from),
        value_schema: None,
        key_schema: None,
    }
}

#[test]
fn mysql_and_mariadb_creates_carry_binlog_positions() {
    for (connector, topic) in [
        ("mysql", "mysql-server-1.inventory.customers"),
        ("mariadb", "mariadb-server-1.inventory.customers"),
    ] {
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let r = record(
            topic,
            part(&format!("{connector}-key.json"), "key"),
            part(&format!("{connector}-create.json"), "value"),
        );
        // No route: the table comes from `source.db` / `source.table`.
        let decoded = d.decode(None, &r).unwrap();
        let table = TableId::new("inventory", "customers");
        assert_eq!(decoded, Decoded::Row(table.clone(), Op::Create));
        let batches = d.finish().unwrap();
        assert_eq!(&*batches[0].key_columns, &["id".to_string()]);
        match &batches[0].events[0].position.db {
            DbPosition::MySql { file, pos, row, .. } => {
                assert_eq!(
                    (file.as_str(), *pos, *row),
                    (format!("{connector}-bin.000003").as_str(), 154, 0)
                );
            }
            other => panic!("{connector}: {other:?}"),
        }
        let set = fold(&table, None, None, batches).unwrap();
        let rows = render_rows(&set.upserts).unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({
                "id": 1004, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"
            })
        );
    }
}

#[test]
fn postgres_sequence_gives_the_commit_order() {
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    let r = record(
        "PostgreSQL_server.public.customers",
        Some(r#"{"id":1}"#.into()),
        part("postgres-create.json", "value"),
    );
    d.decode(None, &r).unwrap();
    let b = d.finish().unwrap();
    match &b[0].events[0].position.db {
        DbPosition::Postgres {
            lsn,
            last_commit_lsn,
            ..
        } => {
            assert_eq!(*last_commit_lsn, Some(24023119));
            assert_eq!(*lsn, 24023128);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn schemaless_and_unwrapped_forms_decode_with_a_given_schema() {
    let table = TableId::new("inventory", "customers");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    let with_schema = doc("resource-serde-with-schema.json");
    d.decode(
        Some(&table),
        &record("t", Some(r#"{"id":1004}"#.into()), Some(with_schema)),
    )
    .unwrap();
    let schema = d.finish().unwrap()[0].rows.schema();

    let hint = TableHint {
        schema: Some(schema),
        key_columns: Some(vec!["id".into()]),
    };
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    d.set_table_hint(table.clone(), hint.clone());
    let bare = doc("resource-serde-without-schema.json");
    assert_eq!(
        d.decode(Some(&table), &record("t", None, Some(bare)))
            .unwrap(),
        Decoded::Row(table.clone(), Op::Create)
    );
    let unwrapped = doc("resource-serde-unwrapped.json");
    assert_eq!(
        d.decode(Some(&table), &record("t", None, Some(unwrapped)))
            .unwrap(),
        Decoded::Row(table.clone(), Op::Update)
    );
    let b = d.finish().unwrap();
    assert_eq!(b.iter().map(|b| b.len()).sum::<usize>(), 2);

    // A field the schema lacks is an error naming it, unless told to ignore it.
    let extra = doc("resource-serde-unknown-property.json");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    d.set_table_hint(table.clone(), hint.clone());
    let err = d
        .decode(Some(&table), &record("t", None, Some(extra.clone())))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`middle_name`") && err.contains("t[0]@42"),
        "{err}"
    );
    let mut d = DebeziumJsonDecoder::new(DecoderConfig {
        unknown_columns: UnknownColumns::Ignore,
        ..DecoderConfig::default()
    });
    d.set_table_hint(table.clone(), hint);
    assert!(d
        .decode(Some(&table), &record("t", None, Some(extra)))
        .is_ok());
}

#[test]
fn transaction_and_schema_change_records_are_recognised() {
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    let ddl = part("mysql-schema-change.json", "value").unwrap();
    match d.decode(None, &record("mysql", None, Some(ddl))).unwrap() {
        Decoded::SchemaChange { ddl } => assert!(ddl.unwrap().starts_with("ALTER TABLE customers")),
        other => panic!("{other:?}"),
    }
    let text = doc("mariadb-transaction-boundaries.txt");
    let markers: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    let decoded: Vec<Decoded> = markers
        .iter()
        .map(|m| {
            d.decode(
                None,
                &record("mariadb-server-1.transaction", None, Some(m.to_string())),
            )
            .unwrap()
        })
        .collect();
    assert!(
        matches!(&decoded[0], Decoded::TransactionMarker { status, event_count: None, .. } if status == "BEGIN")
    );
    assert!(
        matches!(&decoded[1], Decoded::TransactionMarker { status, event_count: Some(2), .. } if status == "END")
    );
    assert!(d.finish().unwrap().is_empty());
    assert_eq!(d.stats().transaction_markers, 2);
    assert_eq!(d.stats().schema_changes, 1);
}
