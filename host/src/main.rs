//! The `aduana` binary: `serve`, `migrate`, `tenant create`, `key create`,
//! `replay`, `audit verify`; `keygen` and `rule new|build|test|sign|upload`
//! run the rule-author kit, `aduana-kit` (its own crate, `kit/`).
use std::path::PathBuf;

use aduana_host::{
    App, Config,
    domain::{ids::object_id, now_ms},
    keys::{KeyRequest, create_key},
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
    /// Generate an ed25519 signing key pair (runs `aduana-kit keygen`).
    #[command(disable_help_flag = true)]
    Keygen {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Write, build, test, sign and upload rules (runs `aduana-kit rule …`).
    #[command(disable_help_flag = true)]
    Rule {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
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

/// Runs the rule-author kit (`aduana-kit`, a binary of its own so this
/// server links neither insta nor an HTTP client) with `command` and
/// `args`, and exits with its status. Found through `ADUANA_KIT`, next to
/// this binary, or on `PATH`.
fn run_kit(command: &str, args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    if let Some(explicit) = std::env::var_os("ADUANA_KIT").filter(|v| !v.is_empty())
        && !std::path::Path::new(&explicit).is_file()
    {
        anyhow::bail!(
            "ADUANA_KIT is `{}`, which is not a file: point it at the `aduana-kit` binary",
            std::path::Path::new(&explicit).display()
        );
    }
    let kit = find_kit().ok_or_else(|| {
        anyhow::anyhow!(
            "`aduana {command}` runs the rule-author kit, `aduana-kit`, which is neither next to \
             this binary nor on PATH: install it with `cargo install --locked --path kit` from an \
             aduana checkout (or set ADUANA_KIT to its path)"
        )
    })?;
    let status = std::process::Command::new(&kit)
        .arg(command)
        .args(args)
        .status()
        .with_context(|| format!("running {}", kit.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn find_kit() -> Option<PathBuf> {
    let name = format!("aduana-kit{}", std::env::consts::EXE_SUFFIX);
    if let Some(explicit) = std::env::var_os("ADUANA_KIT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(explicit));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
    })
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
            let report = aduana_host::replay::replay(&app.rules, &stored).await?;
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
        Command::Keygen { args } => run_kit("keygen", &args)?,
        Command::Rule { args } => run_kit("rule", &args)?,
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
