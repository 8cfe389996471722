//! `GET/PUT /api/v1/pipeline`, replay, simulation with candidates,
//! backtest, and hostile uploaded rules.
use serde_json::{Value, json};

use super::rules::payout_of;
use crate::common::{Db, TestApp, Upload, clean_payload, component};

async fn put_pipeline(t: &TestApp, key: &str, body: &Value) -> (reqwest::StatusCode, Value) {
    let (s, v, _) = t
        .request(
            reqwest::Method::PUT,
            "/api/v1/pipeline",
            Some(key),
            Some(body),
        )
        .await;
    (s, v)
}

fn cross_border() -> Value {
    let mut p = clean_payload();
    p["beneficiary"] =
        json!({"name": "Acme LLC", "country": "US", "iban": "DE89370400440532013000"});
    p["amount"] = json!("5000.00");
    p
}

async fn pipeline_api(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (s, v) = t.get("/api/v1/pipeline", &a.key).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["payout"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{v}");
    assert_eq!(v["payout"]["customized"], false);
    assert_eq!(v["payout"]["thresholds"]["review"], 30);
    assert!(
        v["payout"]["cross_border_thresholds"]["MXN"].is_string(),
        "{v}"
    );

    // Cross-border 5,000 MXN: under the default threshold.
    let (_, before) = t.assess(&a.key, &cross_border()).await;
    assert!(
        !before["signals"].to_string().contains("cross_border"),
        "{before}"
    );

    let body = json!({"payout": {
        "rules": [
            {"rule_id": "blocklist"},
            {"rule_id": "cross-border-amount", "weights": {"payout_cross_border_high_amount": 50}},
            {"rule_id": "high-risk-country"},
            {"rule_id": "payout-integrity", "on_error": "review"},
            {"rule_id": "first-beneficiary", "enabled": false},
        ],
        "thresholds": {"review": 20, "challenge": 45, "decline": 90},
        "high_risk_countries": {"black_list": ["KP"], "grey_list": ["us"]},
        "cross_border_thresholds": {"MXN": "4000.00"},
    }});
    let (s, v) = put_pipeline(&t, &a.key, &body).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["payout"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "blocklist",
            "cross-border-amount",
            "high-risk-country",
            "payout-integrity"
        ]
    );
    assert_eq!(
        v["payout"]["disabled_rules"][0]["rule_id"],
        "first-beneficiary"
    );
    assert_eq!(
        v["payout"]["high_risk_countries"]["grey_list"],
        json!(["US"])
    );
    assert_eq!(
        v["payout"]["cross_border_thresholds"],
        json!({"MXN": "4000.00"})
    );
    assert_eq!(v["payout"]["customized"], true);
    // It applies to the next assessment.
    let (_, after) = t.assess(&a.key, &cross_border()).await;
    let signals = after["signals"].to_string();
    assert!(
        signals.contains("payout_cross_border_high_amount"),
        "{after}"
    );
    assert!(signals.contains("payout_high_risk_country"), "{after}");
    assert!(!signals.contains("payout_first_beneficiary"), "{after}");
    let weight = after["signal_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "payout_cross_border_high_amount")
        .unwrap()["weight"]
        .clone();
    assert_eq!(weight, 50);

    // Invalid configurations are 400s naming the field, and change nothing.
    let cases = [
        (
            json!({"payout": {"rules": [{"rule_id": "nope"}]}}),
            "payout.rules[0].rule_id",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "blocklist", "weights": {"made_up": 5}}]}}),
            "payout.rules[0].weights",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "cross-border-amount", "params": {"thresholds": {"MXN": "lots"}}}]}}),
            "payout.rules[0].params",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "blocklist"}], "thresholds": {"review": 70, "challenge": 40, "decline": 90}}}),
            "payout.thresholds",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "high-risk-country"}], "high_risk_countries": {"black_list": ["XX"]}}}),
            "payout.high_risk_countries.black_list[0]",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "blocklist"}], "cross_border_thresholds": {"MXN": "1"}}}),
            "payout.cross_border_thresholds",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "blocklist"}, {"rule_id": "blocklist"}]}}),
            "payout.rules[1].rule_id",
        ),
        (
            json!({"payout": {"rules": [{"rule_id": "blocklist", "on_error": "explode"}]}}),
            "payout.rules[0].on_error",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = put_pipeline(&t, &a.key, &body).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert!(
            v["error"]["details"]["field"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}: {v}"
        );
    }
    let (_, still) = t.get("/api/v1/pipeline", &a.key).await;
    assert_eq!(still["payout"]["thresholds"]["review"], 20);

    // Custom rules are configured through the same API, against their
    // params schema.
    let signer = t.signer(&a).await;
    let mut up = Upload::signed(&signer, &component("structuring"));
    up.manifest["params_schema"] = json!({
        "type": "object",
        "properties": {"band_percent": {"type": "integer", "minimum": 1, "maximum": 50}}
    });
    let (s, v) = t.upload(&a.key, &up).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = put_pipeline(
        &t,
        &a.key,
        &json!({"payout": {"rules": [{"rule_id": "structuring-below-threshold", "params": {"band_percent": 80}}]}}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("params_schema"),
        "{v}"
    );
    let (s, v) = put_pipeline(
        &t,
        &a.key,
        &json!({"payout": {"rules": [
            {"rule_id": "payout-integrity"},
            {"rule_id": "structuring-below-threshold", "params": {"band_percent": 20}},
        ]}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Configured but not activated: it does not run yet.
    assert_eq!(v["payout"]["rules"].as_array().unwrap().len(), 1, "{v}");
    let (s, _) = t
        .post(
            "/api/v1/rules/structuring-below-threshold/versions/1.0.0/activate",
            &a.key,
            &json!({"mode": "active"}),
        )
        .await;
    assert_eq!(s, 200);
    // 130,000 MXN is within 20% under the 150,000 threshold.
    let (_, v) = t.assess(&a.key, &payout_of("130000.00")).await;
    assert!(
        v["signals"]
            .to_string()
            .contains("payout_structuring_below_threshold"),
        "{v}"
    );
    // Audit has the pipeline changes.
    let (_, audit) = t.get("/api/v1/audit?action=pipeline.updated", &a.key).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 2, "{audit}");
    // Only settings:write may change it.
    let analyst = t.key(&a, "secret", "analyst").await;
    let (s, _) = put_pipeline(&t, &analyst, &body).await;
    assert_eq!(s, 403);
}

async fn replay_simulation_and_backtest(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    for name in ["structuring", "night-spei", "new-beneficiary-burst"] {
        t.upload_and_activate(&a, &signer, &component(name), "active")
            .await;
    }
    t.upload_and_activate(&a, &signer, &component("tiered-v1"), "active")
        .await;
    let (s, v) = t
        .upload(&a.key, &Upload::signed(&signer, &component("tiered-v2")))
        .await;
    assert_eq!(s, 201, "{v}");

    // A spread of live assessments that exercise every built-in and every
    // uploaded rule.
    let mut bodies = Vec::new();
    for (i, amount) in [
        "1500.50",
        "15000.00",
        "140000.00",
        "60000.00",
        "2500.00",
        "25000.00",
    ]
    .iter()
    .enumerate()
    {
        let mut p = payout_of(amount);
        p["beneficiary"]["id"] = json!(format!("ben_{}", i % 3));
        p["metadata"] = json!({"beneficiary_registered_at_ms": 0});
        bodies.push(p);
    }
    bodies.push(cross_border());
    bodies.push(crate::common::example_payload());
    let mut night = payout_of("80000.00");
    night["payout"]["channel"] = json!("spei");
    bodies.push(night);
    let mut sessions = Vec::new();
    for b in &bodies {
        let (s, v) = t.assess(&a.key, b).await;
        assert_eq!(s, 200, "{v}");
        sessions.push(v["session_id"].as_str().unwrap().to_owned());
    }

    // Every stored assessment replays identically.
    let mut rules_seen = std::collections::BTreeSet::new();
    for session in &sessions {
        let (s, r) = t
            .post(
                &format!("/api/v1/assessments/{session}/replay"),
                &a.key,
                &json!({}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["identical"], true, "{session}: {r}");
        for rule in r["replayed"]["rules"].as_array().unwrap() {
            rules_seen.insert(rule["rule_id"].as_str().unwrap().to_owned());
        }
    }
    for id in [
        "payout-integrity",
        "first-beneficiary",
        "high-risk-country",
        "cross-border-amount",
        "blocklist",
        "structuring-below-threshold",
        "night-high-value-spei",
        "new-beneficiary-large-transfer",
        "tiered-amount",
    ] {
        assert!(rules_seen.contains(id), "{id} replayed: {rules_seen:?}");
    }

    let before = counts(&t, &a).await;

    // Simulation with a candidate: v2 flags 1,500.50, v1 does not.
    let mut sim = payout_of("1500.50");
    sim["idempotency_key"] = json!("sim-1");
    let (s, plain) = t.post("/api/v1/simulation/payout", &a.key, &sim).await;
    assert_eq!(s, 200, "{plain}");
    assert_eq!(plain["simulated"], true);
    assert!(!plain["signals"].to_string().contains("tiered_large_amount"));
    sim["rule_overrides"] = json!([{"rule_id": "tiered-amount", "version": "2.0.0"}]);
    let (s, cand) = t.post("/api/v1/simulation/payout", &a.key, &sim).await;
    assert_eq!(s, 200, "{cand}");
    assert!(
        cand["signals"].to_string().contains("tiered_large_amount"),
        "{cand}"
    );
    assert_eq!(cand["rule_overrides"][0]["version"], "2.0.0");
    sim["rule_overrides"] = json!([{"rule_id": "tiered-amount", "version": "7.0.0"}]);
    let (s, _) = t.post("/api/v1/simulation/payout", &a.key, &sim).await;
    assert_eq!(s, 400);

    // Backtest v2 over the stored assessments.
    let (s, bt) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/2.0.0/backtest",
            &a.key,
            &json!({"limit": 100}),
        )
        .await;
    assert_eq!(s, 200, "{bt}");
    assert_eq!(bt["evaluated"], sessions.len());
    assert_eq!(bt["errors"], 0);
    let changed = bt["changed"].as_u64().unwrap();
    assert!(changed >= 1, "v2 flags more: {bt}");
    let sample = bt["sample_changed_session_ids"].as_array().unwrap();
    assert_eq!(sample.len() as u64, changed.min(20));
    assert!(sessions.contains(&sample[0].as_str().unwrap().to_owned()));
    let matrix_total: u64 = bt["matrix"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|to| to.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(matrix_total, sessions.len() as u64);
    // v1 (running) changes nothing.
    let (_, same) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/1.0.0/backtest",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(same["changed"], 0, "{same}");
    let (s, _) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/2.0.0/backtest",
            &a.key,
            &json!({"limit": 0}),
        )
        .await;
    assert_eq!(s, 400);

    // Read-only: nothing was written by simulation or backtest.
    assert_eq!(counts(&t, &a).await, before);
}

async fn counts(t: &TestApp, a: &crate::common::TestTenant) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "assessments",
        "beneficiary_history",
        "idempotency_keys",
        "outbox",
    ] {
        out.push(t.count(table, a).await);
    }
    out
}

async fn hostile_uploads_are_contained(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let signer = t.signer(&a).await;
    let hostile = [
        (
            "infinite-loop",
            "hostile-infinite-loop",
            "fuel budget exhausted",
        ),
        (
            "memory-bomb",
            "hostile-memory-bomb",
            "memory limit exceeded",
        ),
        (
            "deep-recursion",
            "hostile-deep-recursion",
            "stack overflow|out of bounds",
        ),
        (
            "oversized-output",
            "hostile-oversized-output",
            "output too large",
        ),
        ("panic", "hostile-panic", "unreachable"),
    ];
    for (file, _, _) in hostile {
        t.upload_and_activate(&a, &signer, &component(file), "active")
            .await;
    }
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "approve", "on_error ignore: {v}");
    let (_, explained) = t
        .get(
            &format!("/api/v1/assessments/{}", v["session_id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    for (_, id, reason) in hostile {
        let r = explained["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule_id"] == id)
            .unwrap_or_else(|| panic!("{id} ran: {explained}"));
        assert_eq!(r["outcome"], "errored", "{r}");
        let got = r["reason"].as_str().unwrap();
        assert!(
            reason.split('|').any(|want| got.contains(want)),
            "{id}: {r}"
        );
    }
    // Tenant B is served normally meanwhile.
    let (s, vb) = t.assess(&b.key, &clean_payload()).await;
    assert_eq!(s, 200);
    assert_eq!(vb["field_warnings"], json!([]), "{vb}");

    // on_error decline turns one of them into a decline.
    let (s, v) = put_pipeline(
        &t,
        &a.key,
        &json!({"payout": {"rules": [
            {"rule_id": "payout-integrity"},
            {"rule_id": "hostile-infinite-loop", "on_error": "decline"},
        ]}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "decline", "{v}");
    assert_eq!(v["blocked_by"], "rule_error:hostile-infinite-loop");
}

crate::both_backends!(
    pipeline_api,
    replay_simulation_and_backtest,
    hostile_uploads_are_contained,
);
