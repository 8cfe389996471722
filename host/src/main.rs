//! The `aduana` binary: `serve`, `migrate`, `tenant create`, `key create`.

use aduana_host::{
    App, Config,
    api::keys::{KeyRequest, create_key},
    domain::{ids::object_id, now_ms},
    store::{Store, Tenant},
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

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
