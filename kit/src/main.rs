//! `aduana-kit`: the rule-author kit (`keygen`, `rule new|build|test|sign|
//! upload`). `aduana keygen` and `aduana rule …` run this binary.
use std::path::PathBuf;

use aduana_kit as kit;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "aduana-kit",
    version,
    about = "Write, build, test, sign and upload aduana rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
enum RuleCommand {
    /// Scaffold a rule crate (fixtures folder and snapshot test included).
    New {
        name: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The template: `payout` (fires at or above an amount) or `payin`
        /// (fires when a card was tried too often in the last hour).
        #[arg(long, default_value = "payout", value_parser = ["payout", "payin"])]
        flow: String,
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

async fn rule_command(command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::New {
            name,
            dir,
            flow,
            sdk,
        } => {
            let sdk = kit::resolve_sdk(sdk.as_deref())?;
            let flow = if flow == "payin" {
                kit::ScaffoldFlow::Payin
            } else {
                kit::ScaffoldFlow::Payout
            };
            let root = kit::scaffold(&name, &dir, &sdk, flow)?;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
    }
    Ok(())
}
