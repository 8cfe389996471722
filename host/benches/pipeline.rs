//! The assess pipeline in process: the built-in rules as Wasm components
//! (a fresh instance per rule per assess, as in production) next to the same
//! four checks compiled natively, with their ratio.
//!
//! Run: `cargo bench -p aduana-host --bench pipeline`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use aduana_guest_sdk as sdk;
use aduana_host::{
    builtins::{self, BUILTIN_COMPONENTS},
    pipeline::{Pipeline, PipelineConfig, fixture::FixtureTransaction},
    runtime::{ContextSnapshot, ListHitRecord, Runtime, RuntimeLimits},
};
use criterion::{Criterion, criterion_group};

/// The allocator `aduana serve` runs with (`host/src/main.rs`), so the bench
/// measures the pipeline as the server runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FOUR: [&str; 4] = [
    "first-beneficiary",
    "high-risk-country",
    "cross-border-amount",
    "blocklist",
];

fn fixture() -> FixtureTransaction {
    serde_json::from_value(serde_json::json!({
        "amount_minor": 25_000_000, "currency": "MXN", "exponent": 2,
        "beneficiary": {"id": "ben_001", "name": "Proveedor SA", "country": "US", "clabe": "032180000118359719"},
        "origin": {"account_id": "acct_01", "country": "MX"},
        "payout": {"channel": "spei", "initiated_by": "ana@bank.mx"},
        "assessed_at_ms": 1_763_822_400_000_i64
    }))
    .unwrap()
}

fn context() -> Arc<ContextSnapshot> {
    Arc::new(ContextSnapshot {
        list_hits: vec![ListHitRecord {
            list_type: "beneficiary_id".into(),
            value: "ben_001".into(),
            entry_id: "bl_1".into(),
            severity: "flag".into(),
        }],
        ..ContextSnapshot::default()
    })
}

struct Setup {
    runtime: Runtime,
    four: Pipeline,
    all: Pipeline,
    /// The default pipelines `aduana serve` compiles: per flow, the built-ins
    /// that declare it.
    payout: Pipeline,
    payin: Pipeline,
    params: HashMap<String, String>,
}

fn setup() -> Setup {
    let mut limits = RuntimeLimits::default();
    if let Some(k) = std::env::var("ADUANA_BENCH_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        limits.keep_resident_bytes = k;
    }
    if let Ok(v) = std::env::var("ADUANA_BENCH_PAGEMAP") {
        limits.pagemap_scan = v == "1";
    }
    if let Some(n) = std::env::var("ADUANA_BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // Small pools fit under `valgrind`'s address-space limit.
        limits.pool_instances = n;
    }
    if let Ok(v) = std::env::var("ADUANA_BENCH_COW") {
        limits.memory_init_cow = v == "1";
    }
    let runtime = Runtime::new(limits).unwrap();
    let loaded: HashMap<String, _> = BUILTIN_COMPONENTS
        .iter()
        .map(|(id, bytes)| ((*id).to_owned(), runtime.load(bytes).unwrap()))
        .collect();
    let four = PipelineConfig::with_rules(&FOUR)
        .compile(|id| loaded.get(id).map(aduana_host::pipeline::Runnable::active))
        .unwrap();
    let all = PipelineConfig::with_rules(&builtins::ids())
        .compile(|id| loaded.get(id).map(aduana_host::pipeline::Runnable::active))
        .unwrap();
    let default_for = |flow: &str| {
        let ids: Vec<&str> = builtins::ids()
            .into_iter()
            .filter(|id| loaded[*id].metadata.flows.contains(&flow))
            .collect();
        PipelineConfig::with_rules(&ids)
            .compile(|id| loaded.get(id).map(aduana_host::pipeline::Runnable::active))
            .unwrap()
    };
    let (payout, payin) = (default_for("payout"), default_for("payin"));
    let params = four
        .steps
        .iter()
        .map(|s| (s.rule.metadata.id.clone(), s.params_json.clone()))
        .collect();
    Setup {
        runtime,
        four,
        all,
        payout,
        payin,
        params,
    }
}

/// A pay-in as `loadgen --flow payin` sends it: e-mail, phone, card, device
/// with an IPv4 and billing country.
fn payin_fixture() -> FixtureTransaction {
    serde_json::from_value(serde_json::json!({
        "flow": "payin",
        "amount_minor": 1_500_000, "currency": "MXN", "exponent": 2,
        "customer_id": "cus_17", "payment_id": "load-17",
        "assessed_at_ms": 1_763_822_400_000_i64,
        "payin": {
            "email": "buyer17@example.com", "phone": "+525500000017",
            "payment_method": {"type": "card", "card_bin": "411111", "card_last4": "0017", "card_hash": "h17"},
            "device": {"ip": "198.51.0.17", "fingerprint": "fp_17"},
            "billing": {"country": "MX"}
        }
    }))
    .unwrap()
}

/// What the host prefetches for that pay-in: no list hit, fifteen velocity
/// counts (five entities, three windows).
fn payin_context() -> Arc<ContextSnapshot> {
    let velocity = ["customer", "card", "ip", "device", "email"]
        .iter()
        .flat_map(|e| {
            ["1h", "24h", "7d"]
                .iter()
                .map(move |w| aduana_host::runtime::VelocityRecord {
                    entity: (*e).into(),
                    window: (*w).into(),
                    count: 2,
                })
        })
        .collect();
    Arc::new(ContextSnapshot {
        velocity,
        ..ContextSnapshot::default()
    })
}

/// The SDK-side transaction (what the component receives), for the native run.
fn sdk_tx(f: &FixtureTransaction) -> sdk::Transaction {
    sdk::Transaction {
        flow: sdk::Flow::Payout,
        amount: sdk::Amount {
            minor: f.amount_minor,
            currency: f.currency.clone(),
            exponent: f.exponent,
        },
        beneficiary: sdk::Beneficiary {
            id: f.beneficiary.id.clone(),
            name: f.beneficiary.name.clone(),
            country: f.beneficiary.country.clone(),
            clabe: f.beneficiary.clabe.clone(),
            iban: None,
            swift_bic: None,
            account_hash: None,
        },
        origin: sdk::Origin {
            account_id: f.origin.account_id.clone(),
            country: f.origin.country.clone(),
        },
        payout: sdk::PayoutDetails {
            channel: Some(sdk::Channel::Spei),
            initiated_by: f.payout.initiated_by.clone(),
            first_to_beneficiary: None,
        },
        payment_id: None,
        customer_id: None,
        assessed_at_ms: f.assessed_at_ms,
        metadata: None,
        payin: None,
    }
}

/// The native context: same prefetched answers, plain Rust.
struct NativeContext(ContextSnapshot);

impl sdk::Context for NativeContext {
    fn list_lookup(&self, list_type: &str, value: &str) -> Option<sdk::ListHit> {
        let value = aduana_host::domain::lists::normalize_value(list_type, value)?;
        self.0
            .list_hits
            .iter()
            .find(|h| h.list_type == list_type && h.value == value)
            .map(|h| sdk::ListHit {
                entry_id: h.entry_id.clone(),
                severity: sdk::Severity::Flag,
            })
    }
    fn beneficiary_history(&self) -> sdk::History {
        sdk::History {
            prior_transfers: self.0.history.prior_transfers,
            first_at_ms: None,
            last_at_ms: None,
        }
    }
}

fn native_four(
    tx: &sdk::Transaction,
    params: &HashMap<String, String>,
    ctx: &NativeContext,
) -> usize {
    let p = |id: &str| params.get(id).map(String::as_str).unwrap_or("{}");
    let mut fired = 0;
    fired += sdk::evaluate_native::<aduana_rule_first_beneficiary::FirstBeneficiary>(
        tx,
        p("first-beneficiary"),
        ctx,
    )
    .unwrap()
    .signals
    .len();
    fired += sdk::evaluate_native::<aduana_rule_high_risk_country::HighRiskCountry>(
        tx,
        p("high-risk-country"),
        ctx,
    )
    .unwrap()
    .signals
    .len();
    fired += sdk::evaluate_native::<aduana_rule_cross_border_amount::CrossBorderAmount>(
        tx,
        p("cross-border-amount"),
        ctx,
    )
    .unwrap()
    .signals
    .len();
    fired += sdk::evaluate_native::<aduana_rule_blocklist::Blocklist>(tx, p("blocklist"), ctx)
        .unwrap()
        .signals
        .len();
    fired
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let f = fixture();
    let tx = f.to_transaction();
    let ctx = context();
    let native_tx = sdk_tx(&f);
    let native_ctx = NativeContext((*ctx).clone());
    // Same verdict both ways: 3 signals (first, cross-border, blocklist flag).
    assert_eq!(
        s.four
            .run(&s.runtime, &tx, &ctx, Vec::new())
            .unwrap()
            .signals
            .len(),
        3
    );
    assert_eq!(native_four(&native_tx, &s.params, &native_ctx), 3);

    // `ADUANA_BENCH_ONLY=N`: run the 4-rule Wasm pipeline N times and stop,
    // for instruction counting (`valgrind --tool=callgrind`), which is
    // repeatable where wall-clock time on a shared machine is not.
    if let Some(n) = std::env::var("ADUANA_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        for _ in 0..n {
            black_box(s.four.run(&s.runtime, &tx, &ctx, Vec::new()).unwrap());
        }
        std::process::exit(0);
    }

    let mut g = c.benchmark_group("assess_pipeline");
    g.bench_function("wasm_4_rules", |b| {
        b.iter(|| black_box(s.four.run(&s.runtime, &tx, &ctx, Vec::new()).unwrap()))
    });
    g.bench_function("wasm_5_rules_default", |b| {
        b.iter(|| black_box(s.all.run(&s.runtime, &tx, &ctx, Vec::new()).unwrap()))
    });
    let payin_tx = payin_fixture().to_transaction();
    let payin_ctx = payin_context();
    let empty = Arc::new(ContextSnapshot::default());
    g.bench_function("default_payout", |b| {
        b.iter(|| black_box(s.payout.run(&s.runtime, &tx, &empty, Vec::new()).unwrap()))
    });
    g.bench_function("default_payin", |b| {
        b.iter(|| {
            black_box(
                s.payin
                    .run(&s.runtime, &payin_tx, &payin_ctx, Vec::new())
                    .unwrap(),
            )
        })
    });
    g.bench_function("native_4_rules", |b| {
        b.iter(|| black_box(native_four(&native_tx, &s.params, &native_ctx)))
    });
    g.finish();

    // The ratio, measured directly so it prints as one line (only under
    // `cargo bench`; `cargo test --benches` just smoke-tests the groups).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Best batch of many: on a shared, noisy machine the minimum of short
    // batches is far more repeatable than one long average.
    let time = |f: &dyn Fn()| {
        for _ in 0..2_000 {
            f();
        }
        let (batches, n) = (100, 200);
        (0..batches)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..n {
                    f();
                }
                start.elapsed() / n
            })
            .min()
            .unwrap_or_default()
    };
    let wasm: Duration = time(&|| {
        black_box(s.four.run(&s.runtime, &tx, &ctx, Vec::new()).unwrap());
    });
    let native: Duration = time(&|| {
        black_box(native_four(&native_tx, &s.params, &native_ctx));
    });
    // Where the time goes, per rule: the host's own cost of one evaluation
    // (fresh instance, lowering, lifting) against the guest's fuel.
    for step in &s.four.steps {
        let params = &step.params_json;
        let per_eval = time(&|| {
            black_box(s.runtime.evaluate(&step.rule, &tx, params, &ctx));
        });
        let run = s.runtime.evaluate(&step.rule, &tx, params, &ctx);
        println!(
            "  {:<20} {:>6.2} µs per evaluation, fuel {:>6}, params {} bytes, memory {} KiB",
            step.rule.metadata.id,
            per_eval.as_secs_f64() * 1e6,
            run.fuel_used,
            params.len(),
            run.peak_memory >> 10
        );
    }
    // The two flows' default pipelines, rule by rule.
    for (name, pipeline, tx, ctx) in [
        ("payout", &s.payout, &tx, &empty),
        ("pay-in", &s.payin, &payin_tx, &payin_ctx),
    ] {
        let whole = time(&|| {
            black_box(pipeline.run(&s.runtime, tx, ctx, Vec::new()).unwrap());
        });
        println!(
            "default {name} pipeline: {:.2} µs per assess",
            whole.as_secs_f64() * 1e6
        );
        for step in &pipeline.steps {
            let params = &step.params_json;
            let per_eval = time(&|| {
                black_box(s.runtime.evaluate(&step.rule, tx, params, ctx));
            });
            let run = s.runtime.evaluate(&step.rule, tx, params, ctx);
            println!(
                "  {:<20} {:>6.2} µs per evaluation, fuel {:>6}",
                step.rule.metadata.id,
                per_eval.as_secs_f64() * 1e6,
                run.fuel_used,
            );
        }
    }
    println!(
        "\n4-rule pipeline per assess: wasm {:.2} µs, native {:.2} µs, ratio {:.1}x\n",
        wasm.as_secs_f64() * 1e6,
        native.as_secs_f64() * 1e6,
        wasm.as_secs_f64() / native.as_secs_f64()
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
