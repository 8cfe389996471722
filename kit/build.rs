//! Bundles the guest SDK's sources, as a crate that builds on its own, into
//! the kit binary, so `aduana-kit rule new` works on machines without a
//! checkout of this repository.
use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn main() {
    if let Err(e) = run() {
        println!("cargo::error={e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .parent()
        .ok_or("kit/ has no parent folder")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    for watched in ["guest-sdk", "wit", "Cargo.toml"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    bundle_guest_sdk(&root, &out_dir)
}

/// Writes `guest_sdk.rs`: every file of the guest SDK and of the WIT
/// contract it binds, laid out as `guest-sdk/…` and `wit/…` (the SDK finds
/// the contract at `../wit`), with a manifest whose workspace-inherited
/// fields carry the workspace's values, so the copy builds anywhere.
fn bundle_guest_sdk(root: &Path, out_dir: &Path) -> Result<(), String> {
    let manifest = standalone_sdk_manifest(root)?;
    let manifest_path = out_dir.join("guest-sdk.Cargo.toml");
    fs::write(&manifest_path, manifest).map_err(|e| e.to_string())?;
    let mut files = vec![("guest-sdk/Cargo.toml".to_owned(), manifest_path)];
    let mut sources = Vec::new();
    collect_files(&root.join("guest-sdk/src"), &mut sources)?;
    for path in sources {
        let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
        files.push((rel.display().to_string(), path));
    }
    // Only the contract's current version: the SDK binds `wit/*.wit`.
    let mut wit: Vec<PathBuf> = fs::read_dir(root.join("wit"))
        .map_err(|e| format!("reading wit/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wit"))
        .collect();
    wit.sort();
    for path in wit {
        let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
        files.push((rel.display().to_string(), path));
    }
    let mut code = String::from(
        "/// The guest SDK as a crate that builds on its own: (path under the SDK\n\
         /// root, contents). `guest-sdk/` is the crate; `wit/` the contract it binds.\n\
         pub const FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, path) in files {
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    fs::write(out_dir.join("guest_sdk.rs"), code).map_err(|e| e.to_string())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// `guest-sdk/Cargo.toml` with `x.workspace = true` replaced by the
/// workspace's definition of `x`, and the workspace lints dropped.
fn standalone_sdk_manifest(root: &Path) -> Result<String, String> {
    use toml_edit::{DocumentMut, Table};
    let read = |p: &Path| -> Result<DocumentMut, String> {
        fs::read_to_string(p)
            .map_err(|e| format!("reading {}: {e}", p.display()))?
            .parse::<DocumentMut>()
            .map_err(|e| format!("parsing {}: {e}", p.display()))
    };
    let workspace = read(&root.join("Cargo.toml"))?;
    let mut sdk = read(&root.join("guest-sdk/Cargo.toml"))?;
    let ws = |section: &str| -> Result<Table, String> {
        workspace["workspace"][section]
            .as_table()
            .cloned()
            .ok_or_else(|| format!("Cargo.toml has no [workspace.{section}]"))
    };
    let (package, dependencies) = (ws("package")?, ws("dependencies")?);
    if let Some(fields) = sdk["package"].as_table_mut() {
        let keys: Vec<String> = fields.iter().map(|(k, _)| k.to_owned()).collect();
        for key in keys {
            if fields.get(&key).is_some_and(inherits) {
                let value = package
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| format!("[workspace.package] has no `{key}`"))?;
                fields.insert(&key, value);
            }
        }
    }
    resolve_dependencies(&mut sdk["dependencies"], &dependencies)?;
    if let Some(targets) = sdk["target"].as_table_mut() {
        for (_, target) in targets.iter_mut() {
            resolve_dependencies(&mut target["dependencies"], &dependencies)?;
        }
    }
    sdk.remove("lints");
    Ok(format!(
        "# The aduana guest SDK, bundled with the `aduana` binary.\n{sdk}"
    ))
}

/// Whether a manifest entry is `x.workspace = true` (or `{ workspace = true, … }`).
fn inherits(item: &toml_edit::Item) -> bool {
    item.as_table_like()
        .and_then(|t| t.get("workspace"))
        .and_then(toml_edit::Item::as_bool)
        == Some(true)
}

/// Replaces each inheriting dependency of `deps` with the workspace's
/// definition, keeping local additions (`features` are appended).
fn resolve_dependencies(
    deps: &mut toml_edit::Item,
    workspace: &toml_edit::Table,
) -> Result<(), String> {
    use toml_edit::{InlineTable, Item, Value};
    let Some(deps) = deps.as_table_like_mut() else {
        return Ok(());
    };
    let keys: Vec<String> = deps.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        let Some(local) = deps.get(&key).filter(|i| inherits(i)).cloned() else {
            continue;
        };
        let mut merged = match workspace.get(&key) {
            Some(Item::Value(Value::String(v))) => {
                let mut t = InlineTable::new();
                t.insert("version", Value::from(v.value().as_str()));
                t
            }
            Some(Item::Value(Value::InlineTable(t))) => t.clone(),
            Some(Item::Table(t)) => t.clone().into_inline_table(),
            _ => return Err(format!("[workspace.dependencies] has no usable `{key}`")),
        };
        if let Some(local) = local.as_table_like() {
            for (k, v) in local.iter().filter(|(k, _)| *k != "workspace") {
                let Some(v) = v.as_value() else { continue };
                match (k, merged.get_mut(k), v) {
                    ("features", Some(Value::Array(have)), Value::Array(more)) => {
                        have.extend(more.iter().cloned());
                    }
                    _ => {
                        merged.insert(k, v.clone());
                    }
                }
            }
        }
        merged.fmt();
        deps.insert(&key, Item::Value(Value::InlineTable(merged)));
    }
    Ok(())
}
