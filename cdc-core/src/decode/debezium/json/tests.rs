//! Unit tests of the Debezium JSON decoder.

use super::*;
use bytes::Bytes;

fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> RawRecord {
    RawRecord {
        topic: Arc::from("srv.public.t"),
        partition: 0,
        offset,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        value_schema: None,
        key_schema: None,
    }
}

const SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}],"optional":true,"field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}],"optional":true,"field":"after"},{"type":"struct","fields":[],"optional":false,"field":"source"},{"type":"string","optional":false,"field":"op"}],"name":"srv.public.t.Envelope"}"#;

fn envelope(op: &str, before: &str, after: &str) -> String {
    format!(
        r#"{{"schema":{SCHEMA},"payload":{{"before":{before},"after":{after},"source":{{"connector":"postgresql","lsn":10,"ts_ms":5}},"op":"{op}"}}}}"#
    )
}

#[test]
fn bad_row_is_rolled_back_and_named() {
    let t = TableId::new("public", "t");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    let key = Some(r#"{"id":1}"#);
    d.decode(
        Some(&t),
        &record(
            0,
            key,
            Some(&envelope("c", "null", r#"{"id":1,"name":"a"}"#)),
        ),
    )
    .unwrap();
    let err = d
        .decode(
            Some(&t),
            &record(
                1,
                key,
                Some(&envelope("c", "null", r#"{"id":2,"name":7.5}"#)),
            ),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("srv.public.t[0]@1") && msg.contains("`name`"),
        "{msg}"
    );
    let batches = d.finish().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 1);
    assert_eq!(batches[0].rows.num_rows(), 1);
    assert_eq!(&*batches[0].key_columns, &["id".to_string()]);
}

#[test]
fn mysql_and_postgis_types() {
    let schema = r#"{"type":"struct","name":"x.Envelope","fields":[
      {"type":"struct","optional":true,"field":"before","fields":[]},
      {"type":"struct","optional":true,"field":"after","fields":[
        {"type":"int32","field":"id"},
        {"type":"struct","name":"io.debezium.data.geometry.Geometry","optional":true,"field":"geo","fields":[
          {"type":"bytes","field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]},
        {"type":"struct","name":"io.debezium.data.geometry.Point","optional":true,"field":"pt","fields":[
          {"type":"double","field":"x"},{"type":"double","field":"y"},
          {"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]},
        {"type":"bytes","name":"io.debezium.data.Bits","parameters":{"length":"10"},"optional":true,"field":"bits"},
        {"type":"int32","name":"io.debezium.time.Year","optional":true,"field":"yr"},
        {"type":"string","name":"io.debezium.data.EnumSet","parameters":{"allowed":"a,b,c"},"optional":true,"field":"tags"},
        {"type":"string","name":"io.debezium.time.ZonedTime","optional":true,"field":"tz_time"},
        {"type":"int64","name":"io.debezium.time.NanoTimestamp","optional":true,"field":"nano_ts"},
        {"type":"int64","name":"io.debezium.time.Timestamp","optional":true,"field":"ms_ts"},
        {"type":"map","keys":{"type":"string"},"values":{"type":"string","optional":true},"optional":true,"field":"h"},
        {"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"3","connect.decimal.precision":"50"},"optional":true,"field":"big"}
      ]},
      {"type":"struct","field":"source","fields":[]},{"type":"string","field":"op"}]}"#;
    let payload = r#"{"before":null,"after":{"id":1,
        "geo":{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":4326},
        "pt":{"x":1.5,"y":-2.0,"wkb":null,"srid":null},
        "bits":"AQI=","yr":2024,"tags":"a,c","tz_time":"12:00:00.5+02:00",
        "nano_ts":1700000000123456789,"ms_ts":1529476623000,"h":{"k":"v","n":null},
        "big":"/w=="},
      "source":{"connector":"mysql","file":"mysql-bin.000001","pos":4,"row":1,"gtid":"u:7"},"op":"c"}"#;
    let value = format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
    let t = TableId::new("db", "x");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    d.decode(Some(&t), &record(0, Some(r#"{"id":1}"#), Some(&value)))
        .unwrap();
    let b = d.finish().unwrap().remove(0);
    let s = b.rows.schema();
    assert_eq!(
        s.field_with_name("big").unwrap().data_type(),
        &arrow_schema::DataType::Decimal256(50, 3)
    );
    assert_eq!(
        s.field_with_name("nano_ts").unwrap().data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None)
    );
    assert!(matches!(
        &b.events[0].position.db,
        DbPosition::MySql { pos: 4, row: 1, gtid: Some(g), .. } if g == "u:7"
    ));
    let row = crate::render::render_rows(&b.rows).unwrap().remove(0);
    assert_eq!(
        serde_json::Value::Object(row),
        serde_json::json!({
            "id": 1,
            "geo": {"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 4326},
            "pt": {"x": 1.5, "y": -2.0, "wkb": null, "srid": null},
            "bits": "AQI=", "yr": 2024, "tags": "a,c",
            "tz_time": "10:00:00.500000",
            "nano_ts": "2023-11-14T22:13:20.123456789",
            "ms_ts": "2018-06-20T06:37:03.000000",
            "h": {"k": "v", "n": null},
            "big": "-0.001"
        })
    );
}

#[test]
fn control_records_are_not_rows() {
    let t = TableId::new("public", "t");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    let tx = r#"{"status":"BEGIN","id":"571","event_count":null,"data_collections":null}"#;
    assert!(matches!(
        d.decode(Some(&t), &record(0, None, Some(tx))).unwrap(),
        Decoded::TransactionMarker { .. }
    ));
    let ddl = r#"{"source":{"server":"mysql"},"databaseName":"inventory","ddl":"ALTER TABLE t ADD c INT","tableChanges":[]}"#;
    assert!(matches!(
        d.decode(None, &record(1, None, Some(ddl))).unwrap(),
        Decoded::SchemaChange { .. }
    ));
    assert!(d.finish().unwrap().is_empty());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let t = TableId::new("public", "t");
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    for v in [
        "{",
        "[1,2]",
        "\"x\"",
        "{\"schema\":1,\"payload\":2}",
        "\u{0}",
    ] {
        assert!(
            d.decode(Some(&t), &record(0, None, Some(v))).is_err(),
            "{v}"
        );
    }
}
