//! Avro writer schemas as the Kafka Connect `AvroConverter` registers them: a decoding tree
//! ([`Node`]) and the Connect schema the JsonConverter would have sent for the same data
//! (AvroData's conventions: `connect.name`, `connect.parameters`, `connect.default`,
//! `connect.type`, optional fields as unions with `null`), so both wire formats give the same
//! Arrow columns and field metadata.
//!
//! Our own parser instead of `apache-avro`'s: that one drops the attributes of primitive
//! types (`{"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}` becomes a
//! plain long) and so loses every Debezium semantic type (docs/dependencies.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::decode::debezium::types::ConnectSchema;

/// How to read one Avro value.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Arc<[String]>),
    Array(Box<Node>),
    Map(Box<Node>),
    Record(Arc<Record>),
    Union(Box<[Node]>),
}

/// A record type: its full name and fields in schema (and wire) order.
#[derive(Debug)]
pub(crate) struct Record {
    pub name: String,
    pub fields: Vec<(String, Node)>,
}

impl Record {
    /// The position and node of the field called `name`.
    pub(crate) fn field(&self, name: &str) -> Option<(usize, &Node)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, (n, _))| n == name)
            .map(|(i, (_, node))| (i, node))
    }
}

/// A parsed writer schema: how to read it and what Connect schema it stands for.
#[derive(Debug)]
pub(crate) struct AvroSchema {
    pub root: Node,
    pub connect: ConnectSchema,
}

/// Parses a writer schema (JSON text). Named types may be referred to after their definition;
/// a record that contains itself is refused (Connect schemas never do).
pub(crate) fn parse_schema(text: &str) -> Result<AvroSchema, String> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| format!("Avro schema is not JSON: {e}"))?;
    let mut parser = Parser::default();
    let (root, connect) = parser.parse(&json, None)?;
    Ok(AvroSchema { root, connect })
}

#[derive(Default)]
struct Parser {
    /// Named types defined so far, by full name and by short name.
    named: HashMap<String, (Node, ConnectSchema)>,
    /// Records being defined (a reference to one of them is recursion).
    open: Vec<String>,
}

impl Parser {
    fn parse(
        &mut self,
        json: &Value,
        namespace: Option<&str>,
    ) -> Result<(Node, ConnectSchema), String> {
        match json {
            Value::String(name) => self.primitive_or_named(name, namespace, &Map::new()),
            Value::Array(branches) => self.union(branches, namespace),
            Value::Object(obj) => {
                let ty = obj
                    .get("type")
                    .ok_or_else(|| "Avro schema object without `type`".to_string())?;
                match ty {
                    Value::String(t) => match t.as_str() {
                        "record" | "error" => self.record(obj, namespace),
                        "enum" => self.enumeration(obj, namespace),
                        "array" => {
                            let (item, item_connect) =
                                self.parse(child(obj, "items")?, namespace)?;
                            let map_entry = match (&item, &item_connect.fields) {
                                (Node::Record(r), Some(f)) if is_map_entry(&r.name, f) => Some(f),
                                _ => None,
                            };
                            let mut connect =
                                connect_of(obj, if map_entry.is_some() { "map" } else { "array" });
                            if let Some(entry) = map_entry {
                                connect.keys = Some(Box::new(entry[0].clone()));
                                connect.values = Some(Box::new(entry[1].clone()));
                            } else {
                                connect.items = Some(Box::new(item_connect));
                            }
                            Ok((Node::Array(Box::new(item)), connect))
                        }
                        "map" => {
                            let (value, value_connect) =
                                self.parse(child(obj, "values")?, namespace)?;
                            let mut connect = connect_of(obj, "map");
                            connect.keys = Some(Box::new(plain("string")));
                            connect.values = Some(Box::new(value_connect));
                            Ok((Node::Map(Box::new(value)), connect))
                        }
                        "fixed" => {
                            let size = obj
                                .get("size")
                                .and_then(Value::as_u64)
                                .ok_or("fixed without `size`")?;
                            let node = Node::Fixed(size as usize);
                            let connect = connect_of(obj, "bytes");
                            self.define(obj, namespace, &node, &connect)?;
                            Ok((node, connect))
                        }
                        name => self.primitive_or_named(name, namespace, obj),
                    },
                    // `{"type": {...}}` and `{"type": [...]}` wrap another schema.
                    other => self.parse(other, namespace),
                }
            }
            other => Err(format!("not an Avro schema: {other}")),
        }
    }

    fn primitive_or_named(
        &mut self,
        name: &str,
        namespace: Option<&str>,
        attrs: &Map<String, Value>,
    ) -> Result<(Node, ConnectSchema), String> {
        let (node, connect_type) = match name {
            "null" => (Node::Null, "null"),
            "boolean" => (Node::Boolean, "boolean"),
            "int" => (Node::Int, "int32"),
            "long" => (Node::Long, "int64"),
            "float" => (Node::Float, "float32"),
            "double" => (Node::Double, "float64"),
            "bytes" => (Node::Bytes, "bytes"),
            "string" => (Node::String, "string"),
            _ => return self.reference(name, namespace),
        };
        let mut connect = connect_of(attrs, connect_type);
        // AvroData marks Connect's int8/int16 (Avro has only int) with `connect.type`.
        if let Some(t @ ("int8" | "int16")) = attrs.get("connect.type").and_then(Value::as_str) {
            connect.ty = t.to_string();
        }
        Ok((node, connect))
    }

    fn reference(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<(Node, ConnectSchema), String> {
        let full = full_name(name, namespace);
        if self.open.contains(&full) {
            return Err(format!("recursive Avro type `{full}` is not supported"));
        }
        self.named
            .get(&full)
            .or_else(|| self.named.get(name))
            .cloned()
            .ok_or_else(|| format!("unknown Avro type `{name}`"))
    }

    fn union(
        &mut self,
        branches: &[Value],
        namespace: Option<&str>,
    ) -> Result<(Node, ConnectSchema), String> {
        let mut nodes = Vec::with_capacity(branches.len());
        let mut value_branches = Vec::new();
        for b in branches {
            let (node, connect) = self.parse(b, namespace)?;
            if !matches!(node, Node::Null) {
                value_branches.push(connect);
            }
            nodes.push(node);
        }
        let optional = value_branches.len() < nodes.len();
        let mut connect = match value_branches.len() {
            1 => value_branches.pop().expect("one branch"),
            0 => plain("null"),
            // AvroData's io.confluent.connect.avro.Union: Debezium never writes one.
            _ => return Err("Avro unions of several non-null types are not supported".into()),
        };
        connect.optional = optional;
        Ok((Node::Union(nodes.into_boxed_slice()), connect))
    }

    fn record(
        &mut self,
        obj: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<(Node, ConnectSchema), String> {
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or("record without `name`")?;
        let full = full_name_in(obj, name, namespace);
        let inner_ns = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
        self.open.push(full.clone());
        let mut fields = Vec::new();
        let mut connect_fields = Vec::new();
        for f in obj
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("record without `fields`")?
        {
            let fname = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or("record field without `name`")?;
            let (node, mut connect) = self.parse(child_of(f, "type")?, inner_ns.as_deref())?;
            connect.field = Some(fname.to_string());
            if connect.default.is_none() {
                connect.default = f
                    .get("default")
                    .filter(|d| !d.is_null())
                    .map(|d| wire_default(&connect, d));
            }
            fields.push((fname.to_string(), node));
            connect_fields.push(connect);
        }
        self.open.pop();
        let node = Node::Record(Arc::new(Record { name: full, fields }));
        let mut connect = connect_of(obj, "struct");
        connect.fields = Some(connect_fields);
        self.define(obj, namespace, &node, &connect)?;
        Ok((node, connect))
    }

    fn enumeration(
        &mut self,
        obj: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<(Node, ConnectSchema), String> {
        let symbols = obj
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or("enum without `symbols`")?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or("enum symbol is not a string")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let node = Node::Enum(symbols.into());
        let connect = connect_of(obj, "string");
        self.define(obj, namespace, &node, &connect)?;
        Ok((node, connect))
    }

    fn define(
        &mut self,
        obj: &Map<String, Value>,
        namespace: Option<&str>,
        node: &Node,
        connect: &ConnectSchema,
    ) -> Result<(), String> {
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or("named type without `name`")?;
        let full = full_name_in(obj, name, namespace);
        let short = full.rsplit('.').next().unwrap_or(&full).to_string();
        self.named.insert(full, (node.clone(), connect.clone()));
        self.named
            .entry(short)
            .or_insert_with(|| (node.clone(), connect.clone()));
        Ok(())
    }
}

fn child<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    obj.get(key)
        .ok_or_else(|| format!("Avro schema without `{key}`"))
}

fn child_of<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key)
        .ok_or_else(|| format!("Avro field without `{key}`"))
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn full_name_in(obj: &Map<String, Value>, name: &str, namespace: Option<&str>) -> String {
    let ns = obj.get("namespace").and_then(Value::as_str).or(namespace);
    full_name(name, ns)
}

/// AvroData writes a Connect map with non-string keys as an array of `MapEntry` records.
fn is_map_entry(record: &str, fields: &[ConnectSchema]) -> bool {
    record.ends_with("MapEntry")
        && fields.len() == 2
        && fields[0].field.as_deref() == Some("key")
        && fields[1].field.as_deref() == Some("value")
}

fn plain(ty: &str) -> ConnectSchema {
    ConnectSchema {
        ty: ty.to_string(),
        optional: false,
        name: None,
        parameters: None,
        default: None,
        field: None,
        fields: None,
        items: None,
        keys: None,
        values: None,
    }
}

/// The Connect schema of `ty` with the `connect.*` attributes of a type object.
fn connect_of(attrs: &Map<String, Value>, ty: &str) -> ConnectSchema {
    let mut s = plain(ty);
    s.name = attrs
        .get("connect.name")
        .and_then(Value::as_str)
        .map(str::to_string);
    s.parameters = attrs
        .get("connect.parameters")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        });
    if let Some(d) = attrs.get("connect.default").filter(|d| !d.is_null()) {
        s.default = Some(wire_default(&s, d));
    }
    s
}

/// A default in Avro's JSON encoding as the JsonConverter writes it: bytes (Avro: one char per
/// byte) as base64; everything else alike.
fn wire_default(s: &ConnectSchema, d: &Value) -> Value {
    use base64::Engine;
    match (s.ty.as_str(), d) {
        ("bytes", Value::String(chars)) => {
            let bytes: Option<Vec<u8>> = chars
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect();
            match bytes {
                Some(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                None => d.clone(),
            }
        }
        _ => d.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_attributes_survive_on_primitives_and_unions() {
        let text = r#"{"type":"record","name":"Value","namespace":"db.public.t","fields":[
            {"name":"id","type":"int"},
            {"name":"small","type":{"type":"int","connect.type":"int16"}},
            {"name":"price","type":["null",{"type":"bytes","scale":2,"precision":10,"connect.version":1,
              "connect.parameters":{"scale":"2","connect.decimal.precision":"10"},
              "connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},
            {"name":"seen","type":["null",{"type":"long","connect.name":"io.debezium.time.MicroTimestamp"}]},
            {"name":"state","type":[{"type":"string","connect.default":"new"},"null"],"default":"new"}
        ],"connect.name":"db.public.t.Value"}"#;
        let s = parse_schema(text).unwrap();
        let f = s.connect.fields.as_ref().unwrap();
        assert_eq!(s.connect.ty, "struct");
        assert_eq!(s.connect.name.as_deref(), Some("db.public.t.Value"));
        assert_eq!((f[0].ty.as_str(), f[0].optional), ("int32", false));
        assert_eq!(f[1].ty, "int16");
        assert_eq!(
            f[2].name.as_deref(),
            Some("org.apache.kafka.connect.data.Decimal")
        );
        assert_eq!(
            f[2].parameters.as_ref().unwrap()["connect.decimal.precision"],
            "10"
        );
        assert!(f[2].optional);
        assert_eq!(
            f[3].name.as_deref(),
            Some("io.debezium.time.MicroTimestamp")
        );
        assert_eq!(f[4].default, Some(Value::String("new".into())));
        assert!(f[4].optional);
        let Node::Record(r) = &s.root else { panic!() };
        assert_eq!(r.name, "db.public.t.Value");
        assert!(matches!(r.fields[4].1, Node::Union(ref b) if matches!(b[1], Node::Null)));
    }

    #[test]
    fn named_types_are_referred_to_and_recursion_is_refused() {
        let text = r#"{"type":"record","name":"Envelope","namespace":"a.b","fields":[
            {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"long"}]}]},
            {"name":"after","type":["null","Value"]}]}"#;
        let s = parse_schema(text).unwrap();
        let after = s.connect.field("after").unwrap();
        assert_eq!(
            after.fields.as_ref().unwrap()[0].field.as_deref(),
            Some("id")
        );
        assert!(after.optional);
        let recursive =
            r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#;
        assert!(parse_schema(recursive).unwrap_err().contains("recursive"));
        assert!(parse_schema(
            r#"{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}"#
        )
        .is_err());
        assert!(parse_schema("[1]").is_err());
    }

    #[test]
    fn map_entries_become_connect_maps_and_bytes_defaults_base64() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"m","type":{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro",
              "fields":[{"name":"key","type":"int"},{"name":"value","type":"string"}]}}},
            {"name":"b","type":{"type":"bytes","connect.default":"\u0001\u00ff"}}]}"#;
        let s = parse_schema(text).unwrap();
        let m = s.connect.field("m").unwrap();
        assert_eq!(m.ty, "map");
        assert_eq!(m.keys.as_ref().unwrap().ty, "int32");
        assert_eq!(
            s.connect.field("b").unwrap().default,
            Some(Value::String("Af8=".into()))
        );
    }
}
