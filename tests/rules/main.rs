//! Snapshot tests of every built-in and example rule: each fixture under
//! `tests/fixtures/<rule-id>/` runs through the real compiled component, as
//! the pipeline would run it, and its output is compared with the insta
//! snapshot. CI never writes snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
pub mod common;

use std::sync::Arc;

use aduana_host::{
    builtins::BUILTIN_COMPONENTS,
    pipeline::fixture::{Fixture, FixtureOutput},
};

/// Example tenant rules (`examples/<crate>`) by rule id.
const EXAMPLES: &[(&str, &str)] = &[
    ("structuring-below-threshold", "structuring"),
    ("night-high-value-spei", "night-spei"),
    ("new-beneficiary-large-transfer", "new-beneficiary-burst"),
];

#[test]
fn builtin_rule_fixtures() {
    let rt = common::shared_runtime();
    insta::glob!("../fixtures", "*/*.json", |path| {
        let rule_id = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap();
        let bytes: Vec<u8> = match BUILTIN_COMPONENTS.iter().find(|(id, _)| *id == rule_id) {
            Some((_, bytes)) => bytes.to_vec(),
            None => {
                // The example tenant rules, by their crate folder.
                let file = EXAMPLES
                    .iter()
                    .find(|(id, _)| *id == rule_id)
                    .map(|(_, f)| *f)
                    .unwrap_or_else(|| panic!("no rule `{rule_id}` for {}", path.display()));
                common::guest(file)
            }
        };
        let rule = rt.load(&bytes).unwrap();
        assert_eq!(rule.metadata.id, rule_id);
        let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut params = rule.metadata.default_params.clone();
        params.extend(fixture.params.clone());
        let params = serde_json::to_string(&params).unwrap();
        let run = rt.evaluate(
            &rule,
            &fixture.transaction.to_transaction(),
            &params,
            &Arc::new(fixture.context.clone()),
        );
        let output = serde_json::json!({
            "rule": { "id": rule.metadata.id, "version": rule.metadata.version, "digest": rule.digest },
            "fixture": fixture.description,
            "result": FixtureOutput::from_outcome(&run.outcome),
            "fuel_used": run.fuel_used,
            "duration_us": run.duration.as_micros() as u64,
        });
        insta::assert_json_snapshot!(output, {
            ".rule.digest" => "[digest]",
            ".fuel_used" => "[fuel]",
            ".duration_us" => "[duration]",
        });
    });
}
