//! The type matrix: one table per source flavour (Postgres, MySQL) holding every Debezium /
//! Kafka Connect type of docs/type-mapping.md that the live fixtures do not cover, as events
//! shaped like Debezium's documented ones (`../shared/fixtures/debezium-docs/`), written out as
//! scenarios a format's tests sync and read back with their independent readers.
//!
//! Each column lists its Connect schema, the value on the wire and the value an engine reading
//! the table must return, written out here by hand from the type mapping (in `expected/`
//! rendering: ISO text for times, base64 for bytes, integers for integers) — never computed by
//! the code under test. Row 1 holds the values, row 2 nulls in every column, row 3 is inserted
//! and deleted again.

use std::path::Path;

use serde_json::{json, Value};

use super::Scenario;

/// One column of a matrix table: name, Connect schema (without `field`), wire value, what an
/// engine returns.
struct Column(&'static str, Value, Value, Value);

fn postgres_columns() -> Vec<Column> {
    let t = |name: &str| json!({"type": "int64", "name": name, "optional": true});
    vec![
        Column(
            "c_time_ms",
            json!({"type": "int32", "name": "io.debezium.time.Time", "optional": true}),
            json!(45_296_789),
            json!("12:34:56.789000"),
        ),
        Column(
            "c_time_us",
            t("io.debezium.time.MicroTime"),
            json!(45_296_789_012i64),
            json!("12:34:56.789012"),
        ),
        Column(
            "c_time_connect",
            json!({"type": "int32", "name": "org.apache.kafka.connect.data.Time", "optional": true}),
            json!(45_296_789),
            json!("12:34:56.789000"),
        ),
        Column(
            "c_timetz",
            json!({"type": "string", "name": "io.debezium.time.ZonedTime", "optional": true}),
            json!("14:34:56.5+02:00"),
            json!("12:34:56.500000"),
        ),
        Column(
            "c_ts_ms",
            t("io.debezium.time.Timestamp"),
            json!(1_529_476_623_000i64),
            json!("2018-06-20T06:37:03.000000"),
        ),
        Column(
            "c_ts_us",
            t("io.debezium.time.MicroTimestamp"),
            json!(1_529_507_596_945_104i64),
            json!("2018-06-20T15:13:16.945104"),
        ),
        Column(
            "c_ts_connect",
            t("org.apache.kafka.connect.data.Timestamp"),
            json!(1_529_476_623_000i64),
            json!("2018-06-20T06:37:03.000000"),
        ),
        Column(
            "c_tstz",
            json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": true}),
            json!("2018-06-20T13:37:03.25Z"),
            json!("2018-06-20T13:37:03.250000Z"),
        ),
        Column(
            "c_date",
            json!({"type": "int32", "name": "io.debezium.time.Date", "optional": true}),
            json!(17_702),
            json!("2018-06-20"),
        ),
        // MicroDuration: microseconds (Debezium's approximation); an engine returns the integer.
        Column(
            "c_interval",
            t("io.debezium.time.MicroDuration"),
            json!(93_784_000_000i64),
            json!(93_784_000_000i64),
        ),
        Column(
            "c_interval_text",
            json!({"type": "string", "name": "io.debezium.time.Interval", "optional": true}),
            json!("P1Y2M3DT4H5M6.78S"),
            json!("P1Y2M3DT4H5M6.78S"),
        ),
        Column(
            "c_numeric",
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "optional": true}),
            json!("AeI="),
            json!("4.82"),
        ),
        Column(
            "c_money",
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "optional": true}),
            json!("+y4="),
            json!("-12.34"),
        ),
        Column(
            "c_numeric_var",
            json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "optional": true, "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]}),
            json!({"scale": 3, "value": "DEU="}),
            json!("3.141"),
        ),
        Column(
            "c_numeric_text",
            json!({"type": "string", "optional": true}),
            json!("4.82"),
            json!("4.82"),
        ),
        Column(
            "c_numeric_double",
            json!({"type": "double", "optional": true}),
            json!(4.82),
            json!(4.82),
        ),
        Column(
            "c_bits",
            json!({"type": "bytes", "name": "io.debezium.data.Bits", "parameters": {"length": "10"}, "optional": true}),
            json!("AQI="),
            json!("AQI="),
        ),
        Column(
            "c_uuid",
            json!({"type": "string", "name": "io.debezium.data.Uuid", "optional": true}),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        Column(
            "c_json",
            json!({"type": "string", "name": "io.debezium.data.Json", "optional": true}),
            json!("{\"a\": [1, 2]}"),
            json!({"a": [1, 2]}),
        ),
        Column(
            "c_xml",
            json!({"type": "string", "name": "io.debezium.data.Xml", "optional": true}),
            json!("<a>b</a>"),
            json!("<a>b</a>"),
        ),
        Column(
            "c_ltree",
            json!({"type": "string", "name": "io.debezium.data.Ltree", "optional": true}),
            json!("top.mid.leaf"),
            json!("top.mid.leaf"),
        ),
        Column(
            "c_enum",
            json!({"type": "string", "name": "io.debezium.data.Enum", "parameters": {"allowed": "ok,sad"}, "optional": true}),
            json!("sad"),
            json!("sad"),
        ),
        Column(
            "c_geometry",
            json!({"type": "struct", "name": "io.debezium.data.geometry.Geometry", "optional": true, "fields": [{"type": "bytes", "field": "wkb"}, {"type": "int32", "optional": true, "field": "srid"}]}),
            json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 4326}),
            json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 4326}),
        ),
        Column(
            "c_point",
            json!({"type": "struct", "name": "io.debezium.data.geometry.Point", "optional": true, "fields": [{"type": "double", "field": "x"}, {"type": "double", "field": "y"}, {"type": "bytes", "optional": true, "field": "wkb"}, {"type": "int32", "optional": true, "field": "srid"}]}),
            json!({"x": 1.5, "y": -2.0, "wkb": null, "srid": null}),
            json!({"x": 1.5, "y": -2.0, "wkb": null, "srid": null}),
        ),
        Column(
            "c_inet",
            json!({"type": "string", "optional": true}),
            json!("10.0.0.1"),
            json!("10.0.0.1"),
        ),
    ]
}

fn mysql_columns() -> Vec<Column> {
    let t = |name: &str| json!({"type": "int64", "name": name, "optional": true});
    vec![
        Column(
            "c_year",
            json!({"type": "int32", "name": "io.debezium.time.Year", "optional": true}),
            json!(2024),
            json!(2024),
        ),
        Column(
            "c_set",
            json!({"type": "string", "name": "io.debezium.data.EnumSet", "parameters": {"allowed": "a,b,c"}, "optional": true}),
            json!("a,c"),
            json!("a,c"),
        ),
        Column(
            "c_enum",
            json!({"type": "string", "name": "io.debezium.data.Enum", "parameters": {"allowed": "x,y"}, "optional": true}),
            json!("y"),
            json!("y"),
        ),
        Column(
            "c_bit",
            json!({"type": "bytes", "name": "io.debezium.data.Bits", "parameters": {"length": "12"}, "optional": true}),
            json!("/w8="),
            json!("/w8="),
        ),
        Column(
            "c_tinyint",
            json!({"type": "int16", "optional": true}),
            json!(-5),
            json!(-5),
        ),
        Column(
            "c_mediumint",
            json!({"type": "int32", "optional": true}),
            json!(8_388_607),
            json!(8_388_607),
        ),
        Column(
            "c_float",
            json!({"type": "float", "optional": true}),
            json!(1.5),
            json!(1.5),
        ),
        Column(
            "c_double",
            json!({"type": "double", "optional": true}),
            json!(2.25),
            json!(2.25),
        ),
        // adaptive_time_microseconds: TIME as MicroTime.
        Column(
            "c_time",
            t("io.debezium.time.MicroTime"),
            json!(45_296_000_001i64),
            json!("12:34:56.000001"),
        ),
        // time.precision.mode=connect: TIME as connect Time (milliseconds), DATETIME as connect Timestamp.
        Column(
            "c_time_connect",
            json!({"type": "int32", "name": "org.apache.kafka.connect.data.Time", "optional": true}),
            json!(45_296_789),
            json!("12:34:56.789000"),
        ),
        Column(
            "c_datetime",
            t("io.debezium.time.Timestamp"),
            json!(1_529_476_623_000i64),
            json!("2018-06-20T06:37:03.000000"),
        ),
        Column(
            "c_datetime6",
            t("io.debezium.time.MicroTimestamp"),
            json!(1_529_476_623_000_001i64),
            json!("2018-06-20T06:37:03.000001"),
        ),
        Column(
            "c_datetime_connect",
            t("org.apache.kafka.connect.data.Timestamp"),
            json!(1_529_476_623_000i64),
            json!("2018-06-20T06:37:03.000000"),
        ),
        Column(
            "c_timestamp",
            json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": true}),
            json!("2018-06-20T13:37:03Z"),
            json!("2018-06-20T13:37:03.000000Z"),
        ),
        Column(
            "c_date",
            json!({"type": "int32", "name": "io.debezium.time.Date", "optional": true}),
            json!(17_702),
            json!("2018-06-20"),
        ),
        // Nanosecond times keep nine digits; nanosecond timestamps are the integer.
        Column(
            "c_nano_time",
            t("io.debezium.time.NanoTime"),
            json!(45_296_123_456_789i64),
            json!("12:34:56.123456789"),
        ),
        Column(
            "c_nano_ts",
            t("io.debezium.time.NanoTimestamp"),
            json!(1_700_000_000_123_456_789i64),
            json!(1_700_000_000_123_456_789i64),
        ),
        Column(
            "c_decimal",
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "3", "connect.decimal.precision": "50"}, "optional": true}),
            json!("/w=="),
            json!("-0.001"),
        ),
        Column(
            "c_decimal_text",
            json!({"type": "string", "optional": true}),
            json!("12345678901234567890.5"),
            json!("12345678901234567890.5"),
        ),
        Column(
            "c_json",
            json!({"type": "string", "name": "io.debezium.data.Json", "optional": true}),
            json!("[1, \"two\", null]"),
            json!([1, "two", null]),
        ),
        Column(
            "c_blob",
            json!({"type": "bytes", "optional": true}),
            json!("3q2+7w=="),
            json!("3q2+7w=="),
        ),
        Column(
            "c_geometry",
            json!({"type": "struct", "name": "io.debezium.data.geometry.Geometry", "optional": true, "fields": [{"type": "bytes", "field": "wkb"}, {"type": "int32", "optional": true, "field": "srid"}]}),
            json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 0}),
            json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 0}),
        ),
    ]
}

/// A source block and topic per flavour.
struct Flavour {
    name: &'static str,
    topic: &'static str,
    schema: &'static str,
    table: &'static str,
    source: fn(i64) -> Value,
    columns: fn() -> Vec<Column>,
}

fn pg_source(n: i64) -> Value {
    json!({"version": "3.6.3.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": 1_700_000_000_000i64 + n, "snapshot": "false", "db": "fx", "sequence": format!("[null,\"{}\"]", 1000 + n), "schema": "public", "table": "pg_types", "txId": 700 + n, "lsn": 1000 + n, "xmin": null})
}

fn mysql_source(n: i64) -> Value {
    json!({"version": "3.6.3.Final", "connector": "mysql", "name": "mysql-server-1", "ts_ms": 1_700_000_000_000i64 + n, "snapshot": "false", "db": "inventory", "table": "my_types", "server_id": 223344, "gtid": null, "file": "mysql-bin.000003", "pos": 154 + n, "row": 0, "thread": 7, "query": null})
}

const FLAVOURS: [Flavour; 2] = [
    Flavour {
        name: "type_matrix-postgres",
        topic: "dbserver1.public.pg_types",
        schema: "public",
        table: "pg_types",
        source: pg_source,
        columns: postgres_columns,
    },
    Flavour {
        name: "type_matrix-mysql",
        topic: "mysql-server-1.inventory.my_types",
        schema: "inventory",
        table: "my_types",
        source: mysql_source,
        columns: mysql_columns,
    },
];

/// The key and value records (JSON, schema-enabled) of one event.
fn event(f: &Flavour, offset: i64, op: &str, id: i64, after: Option<&Value>) -> Value {
    let columns = (f.columns)();
    let mut fields = vec![json!({"type": "int32", "optional": false, "field": "id"})];
    for Column(name, schema, _, _) in &columns {
        let mut s = schema.clone();
        s["field"] = json!(name);
        fields.push(s);
    }
    let row = json!({"type": "struct", "optional": true, "name": format!("{}.Value", f.topic), "fields": fields});
    let (mut before_s, mut after_s) = (row.clone(), row);
    before_s["field"] = json!("before");
    after_s["field"] = json!("after");
    let value_schema = json!({"type": "struct", "optional": false, "name": format!("{}.Envelope", f.topic), "fields": [
        before_s, after_s,
        {"type": "struct", "optional": false, "field": "source", "fields": []},
        {"type": "string", "optional": false, "field": "op"},
        {"type": "int64", "optional": true, "field": "ts_ms"}]});
    let key_only = json!({"id": id});
    let (before, after) = match op {
        "d" => (key_only, Value::Null),
        _ => (Value::Null, after.cloned().unwrap_or(Value::Null)),
    };
    json!({"topic": f.topic, "partition": 0, "offset": offset,
        "key": {"schema": {"type": "struct", "optional": false, "name": format!("{}.Key", f.topic), "fields": [{"type": "int32", "optional": false, "field": "id"}]}, "payload": {"id": id}},
        "value": {"schema": value_schema, "payload": {"before": before, "after": after, "source": (f.source)(offset), "op": op, "ts_ms": 1_700_000_000_000i64 + offset}}})
}

/// Writes the two matrix tables as scenarios under `dir`.
pub fn scenarios(dir: &Path) -> Vec<Scenario> {
    FLAVOURS.iter().map(|f| write(dir, f)).collect()
}

fn write(dir: &Path, f: &Flavour) -> Scenario {
    let out = dir.join(f.name);
    std::fs::create_dir_all(out.join("expected")).expect("scenario dir");
    let columns = (f.columns)();
    let mut values = serde_json::Map::from_iter([("id".to_string(), json!(1))]);
    let mut nulls = serde_json::Map::from_iter([("id".to_string(), json!(2))]);
    let mut expected = serde_json::Map::from_iter([("id".to_string(), json!(1))]);
    for Column(name, _, wire, want) in &columns {
        values.insert(name.to_string(), wire.clone());
        nulls.insert(name.to_string(), Value::Null);
        expected.insert(name.to_string(), want.clone());
    }
    let mut third = values.clone();
    third.insert("id".into(), json!(3));
    let events = [
        event(f, 0, "c", 1, Some(&Value::Object(values))),
        event(f, 1, "c", 2, Some(&Value::Object(nulls.clone()))),
        event(f, 2, "c", 3, Some(&Value::Object(third))),
        event(f, 3, "d", 3, None),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(out.join("events.jsonl"), lines).expect("events.jsonl");
    let table = format!("{}.{}", f.schema, f.table);
    let rows = json!([Value::Object(expected), Value::Object(nulls)]);
    std::fs::write(
        out.join("expected").join(format!("{table}.json")),
        rows.to_string(),
    )
    .expect("expected");
    let meta = json!({"scenario": f.name, "tables": [{"schema": f.schema, "table": f.table, "primary_key": ["id"]}]});
    std::fs::write(out.join("scenario.json"), meta.to_string()).expect("scenario.json");
    Scenario::load_from(&out, f.name)
}

/// A column comment every format's schema carries for the matrix table of `scenario` (Delta
/// field metadata `comment`, Iceberg field `doc`, Hudi Avro `doc`): the Postgres interval's
/// unit, the MySQL nanosecond timestamp's.
pub fn comment_in(scenario: &str) -> &'static str {
    match scenario {
        "type_matrix-postgres" => "interval in microseconds",
        _ => "nanoseconds since 1970-01-01 00:00:00 (wall clock)",
    }
}

/// Whether a JSON file under `dir` (a table's log or metadata) mentions `needle`.
pub fn metadata_mentions(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            return metadata_mentions(&path, needle);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text_file = name.ends_with(".json")
            || name.ends_with(".commit")
            || name.ends_with(".replacecommit");
        text_file && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
    })
}
