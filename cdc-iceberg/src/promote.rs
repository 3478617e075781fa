//! Which schema changes make the table's old data files unreadable under the new schema, so
//! that the change's snapshot must rewrite the live rows.
//!
//! Iceberg readers resolve columns by field id and promote types at read time: format v2
//! allows `int` → `long`, `float` → `double` and `decimal(P, S)` → `decimal(P', S)` with
//! `P' > P`, so a widened column needs no rewrite: old files keep their narrower physical type
//! and every reader (and the sink's own reads, which convert each column to the logical type)
//! widens it. Source types that map to the same Iceberg type (`Int8` → `Int16`, both `int`)
//! change nothing stored. What does need the rewrite in v2: a column added with a non-null
//! default (v2 has no `initial-default`; old files lacking the column read as null) and any
//! other type change.
//!
//! cdc-core's `schema::evolution_rewrites_rows` answers for formats that cannot promote (true
//! for every type change); this is the Iceberg-specific answer.

use arrow_schema::Schema as ArrowSchema;
use cdc_core::decode::debezium::types::META_DEFAULT;
use iceberg::spec::{PrimitiveType, Schema as IcebergSchema, Type};

/// Whether Iceberg v2 readers read a column stored as `from` as `to` (equal or promoted).
pub fn promotes(from: &Type, to: &Type) -> bool {
    use PrimitiveType::{Decimal, Double, Float, Int, Long};
    match (from, to) {
        _ if from == to => true,
        (Type::Primitive(f), Type::Primitive(t)) => {
            matches!((f, t), (Int, Long) | (Float, Double))
                || matches!(
                    (f, t),
                    (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 })
                        if s1 == s2 && p2 >= p1
                )
        }
        _ => false,
    }
}

/// Whether going from `current` (logical and Iceberg schema of the table) to `merged` /
/// `next` needs the table's live rows rewritten (see the module docs).
pub(crate) fn rewrites_rows(
    current_logical: &ArrowSchema,
    merged: &ArrowSchema,
    current: &IcebergSchema,
    next: &IcebergSchema,
) -> bool {
    merged
        .fields()
        .iter()
        .any(|f| match current_logical.field_with_name(f.name()) {
            Err(_) => f.metadata().contains_key(META_DEFAULT),
            Ok(c) if c.data_type() == f.data_type() => false,
            Ok(_) => match (
                current.field_by_name(f.name()),
                next.field_by_name(f.name()),
            ) {
                (Some(old), Some(new)) => !promotes(&old.field_type, &new.field_type),
                _ => true,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PrimitiveType::*;

    #[test]
    fn v2_promotions_only() {
        let p = |t: PrimitiveType| Type::Primitive(t);
        let dec = |precision, scale| p(Decimal { precision, scale });
        assert!(promotes(&p(Int), &p(Long)));
        assert!(promotes(&p(Float), &p(Double)));
        assert!(promotes(&dec(9, 2), &dec(20, 2)));
        assert!(promotes(&p(String), &p(String)));
        assert!(!promotes(&p(Long), &p(Int)));
        assert!(!promotes(&dec(9, 2), &dec(20, 3)));
        assert!(!promotes(&dec(20, 2), &dec(9, 2)));
        assert!(!promotes(&p(Int), &p(Double)));
        assert!(!promotes(&p(Int), &p(String)));
    }
}
