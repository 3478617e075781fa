//! Tables of one pipeline in different warehouses (another format, another location): a
//! service over many tables whose owners picked different formats runs as one process.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{TableSink, Warehouse};
use crate::error::Result;
use crate::model::TableId;

/// A warehouse that opens some tables in warehouses of their own and every other table in a
/// default one.
pub struct RoutedWarehouse {
    default: Box<dyn Warehouse>,
    tables: HashMap<TableId, Box<dyn Warehouse>>,
}

impl std::fmt::Debug for RoutedWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routed: Vec<String> = self.tables.keys().map(|t| t.to_string()).collect();
        routed.sort();
        f.debug_struct("RoutedWarehouse")
            .field("routed_tables", &routed)
            .finish()
    }
}

impl RoutedWarehouse {
    /// Every table in `default` until [`RoutedWarehouse::route`] says otherwise.
    pub fn new(default: Box<dyn Warehouse>) -> Self {
        RoutedWarehouse {
            default,
            tables: HashMap::new(),
        }
    }

    /// Opens `table` in `warehouse` instead of the default.
    pub fn route(&mut self, table: TableId, warehouse: Box<dyn Warehouse>) {
        self.tables.insert(table, warehouse);
    }
}

#[async_trait]
impl Warehouse for RoutedWarehouse {
    async fn open(&self, table: &TableId) -> Result<Box<dyn TableSink>> {
        match self.tables.get(table) {
            Some(warehouse) => warehouse.open(table).await,
            None => self.default.open(table).await,
        }
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::sink::MemoryWarehouse;
    use crate::testing::keyed_change;

    #[tokio::test]
    async fn a_routed_table_opens_in_its_own_warehouse() {
        let (default, own) = (MemoryWarehouse::new(), MemoryWarehouse::new());
        let mut routed = RoutedWarehouse::new(Box::new(default.clone()));
        let special = TableId::new("public", "special");
        routed.route(special.clone(), Box::new(own.clone()));
        let schema =
            std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
                "id",
                arrow_schema::DataType::Int32,
                false,
            )]));
        for t in [&special, &TableId::new("public", "other")] {
            let changes = keyed_change(t, &schema, &[1], "", true, ("topic", 0));
            routed.open(t).await.unwrap().apply(&changes).await.unwrap();
        }
        assert!(own.table(&special).is_some() && default.table(&special).is_none());
        assert!(default.table(&TableId::new("public", "other")).is_some());
    }
}
