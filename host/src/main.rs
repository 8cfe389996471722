//! The `aduana` binary: `serve`, `migrate`, `tenant create`, `key create`,
//! `replay`, `audit verify`, and the rule-author kit (`keygen`, `rule
//! new|build|test|sign|upload`).
use std::path::PathBuf;

use aduana_host::{
    App, Config,
    api::keys::{KeyRequest, create_key},
    domain::{ids::object_id, now_ms},
    kit,
    store::{Store, Tenant},
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

/// A request allocates and frees many short-lived buffers (JSON texts,
/// rows, rule records) across threads; glibc's malloc spent ~13% of a
/// loaded server's CPU on them, mimalloc about a third of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "aduana",
    version,
    about = "Fraud assess service with sandboxed Wasm rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (env: ADUANA_LISTEN, ADUANA_DATA_DIR, DATABASE_URL).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Re-run a stored assessment from its stored input, context snapshot
    /// and rule digests; exit 0 when the result is identical, 1 otherwise.
    Replay {
        session_id: String,
        #[arg(long)]
        json: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Generate an ed25519 signing key pair: `<out>.key` (secret, 0600) and
    /// `<out>.pub` (register it with POST /api/v1/signing-keys).
    Keygen {
        #[arg(long, default_value = "aduana-signing")]
        out: PathBuf,
    },
    /// Write, build, test, sign and upload rules.
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every hash chain; exit 1 at the first tampered entry.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// Scaffold a rule crate (fixtures folder and snapshot test included).
    New {
        name: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The guest SDK the crate depends on: the `guest-sdk` folder of an
        /// aduana checkout. Unset: the SDK bundled with this binary,
        /// unpacked under `$XDG_DATA_HOME/aduana` (or `~/.local/share/aduana`).
        #[arg(long, env = "ADUANA_GUEST_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Build the rule crate into a component at `dist/<name>.wasm`.
    Build {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Build, then run the component in the real sandbox on
    /// `fixtures/*.json`, snapshot each output (insta) and report fuel and
    /// memory. `--accept` writes new or changed snapshots.
    Test {
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Test this component instead of building.
        #[arg(long)]
        component: Option<PathBuf>,
        #[arg(long)]
        accept: bool,
    },
    /// Sign a component with a secret key file; writes `<component>.sig`.
    Sign {
        component: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Upload a signed component (and optionally activate it).
    Upload {
        component: PathBuf,
        #[arg(long, env = "ADUANA_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "ADUANA_API_KEY", hide_env_values = true)]
        api_key: String,
        /// The signing key id (`sgk_…`) registered with the server.
        #[arg(long)]
        key_id: String,
        /// Defaults to `<component>.sig`.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Extra manifest fields (params_schema); defaults to
        /// `aduana-rule.json` next to the crate's `dist/`.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Activate after upload: `active` or `shadow`.
        #[arg(long, value_parser = ["active", "shadow"])]
        activate: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant and its first admin key (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "type", value_parser = ["banco", "psp", "comercio"])]
        organization_type: String,
        /// Per-minute limit of the admin key: a number or `unlimited` (default 100).
        #[arg(long, value_parser = parse_rate)]
        rate_limit_per_minute: Option<RateArg>,
        /// Print one JSON line `{"tenant_id", "api_key"}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key for a tenant (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "secret", value_parser = ["secret", "publishable", "ingest"])]
        kind: String,
        #[arg(long)]
        name: Option<String>,
        /// A number or `unlimited` (default 100).
        #[arg(long, value_parser = parse_rate)]
        rate_limit_per_minute: Option<RateArg>,
        #[arg(long)]
        json: bool,
    },
}

/// `--rate-limit-per-minute`: a positive number, or `unlimited` (`None`).
#[derive(Debug, Clone, Copy)]
struct RateArg(Option<i64>);

fn parse_rate(s: &str) -> Result<RateArg, String> {
    if s == "unlimited" {
        return Ok(RateArg(None));
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(RateArg(Some(n))),
        _ => Err(format!("`{s}` is not a positive number or `unlimited`")),
    }
}

async fn rule_command(command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::New { name, dir, sdk } => {
            let sdk = kit::resolve_sdk(sdk.as_deref())?;
            let root = kit::scaffold(&name, &dir, &sdk)?;
            println!("created {}", root.display());
            println!("guest SDK: {}", sdk.display());
            println!("next: cd {} && aduana rule test --accept", root.display());
        }
        RuleCommand::Build { path } => {
            let out = kit::build(&path)?;
            println!("{}", out.display());
        }
        RuleCommand::Test {
            path,
            component,
            accept,
        } => {
            if accept && std::env::var("INSTA_UPDATE").as_deref() != Ok("always") {
                // insta reads its mode from the environment: re-run ourselves
                // with it set rather than mutate this process's environment.
                let status = std::process::Command::new(std::env::current_exe()?)
                    .args(std::env::args_os().skip(1))
                    .env("INSTA_UPDATE", "always")
                    .env_remove("CI")
                    .status()?;
                std::process::exit(status.code().unwrap_or(1));
            }
            let component = match component {
                Some(c) => c,
                None => kit::build(&path)?,
            };
            let (runs, budget) = kit::test(&path, &component)?;
            let mut failed = false;
            for r in &runs {
                let share = r.fuel_used as f64 * 100.0 / budget as f64;
                let verdict = match (&r.snapshot, share > 50.0) {
                    (Err(_), _) => {
                        failed = true;
                        "SNAPSHOT DIFFERS"
                    }
                    (Ok(()), true) => {
                        failed = true;
                        "OVER HALF THE FUEL BUDGET"
                    }
                    (Ok(()), false) => "ok",
                };
                println!(
                    "{:<28} {:<10} fuel {:>9} ({share:.2}% of {budget})  memory {:>7} KiB  {:>6} µs  {verdict}",
                    r.name,
                    r.outcome,
                    r.fuel_used,
                    r.peak_memory / 1024,
                    r.duration_us
                );
            }
            if failed {
                anyhow::bail!("rule test failed (review with `cargo insta review`, or --accept)");
            }
            println!("{} fixtures passed", runs.len());
        }
        RuleCommand::Sign { component, key } => {
            let (digest, sig) = kit::sign(&component, &key)?;
            println!("signed {digest}\nsignature: {}", sig.display());
        }
        RuleCommand::Upload {
            component,
            url,
            api_key,
            key_id,
            signature,
            manifest,
            activate,
        } => {
            let signature =
                signature.unwrap_or_else(|| PathBuf::from(format!("{}.sig", component.display())));
            let manifest_file = manifest.or_else(|| {
                component
                    .parent()
                    .and_then(|d| d.parent())
                    .map(|crate_dir| crate_dir.join("aduana-rule.json"))
            });
            let bytes = std::fs::read(&component)
                .with_context(|| format!("reading {}", component.display()))?;
            let manifest = kit::manifest(&bytes, manifest_file.as_deref())?;
            let out = kit::upload(
                &url,
                &api_key,
                &key_id,
                &component,
                &signature,
                &manifest,
                activate.as_deref(),
            )
            .await?;
            println!("{out}");
        }
    }
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ADUANA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ADUANA_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config.database_url.as_deref(), &config.data_dir).await?;
    store.migrate().await?;
    Ok(store)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let config = Config::from_env()?;
    match cli.command {
        Command::Replay { session_id, json } => {
            let app = App::build(config).await?;
            let stored = app
                .store
                .assessment_any_tenant(&session_id)
                .await?
                .with_context(|| format!("no assessment `{session_id}`"))?;
            let report = aduana_host::replay::replay(&app, &stored).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else if report.identical {
                println!(
                    "{session_id}: identical ({} {} , {} rules)",
                    report.replayed.decision,
                    report.replayed.risk_score,
                    report.replayed.rules.len()
                );
            } else {
                println!("{session_id}: DIFFERENT");
                for d in &report.differences {
                    println!("  {d}");
                }
            }
            app.store.close().await;
            if !report.identical {
                std::process::exit(1);
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => {
            let store = open_store(&config).await?;
            let (checked, breaks) = store.verify_audit(tenant.as_deref()).await?;
            store.close().await;
            if breaks.is_empty() {
                println!("audit log intact: {checked} entries verified");
            } else {
                for b in &breaks {
                    println!(
                        "TAMPERED: tenant {} entry {}: {}",
                        b.tenant_id, b.seq, b.problem
                    );
                }
                std::process::exit(1);
            }
        }
        Command::Keygen { out } => {
            let public = kit::keygen(&out)?;
            println!(
                "secret key: {} (keep it private)",
                out.with_extension("key").display()
            );
            println!("public key: {public}");
            println!(
                "register it: POST /api/v1/signing-keys {{\"name\": \"...\", \"public_key\": \"{public}\"}}"
            );
        }
        Command::Rule { command } => rule_command(command).await?,
        Command::Serve => {
            let app = App::build(config).await?;
            let server = app.serve().await?;
            tracing::info!(addr = %server.addr, "aduana listening");
            server.handle.await.context("server task")??;
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            eprintln!("migrations applied");
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    organization_type,
                    rate_limit_per_minute,
                    json,
                },
        } => {
            let store = open_store(&config).await?;
            let tenant = Tenant {
                id: object_id("ten"),
                name,
                organization_type,
                settings: "{}".to_owned(),
                rules_revision: 0,
                created_at: now_ms(),
            };
            store.create_tenant(&tenant).await?;
            let request = KeyRequest {
                name: Some("admin (created by CLI)".into()),
                role: Some("admin".into()),
                rate_limit_per_minute: rate_limit_per_minute.map(|r| r.0),
                ..KeyRequest::default()
            };
            let key = create_key(&store, &tenant.id, request)
                .await?
                .map_err(|(field, msg)| anyhow::anyhow!("{field}: {msg}"))?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    json!({ "tenant_id": tenant.id, "api_key": key.api_key })
                );
            } else {
                println!(
                    "tenant:  {}\nadmin key (shown once): {}",
                    tenant.id, key.api_key
                );
            }
        }
        Command::Key {
            command:
                KeyCommand::Create {
                    tenant,
                    role,
                    kind,
                    name,
                    rate_limit_per_minute,
                    json,
                },
        } => {
            let store = open_store(&config).await?;
            if store.tenant(&tenant).await?.is_none() {
                anyhow::bail!("no tenant `{tenant}`");
            }
            let request = KeyRequest {
                name,
                role: Some(role.clone()),
                kind: Some(kind.clone()),
                rate_limit_per_minute: rate_limit_per_minute.map(|r| r.0),
                ..KeyRequest::default()
            };
            let key = create_key(&store, &tenant, request)
                .await?
                .map_err(|(field, msg)| anyhow::anyhow!("{field}: {msg}"))?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    json!({ "key_id": key.id, "tenant_id": tenant, "api_key": key.api_key, "kind": key.kind, "role": key.role })
                );
            } else {
                println!(
                    "key {} ({kind}, {role}) (shown once): {}",
                    key.id, key.api_key
                );
            }
        }
    }
    Ok(())
}
