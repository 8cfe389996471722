//! Cheap structural checks of an uploaded component, before any compiling:
//! is it a component, does it import only the rule interface (at a WIT
//! version this host binds), does it export what the `rule` world requires.
use wasmparser::{ComponentTypeRef, Encoding, Parser, Payload};

use super::{ALLOWED_IMPORTS, RuntimeError};

/// The WIT package a rule imports from, without its version.
const PACKAGE: &str = "aduana:rules/";
/// Versions of the package this host binds.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];
/// Exports the `rule` world requires.
const REQUIRED_EXPORTS: &[&str] = &["metadata", "evaluate"];

/// Checks `bytes` without compiling them. The world's function types are
/// checked later, when the compiled component is linked.
pub fn inspect(bytes: &[u8]) -> Result<(), RuntimeError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(RuntimeError::NotComponent(
            "the bytes are not WebAssembly (no `\\0asm` header)".to_owned(),
        ));
    }
    if !Parser::is_component(bytes) {
        return Err(RuntimeError::NotComponent(
            "this is a core Wasm module, not a component; wrap it with `aduana rule build` \
             (wit-component)"
                .to_owned(),
        ));
    }
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| RuntimeError::Invalid(format!("malformed: {e}")))?;
        match payload {
            Payload::Version { encoding, .. } => {
                depth += 1;
                if depth == 1 && encoding != Encoding::Component {
                    return Err(RuntimeError::NotComponent("not a component".to_owned()));
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import =
                        import.map_err(|e| RuntimeError::Invalid(format!("malformed: {e}")))?;
                    // Type imports (the world's `use`d records) carry no
                    // capability; instances and functions are checked.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        check_import(import.name.0)?;
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| RuntimeError::Invalid(format!("malformed: {e}")))?;
                    exports.push(export.name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    for required in REQUIRED_EXPORTS {
        if !exports.iter().any(|e| e == required) {
            return Err(RuntimeError::WrongWorld(format!(
                "it does not export `{required}` (exports: {}); build it against the \
                 aduana:rules `rule` world",
                if exports.is_empty() {
                    "none".to_owned()
                } else {
                    exports.join(", ")
                }
            )));
        }
    }
    Ok(())
}

fn check_import(name: &str) -> Result<(), RuntimeError> {
    if ALLOWED_IMPORTS.contains(&name) {
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix(PACKAGE) {
        let version = rest.split_once('@').map_or("none", |(_, v)| v);
        if !SUPPORTED_WIT_VERSIONS.contains(&version) {
            return Err(RuntimeError::UnsupportedWitVersion(format!(
                "it imports `{name}`: WIT version {version} is not supported (this host binds {})",
                SUPPORTED_WIT_VERSIONS.join(", ")
            )));
        }
    }
    Err(RuntimeError::ForbiddenImport(name.to_owned()))
}
