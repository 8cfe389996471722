//! The built-in rule components, compiled by `build.rs` from `rules/` and
//! embedded in the binary. They run through the same runtime as any
//! tenant's rule.
include!(concat!(env!("OUT_DIR"), "/builtin_components.rs"));

/// Ids of the built-in rules in default pipeline order.
pub fn ids() -> Vec<&'static str> {
    BUILTIN_COMPONENTS.iter().map(|(id, _)| *id).collect()
}

/// Folder holding every component `build.rs` produced, the misbehaving test
/// guests included (`<name>.wasm`). For tests and benchmarks.
pub const COMPONENTS_DIR: &str = env!("ADUANA_COMPONENTS_DIR");
