//! The rule-author kit behind `aduana-kit` (and `aduana keygen` / `aduana
//! rule new|build|test|sign|upload`, which run it): scaffold a rule crate,
//! build it into a component, run it in the real sandbox against JSON
//! fixtures with insta snapshots, sign it and upload it.
//!
//! Its own crate so the server binary links neither insta nor an HTTP
//! client; it uses the server's library for the sandbox (the same engine
//! settings as production), signing and the fixture format.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use aduana_host::{
    domain::signing,
    pipeline::fixture::{Fixture, FixtureOutput},
    runtime::{Runtime, RuntimeLimits},
};

/// The guest SDK bundled with this binary (sources of `guest-sdk/` and the
/// WIT contract, with a manifest that builds outside the workspace).
mod bundled {
    include!(concat!(env!("OUT_DIR"), "/guest_sdk.rs"));
}

/// What the scaffold depends on when neither `--sdk` nor
/// `ADUANA_GUEST_SDK` names an SDK.
const SDK_FIX: &str = "pass --sdk PATH (or set ADUANA_GUEST_SDK) to the `guest-sdk` folder \
     of an aduana checkout, or leave both unset to use the SDK bundled with this binary";

/// The guest SDK a new rule crate depends on: `explicit` (`--sdk` or
/// `ADUANA_GUEST_SDK`) when given, else the SDK bundled with this binary,
/// unpacked once per SDK content under the user's data directory. Either
/// way the answer is an absolute path to a crate named `aduana-guest-sdk`.
pub fn resolve_sdk(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) => check_sdk(path),
        None => unpack_bundled_sdk(&sdk_home()?),
    }
}

fn check_sdk(path: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::fs::canonicalize(path).map_err(|e| {
        anyhow::anyhow!(
            "the guest SDK at `{}` cannot be read ({e}): {SDK_FIX}",
            path.display()
        )
    })?;
    let manifest = dir.join("Cargo.toml");
    let named = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| package_name_of(&text))
        .is_some_and(|name| name == "aduana-guest-sdk");
    if !named {
        bail!(
            "`{}` is not the aduana guest SDK (no Cargo.toml naming the package \
             `aduana-guest-sdk`): {SDK_FIX}",
            dir.display()
        );
    }
    Ok(dir)
}

/// Where bundled SDKs are unpacked: `$XDG_DATA_HOME/aduana/guest-sdk`, else
/// `$HOME/.local/share/aduana/guest-sdk`.
fn sdk_home() -> anyhow::Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let data = var("XDG_DATA_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".local/share")))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot unpack the bundled guest SDK: neither XDG_DATA_HOME nor HOME is set; \
                 {SDK_FIX}"
            )
        })?;
    Ok(data.join("aduana").join("guest-sdk"))
}

/// Unpacks the bundled SDK under `home` (once per content: the folder is
/// named by its hash) and returns its crate folder.
pub fn unpack_bundled_sdk(home: &Path) -> anyhow::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (path, text) in bundled::FILES {
        hash.update(path.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    let id = format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION"),
        &hex::encode(hash.finalize())[..12]
    );
    let root = home.join(&id);
    let crate_dir = root.join("guest-sdk");
    if crate_dir.join("Cargo.toml").is_file() {
        return Ok(crate_dir);
    }
    // Written aside and renamed into place, so a concurrent `rule new`
    // never sees half an SDK.
    let tmp = home.join(format!(".{id}.{}", std::process::id()));
    let unpack = || -> anyhow::Result<()> {
        for (path, text) in bundled::FILES {
            let dest = tmp.join(path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&dest, text)?;
        }
        Ok(())
    };
    unpack().with_context(|| {
        format!(
            "cannot unpack the bundled guest SDK into {}; {SDK_FIX}",
            home.display()
        )
    })?;
    if let Err(e) = std::fs::rename(&tmp, &root) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process won the race: its copy is the same content.
        if !crate_dir.join("Cargo.toml").is_file() {
            return Err(e).with_context(|| format!("moving the SDK into {}", root.display()));
        }
    }
    Ok(crate_dir)
}

/// `aduana keygen`: writes `<out>.key` (secret seed, base64, mode 0600) and
/// `<out>.pub` (public key, base64); returns the public key.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    let (secret, public) = signing::generate_keypair();
    let key_path = out.with_extension("key");
    let pub_path = out.with_extension("pub");
    if key_path.exists() {
        bail!("{} exists; refusing to overwrite a key", key_path.display());
    }
    write_private(&key_path, &secret)?;
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok(public)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The flow a scaffolded rule starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaffoldFlow {
    /// Fires on payouts at or above an amount.
    #[default]
    Payout,
    /// Fires when one card was tried too often in the last hour (the
    /// host's velocity counts).
    Payin,
}

/// `aduana rule new NAME [--flow payin]`: a rule crate with a fixtures
/// folder and a native snapshot test, in `dir/NAME`, depending on the guest
/// SDK at `sdk` (see [`resolve_sdk`]).
pub fn scaffold(name: &str, dir: &Path, sdk: &Path, flow: ScaffoldFlow) -> anyhow::Result<PathBuf> {
    if !signing::is_rule_id(name) {
        bail!(
            "`{name}` is not a valid rule id: 2 to 64 of a-z, 0-9 and `-`, starting with a letter"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let files: Vec<(&str, String)> = vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
aduana-guest-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
insta = {{ version = "1", features = ["json", "glob"] }}

# A rule is its own workspace, wherever it lives.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
                sdk = sdk.display().to_string()
            ),
        ),
        (
            "tests/snapshots.rs",
            format!(
                r#"//! Native snapshot test over `fixtures/*.json` (the same fixtures
//! `aduana rule test` runs through the compiled component).
use {crate_name}::{ty};

#[test]
fn fixtures() {{
    insta::glob!("../fixtures", "*.json", |path| {{
        let out = aduana_guest_sdk::testing::run_fixture::<{ty}>(path).expect("fixture");
        insta::assert_json_snapshot!(out);
    }});
}}
"#,
                crate_name = snake(name),
                ty = camel(name)
            ),
        ),
        (".gitignore", "target/\ndist/\n*.key\n".to_owned()),
    ];
    let files = files.into_iter().chain(match flow {
        ScaffoldFlow::Payout => payout_files(name),
        ScaffoldFlow::Payin => payin_files(name),
    }?);
    for (file, text) in files {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

/// The payout template: `src/lib.rs`, two fixtures and the params schema.
fn payout_files(name: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let code = format!("{}_large_amount", snake(name));
    Ok(vec![
        (
            "src/lib.rs",
            format!(
                r#"//! Rule `{name}`: fires `{code}` on payouts at or above a threshold.
//!
//! Edit `evaluate`, add fixtures under `fixtures/`, then:
//! `aduana rule test` (real sandbox, snapshots) and `cargo test` (native).
use aduana_guest_sdk::prelude::*;
use serde::{{Deserialize, Serialize}};

/// Tunables: the tenant overrides them per pipeline, no new version needed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {{
    /// Amount in major units from which the signal fires.
    pub threshold: String,
    pub weight: u32,
}}

impl Default for Params {{
    fn default() -> Self {{
        Self {{ threshold: "100000.00".into(), weight: 20 }}
    }}
}}

/// The rule.
pub struct {ty};

impl Rule for {ty} {{
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {{
        aduana_guest_sdk::Description::new("{name}", "payout at or above a threshold")
            .flow(Flow::Payout)
            .signal("{code}", 20, "payout at or above the threshold")
    }}

    fn evaluate(tx: &Transaction, params: &Params, _ctx: &dyn Context) -> Result<Evaluation, RuleError> {{
        let limit = tx.amount.major_to_minor(&params.threshold).ok_or_else(|| {{
            RuleError::InvalidParams(format!("threshold `{{}}` is not an amount", params.threshold))
        }})?;
        let mut out = Evaluation::new();
        if tx.amount.minor >= limit {{
            out.fire("{code}", params.weight, &format!("at least {{}} {{}}", params.threshold, tx.amount.currency));
        }}
        Ok(out)
    }}
}}

export_rule!({ty});
"#,
                ty = camel(name)
            ),
        ),
        (
            "fixtures/large.json",
            json!({
                "description": "a payout at the threshold fires",
                "transaction": {
                    "amount_minor": 10_000_000, "currency": "MXN", "exponent": 2,
                    "beneficiary": {"name": "Proveedor SA", "country": "MX"},
                    "origin": {"account_id": "acct_01", "country": "MX"},
                    "payout": {"channel": "spei"},
                    "assessed_at_ms": 1_763_822_400_000i64
                },
                "context": {"history": {"prior_transfers": 0}}
            })
            .to_string(),
        ),
        (
            "fixtures/small.json",
            json!({
                "description": "a small payout does not fire",
                "transaction": {
                    "amount_minor": 150_050, "currency": "MXN", "exponent": 2,
                    "beneficiary": {"name": "Proveedor SA", "country": "MX"},
                    "assessed_at_ms": 1_763_822_400_000i64
                }
            })
            .to_string(),
        ),
        (
            "aduana-rule.json",
            serde_json::to_string_pretty(&json!({
                "params_schema": {
                    "type": "object",
                    "properties": {
                        "threshold": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
                        "weight": {"type": "integer", "minimum": 0, "maximum": 100}
                    }
                }
            }))?,
        ),
    ])
}

/// The pay-in template: fires when the card was tried at least
/// `max_per_hour` times in the last hour (the host's velocity counts, as
/// of the assessment's time), naming the count.
fn payin_files(name: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let code = format!("{}_card_burst", snake(name));
    let payin = |count: u32| {
        json!({
            "flow": "payin",
            "amount_minor": 150_000, "currency": "MXN", "exponent": 2,
            "customer_id": "cus_1", "payment_id": format!("pay_{count}"),
            "assessed_at_ms": 1_765_000_000_000i64,
            "payin": {
                "email": "ana@example.com",
                "payment_method": {"type": "card", "card_bin": "41111111", "card_last4": "1111"},
                "device": {"ip": "203.0.113.7"}
            }
        })
    };
    let velocity = |count: u32| {
        json!({"velocity": [
            {"entity": "card", "window": "1h", "count": count},
            {"entity": "card", "window": "24h", "count": count},
            {"entity": "card", "window": "7d", "count": count}
        ]})
    };
    Ok(vec![
        (
            "src/lib.rs",
            format!(
                r#"//! Rule `{name}` (pay-in): fires `{code}` when the card was tried at
//! least `max_per_hour` times in the last hour.
//!
//! The host counts earlier live pay-ins per customer, card, IP, device and
//! e-mail over 1h, 24h and 7d before the rule runs; `ctx.velocity(entity,
//! window)` reads them (`None` when the pay-in has no such entity).
//! Edit `evaluate`, add fixtures under `fixtures/`, then:
//! `aduana rule test` (real sandbox, snapshots) and `cargo test` (native).
use aduana_guest_sdk::prelude::*;
use serde::{{Deserialize, Serialize}};

/// Tunables: the tenant overrides them per pipeline, no new version needed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {{
    /// Earlier pay-ins with the card in the last hour from which it fires.
    pub max_per_hour: u32,
    pub weight: u32,
}}

impl Default for Params {{
    fn default() -> Self {{
        Self {{ max_per_hour: 5, weight: 30 }}
    }}
}}

/// The rule.
pub struct {ty};

impl Rule for {ty} {{
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {{
        aduana_guest_sdk::Description::new("{name}", "one card tried too often in an hour")
            .flow(Flow::Payin)
            .signal("{code}", 30, "card tried too often in the last hour")
    }}

    fn evaluate(_tx: &Transaction, params: &Params, ctx: &dyn Context) -> Result<Evaluation, RuleError> {{
        let mut out = Evaluation::new();
        if let Some(count) = ctx.velocity("card", "1h")
            && count >= params.max_per_hour
        {{
            out.fire("{code}", params.weight, &format!("card: {{count}} earlier pay-ins in 1h"));
        }}
        Ok(out)
    }}
}}

export_rule!({ty});
"#,
                ty = camel(name)
            ),
        ),
        (
            "fixtures/burst.json",
            json!({
                "description": "a card tried 5 times in the last hour fires",
                "transaction": payin(5),
                "context": velocity(5)
            })
            .to_string(),
        ),
        (
            "fixtures/quiet.json",
            json!({
                "description": "a card seen once in the hour does not fire",
                "transaction": payin(1),
                "context": velocity(1)
            })
            .to_string(),
        ),
        (
            "aduana-rule.json",
            serde_json::to_string_pretty(&json!({
                "params_schema": {
                    "type": "object",
                    "properties": {
                        "max_per_hour": {"type": "integer", "minimum": 1},
                        "weight": {"type": "integer", "minimum": 0, "maximum": 100}
                    }
                }
            }))?,
        ),
    ])
}

/// The `[package] name` of the crate at `dir`.
fn package_name(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("no Cargo.toml in {}", dir.display()))?;
    package_name_of(&text).context("Cargo.toml has no [package] name")
}

fn package_name_of(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
        })
}

/// Fails with the fix when the bare Wasm target is not installed.
fn ensure_wasm_target() -> anyhow::Result<()> {
    const TARGET: &str = "wasm32-unknown-unknown";
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .with_context(|| {
            format!("running `{rustc}`: install the Rust toolchain first (https://rustup.rs)")
        })?;
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !Path::new(&libdir).is_dir() {
        bail!(
            "the Rust target `{TARGET}` is not installed, and rules are built for it: \
             run `rustup target add {TARGET}`"
        );
    }
    Ok(())
}

/// `aduana rule build`: compiles the crate at `dir` for
/// `wasm32-unknown-unknown` and wraps it into a component at
/// `dir/dist/<name>.wasm`.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let name = package_name(dir)?;
    ensure_wasm_target()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--target-dir")
        .arg(&target_dir)
        // The same small stack the built-in rules use.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=-zstack-size=65536")
        .env_remove("RUSTFLAGS")
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let core = target_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", snake(&name)));
    let bytes = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| anyhow::anyhow!("making a component: {e:#}"))?;
    aduana_host::runtime::inspect(&component).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = dist.join(format!("{name}.wasm"));
    std::fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// One fixture's result in `aduana rule test`.
#[derive(Debug, Clone)]
pub struct FixtureRun {
    pub name: String,
    pub outcome: String,
    pub fuel_used: u64,
    pub peak_memory: usize,
    pub duration_us: u128,
    pub snapshot: Result<(), String>,
}

/// `aduana rule test`: runs `component` in the production sandbox on every
/// `fixtures/*.json` under `dir`, snapshots each output with insta under
/// `dir/snapshots/`, and reports fuel and memory. Fails when a snapshot
/// differs or a fixture uses more than half the fuel budget.
pub fn test(dir: &Path, component: &Path) -> anyhow::Result<(Vec<FixtureRun>, u64)> {
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let limits = RuntimeLimits {
        pool_instances: 8,
        ..RuntimeLimits::default()
    };
    let budget = limits.fuel;
    let rt = Runtime::new(limits)?;
    let rule = rt.load(&bytes)?;
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir.join("fixtures"))
        .with_context(|| format!("no fixtures/ folder in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    fixtures.sort();
    if fixtures.is_empty() {
        bail!("fixtures/ has no *.json fixture");
    }
    let snapshots = dir.join("snapshots");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(
        std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .join("snapshots"),
    );
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    std::fs::create_dir_all(&snapshots)?;
    let mut runs = Vec::new();
    for path in fixtures {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("fixture")
            .to_owned();
        let text = std::fs::read_to_string(&path)?;
        let fixture: Fixture =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let mut params = rule.metadata.default_params.clone();
        params.extend(fixture.params.clone());
        let run = rt.evaluate(
            &rule,
            &fixture.transaction.to_transaction(),
            &Value::Object(params).to_string(),
            &Arc::new(fixture.context.clone()),
        );
        let out = FixtureOutput::from_outcome(&run.outcome);
        let value = json!({
            "fixture": fixture.description,
            "outcome": out.outcome,
            "reason": out.reason,
            "signals": out.signals,
            "warnings": out.warnings,
        });
        let snap_name = name.clone();
        let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_json_snapshot!(snap_name, value));
        }))
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "snapshot assertion failed".to_owned())
        });
        runs.push(FixtureRun {
            name,
            outcome: out.outcome,
            fuel_used: run.fuel_used,
            peak_memory: run.peak_memory,
            duration_us: run.duration.as_micros(),
            snapshot,
        });
    }
    Ok((runs, budget))
}

/// `aduana rule sign`: signs `component` with the secret key file; writes
/// `<component>.sig` (base64) and returns (digest, signature path).
pub fn sign(component: &Path, key_file: &Path) -> anyhow::Result<(String, PathBuf)> {
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let secret = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading {}", key_file.display()))?;
    let sig = signing::sign_module(&secret, &bytes).map_err(|e| anyhow::anyhow!(e))?;
    let out = PathBuf::from(format!("{}.sig", component.display()));
    std::fs::write(&out, format!("{sig}\n"))?;
    Ok((signing::digest_string(&signing::sha256(&bytes)), out))
}

/// The upload manifest of `component`: its own metadata, plus the optional
/// extra fields (`params_schema`, `description`) of `aduana-rule.json`.
pub fn manifest(component: &[u8], extra: Option<&Path>) -> anyhow::Result<Value> {
    let rt = Runtime::new(RuntimeLimits {
        pool_instances: 2,
        ..RuntimeLimits::default()
    })?;
    let rule = rt.load(component)?;
    let mut m = json!({
        "rule_id": rule.metadata.id,
        "version": rule.metadata.version,
        "description": rule.metadata.description,
        "flows": rule.metadata.flows,
        "default_params": rule.metadata.default_params,
    });
    if let Some(path) = extra.filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path)?;
        let extra: Value =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(m)
}

/// `aduana rule upload`: sends the signed component, and activates it when
/// `activate` names a mode. Returns the server's answers.
pub async fn upload(
    url: &str,
    api_key: &str,
    key_id: &str,
    component: &Path,
    signature: &Path,
    manifest: &Value,
    activate: Option<&str>,
) -> anyhow::Result<Value> {
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let sig = std::fs::read_to_string(signature)
        .with_context(|| format!("reading {}", signature.display()))?;
    let form = reqwest::multipart::Form::new()
        .part(
            "module",
            reqwest::multipart::Part::bytes(bytes).file_name("rule.wasm"),
        )
        .text("signature", sig.trim().to_owned())
        .text("key_id", key_id.to_owned())
        .text("manifest", manifest.to_string());
    let client = reqwest::Client::new();
    let base = url.trim_end_matches('/');
    let resp = client
        .post(format!("{base}/api/v1/rules"))
        .bearer_auth(api_key)
        .multipart(form)
        .send()
        .await
        .context("sending the upload")?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("upload refused ({status}): {body}");
    }
    let Some(mode) = activate else {
        return Ok(json!({ "upload": body }));
    };
    let path = format!(
        "{base}/api/v1/rules/{}/versions/{}/activate",
        body["rule_id"].as_str().unwrap_or_default(),
        body["version"].as_str().unwrap_or_default()
    );
    let resp = client
        .post(path)
        .bearer_auth(api_key)
        .json(&json!({ "mode": mode }))
        .send()
        .await
        .context("activating")?;
    let status = resp.status();
    let activation: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("activation refused ({status}): {activation}");
    }
    Ok(json!({ "upload": body, "activation": activation }))
}
