//! Every fixture scenario and variant, through the S3-sink layout on local disk, the pipeline and
//! the reference sink, ends equal to its `expected/` state: as one batch (folding inside a
//! batch), in batches of 100 and in batches of 7 events over gzipped files (folding across
//! commits, unchanged values resolved from the table).

use cdc_core::sink::MemoryWarehouse;
use cdc_core::testing::Scenario;

use crate::common::{assert_expected, hints_for, sync, MEDIUM_BATCHES, ONE_BATCH, SMALL_BATCHES};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let hints = hints_for(&scenario).await;
    for shape in [ONE_BATCH, MEDIUM_BATCHES, SMALL_BATCHES] {
        let dir = tempfile::tempdir().unwrap();
        let wh = MemoryWarehouse::new();
        let stats = sync(&scenario, dir.path(), shape, hints.clone(), &wh, None)
            .await
            .unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
        assert_eq!(stats.dead_lettered, 0);
        assert!(stats.commits > 0);
        assert_expected(&scenario, &wh);
    }
}

macro_rules! scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                check($name).await;
            }
        )*

        #[test]
        fn every_fixture_scenario_has_a_test() {
            let tested = [$($name),*];
            for s in Scenario::all() {
                assert!(tested.contains(&s.name.as_str()), "no test for scenario {}", s.name);
            }
        }
    };
}

scenarios! {
    crud => "crud",
    crud_connect_time => "crud-connect-time",
    crud_decimal_double => "crud-decimal-double",
    crud_decimal_string => "crud-decimal-string",
    crud_noschema => "crud-noschema",
    crud_unwrap => "crud-unwrap",
    pk_change => "pk_change",
    schema_change => "schema_change",
    toast => "toast",
    truncate => "truncate",
    types => "types",
    types_connect_time => "types-connect-time",
    types_decimal_double => "types-decimal-double",
    types_decimal_string => "types-decimal-string",
    types_noschema => "types-noschema",
    types_unwrap => "types-unwrap",
}
