//! Loopback load driver for `scripts/load.sh`.
//!
//! Sends payout (or, with `--flow payin`, pay-in; `LOADGEN_PAYIN_FIELDS=minimal` or `no-ip` sends
//! fewer pay-in fields, to see what each costs) assessments to a running aduana and reports assess/s and
//! latency percentiles. Two modes:
//! - `--rate 0` (closed loop): `--concurrency` workers send back to back;
//!   measures the maximum durable throughput.
//! - `--rate N` (open loop): requests start on a fixed schedule of N per
//!   second whatever the server does, so queueing shows up in the latency
//!   (no coordinated omission).
//!
//! Payloads vary the beneficiary and origin so history rows do not all
//! collide. Only loopback targets are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the service (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long)]
    key: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second (open loop); 0 = closed loop at full speed.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent connections (closed loop) or in-flight cap (open loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Label printed with the results.
    #[arg(long, default_value = "run")]
    label: String,
    /// `payout` (POST /api/v1/assess/payout) or `payin` (POST /api/v1/assess).
    #[arg(long, default_value = "payout", value_parser = ["payout", "payin"])]
    flow: String,
    /// Appends every successful request's latency (ms, one per line) to
    /// this file, so a benchmark can pool several runs of one kind.
    #[arg(long)]
    latencies_out: Option<std::path::PathBuf>,
}

fn payload(i: u64) -> String {
    let ben = i % 5_000;
    let origin = i % 97;
    format!(
        r#"{{"amount": "{}.50", "amount_unit": "major", "currency": "MXN",
            "beneficiary": {{"id": "ben_{ben}", "name": "Beneficiario {ben}", "country": "MX", "clabe": "032180000118359719"}},
            "origin": {{"account_id": "acct_{origin}", "country": "MX"}},
            "payout": {{"channel": "spei", "initiated_by": "ops{origin}@bank.mx"}},
            "payment_id": "load-{i}"}}"#,
        1_000 + i % 50_000
    )
}

/// A pay-in from one of 5,000 customers, cards, devices and e-mails, and
/// one of 2,000 IPs, so velocity counts grow as they would.
fn payin_payload(i: u64) -> String {
    let c = i % 5_000;
    if std::env::var_os("LOADGEN_PAYIN_FIELDS").is_some_and(|v| v == "minimal") {
        return format!(
            r#"{{"amount": {}, "currency": "MXN", "customer_id": "cus_{c}"}}"#,
            10_000 + i
        );
    }
    if std::env::var_os("LOADGEN_PAYIN_FIELDS").is_some_and(|v| v == "no-ip") {
        return format!(
            r#"{{"amount": {}, "currency": "MXN", "customer_id": "cus_{c}", "email": "buyer{c}@example.com",
                "payment_method": {{"type": "card", "card_bin": "411111", "card_last4": "1111", "card_hash": "h{c}"}}}}"#,
            10_000 + i
        );
    }
    let ip = i % 2_000;
    format!(
        r#"{{"amount": {}, "currency": "MXN", "payment_id": "load-{i}", "customer_id": "cus_{c}",
            "email": "buyer{c}@example.com", "phone": "+5255{:08}",
            "payment_method": {{"type": "card", "card_bin": "411111", "card_last4": "{:04}", "card_hash": "h{c}"}},
            "device": {{"ip": "198.51.{}.{}", "fingerprint": "fp_{c}"}},
            "billing": {{"country": "MX"}}}}"#,
        10_000 + i % 500_000,
        c,
        c % 10_000,
        ip / 250,
        ip % 250
    )
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let host_ok = args.url.starts_with("http://127.")
        || args.url.starts_with("http://localhost")
        || args.url.starts_with("http://[::1]");
    assert!(host_ok, "loadgen only targets loopback addresses");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()
        .unwrap();
    let payin = args.flow == "payin";
    let url = if payin {
        format!("{}/api/v1/assess", args.url)
    } else {
        format!("{}/api/v1/assess/payout", args.url)
    };
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::with_capacity(1 << 20)));
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let send = {
        let client = client.clone();
        let url = url.clone();
        let key = args.key.clone();
        let latencies = Arc::clone(&latencies);
        let errors = Arc::clone(&errors);
        move |i: u64, scheduled: Instant| {
            let client = client.clone();
            let url = url.clone();
            let key = key.clone();
            let latencies = Arc::clone(&latencies);
            let errors = Arc::clone(&errors);
            async move {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(if payin { payin_payload(i) } else { payload(i) })
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let took = scheduled.elapsed();
                if ok {
                    latencies.lock().await.push(took);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    if args.rate == 0 {
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let send = send.clone();
            let counter = Arc::clone(&counter);
            workers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    send(i, Instant::now()).await;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
    } else {
        let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1) * 64));
        let mut tasks = Vec::new();
        let mut i = 0u64;
        let mut next = Instant::now();
        while next < deadline {
            tokio::time::sleep_until(next.into()).await;
            let permit = Arc::clone(&in_flight).acquire_owned().await.unwrap();
            let fut = send(i, next);
            tasks.push(tokio::spawn(async move {
                fut.await;
                drop(permit);
            }));
            i += 1;
            next += interval;
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort();
    if let Some(path) = &args.latencies_out {
        use std::io::Write;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let mut out = std::io::BufWriter::new(file);
        for d in &l {
            writeln!(out, "{:.3}", d.as_secs_f64() * 1000.0).unwrap();
        }
        out.flush().unwrap();
    }
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return f64::NAN;
        }
        let idx = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[idx].as_secs_f64() * 1000.0
    };
    println!(
        "{}: {} ok, {} errors, {:.0} assess/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.label,
        l.len(),
        errors.load(Ordering::Relaxed),
        l.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}
