//! Pay-in assess (§3) over real HTTP on both databases: keys, catalog,
//! card-number refusal, pay-in blocklist types (CIDR ranges, IPv4-mapped
//! addresses, e-mail domains, flow scope both ways), velocity counted once
//! per idempotent request and never by simulation, segment warnings,
//! pipelines per flow, replay, and tenant isolation.
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, TestTenant};

const ASSESS: &str = "/api/v1/assess";

fn payin() -> Value {
    json!({
        "amount": 150000, "currency": "MXN",
        "payment_id": "pay_1", "customer_id": "cus_1",
        "email": "ana@example.com", "phone": "+52 55 1234 5678",
        "payment_method": {"type": "card", "card_bin": "41111111", "card_last4": "1111", "card_country": "MX"},
        "device": {"ip": "203.0.113.7", "fingerprint": "fp_1"},
        "billing": {"country": "MX"},
    })
}

use crate::common::signals;

async fn block(t: &TestApp, tenant: &TestTenant, list_type: &str, value: &str, scope: &str) {
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &tenant.key,
            &json!({"list_type": list_type, "value": value, "flow_scope": scope, "severity": "block"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

/// Keys, the catalog and the answer's shape.
async fn payin_keys_and_catalog(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (s, v) = t.post(ASSESS, &a.key, &payin()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["flow"], "payin");
    assert_eq!(v["decision"], "approve", "{v}");
    assert!(v["session_id"].as_str().unwrap().starts_with("pi_"), "{v}");
    assert_eq!(
        v["amount"],
        json!({"minor": 150000, "major": "1500.00", "currency": "MXN"})
    );
    // A publishable key may call pay-in assess, and nothing else.
    let public = t.key(&a, "publishable", "integration").await;
    assert!(public.starts_with("clm_pub_"), "{public}");
    let (s, v) = t.post(ASSESS, &public, &payin()).await;
    assert_eq!(s, 200, "{v}");
    for (method, path) in [
        (Method::POST, "/api/v1/assess/payout"),
        (Method::POST, "/api/v1/simulation/assess"),
        (Method::GET, "/api/v1/blocklists"),
    ] {
        let body = (method == Method::POST).then(payin);
        let (s, v, _) = t.request(method, path, Some(&public), body.as_ref()).await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (403, Some("PUBLIC_KEY_NOT_ALLOWED")),
            "{path}: {v}"
        );
    }
    // The catalog needs no key.
    let (s, c, _) = t.request(Method::GET, ASSESS, None, None).await;
    assert_eq!(s, 200);
    assert_eq!(c["flow"], "payin");
    assert!(c["amount_encoding"]["max_major"].is_string(), "{c}");
    let banco = &c["field_requirements_by_segment"]["banco"];
    assert_eq!(banco["recommended"], json!(["payment_id", "customer_id"]));
    assert_eq!(banco["not_applicable"], json!(["order_id"]));
    for segment in ["comercio", "psp"] {
        assert!(c["field_requirements_by_segment"][segment]["recommended"].is_array());
    }
    assert!(c["resilience"]["ASSESS_TIMEOUT"].is_string());
    let codes: Vec<&str> = c["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    for code in ["high_velocity", "disposable_email", "blocklist_ip_range"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    assert!(!codes.contains(&"payout_first_beneficiary"), "{codes:?}");
}

/// A full card number anywhere is a 400 naming the field, not the number,
/// and nothing is stored.
async fn payin_refuses_card_numbers(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let pan = "4111 1111 1111 1111";
    let mut cases = Vec::new();
    let mut p = payin();
    p["metadata"] = json!({"notes": ["ok", pan]});
    cases.push((p, "metadata.notes[1]"));
    let mut p = payin();
    p["payment_method"]["card_bin"] = json!("4111111111111111");
    cases.push((p, "payment_method.card_bin"));
    let mut p = payin();
    p["customer_id"] = json!("5555-5555-5555-4444");
    cases.push((p, "customer_id"));
    let mut p = payin();
    p["metadata"] = json!({"pan": 4_111_111_111_111_111_u64});
    cases.push((p, "metadata.pan"));
    for (body, field) in cases {
        for path in [ASSESS, "/api/v1/simulation/assess"] {
            let (s, v) = t.post(path, &a.key, &body).await;
            assert_eq!(s, 400, "{v}");
            assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
            assert_eq!(v["error"]["details"]["field"], field, "{v}");
            let text = v.to_string();
            assert!(
                !text.contains("4111") && !text.contains("5555"),
                "the answer echoes the number: {text}"
            );
        }
    }
    // Card fields in the wrong shape are refused too.
    let mut p = payin();
    p["payment_method"]["card_last4"] = json!("11");
    let (s, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(
        (s.as_u16(), &v["error"]["details"]["field"]),
        (400, &json!("payment_method.card_last4"))
    );
    // A 13-digit epoch-ms timestamp in metadata is not a card number.
    let mut p = payin();
    p["metadata"] = json!({"created_at": 1_765_000_000_000_u64});
    let (s, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(t.count("assessments", &a).await, 1);
}

/// Pay-in list types: an IPv4-mapped address inside a listed CIDR range,
/// an e-mail's registrable domain, flow scope honoured both ways.
async fn payin_blocklists(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    // B's entries never touch A.
    block(&t, &b, "ip_range", "203.0.113.0/24", "all").await;
    let (s, v) = t.post(ASSESS, &a.key, &payin()).await;
    assert_eq!(
        (s.as_u16(), v["decision"].as_str()),
        (200, Some("approve")),
        "{v}"
    );

    // A payout-only entry does not apply to a pay-in, and a pay-in entry
    // not to a payout.
    block(&t, &a, "ip_range", "203.0.113.0/24", "payout").await;
    block(&t, &a, "clabe", "032180000118359719", "payin").await;
    let mut p = payin();
    p["device"]["ip"] = json!("::ffff:203.0.113.7");
    let (_, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(v["decision"], "approve", "{v}");
    let mut payout = crate::common::clean_payload();
    payout["beneficiary"]["clabe"] = json!("032180000118359719");
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_ne!(v["blocked_by"], "blocklist:clabe", "{v}");

    // A pay-in range catches the IPv4-mapped form of an address inside it.
    block(&t, &a, "ip_range", "203.0.112.0/23", "payin").await;
    let (_, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(v["decision"], "decline", "{v}");
    assert_eq!(v["blocked_by"], "blocklist:ip_range");
    assert_eq!(v["risk_score"], 100);

    // The registrable domain: a listed example.co.uk catches a subdomain.
    block(&t, &a, "email_domain", "example.co.uk", "all").await;
    let mut p = payin();
    p["email"] = json!("Ana@Mail.Example.co.uk");
    let (_, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(v["blocked_by"], "blocklist:email_domain", "{v}");
    // Phones in E.164, whatever the separators.
    block(&t, &a, "phone", "+52 1 55 0000 0000", "payin").await;
    let mut p = payin();
    p["phone"] = json!("+52-1-55-0000-0000");
    let (_, v) = t.post(ASSESS, &a.key, &p).await;
    assert_eq!(v["blocked_by"], "blocklist:phone", "{v}");
    // A disposable e-mail domain raises its signal.
    let mut p = payin();
    p["email"] = json!("x@mailinator.com");
    let (_, v) = t.post(ASSESS, &a.key, &p).await;
    assert!(signals(&v).contains(&"disposable_email".to_owned()), "{v}");
}

/// Velocity: counted once per idempotent request, declines included,
/// never by simulation; the decision sees the counts as of its time, and
/// the stored context keeps them for replay.
async fn payin_velocity(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    // Tenant B's pay-ins with the same card never count for A.
    for i in 0..4 {
        let mut p = payin();
        p["idempotency_key"] = json!(format!("b-{i}"));
        let (s, _) = t.post(ASSESS, &b.key, &p).await;
        assert_eq!(s, 200);
    }
    let velocity_rows = |n: i64| n * 5; // customer, card, ip, device, email
    for i in 0..3 {
        let mut p = payin();
        p["idempotency_key"] = json!(format!("a-{i}"));
        let (s, v) = t.post(ASSESS, &a.key, &p).await;
        assert_eq!(s, 200, "{v}");
        assert!(
            !signals(&v).contains(&"high_velocity".to_owned()),
            "{i}: {v}"
        );
        // The same request again: the stored answer, nothing counted.
        let (s, again) = t.post(ASSESS, &a.key, &p).await;
        assert_eq!(s, 200);
        assert_eq!(again["session_id"], v["session_id"]);
    }
    assert_eq!(t.count("velocity_counts", &a).await, velocity_rows(3));
    // Simulation sees the counts and writes nothing.
    let before = (
        t.count("assessments", &a).await,
        t.count("velocity_counts", &a).await,
        t.count("outbox", &a).await,
        t.count("idempotency_keys", &a).await,
    );
    let (s, sim) = t.post("/api/v1/simulation/assess", &a.key, &payin()).await;
    assert_eq!(s, 200, "{sim}");
    assert_eq!(sim["simulated"], true);
    assert!(signals(&sim).contains(&"high_velocity".to_owned()), "{sim}");
    let after = (
        t.count("assessments", &a).await,
        t.count("velocity_counts", &a).await,
        t.count("outbox", &a).await,
        t.count("idempotency_keys", &a).await,
    );
    assert_eq!(before, after);
    // The fourth live attempt with the card: 3 earlier in the hour (limit 3).
    let (_, v) = t.post(ASSESS, &a.key, &payin()).await;
    let detail = v["signal_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "high_velocity")
        .unwrap_or_else(|| panic!("no high_velocity: {v}"))
        .clone();
    let text = detail["description"].as_str().unwrap();
    assert!(text.contains("card: 3 earlier pay-ins in 1h"), "{text}");
    assert_eq!(t.count("velocity_counts", &a).await, velocity_rows(4));
    // The stored context has the counts; replay sees the same decision.
    let sid = v["session_id"].as_str().unwrap();
    let (s, e) = t.get(&format!("/api/v1/assessments/{sid}"), &a.key).await;
    assert_eq!(s, 200, "{e}");
    let card_1h = e["context"]["velocity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["entity"] == "card" && c["window"] == "1h")
        .cloned();
    assert_eq!(card_1h.map(|c| c["count"].clone()), Some(json!(3)), "{e}");
    let (s, r) = t
        .post(
            &format!("/api/v1/assessments/{sid}/replay"),
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["identical"], true, "{r}");
    // Another tenant cannot read it.
    let (s, _) = t.get(&format!("/api/v1/assessments/{sid}"), &b.key).await;
    assert_eq!(s, 404);
}

/// Velocity windows on the database itself: counted in five-minute steps,
/// each window covering at least its length; nothing after `now` counts;
/// pruning removes only the steps no window reaches, and counts stay.
async fn payin_velocity_windows(db: Db) {
    use aduana_host::store::{AssessmentWrite, VelocityQuery, velocity_step};
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let store = &t.app.store;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    let now = 1_800_000_000_000 + 7 * MIN;
    let step = velocity_step(now);
    assert_eq!(step, 1_800_000_000_000 + 5 * MIN);
    let write = |tenant: &str, i: usize, at: i64| AssessmentWrite {
        session_id: format!("pi_{at}_{i:09}"),
        tenant_id: tenant.to_owned(),
        flow: "payin".into(),
        decision: "approve".into(),
        risk_score: 0,
        payment_id: None,
        input: "{}".into(),
        context: "{}".into(),
        rules: "[]".into(),
        thresholds: "{}".into(),
        response: "{}".into(),
        created_at: at,
        idempotency: None,
        history: None,
        velocity: vec![("card", "k1".to_owned())],
        outbox: None,
    };
    let times = [
        now - MIN,             // 1h, 24h, 7d
        step - HOUR,           // the first step 1h counts
        step - HOUR - 1,       // 24h and 7d
        step - 24 * HOUR,      // the first step 24h counts
        step - 24 * HOUR - 1,  // 7d
        step - 168 * HOUR,     // the first step 7d counts
        step - 168 * HOUR - 1, // no window
        now + 10 * MIN,        // after `now`: no window
    ];
    for (i, at) in times.into_iter().enumerate() {
        store.commit_assessment(write(&a.id, i, at)).await.unwrap();
    }
    // Another tenant's pay-in with the same key never counts for `a`.
    store
        .commit_assessment(write(&b.id, 99, now - MIN))
        .await
        .unwrap();
    let keys = [("card", "k1".to_owned())];
    let query = VelocityQuery {
        keys: &keys,
        windows_ms: [HOUR, 24 * HOUR, 168 * HOUR],
    };
    let counts = || async {
        let c = store
            .assess_context(&a.id, "payin", &[], None, &query, now)
            .await
            .unwrap();
        c.velocity.first().map(|(_, _, n)| *n)
    };
    assert_eq!(counts().await, Some([2, 4, 6]));
    assert_eq!(t.count("velocity_counts", &a).await, 8);
    // Pruning at `now` takes the step before the 7-day window's first.
    let pruned = store.prune_velocity(step - 168 * HOUR, 100).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(counts().await, Some([2, 4, 6]));
    assert_eq!(t.count("velocity_counts", &a).await, 7);
    // Bounded batches, oldest first.
    assert_eq!(store.prune_velocity(step, 1).await.unwrap(), 1);
    assert_eq!(counts().await, Some([2, 4, 5]));
}

/// Only the list types a tenant has entries of are probed, and an IP only
/// at the network lengths its ranges use, cached per node: a range or a
/// tenant's first entry of a type written by any other writer (here a
/// connection of the test's own, as another node would) counts from the
/// very next assessment, IPv4 and IPv6, and deleting a range is seen as
/// soon. Further entries of a known type leave the probe counter alone.
async fn payin_ip_ranges_seen_at_once(db: Db) {
    use sqlx::{Executor, Row};
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let raw = t.raw_pool().await;
    let from = |ip: &str| {
        let mut p = payin();
        p["device"]["ip"] = json!(ip);
        p
    };
    let blocked_by = |v: &Value| v["blocked_by"].as_str().unwrap_or("").to_owned();
    let (_, v) = t.post(ASSESS, &a.key, &from("198.51.100.23")).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    let insert = |id: &str, list_type: &str, value: &str| {
        format!(
            "INSERT INTO blocklist_entries (id, tenant_id, list_type, value, flow_scope, \
             severity, reason, source, is_active, expires_at, created_at, updated_at) \
             VALUES ('{id}', '{}', '{list_type}', '{value}', 'all', 'block', 'raw', 'manual', \
             1, NULL, 0, 0)",
            a.id
        )
    };
    let version = || async {
        sqlx::query("SELECT probes FROM blocklist_versions WHERE tenant_id = $1")
            .bind(&a.id)
            .fetch_optional(&raw)
            .await
            .unwrap()
            .map_or(0, |r| r.get::<i64, _>("probes"))
    };
    raw.execute(insert("bl_raw_1", "ip_range", "198.51.100.0/24").as_str())
        .await
        .unwrap();
    let (_, v) = t.post(ASSESS, &a.key, &from("198.51.100.23")).await;
    assert_eq!(blocked_by(&v), "blocklist:ip_range", "{v}");
    // A length not used before.
    let (_, v) = t.post(ASSESS, &a.key, &from("198.51.7.7")).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    raw.execute(insert("bl_raw_2", "ip_range", "198.51.0.0/16").as_str())
        .await
        .unwrap();
    let (_, v) = t.post(ASSESS, &a.key, &from("198.51.7.7")).await;
    assert_eq!(blocked_by(&v), "blocklist:ip_range", "{v}");
    raw.execute(insert("bl_raw_3", "ip_range", "2001:db8::/32").as_str())
        .await
        .unwrap();
    let (_, v) = t.post(ASSESS, &a.key, &from("2001:db8::1")).await;
    assert_eq!(blocked_by(&v), "blocklist:ip_range", "{v}");
    // Three ranges, and the tenant's first entry of a type.
    assert_eq!(version().await, 4);
    // The first entry of another type moves the counter and is matched
    // at once (the tenant had no e-mail entry: e-mails were not probed).
    let (_, v) = t.post(ASSESS, &a.key, &payin()).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    let email = payin()["email"].as_str().unwrap().to_owned();
    raw.execute(insert("bl_raw_4", "email", &email).as_str())
        .await
        .unwrap();
    assert_eq!(version().await, 5);
    let (_, v) = t.post(ASSESS, &a.key, &payin()).await;
    assert_eq!(blocked_by(&v), "blocklist:email", "{v}");
    // Further e-mails do not.
    raw.execute(insert("bl_raw_5", "email", "x@example.com").as_str())
        .await
        .unwrap();
    raw.execute("DELETE FROM blocklist_entries WHERE id = 'bl_raw_4'")
        .await
        .unwrap();
    assert_eq!(version().await, 5);
    raw.execute("DELETE FROM blocklist_entries WHERE id IN ('bl_raw_1', 'bl_raw_2')")
        .await
        .unwrap();
    assert_eq!(version().await, 7);
    let (_, v) = t.post(ASSESS, &a.key, &from("198.51.100.23")).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    // An update (deactivating a range) moves it too.
    raw.execute("UPDATE blocklist_entries SET is_active = 0 WHERE id = 'bl_raw_3'")
        .await
        .unwrap();
    assert_eq!(version().await, 8);
    let (_, v) = t.post(ASSESS, &a.key, &from("2001:db8::1")).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    // A type first written by an update (a phone turned into a device
    // fingerprint) is probed from the next read too.
    let device = payin()["device"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.execute(insert("bl_raw_6", "phone", &device).as_str())
        .await
        .unwrap();
    assert_eq!(version().await, 9);
    let (_, v) = t.post(ASSESS, &a.key, &from("192.0.2.1")).await;
    assert_eq!(blocked_by(&v), "", "{v}");
    raw.execute(
        "UPDATE blocklist_entries SET list_type = 'device_fingerprint' WHERE id = 'bl_raw_6'",
    )
    .await
    .unwrap();
    assert_eq!(version().await, 10);
    let (_, v) = t.post(ASSESS, &a.key, &from("192.0.2.1")).await;
    assert_eq!(blocked_by(&v), "blocklist:device_fingerprint", "{v}");
    // Another tenant's first entries move only its own counter.
    let b = t.tenant().await;
    let other = insert("bl_raw_7", "card_bin", "411111").replace(&a.id, &b.id);
    raw.execute(other.as_str()).await.unwrap();
    assert_eq!(version().await, 10);
}

/// Field warnings follow the tenant's segment; the pipeline API configures
/// the pay-in flow apart from payout's.
async fn payin_segments_and_pipeline(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await; // banco
    let (_, v) = t
        .post(
            ASSESS,
            &a.key,
            &json!({"amount": 100, "currency": "MXN", "order_id": "o-1"}),
        )
        .await;
    let fields: Vec<&str> = v["field_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["payment_id", "customer_id", "order_id"], "{v}");

    let (s, p) = t.get("/api/v1/pipeline", &a.key).await;
    assert_eq!(s, 200);
    let ids = |flow: &Value| -> Vec<String> {
        flow["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&p["payin"]),
        [
            "blocklist",
            "high-velocity",
            "disposable-email",
            "card-country-mismatch"
        ]
    );
    assert!(ids(&p["payout"]).contains(&"first-beneficiary".to_owned()));
    // A payout-only rule is refused for pay-in.
    let (s, v) = t
        .request(
            Method::PUT,
            "/api/v1/pipeline",
            Some(&a.key),
            Some(&json!({"payin": {"rules": [{"rule_id": "first-beneficiary"}]}})),
        )
        .await
        .into_pair();
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["details"]["field"], "payin.rules[0].rule_id");
    // Tighter card limits for pay-in only; payout keeps its default.
    let (s, v) = t
        .request(
            Method::PUT,
            "/api/v1/pipeline",
            Some(&a.key),
            Some(&json!({"payin": {"rules": [
                {"rule_id": "high-velocity", "params": {"limits": {"card": {"1h": 1}}}},
                {"rule_id": "blocklist"}
            ]}})),
        )
        .await
        .into_pair();
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v["payin"]), ["high-velocity", "blocklist"]);
    assert_eq!(v["payin"]["customized"], true);
    assert_eq!(v["payout"]["customized"], false);
    t.post(ASSESS, &a.key, &payin()).await;
    // The tenant's settings reach the next assess within about a second.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (_, v) = t.post(ASSESS, &a.key, &payin()).await;
    assert!(signals(&v).contains(&"high_velocity".to_owned()), "{v}");
    // Invalid params for the pay-in rule name the pay-in path.
    let (s, v) = t
        .request(
            Method::PUT,
            "/api/v1/pipeline",
            Some(&a.key),
            Some(&json!({"payin": {"rules": [
                {"rule_id": "high-velocity", "params": {"limits": {"card": {"2h": 1}}}}
            ]}})),
        )
        .await
        .into_pair();
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["details"]["field"], "payin.rules[0].params");
}

trait IntoPair {
    fn into_pair(self) -> (reqwest::StatusCode, Value);
}

impl IntoPair for (reqwest::StatusCode, Value, reqwest::header::HeaderMap) {
    fn into_pair(self) -> (reqwest::StatusCode, Value) {
        (self.0, self.1)
    }
}

crate::both_backends!(
    payin_keys_and_catalog,
    payin_refuses_card_numbers,
    payin_blocklists,
    payin_velocity,
    payin_velocity_windows,
    payin_ip_ranges_seen_at_once,
    payin_segments_and_pipeline,
);
