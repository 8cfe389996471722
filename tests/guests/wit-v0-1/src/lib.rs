//! Test rule `legacy-context`, written straight against WIT 0.1.0 (no SDK),
//! as rules uploaded before 0.2.0 were: it asks the host's imported
//! `context` interface about the beneficiary's CLABE and history. Its
//! signals say what the host answered, so tests can check that both calls
//! still work.
#![allow(unsafe_code, missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "rule",
});

// The world's `use` already brought transaction, evaluation, rule-error
// and metadata into scope.
use aduana::rules::{
    context,
    types::{Flow, Severity, Signal, SignalSpec},
};

struct Legacy;

fn signal(code: &str, description: String, hard_block: Option<String>) -> Signal {
    Signal {
        code: code.to_owned(),
        weight: 10,
        description,
        hard_block,
    }
}

impl Guest for Legacy {
    fn metadata() -> Metadata {
        let spec = |code: &str| SignalSpec {
            code: code.to_owned(),
            default_weight: 10,
            description: format!("{code} (WIT 0.1.0 test rule)"),
        };
        Metadata {
            id: "legacy-context".to_owned(),
            version: "0.1.0".to_owned(),
            description: "asks the 0.1.0 context imports".to_owned(),
            flows: vec![Flow::Payout],
            signals: vec![spec("legacy_list_hit"), spec("legacy_history")],
            default_params: "{}".to_owned(),
        }
    }

    fn evaluate(tx: Transaction, _params: String) -> Result<Evaluation, RuleError> {
        let mut signals = Vec::new();
        // Spaced as an integrator might send it: the host normalizes.
        let clabe = tx.beneficiary.clabe.as_deref().unwrap_or_default();
        if let (Some(bank), Some(rest)) = (clabe.get(..6), clabe.get(6..)) {
            let spaced = format!("{bank} {rest}");
            if let Some(hit) = context::list_lookup("clabe", &spaced) {
                let block = matches!(hit.severity, Severity::Block);
                signals.push(signal(
                    "legacy_list_hit",
                    format!("entry {}", hit.entry_id),
                    block.then(|| "blocklist:clabe".to_owned()),
                ));
            }
        }
        let history = context::beneficiary_history();
        signals.push(signal(
            "legacy_history",
            format!("{} prior transfers", history.prior_transfers),
            None,
        ));
        Ok(Evaluation {
            signals,
            warnings: Vec::new(),
        })
    }
}

export!(Legacy);
