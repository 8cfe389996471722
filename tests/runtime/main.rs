//! The runtime on real components: built-ins import only the rule
//! interface; misbehaving guests are contained with a precise reason; every
//! evaluation starts from a fresh instance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
pub mod common;

use std::{sync::Arc, time::Duration};

use aduana_host::{
    builtins::BUILTIN_COMPONENTS,
    pipeline::fixture::FixtureTransaction,
    runtime::{
        ALLOWED_IMPORTS, ContextSnapshot, HistoryRecord, ListHitRecord, Outcome, Runtime,
        RuntimeLimits, WitAbi,
    },
};
use common::guest;

fn tx() -> aduana_host::runtime::Transaction {
    let f: FixtureTransaction = serde_json::from_value(serde_json::json!({
        "amount_minor": 2_500_000, "currency": "MXN", "exponent": 2,
        "beneficiary": {"id": "b1", "country": "MX", "clabe": "032180000118359719"},
        "origin": {"account_id": "o1", "country": "MX"},
        "payout": {"channel": "spei", "initiated_by": "ana@bank.mx"},
        "assessed_at_ms": 1_763_822_400_000_i64
    }))
    .unwrap();
    f.to_transaction()
}

/// Import names of a component, read with wasmparser (independently of
/// wasmtime).
fn component_imports(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.unwrap();
                    // Type imports (from the world's `use`) grant nothing;
                    // every capability arrives as an instance or function.
                    if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        names.push(import.name.0.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    names
}

#[test]
fn builtins_import_only_the_rule_interface() {
    assert_eq!(BUILTIN_COMPONENTS.len(), 8);
    for (id, bytes) in BUILTIN_COMPONENTS {
        let imports = component_imports(bytes);
        assert!(!imports.is_empty(), "{id}: parsed no imports at all");
        for name in &imports {
            assert!(
                ALLOWED_IMPORTS.contains(&name.as_str()),
                "{id} imports {name}"
            );
            assert!(!name.starts_with("wasi:"), "{id} imports WASI: {name}");
        }
    }
}

/// Built with the SDK, the built-ins follow WIT 0.3.0: the context arrives
/// as an argument, so they import types and no host function at all.
#[test]
fn builtins_are_wit_0_3_and_call_no_host_function() {
    let rt = common::shared_runtime();
    for (id, bytes) in BUILTIN_COMPONENTS {
        assert_eq!(
            component_imports(bytes),
            vec!["aduana:rules/types@0.3.0".to_owned()],
            "{id}"
        );
        assert_eq!(rt.load(bytes).unwrap().abi, WitAbi::V0_3, "{id}");
    }
}

/// A rule the SDK built at WIT 0.2.0 (kept as bytes in
/// `tests/guests/frozen/`) loads as 0.2.0 and judges a payout exactly as
/// the same rule rebuilt at 0.3.0 does.
#[test]
fn wit_0_2_rules_still_judge_payouts() {
    let rt = common::shared_runtime();
    let frozen = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/guests/frozen/night-spei-wit-0.2.0.wasm"
    ))
    .unwrap();
    assert_eq!(
        component_imports(&frozen),
        vec!["aduana:rules/types@0.2.0".to_owned()]
    );
    let old = rt.load(&frozen).unwrap();
    assert_eq!(old.abi, WitAbi::V0_2);
    let new = rt.load(&guest("night-spei")).unwrap();
    assert_eq!(new.abi, WitAbi::V0_3);
    assert_eq!(old.metadata.id, new.metadata.id);
    // 23:30 in Mexico City (UTC-6), a large SPEI payout: the rule fires.
    let mut night = tx();
    night.assessed_at_ms = 1_763_875_800_000;
    night.amount.minor = 50_000_000;
    for tx in [tx(), night] {
        let run = |rule| match rt
            .evaluate(rule, &tx, "{}", &Arc::new(ContextSnapshot::default()))
            .outcome
        {
            Outcome::Ok(e) => e
                .signals
                .into_iter()
                .map(|s| (s.code, s.weight, s.description))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(run(&old), run(&new));
    }
}

/// A rule built against WIT 0.1.0 (context through imported host functions,
/// as rules uploaded before 0.2.0 are) still loads and gets its answers:
/// the list lookup normalized by the host, and the history.
#[test]
fn wit_0_1_rules_still_ask_the_host() {
    let rt = common::shared_runtime();
    let bytes = guest("wit-v0-1");
    assert!(
        component_imports(&bytes).contains(&"aduana:rules/context@0.1.0".to_owned()),
        "{:?}",
        component_imports(&bytes)
    );
    let rule = rt.load(&bytes).unwrap();
    assert_eq!(rule.abi, WitAbi::V0_1);
    assert_eq!(rule.metadata.id, "legacy-context");
    let signals = |context: ContextSnapshot| match rt
        .evaluate(&rule, &tx(), "{}", &Arc::new(context))
        .outcome
    {
        Outcome::Ok(e) => e
            .signals
            .into_iter()
            .map(|s| (s.code, s.description, s.hard_block))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let hit = ContextSnapshot {
        list_hits: vec![ListHitRecord {
            list_type: "clabe".into(),
            value: "032180000118359719".into(),
            entry_id: "bl_legacy".into(),
            severity: "block".into(),
        }],
        history: HistoryRecord {
            prior_transfers: 3,
            first_at_ms: Some(1),
            last_at_ms: Some(2),
        },
        velocity: Vec::new(),
    };
    assert_eq!(
        signals(hit),
        vec![
            (
                "legacy_list_hit".to_owned(),
                "entry bl_legacy".to_owned(),
                Some("blocklist:clabe".to_owned())
            ),
            (
                "legacy_history".to_owned(),
                "3 prior transfers".to_owned(),
                None
            ),
        ]
    );
    assert_eq!(
        signals(ContextSnapshot::default()),
        vec![(
            "legacy_history".to_owned(),
            "0 prior transfers".to_owned(),
            None
        )]
    );
}

#[test]
fn builtin_metadata() {
    let rt = common::shared_runtime();
    for (id, bytes) in BUILTIN_COMPONENTS {
        let rule = rt.load(bytes).unwrap();
        assert_eq!(rule.metadata.id, *id);
        let (version, flows): (&str, &[&str]) = match *id {
            // 1.1.0 judges pay-ins too.
            "blocklist" => ("1.1.0", &["payout", "payin"]),
            "high-velocity" | "disposable-email" | "card-country-mismatch" => ("1.0.0", &["payin"]),
            _ => ("1.0.0", &["payout"]),
        };
        assert_eq!(rule.metadata.version, version, "{id}");
        assert_eq!(rule.metadata.flows, flows, "{id}");
        assert!(!rule.metadata.signals.is_empty());
        assert!(rule.digest.starts_with("sha256:"));
        // Loading again is a cache hit on the digest.
        assert!(Arc::ptr_eq(&rule, &rt.load(bytes).unwrap()));
    }
}

fn run_guest(rt: &Runtime, name: &str) -> (Outcome, Duration, u64) {
    let rule = rt.load(&guest(name)).unwrap();
    let run = rt.evaluate(&rule, &tx(), "{}", &Arc::new(ContextSnapshot::default()));
    (run.outcome, run.duration, run.fuel_used)
}

fn errored(o: &Outcome) -> &str {
    match o {
        Outcome::Errored(r) => r,
        other => panic!("expected errored, got {other:?}"),
    }
}

#[test]
fn hostile_guests_are_contained() {
    let rt = common::shared_runtime();
    let limits = rt.limits().clone();
    let (o, _, fuel) = run_guest(&rt, "infinite-loop");
    assert_eq!(errored(&o), "fuel budget exhausted");
    assert_eq!(fuel, limits.fuel);
    let (o, _, _) = run_guest(&rt, "memory-bomb");
    assert_eq!(errored(&o), "memory limit exceeded");
    let (o, _, _) = run_guest(&rt, "panic");
    assert!(errored(&o).contains("unreachable"), "{o:?}");
    let (o, _, _) = run_guest(&rt, "oversized-output");
    assert!(errored(&o).starts_with("output too large"), "{o:?}");
    let (o, _, _) = run_guest(&rt, "garbage-output");
    assert!(errored(&o).starts_with("invalid output"), "{o:?}");
    // After all that, a built-in still runs normally.
    let rule = rt.load(BUILTIN_COMPONENTS[0].1).unwrap();
    let run = rt.evaluate(&rule, &tx(), "{}", &Arc::new(ContextSnapshot::default()));
    assert!(matches!(run.outcome, Outcome::Ok(_)), "{:?}", run.outcome);
}

/// The guest SDK's heap: more than the memory cap allocated and freed in
/// total (so freed blocks are reused), blocks moved across size classes and
/// to the large-block allocator with their contents, over-aligned blocks.
#[test]
fn guest_heap_reuses_blocks_and_keeps_contents() {
    let rt = common::shared_runtime();
    let limits = rt.limits().clone();
    let rule = rt.load(&guest("alloc-churn")).unwrap();
    let run = rt.evaluate(&rule, &tx(), "{}", &Arc::new(ContextSnapshot::default()));
    match &run.outcome {
        Outcome::Ok(e) => {
            let codes: Vec<_> = e.signals.iter().map(|s| s.code.as_str()).collect();
            assert_eq!(codes, ["alloc_ok"]);
        }
        other => panic!("allocator check failed: {other:?}"),
    }
    assert!(
        run.peak_memory < limits.memory_bytes / 4,
        "{}",
        run.peak_memory
    );
    assert!(run.fuel_used < limits.fuel, "{}", run.fuel_used);
}

#[test]
fn epoch_deadline_stops_a_loop_with_plenty_of_fuel() {
    let rt = Runtime::new(RuntimeLimits {
        fuel: u64::MAX / 2,
        epoch_deadline_ticks: 20,
        pool_instances: 4,
        ..RuntimeLimits::default()
    })
    .unwrap();
    let (o, duration, _) = run_guest(&rt, "infinite-loop");
    assert_eq!(errored(&o), "deadline exceeded");
    assert!(duration < Duration::from_secs(2), "{duration:?}");
}

#[test]
fn fuel_is_deterministic_and_state_is_fresh() {
    let rt = common::shared_runtime();
    let rule = rt.load(BUILTIN_COMPONENTS[0].1).unwrap();
    let ctx = Arc::new(ContextSnapshot::default());
    let first = rt.evaluate(&rule, &tx(), "{}", &ctx);
    for _ in 0..20 {
        let again = rt.evaluate(&rule, &tx(), "{}", &ctx);
        assert_eq!(
            again.fuel_used, first.fuel_used,
            "fresh instance, same work"
        );
    }
}

#[test]
fn bad_params_are_a_rule_error() {
    let rt = common::shared_runtime();
    let (_, bytes) = BUILTIN_COMPONENTS
        .iter()
        .find(|(id, _)| *id == "cross-border-amount")
        .unwrap();
    let rule = rt.load(bytes).unwrap();
    let run = rt.evaluate(
        &rule,
        &tx(),
        r#"{"weight": "heavy"}"#,
        &Arc::new(ContextSnapshot::default()),
    );
    match run.outcome {
        Outcome::RuleError(r) => assert!(r.starts_with("invalid params"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_a_component_is_rejected() {
    let rt = common::shared_runtime();
    assert!(rt.load(b"\0asm\x01\0\0\0").is_err());
    assert!(rt.load(b"definitely not wasm").is_err());
}
