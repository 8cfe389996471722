//! Snapshot tests of every built-in rule: each fixture under
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

#[test]
fn builtin_rule_fixtures() {
    let rt = common::shared_runtime();
    insta::glob!("../fixtures", "*/*.json", |path| {
        let rule_id = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap();
        let (_, bytes) = BUILTIN_COMPONENTS
            .iter()
            .find(|(id, _)| *id == rule_id)
            .unwrap_or_else(|| panic!("no built-in rule `{rule_id}` for {}", path.display()));
        let rule = rt.load(bytes).unwrap();
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
