//! The `docs/` pages as modules, so `cargo test` checks any Rust example in them.

#[doc = include_str!("../architecture.md")]
pub mod architecture {}
#[doc = include_str!("../guarantees.md")]
pub mod guarantees {}
#[doc = include_str!("../type-mapping.md")]
pub mod type_mapping {}
#[doc = include_str!("../formats.md")]
pub mod formats {}
#[doc = include_str!("../operations.md")]
pub mod operations {}
#[doc = include_str!("../dependencies.md")]
pub mod dependencies {}
#[doc = include_str!("../shapes.md")]
pub mod shapes {}
