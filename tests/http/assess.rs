//! Payout assess: the documented example, signals, thresholds, history,
//! storage of the full assessment, catalog and health.
use serde_json::{Value, json};

use crate::common::{Db, TestApp, clean_payload, example_payload};

use crate::common::signals;

async fn documented_example_is_assessed(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (status, v, headers) = t
        .request(
            reqwest::Method::POST,
            "/api/v1/assess/payout",
            Some(&a.key),
            Some(&example_payload()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(v["flow"], "payout");
    assert_eq!(signals(&v), vec!["payout_invalid_beneficiary_account"]);
    assert_eq!(v["risk_score"], 25);
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["blocked_by"], Value::Null);
    assert_eq!(
        v["amount"],
        json!({"minor": 2500000, "major": "25000.00", "currency": "MXN"})
    );
    assert_eq!(v["payment_id"], "core-tx-991");
    assert_eq!(v["field_warnings"][0]["field"], "beneficiary.clabe");
    let detail = &v["signal_details"][0];
    assert_eq!(detail["rule_id"], "payout-integrity");
    assert_eq!(detail["rule_version"], "1.0.0");
    assert_eq!(detail["weight"], 25);
    let sid = v["session_id"].as_str().unwrap();
    assert!(aduana_host::domain::ids::is_payout_session_id(sid), "{sid}");
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);

    // The stored assessment holds the full input, every rule with version,
    // digest, outcome, fuel and duration, the signals and the decision.
    let stored = t.app.store.assessment(&a.id, sid).await.unwrap().unwrap();
    assert_eq!(stored.decision, "approve");
    let input: Value = serde_json::from_str(&stored.input).unwrap();
    assert_eq!(input["beneficiary"]["clabe"], "012180001234567890");
    assert_eq!(input["amount_minor"], 2500000);
    let rules: Value = serde_json::from_str(&stored.rules).unwrap();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 5);
    for r in rules {
        assert!(r["digest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(r["outcome"], "ok");
        assert!(r["fuel_used"].as_u64().unwrap() > 0);
        assert!(r["duration_us"].is_u64());
    }
    let response: Value = serde_json::from_str(&stored.response).unwrap();
    assert_eq!(response["session_id"], sid);
    assert_eq!(t.count("outbox", &a).await, 1);
}

async fn signals_and_thresholds(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    // Clean payout: nothing fires.
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["risk_score"], 0);
    assert!(signals(&v).is_empty());
    assert_eq!(v["field_warnings"], json!([]));

    // High-risk country (FATF grey list) + cross-border above threshold:
    // 40 + 35 = 75 → challenge.
    let mut p = clean_payload();
    p["beneficiary"] = json!({"id": "ben_ve", "country": "VE", "name": "Casa de Cambio"});
    p["amount"] = json!("250000.00");
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(
        signals(&v),
        vec![
            "payout_high_risk_country",
            "payout_cross_border_high_amount"
        ]
    );
    assert_eq!(v["risk_score"], 75);
    assert_eq!(v["decision"], "challenge");

    // Cross-border below the MXN threshold: only high-risk → 40 → review.
    p["amount"] = json!("199999.99");
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(signals(&v), vec!["payout_high_risk_country"]);
    assert_eq!(v["decision"], "review");

    // Unattributed initiator + invalid IBAN + missing recommended fields.
    let p = json!({
        "amount": 100, "currency": "EUR",
        "beneficiary": {"iban": "DE89370400440532013001", "name": "X"},
        "payout": {"initiated_by": "system"}
    });
    let (s, v) = t.assess(&a.key, &p).await;
    assert_eq!(s, 200, "{v}");
    let sig = signals(&v);
    assert!(
        sig.contains(&"payout_invalid_beneficiary_account".to_owned()),
        "{v}"
    );
    assert!(
        sig.contains(&"payout_unattributed_initiator".to_owned()),
        "{v}"
    );
    let fields: Vec<&str> = v["field_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["field"].as_str().unwrap())
        .collect();
    for f in [
        "origin.account_id",
        "origin.country",
        "payout.channel",
        "beneficiary.iban",
    ] {
        assert!(fields.contains(&f), "missing warning {f}: {v}");
    }
    // amount_unit defaults to minor: 100 minor EUR = 1.00.
    assert_eq!(
        v["amount"],
        json!({"minor": 100, "major": "1.00", "currency": "EUR"})
    );
}

async fn first_beneficiary_history(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let mut p = clean_payload();
    p["payout"]["first_to_beneficiary"] = Value::Null;
    // No flag and no history: first.
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(signals(&v), vec!["payout_first_beneficiary"]);
    assert_eq!(v["risk_score"], 15);
    // The approved transfer entered the history: no longer first.
    let (_, v) = t.assess(&a.key, &p).await;
    assert!(signals(&v).is_empty(), "{v}");
    // Another origin to the same beneficiary is a first again.
    p["origin"]["account_id"] = json!("acct_other");
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(signals(&v), vec!["payout_first_beneficiary"]);
    // The core's explicit true is trusted even with history.
    p["origin"]["account_id"] = json!("acct_clean");
    p["payout"]["first_to_beneficiary"] = json!(true);
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(signals(&v), vec!["payout_first_beneficiary"]);
    // A declined transfer does not enter the history.
    t.post(
        "/api/v1/blocklists",
        &a.key,
        &json!({"list_type": "beneficiary_id", "value": "ben_declined", "flow_scope": "payout"}),
    )
    .await;
    let mut d = clean_payload();
    d["payout"]["first_to_beneficiary"] = Value::Null;
    d["beneficiary"]["id"] = json!("ben_declined");
    let (_, v) = t.assess(&a.key, &d).await;
    assert_eq!(v["decision"], "decline");
    assert_eq!(v["blocked_by"], "blocklist:beneficiary_id");
    let stored_before = t.count("beneficiary_history", &a).await;
    t.app
        .store
        .delete_blocklist_entry(&a.id, &list_first_id(&t, &a.key).await)
        .await
        .unwrap();
    let (_, v) = t.assess(&a.key, &d).await;
    assert_eq!(
        signals(&v),
        vec!["payout_first_beneficiary"],
        "declined transfer counted: {v}"
    );
    assert_eq!(t.count("beneficiary_history", &a).await, stored_before + 1);
    // History is per tenant.
    let b = t.tenant().await;
    let mut p = clean_payload();
    p["payout"]["first_to_beneficiary"] = Value::Null;
    let (_, v) = t.assess(&b.key, &p).await;
    assert_eq!(signals(&v), vec!["payout_first_beneficiary"]);
}

async fn list_first_id(t: &TestApp, key: &str) -> String {
    let (_, v) = t.get("/api/v1/blocklists", key).await;
    v["data"][0]["id"].as_str().unwrap().to_owned()
}

async fn catalog_and_health(db: Db) {
    let t = TestApp::start(db).await;
    let (s, v, _) = t
        .request(reqwest::Method::GET, "/api/v1/assess/payout", None, None)
        .await;
    assert_eq!(s, 200);
    let codes: Vec<&str> = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    for c in [
        "payout_first_beneficiary",
        "payout_high_risk_country",
        "payout_cross_border_high_amount",
        "payout_invalid_beneficiary_account",
        "payout_unattributed_initiator",
        "blocklist_clabe",
    ] {
        assert!(codes.contains(&c), "{c} missing from catalog");
    }
    assert_eq!(
        v["channel_values"],
        json!(["spei", "wire", "api", "internal"])
    );
    assert!(v["version"].is_string());
    let (s, v, _) = t
        .request(reqwest::Method::GET, "/api/v1/health", None, None)
        .await;
    assert_eq!((s.as_u16(), v["status"].as_str()), (200, Some("ok")));
    let (s, v, _) = t
        .request(reqwest::Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rules_loaded"], 8);
    // Durable by default: SQLite fsyncs every commit.
    let durable = match t.db {
        Db::Sqlite => "sqlite synchronous=FULL",
        Db::Postgres => "postgresql",
    };
    assert_eq!(v["durability"], durable, "{v}");
    let (s, v, _) = t
        .request(reqwest::Method::GET, "/api/v1/nope", None, None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "NOT_FOUND");
}

async fn tenant_pipeline_settings(db: Db) {
    // Built-ins are configured per tenant: weights, params, thresholds.
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let settings = json!({"pipeline": {"payout": {
        "rules": [
            {"rule_id": "payout-integrity", "weights": {"payout_invalid_beneficiary_account": 70}},
            {"rule_id": "high-risk-country", "params": {"grey_list": [], "black_list": ["MX"], "hard_block_black_list": true}}
        ],
        "thresholds": {"review": 10, "challenge": 50, "decline": 90}
    }}});
    t.set_settings(&a, &settings).await;
    let (_, v) = t.assess(&a.key, &example_payload()).await;
    assert_eq!(v["decision"], "decline", "{v}");
    assert_eq!(v["blocked_by"], "high_risk_country:black_list");
    let mut p = example_payload();
    p["beneficiary"]["country"] = json!("US");
    p["origin"]["country"] = json!("US");
    let (_, v) = t.assess(&a.key, &p).await;
    assert_eq!(v["risk_score"], 70, "{v}");
    assert_eq!(v["decision"], "challenge");
    // Another tenant keeps the defaults.
    let b = t.tenant().await;
    let (_, v) = t.assess(&b.key, &example_payload()).await;
    assert_eq!(v["decision"], "approve");
}

async fn prometheus_metrics(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (s, _) = t.assess(&a.key, &example_payload()).await;
    assert_eq!(s, 200);
    if db == Db::Sqlite {
        // Two ticks of the WAL checkpointer, which reports the WAL's size.
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    let resp = t
        .client
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    // The recorder is process-wide, so other tests' traffic may be in it
    // too; these series must exist after one assessment here.
    for series in [
        "aduana_assessments_total{flow=\"payout\"",
        "aduana_rule_runs_total{",
        "aduana_http_requests_total{method=\"POST\",route=\"/api/v1/assess/payout\",status=\"200\"}",
        "aduana_http_request_duration_seconds_bucket",
        "aduana_rule_components_loaded",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    if db == Db::Sqlite {
        for series in [
            "aduana_sqlite_wal_frames ",
            "aduana_sqlite_wal_frames_behind ",
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }
    // No tenant ids in labels.
    assert!(!text.contains(&a.id));
}

async fn openapi_and_docs(db: Db) {
    let t = TestApp::start(db).await;
    let (s, doc) = t.get("/openapi.json", "").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["components"]["schemas"]["AssessPayoutRequest"].is_object());
    assert!(doc["components"]["schemas"]["Error"].is_object());
    // The suite checks every answer against this very document.
    assert_eq!(doc, aduana_host::api::openapi::document());
    // The checker every helper applies catches a body that breaks the
    // document, and an undocumented status.
    let catches = |body: Value, status: u16| {
        std::panic::catch_unwind(|| {
            crate::common::spec::check_response(
                "GET",
                "/api/v1/health",
                status,
                "application/json",
                &body,
            )
        })
        .is_err()
    };
    assert!(!catches(json!({"status": "ok", "version": "1"}), 200));
    assert!(
        catches(json!({"status": "ok"}), 200),
        "a required field missing"
    );
    assert!(
        catches(json!({"status": "fine", "version": "1"}), 200),
        "a const broken"
    );
    assert!(!catches(
        json!({"error": {"code": "NOT_FOUND", "message": "x", "details": {}}}),
        404
    ));
    assert!(
        catches(json!({"oops": true}), 500),
        "an error without the error body"
    );
    // A plain integer is a valid amount (minor units by default).
    let amount =
        &doc["components"]["schemas"]["AssessPayoutRequest"]["else"]["properties"]["amount"];
    let validator = jsonschema::validator_for(amount).unwrap();
    assert!(validator.is_valid(&json!(2500000)));
    assert!(!validator.is_valid(&json!("25000.00")));
    assert!(doc["paths"]["/docs"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
    let (s, v) = t.get("/api/v1/operator/tenants", "").await;
    assert_eq!(
        (s.as_u16(), &v["error"]["code"]),
        (401, &json!("UNAUTHORIZED"))
    );
    // Every documented operation is served: never a 404 for the route or a
    // 405 for the method.
    let mut count = 0;
    for op in aduana_host::api::openapi::OPERATIONS {
        let path = op.path.replace(['{', '}'], "");
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let (s, v, _) = t.request(method, &path, None, None).await;
        assert_ne!(s, 405, "{} {}", op.method, op.path);
        assert!(
            !(s == 404 && v["error"]["message"] == "route not found"),
            "{} {} is documented but not routed",
            op.method,
            op.path
        );
        let documented = &doc["paths"][op.path][op.method.to_ascii_lowercase()];
        assert_eq!(documented["summary"], op.summary);
        count += 1;
    }
    assert!(count >= 30);
    let html = t
        .client
        .get(format!("{}/docs", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    let text = html.text().await.unwrap();
    assert!(
        text.contains("/openapi.json") && !text.contains("https://"),
        "self-contained"
    );
}

crate::both_backends!(
    openapi_and_docs,
    prometheus_metrics,
    documented_example_is_assessed,
    signals_and_thresholds,
    first_beneficiary_history,
    catalog_and_health,
    tenant_pipeline_settings,
);

/// `ADUANA_SQLITE_SYNCHRONOUS=normal` is an explicit operator choice; a
/// value that is neither `full` nor `normal` stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_normal_sync_is_an_explicit_choice() {
    let t = TestApp::start_configured(Db::Sqlite, &[], |c| {
        c.sqlite_sync = aduana_host::store::SqliteSync::Normal;
    })
    .await;
    let (s, v, _) = t
        .request(reqwest::Method::GET, "/api/v1/health/ready", None, None)
        .await;
    assert_eq!(
        (s.as_u16(), &v["durability"]),
        (200, &json!("sqlite synchronous=NORMAL"))
    );
    let out = crate::common::cli(&t)
        .args(["serve"])
        .env("ADUANA_SQLITE_SYNCHRONOUS", "sometimes")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ADUANA_SQLITE_SYNCHRONOUS"), "{err}");
}
