//! Builds the rule components the host needs: the built-in rules (embedded in
//! the binary) and the misbehaving test guests (written next to them for the
//! containment tests).
//!
//! Each crate is compiled for `wasm32-unknown-unknown` by a nested cargo in its
//! own target directory, then wrapped into a component with `wit-component`.
//! Building for the bare Wasm target means the components import nothing but
//! the rule interface: no WASI at all.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

/// (crate folder, rule id) of the built-in rules, in pipeline order.
const BUILTINS: &[&str] = &[
    "payout-integrity",
    "first-beneficiary",
    "high-risk-country",
    "cross-border-amount",
    "blocklist",
    "high-velocity",
    "disposable-email",
    "card-country-mismatch",
];
const TEST_GUESTS: &[&str] = &[
    "infinite-loop",
    "memory-bomb",
    "panic",
    "oversized-output",
    "garbage-output",
    "deep-recursion",
    "tiered-v1",
    "tiered-v2",
    "large-table",
    "alloc-churn",
    "wit-v0-1",
    "weighted-v1",
    "weighted-v2",
    "weighted-hostile",
];
/// Example tenant rules (`examples/`), built so tests can sign and upload them.
const EXAMPLES: &[&str] = &["structuring", "night-spei", "new-beneficiary-burst"];
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-rule";

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
        .ok_or("host/ has no parent folder")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    for watched in [
        "rules",
        "guest-sdk",
        "wit",
        "tests/guests",
        "examples",
        // `sqlx::migrate!` embeds this folder: a new migration must rebuild.
        "migrations",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    check_target_installed()?;

    let target_dir = root.join("target").join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    for name in BUILTINS {
        cmd.args(["-p", &format!("aduana-rule-{name}")]);
    }
    for name in TEST_GUESTS {
        cmd.args(["-p", &format!("aduana-guest-{name}")]);
    }
    for name in EXAMPLES {
        cmd.args(["-p", &format!("aduana-example-{name}")]);
    }
    // The outer build's flags and wrappers (clippy, coverage, host linker)
    // must not leak into the Wasm build.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_BUILD_TARGET"
            || key == "CARGO_BUILD_RUSTFLAGS"
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(&key);
        }
    }
    // A 64 KiB shadow stack (instead of 1 MiB) keeps a rule's whole memory
    // small, so resetting an instance slot between evaluations is cheap.
    // Overflowing it traps (the stack sits first, below the data).
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=-zstack-size=65536");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build rule components: {e}"))?;
    if !status.success() {
        return Err(format!("building the rule components failed ({status})"));
    }

    let built = target_dir.join(WASM_TARGET).join(PROFILE);
    let components = out_dir.join("components");
    fs::create_dir_all(&components).map_err(|e| e.to_string())?;
    let mut embedded = String::from(
        "/// Built-in rule components (rule id, component bytes), in default pipeline order.\n\
         pub const BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n",
    );
    for (prefix, names) in [
        ("aduana_rule_", BUILTINS),
        ("aduana_guest_", TEST_GUESTS),
        ("aduana_example_", EXAMPLES),
    ] {
        for name in names {
            let core = built.join(format!("{prefix}{}.wasm", name.replace('-', "_")));
            let dest = components.join(format!("{name}.wasm"));
            componentize(&core, &dest)?;
            if prefix == "aduana_rule_" {
                embedded.push_str(&format!(
                    "    ({name:?}, include_bytes!({:?})),\n",
                    dest.display().to_string()
                ));
            }
        }
    }
    embedded.push_str("];\n");
    fs::write(out_dir.join("builtin_components.rs"), embedded).map_err(|e| e.to_string())?;
    println!(
        "cargo::rustc-env=ADUANA_COMPONENTS_DIR={}",
        components.display()
    );
    Ok(())
}

fn check_target_installed() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !Path::new(&libdir).is_dir() {
        return Err(format!(
            "the `{WASM_TARGET}` target is not installed: run `scripts/setup.sh` \
             (or `rustup target add {WASM_TARGET}`)"
        ));
    }
    Ok(())
}

fn componentize(core: &Path, dest: &Path) -> Result<(), String> {
    let bytes = fs::read(core).map_err(|e| format!("cannot read {}: {e}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|enc| enc.validate(true).encode())
        .map_err(|e| format!("cannot make a component of {}: {e:#}", core.display()))?;
    // Only rewrite on change so include_bytes! users are not rebuilt needlessly.
    if fs::read(dest).ok().as_deref() != Some(component.as_slice()) {
        fs::write(dest, component).map_err(|e| e.to_string())?;
    }
    Ok(())
}
