//! Benchmarks for tenant-uploaded rules (issue 3): the real `aduana serve`
//! binary in its own process on a SQLite data dir, driven over loopback
//! HTTP from this process:
//!
//! 1. upload → active for a ~200 KB component (fresh engine each time, so
//!    it really compiles);
//! 2. N tenants (default 1,000) each with its own custom rule active: RSS,
//!    and assess p50/p99 spread over all of them;
//! 3. restart on the same data dir: time until the service is ready with
//!    all N modules loaded (from the artifact cache);
//! 4. a hostile neighbour: tenant B's p99 at a fixed rate with tenant A idle
//!    versus A sending payouts through five hostile rules.
//!
//! Run: `scripts/bench-rules.sh [TENANTS]` (builds the release binary and
//! this example, then runs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aduana_host::{
    builtins::COMPONENTS_DIR,
    domain::{ids::object_id, now_ms, signing},
    keys::{KeyRequest, create_key},
    store::{Store, Tenant},
};
use serde_json::{Value, json};

fn component(name: &str) -> Vec<u8> {
    std::fs::read(format!("{COMPONENTS_DIR}/{name}.wasm")).expect("component")
}

/// Appends a custom section, so each tenant's module has its own digest
/// (and is compiled and cached on its own), like distinct bank rules.
fn unique(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"aduana-bench";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    bytes.push(0);
    leb(payload.len(), &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Bench {
    base: String,
    client: reqwest::Client,
    store: Store,
    child: std::process::Child,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release `aduana` binary next to this example's folder.
fn aduana_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("aduana"))
        .expect("target dir")
}

/// Starts `aduana serve` on `data_dir`; returns once it is ready, with the
/// time that took.
async fn start(data_dir: &std::path::Path) -> (Bench, Duration) {
    let store = Store::connect(None, data_dir).await.expect("store");
    store.migrate().await.expect("migrate");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let child = std::process::Command::new(aduana_bin())
        .arg("serve")
        .env("ADUANA_DATA_DIR", data_dir)
        .env("ADUANA_LISTEN", format!("127.0.0.1:{port}"))
        .env("ADUANA_LOG", "error")
        .env_remove("DATABASE_URL")
        .spawn()
        .expect("spawn aduana serve (build it: cargo build --release --bin aduana)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/health/ready"))
            .send()
            .await
            && r.status() == 200
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed();
    (
        Bench {
            base,
            client,
            store,
            child,
        },
        ready,
    )
}

fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Bench {
    async fn tenant(&self, unlimited: bool) -> (String, String) {
        let t = Tenant {
            id: object_id("ten"),
            name: "Bench".into(),
            organization_type: "banco".into(),
            settings: "{}".into(),
            rules_revision: 0,
            created_at: now_ms(),
        };
        self.store.create_tenant(&t).await.unwrap();
        let key = create_key(
            &self.store,
            &t.id,
            KeyRequest {
                role: Some("admin".into()),
                rate_limit_per_minute: if unlimited { Some(None) } else { None },
                ..KeyRequest::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
        (t.id, key.api_key)
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn signer(&self, key: &str) -> (String, String) {
        let (secret, public) = signing::generate_keypair();
        let (s, v) = self
            .post(
                key,
                "/api/v1/signing-keys",
                &json!({"name": "k", "public_key": public}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (v["id"].as_str().unwrap().to_owned(), secret)
    }

    /// Uploads and activates `rule_id@version`.
    async fn upload_activate(
        &self,
        key: &str,
        signer: &(String, String),
        module: &[u8],
        (rule_id, version): (&str, &str),
    ) {
        let manifest = json!({"rule_id": rule_id, "version": version});
        let form = reqwest::multipart::Form::new()
            .part("module", reqwest::multipart::Part::bytes(module.to_vec()))
            .text(
                "signature",
                signing::sign_module(&signer.1, module).unwrap(),
            )
            .text("key_id", signer.0.clone())
            .text("manifest", manifest.to_string());
        let r = self
            .client
            .post(format!("{}/api/v1/rules", self.base))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let (s, v) = self
            .post(
                key,
                &format!("/api/v1/rules/{rule_id}/versions/{version}/activate"),
                &json!({"mode": "active"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    async fn assess(&self, key: &str) -> (Duration, Value) {
        let body = json!({
            "amount": "1500.50", "amount_unit": "major", "currency": "MXN",
            "beneficiary": {"id": "ben_1", "name": "Proveedor SA", "country": "MX", "clabe": "032180000118359719"},
            "origin": {"account_id": "acct_1", "country": "MX"},
            "payout": {"channel": "spei", "initiated_by": "ops@bank.mx", "first_to_beneficiary": false}
        });
        let started = Instant::now();
        let (s, v) = self.post(key, "/api/v1/assess/payout", &body).await;
        assert_eq!(s, 200, "{v}");
        (started.elapsed(), v)
    }
}

async fn load(
    bench: &Arc<Bench>,
    keys: Arc<Vec<String>>,
    total: usize,
    rate_per_s: f64,
) -> Vec<Duration> {
    let interval = Duration::from_secs_f64(1.0 / rate_per_s);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (b, keys) = (Arc::clone(bench), Arc::clone(&keys));
        handles.push(tokio::spawn(async move {
            b.assess(&keys[i % keys.len()]).await.0
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for h in handles {
        lat.push(h.await.unwrap());
    }
    lat.sort();
    lat
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tenants: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);

    let hostile_only = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "hostile");
    if !hostile_only {
        setup_and_restart(tenants).await;
    }
    hostile_neighbour().await;
}

async fn setup_and_restart(tenants: usize) {
    // 1. upload → active, 200 KB component, fresh engine each time.
    let big = component("large-table");
    println!("large-table component: {} KiB", big.len() / 1024);
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = start(dir.path()).await;
        let (_, key) = b.tenant(true).await;
        let signer = b.signer(&key).await;
        let module = unique(big.clone(), &format!("u{i}"));
        let started = Instant::now();
        let rt_meta = {
            // The manifest reads metadata from a separate runtime so the
            // service's own engine has not seen the bytes.
            let rt = aduana_host::runtime::Runtime::new(Default::default()).unwrap();
            let r = rt.load(&module).unwrap();
            json!({"rule_id": r.metadata.id, "version": r.metadata.version})
        };
        let prep = started.elapsed();
        let started = Instant::now();
        let form = reqwest::multipart::Form::new()
            .part("module", reqwest::multipart::Part::bytes(module.clone()))
            .text(
                "signature",
                signing::sign_module(&signer.1, &module).unwrap(),
            )
            .text("key_id", signer.0.clone())
            .text("manifest", rt_meta.to_string());
        let r = b
            .client
            .post(format!("{}/api/v1/rules", b.base))
            .bearer_auth(&key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let uploaded = started.elapsed();
        let (s, _) = b
            .post(
                &key,
                "/api/v1/rules/large-table/versions/0.1.0/activate",
                &json!({"mode": "active"}),
            )
            .await;
        assert_eq!(s, 200);
        let (_, v) = b.assess(&key).await;
        let active = started.elapsed();
        assert!(v.to_string().contains("large-table") || v["signals"].is_array());
        println!(
            "upload→active #{i}: upload {:.1} ms, upload+activate+first assess {:.1} ms (manifest prep {:.0} ms, not counted)",
            uploaded.as_secs_f64() * 1e3,
            active.as_secs_f64() * 1e3,
            prep.as_secs_f64() * 1e3
        );
    }

    // 2. N tenants, one custom rule each.
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = start(dir.path()).await;
    let b = Arc::new(b);
    let base_rule = component("tiered-v2");
    let pid = b.child.id();
    let _ = b.assess(&b.tenant(true).await.1).await;
    let rss_before = rss_of(pid);
    let started = Instant::now();
    let mut keys = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let (_, key) = b.tenant(true).await;
        let signer = b.signer(&key).await;
        b.upload_activate(
            &key,
            &signer,
            &unique(base_rule.clone(), &format!("t{i}")),
            ("tiered-amount", "2.0.0"),
        )
        .await;
        keys.push(key);
        if (i + 1) % 250 == 0 {
            println!(
                "  {} tenants set up ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let keys = Arc::new(keys);
    // Touch every tenant once so each pipeline is built.
    for k in keys.iter() {
        let (_, v) = b.assess(k).await;
        assert!(v["signals"].to_string().contains("tiered_large_amount"));
    }
    let rss_after = rss_of(pid);
    let lat = load(&b, Arc::clone(&keys), 5000, 400.0).await;
    println!(
        "{tenants} tenants with a custom rule each: RSS {rss_before:.0} → {rss_after:.0} MiB (+{:.1} KiB/tenant); assess at 400/s over all tenants: p50 {:.2} ms, p99 {:.2} ms",
        (rss_after - rss_before) * 1024.0 / tenants as f64,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    drop(b);

    // 3. Restart on the same data dir.
    let (b2, ready) = start(dir.path()).await;
    let (first, _) = b2.assess(&keys[tenants / 2]).await;
    let rss_restarted = rss_of(b2.child.id());
    println!(
        "restart with {tenants} stored modules: process start → ready {:.0} ms (all active rules loaded), first assess {:.1} ms, RSS {rss_restarted:.0} MiB",
        ready.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3
    );
    drop(b2);
}

async fn hostile_neighbour() {
    // 4. Hostile neighbour.
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = start(dir.path()).await;
    let b = Arc::new(b);
    let (_, good) = b.tenant(true).await;
    let (_, evil) = b.tenant(false).await; // default 100/min limit
    let (_, evil_unlimited) = b.tenant(true).await;
    for key in [&evil, &evil_unlimited] {
        let s = b.signer(key).await;
        for name in [
            "infinite-loop",
            "memory-bomb",
            "deep-recursion",
            "oversized-output",
            "panic",
        ] {
            let id = format!("hostile-{name}");
            b.upload_activate(key, &s, &component(name), (&id, "0.1.0"))
                .await;
        }
    }
    let good_keys = Arc::new(vec![good.clone()]);
    let _ = load(&b, Arc::clone(&good_keys), 500, 200.0).await; // warm
    // Interleaved rounds (quiet, then noisy) pooled per side, so drift and
    // the VM's background noise hit both alike.
    const ROUNDS: usize = 4;
    const PER_ROUND: usize = 1500;
    for (label, key, rate) in [
        ("rate-limited (100/min)", evil.clone(), 5.0),
        ("unlimited", evil_unlimited.clone(), 20.0),
    ] {
        let (mut quiet, mut noisy) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            quiet.extend(load(&b, Arc::clone(&good_keys), PER_ROUND, 200.0).await);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (b2, stop2, key) = (Arc::clone(&b), Arc::clone(&stop), key.clone());
            let attacker = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    tick.tick().await;
                    let b3 = Arc::clone(&b2);
                    let k = key.clone();
                    tokio::spawn(async move {
                        let _ = b3
                            .client
                            .post(format!("{}/api/v1/assess/payout", b3.base))
                            .bearer_auth(&k)
                            .json(&json!({"amount": 100, "currency": "MXN", "beneficiary": {"country": "MX"}}))
                            .send()
                            .await;
                    });
                }
            });
            noisy.extend(load(&b, Arc::clone(&good_keys), PER_ROUND, 200.0).await);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = attacker.await;
        }
        quiet.sort();
        noisy.sort();
        let (q, n) = (percentile(&quiet, 0.99), percentile(&noisy, 0.99));
        println!(
            "hostile neighbour, {label} at {rate}/s with 5 hostile rules ({ROUNDS}×{PER_ROUND} interleaved samples per side): B p99 {:.2} ms alone → {:.2} ms ({:.2}×); p50 {:.2} → {:.2} ms",
            q.as_secs_f64() * 1e3,
            n.as_secs_f64() * 1e3,
            n.as_secs_f64() / q.as_secs_f64(),
            percentile(&quiet, 0.5).as_secs_f64() * 1e3,
            percentile(&noisy, 0.5).as_secs_f64() * 1e3,
        );
    }
}
