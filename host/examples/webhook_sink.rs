//! A local webhook receiver for `scripts/webhook-bench.sh`: answers every
//! POST with 200 (`--mode ok`) or holds it for a minute (`--mode hang`),
//! counts what it got, and with `--expect N` exits once N events arrived,
//! printing the rate between the first and the N-th. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, extract::State, routing::post};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: String,
    #[arg(long, default_value = "ok", value_parser = ["ok", "hang"])]
    mode: String,
    /// Exit after this many requests (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    expect: u64,
}

#[derive(Default)]
struct Counts {
    n: AtomicU64,
    first: Mutex<Option<Instant>>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.listen.starts_with("127."), "loopback only");
    let counts = Arc::new(Counts::default());
    let hang = args.mode == "hang";
    let app = Router::new()
        .route(
            "/{*path}",
            post(move |State(c): State<Arc<Counts>>| async move {
                c.first.lock().unwrap().get_or_insert_with(Instant::now);
                c.n.fetch_add(1, Ordering::Relaxed);
                if hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                "ok"
            }),
        )
        .with_state(Arc::clone(&counts));
    let listener = tokio::net::TcpListener::bind(&args.listen).await.unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if args.expect == 0 {
        let _ = server.await;
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = counts.n.load(Ordering::Relaxed);
        if n >= args.expect {
            let first = counts.first.lock().unwrap().expect("first request");
            let secs = first.elapsed().as_secs_f64();
            println!(
                "received {n} deliveries in {secs:.2} s: {:.0} deliveries/s",
                n as f64 / secs
            );
            return;
        }
    }
}
