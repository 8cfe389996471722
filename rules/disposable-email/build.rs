//! Turns the shipped lists (`data/`) into sorted static arrays the rule
//! binary-searches: no parsing or allocation when it runs.
use std::{env, fs, path::PathBuf};

fn read(path: &str) -> Result<Vec<String>, String> {
    println!("cargo::rerun-if-changed={path}");
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_ascii_lowercase)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn header(path: &str, key: &str) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn array(name: &str, items: &[String]) -> String {
    let mut s = format!("pub static {name}: &[&str] = &[\n");
    for item in items {
        s.push_str(&format!("    {item:?},\n"));
    }
    s.push_str("];\n");
    s
}

fn main() -> Result<(), String> {
    let list = "data/disposable-domains.txt";
    let domains = read(list)?;
    let allow = read("data/allowlist.txt")?;
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?).join("lists.rs");
    let code = format!(
        "/// When the list was extracted (its source is in the file's header).\n\
         pub const LIST_DATE: &str = {:?};\n{}{}",
        header(list, "# Extracted:"),
        array("DISPOSABLE", &domains),
        array("ALLOWED", &allow),
    );
    fs::write(&out, code).map_err(|e| format!("{}: {e}", out.display()))
}
