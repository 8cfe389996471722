//! A rule's next version, tried the way a bank tries it: in shadow beside
//! the version that decides, then backtested and simulated with the params
//! it would run with, then promoted. Shadow must never touch the live
//! decision or deadline, even when the shadow version is hostile; backtest,
//! simulation and activation must agree.
use aduana_host::runtime::RuntimeLimits;
use serde_json::{Value, json};

use super::rules::payout_of;
use crate::common::{Db, Signer, TestApp, TestTenant, Upload, component};

const RULE: &str = "weighted-amount";
const CODE: &str = "weighted_large_amount";
const BUILTINS: [&str; 5] = [
    "payout-integrity",
    "first-beneficiary",
    "high-risk-country",
    "cross-border-amount",
    "blocklist",
];

/// Uploads a version of `weighted-amount` with a params schema that refuses
/// unknown keys (`legacy_mode` only where `legacy` is set).
async fn upload(t: &TestApp, tenant: &TestTenant, signer: &Signer, guest: &str, legacy: bool) {
    let mut u = Upload::signed(signer, &component(guest));
    let mut properties = json!({
        "weight": {"type": "integer", "minimum": 0, "maximum": 100},
        "min_minor": {"type": "integer", "minimum": 0}
    });
    if legacy {
        properties["legacy_mode"] = json!({"type": "boolean"});
    }
    u.manifest["params_schema"] = json!({
        "type": "object", "properties": properties, "additionalProperties": false
    });
    let (s, v) = t.upload(&tenant.key, &u).await;
    assert_eq!(s, 201, "{v}");
}

async fn activate(t: &TestApp, key: &str, version: &str, mode: &str) -> Value {
    let (s, v) = t
        .post(
            &format!("/api/v1/rules/{RULE}/versions/{version}/activate"),
            key,
            &json!({ "mode": mode }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The weights of `weighted_large_amount` in an answer's counted signals.
fn weights(v: &Value) -> Vec<u64> {
    v["signal_details"]
        .as_array()
        .unwrap_or_else(|| panic!("no signal_details: {v}"))
        .iter()
        .filter(|s| s["code"] == CODE)
        .map(|s| s["weight"].as_u64().unwrap())
        .collect()
}

async fn explain(t: &TestApp, key: &str, answer: &Value) -> Value {
    let session = answer["session_id"].as_str().unwrap();
    let (s, v) = t.get(&format!("/api/v1/assessments/{session}"), key).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The explanation's record of `weighted-amount` in `mode`.
fn record(explained: &Value, mode: &str) -> Value {
    let found: Vec<&Value> = explained["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule_id"] == RULE && r["mode"] == mode)
        .collect();
    assert_eq!(found.len(), 1, "one {mode} record: {explained}");
    found[0].clone()
}

fn statuses(versions: &Value) -> Vec<(String, String)> {
    versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Sets the payout pipeline: the built-ins plus `weighted-amount` as `step`.
async fn set_pipeline(t: &TestApp, key: &str, step: Value, deadline_ms: u64) {
    let mut rules: Vec<Value> = BUILTINS.iter().map(|id| json!({"rule_id": id})).collect();
    rules.push(step);
    let (s, v, _) = t
        .request(
            reqwest::Method::PUT,
            "/api/v1/pipeline",
            Some(key),
            Some(&json!({"payout": {"rules": rules, "deadline_ms": deadline_ms}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn shadow_runs_beside_the_active_version(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    upload(&t, &a, &signer, "weighted-v1", true).await;
    upload(&t, &a, &signer, "weighted-v2", false).await;
    activate(&t, &a.key, "1.0.0", "active").await;
    let (s, before) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert_eq!(s, 200, "{before}");
    assert_eq!(weights(&before), vec![70], "{before}");

    // 1.2.0 in shadow: 1.0.0 keeps deciding, exactly as before.
    let act = activate(&t, &a.key, "1.2.0", "shadow").await;
    assert_eq!(act["previous"], Value::Null, "{act}");
    assert_eq!(
        act["running"],
        json!({"active": "1.0.0", "shadow": "1.2.0"})
    );
    let (s, live) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert_eq!(s, 200, "{live}");
    assert_eq!(
        (&live["decision"], &live["risk_score"]),
        (&before["decision"], &before["risk_score"]),
        "{live}"
    );
    assert_eq!(weights(&live), vec![70], "{live}");
    let explained = explain(&t, &a.key, &live).await;
    let (active, shadow) = (record(&explained, "active"), record(&explained, "shadow"));
    assert_eq!(
        (&active["version"], &active["counted"]),
        (&json!("1.0.0"), &json!(true))
    );
    assert_eq!(active["signals"][0]["weight"], 70);
    assert_eq!(
        (&shadow["version"], &shadow["counted"]),
        (&json!("1.2.0"), &json!(false))
    );
    assert_eq!(shadow["outcome"], "ok", "{shadow}");
    assert_eq!(shadow["signals"][0]["code"], CODE);
    assert_eq!(shadow["signals"][0]["weight"], 40);
    let (_, versions) = t
        .get(&format!("/api/v1/rules/{RULE}/versions"), &a.key)
        .await;
    assert_eq!(
        statuses(&versions),
        pairs(&[("1.0.0", "active"), ("1.2.0", "shadow")])
    );

    // Promotion retires 1.0.0 atomically: assessments running meanwhile
    // count exactly one version of the rule, never none and never both.
    let stream = {
        let (client, url, key) = (
            t.client.clone(),
            format!("{}/api/v1/assess/payout", t.base),
            a.key.clone(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..40 {
                let v: Value = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&payout_of("15000.00"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                seen.push(weights(&v));
            }
            seen
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let act = activate(&t, &a.key, "1.2.0", "active").await;
    assert_eq!(act["previous"]["version"], "1.0.0", "{act}");
    assert_eq!(act["moved_from"], "shadow", "{act}");
    assert_eq!(act["running"], json!({"active": "1.2.0", "shadow": null}));
    for w in stream.await.unwrap() {
        assert!(w == vec![70] || w == vec![40], "{w:?}");
    }
    let (_, after) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert_eq!(weights(&after), vec![40], "{after}");
    let explained = explain(&t, &a.key, &after).await;
    assert_eq!(record(&explained, "active")["version"], "1.2.0");
    assert!(
        !explained["rules"].to_string().contains("\"shadow\""),
        "{explained}"
    );
    let (_, versions) = t
        .get(&format!("/api/v1/rules/{RULE}/versions"), &a.key)
        .await;
    assert_eq!(
        statuses(&versions),
        pairs(&[("1.0.0", "inactive"), ("1.2.0", "active")])
    );
    assert_eq!(versions["shadow_version"], Value::Null);

    // Demoting the active version to shadow is explicit and leaves none
    // active; the audit log says what each activation retired.
    activate(&t, &a.key, "1.0.0", "active").await;
    let act = activate(&t, &a.key, "1.0.0", "shadow").await;
    assert_eq!(act["moved_from"], "active", "{act}");
    assert_eq!(act["running"], json!({"active": null, "shadow": "1.0.0"}));
    let (_, v) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert!(weights(&v).is_empty(), "{v}");
    let (_, audit) = t.get("/api/v1/audit?action=rule.activated", &a.key).await;
    let details: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["details"])
        .collect();
    assert_eq!(details.len(), 5, "{audit}");
    assert_eq!(details[2]["replaced"], "1.0.0");
    assert_eq!(details[2]["moved_from"], "shadow");
    assert_eq!(details[3]["replaced"], "1.2.0");

    // Another tenant sees none of it.
    let b = t.tenant().await;
    let (s, _) = t
        .get(&format!("/api/v1/rules/{RULE}/versions"), &b.key)
        .await;
    assert_eq!(s, 404);
    let (s, _) = t
        .post(
            &format!("/api/v1/rules/{RULE}/versions/1.2.0/activate"),
            &b.key,
            &json!({"mode": "shadow"}),
        )
        .await;
    assert_eq!(s, 404);
}

async fn hostile_shadow_never_touches_the_live_decision(db: Db) {
    // Fuel without practical limit: the hostile version runs until its
    // 50 ms wall-clock deadline stops it, twice the live pipeline's.
    let t = TestApp::start_with_limits(
        db,
        RuntimeLimits {
            fuel: 1 << 40,
            pool_instances: 16,
            ..RuntimeLimits::default()
        },
    )
    .await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    upload(&t, &a, &signer, "weighted-v1", true).await;
    let (s, v) = t
        .upload(
            &a.key,
            &Upload::signed(&signer, &component("weighted-hostile")),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    activate(&t, &a.key, "1.0.0", "active").await;
    // A failure of this rule declines, and the live pipeline has 25 ms:
    // the hostile version needs 50 ms (its per-rule deadline) to be stopped.
    let deadline_ms = 25;
    set_pipeline(
        &t,
        &a.key,
        json!({"rule_id": RULE, "on_error": "decline"}),
        deadline_ms,
    )
    .await;
    let (s, baseline) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert_eq!(s, 200, "{baseline}");
    assert_ne!(baseline["decision"], "decline", "{baseline}");

    activate(&t, &a.key, "1.3.0", "shadow").await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (s, v) = t.assess(&a.key, &payout_of("15000.00")).await;
        assert_eq!(
            s, 200,
            "a shadow version never costs the live deadline: {v}"
        );
        assert_eq!(
            (&v["decision"], &v["risk_score"], &v["blocked_by"]),
            (
                &baseline["decision"],
                &baseline["risk_score"],
                &baseline["blocked_by"]
            ),
            "{v}"
        );
        assert!(
            !v["field_warnings"].to_string().contains(RULE),
            "shadow failures are not the integrator's business: {v}"
        );
        answers.push(v);
    }
    let explained = explain(&t, &a.key, &answers[0]).await;
    let shadow = record(&explained, "shadow");
    assert_eq!(shadow["version"], "1.3.0");
    assert_eq!(shadow["outcome"], "errored", "{shadow}");
    let reason = shadow["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("deadline exceeded"),
        "{reason}: {shadow}"
    );
    assert!(
        shadow["duration_us"].as_u64().unwrap() > deadline_ms * 1000,
        "it ran past the live deadline: {shadow}"
    );
    assert_eq!(record(&explained, "active")["outcome"], "ok");
    // Three exhaustions in a row quarantine it: the fourth costs nothing.
    let explained = explain(&t, &a.key, &answers[3]).await;
    let shadow = record(&explained, "shadow");
    assert!(
        shadow["reason"]
            .as_str()
            .unwrap()
            .starts_with("quarantined"),
        "{shadow}"
    );
    assert_eq!(shadow["duration_us"], 0);
}

async fn backtest_simulation_and_activation_agree(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    upload(&t, &a, &signer, "weighted-v1", true).await;
    upload(&t, &a, &signer, "weighted-v2", false).await;
    activate(&t, &a.key, "1.0.0", "active").await;
    // The tenant's overrides: one both versions accept, one only 1.0.0's
    // schema accepts (1.2.0 would refuse it as invalid params).
    set_pipeline(
        &t,
        &a.key,
        json!({"rule_id": RULE, "params": {"min_minor": 500_000, "legacy_mode": true}}),
        800,
    )
    .await;
    let large = payout_of("10000.00");
    let small = payout_of("2000.00");
    let (_, live_large) = t.assess(&a.key, &large).await;
    let (_, live_small) = t.assess(&a.key, &small).await;
    assert_eq!(weights(&live_large), vec![70], "{live_large}");
    assert!(
        weights(&live_small).is_empty(),
        "the override applies: {live_small}"
    );
    let v1_decision = live_large["decision"].clone();

    // Backtest 1.2.0: its own defaults (weight 40), the accepted override.
    let (s, bt) = t
        .post(
            &format!("/api/v1/rules/{RULE}/versions/1.2.0/backtest"),
            &a.key,
            &json!({"limit": 10}),
        )
        .await;
    assert_eq!(s, 200, "{bt}");
    assert_eq!(bt["evaluated"], 2, "{bt}");
    assert_eq!(bt["errors"], 0, "{bt}");
    assert_eq!(
        bt["params"],
        json!({"weight": 40, "min_minor": 500_000}),
        "{bt}"
    );
    assert_eq!(
        bt["ignored_param_overrides"],
        json!(["legacy_mode"]),
        "{bt}"
    );
    assert_eq!(bt["changed"], 1, "{bt}");
    let to: Vec<(&String, &Value)> = bt["matrix"][v1_decision.as_str().unwrap()]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(to, _)| Some(to.as_str()) != v1_decision.as_str())
        .collect();
    assert_eq!(to.len(), 1, "{bt}");
    let backtest_decision = to[0].0.clone();
    assert_eq!(
        bt["sample_changed_session_ids"],
        json!([live_large["session_id"]])
    );

    // Simulation with 1.2.0 as a candidate.
    let mut body = large.clone();
    body["rule_overrides"] = json!([{"rule_id": RULE, "version": "1.2.0"}]);
    let (s, sim) = t.post("/api/v1/simulation/payout", &a.key, &body).await;
    assert_eq!(s, 200, "{sim}");
    assert_eq!(weights(&sim), vec![40], "{sim}");
    let simulated = sim["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == RULE)
        .unwrap();
    assert_eq!(simulated["outcome"], "ok", "{simulated}");
    assert_eq!(
        simulated["params"],
        json!({"weight": 40, "min_minor": 500_000})
    );

    // Activation: the same decision and score as the simulation.
    activate(&t, &a.key, "1.2.0", "active").await;
    let (_, now_large) = t.assess(&a.key, &large).await;
    let (_, now_small) = t.assess(&a.key, &small).await;
    assert_eq!(weights(&now_large), vec![40], "{now_large}");
    assert!(weights(&now_small).is_empty(), "{now_small}");
    assert_eq!(
        (&now_large["decision"], &now_large["risk_score"]),
        (&sim["decision"], &sim["risk_score"])
    );
    assert_eq!(
        now_large["decision"].as_str(),
        Some(backtest_decision.as_str())
    );
    assert_ne!(now_large["decision"], v1_decision);
    let (_, pipeline) = t.get("/api/v1/pipeline", &a.key).await;
    let step = pipeline["payout"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == RULE)
        .unwrap();
    assert_eq!(
        step["ignored_param_overrides"],
        json!(["legacy_mode"]),
        "{step}"
    );
}

/// Typed domain events land in the outbox with the change they record:
/// `transaction.created` with the assessment, `rule.activated` with the
/// activation (naming the version it retired).
async fn domain_events_are_written_with_their_change(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    upload(&t, &a, &signer, "weighted-v1", true).await;
    upload(&t, &a, &signer, "weighted-v2", false).await;
    activate(&t, &a.key, "1.0.0", "active").await;
    let (_, v) = t.assess(&a.key, &payout_of("15000.00")).await;
    activate(&t, &a.key, "1.2.0", "active").await;
    let rows = t.app.store.outbox_rows(&a.id, 10).await.unwrap();
    let events: Vec<(String, Value)> = rows
        .iter()
        .map(|r| (r.event.clone(), serde_json::from_str(&r.payload).unwrap()))
        .collect();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["rule.activated", "transaction.created", "rule.activated"],
        "{events:?}"
    );
    let (_, created) = &events[1];
    assert_eq!(created["data"]["session_id"], v["session_id"]);
    assert_eq!(created["data"]["decision"], v["decision"]);
    assert_eq!(created["data"]["flow"], "payout");
    assert!(created["id"].as_str().unwrap().starts_with("evt_"));
    let (_, promoted) = &events[2];
    assert_eq!(
        promoted["data"],
        json!({"rule_id": RULE, "version": "1.2.0", "digest": promoted["data"]["digest"],
               "mode": "active", "replaced": "1.0.0", "activated_by": promoted["data"]["activated_by"]})
    );
    assert!(
        promoted["data"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(rows[2].id, promoted["id"].as_str().unwrap());
    // Another tenant's outbox is empty.
    let b = t.tenant().await;
    assert!(t.app.store.outbox_rows(&b.id, 10).await.unwrap().is_empty());
}

crate::both_backends!(
    domain_events_are_written_with_their_change,
    shadow_runs_beside_the_active_version,
    hostile_shadow_never_touches_the_live_decision,
    backtest_simulation_and_activation_agree,
);
