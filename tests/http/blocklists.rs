//! Blocklists: CRUD, normalization, flow scope, severities, expiry,
//! duplicates and tenant isolation.
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, clean_payload};

async fn crud_and_validation(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (s, e) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": " 0321 8000 0118 359719 ", "flow_scope": "payout",
                    "severity": "flag", "reason": "mule account"}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["value"], "032180000118359719");
    assert_eq!(e["tenant_id"], a.id.as_str());
    assert_eq!(e["source"], "manual");
    assert_eq!(e["is_active"], true);
    assert_eq!(e["expires_at"], Value::Null);
    for k in [
        "id",
        "created_at",
        "list_type",
        "flow_scope",
        "severity",
        "reason",
    ] {
        assert!(!e[k].is_null(), "{k}");
    }
    // Same normalized value and scope → 409; another scope is fine.
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": "032180000118359719", "flow_scope": "payout"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (409, Some("DUPLICATE"))
    );
    let (s, _) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": "032180000118359719", "flow_scope": "payin"}),
        )
        .await;
    assert_eq!(s, 201);
    // Defaults: flow_scope all, severity block. Email normalization.
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "email", "value": " Fraud@Example.COM"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        (
            v["value"].as_str(),
            v["flow_scope"].as_str(),
            v["severity"].as_str()
        ),
        (Some("fraud@example.com"), Some("all"), Some("block"))
    );
    // Errors.
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "shoe_size", "value": "9"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("INVALID_TYPE"))
    );
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "iban", "value": "X", "severity": "nuke"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("INVALID_SEVERITY"))
    );
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "iban", "value": "X", "flow_scope": "both"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("flow_scope"))
    );
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "ip_address", "value": "999.1.1.1"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("value"))
    );
    let (s, v) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "iban", "value": "X", "expires_at": "tomorrow"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("expires_at"))
    );
    let (s, v) = t
        .post("/api/v1/blocklists", &a.key, &json!({"list_type": "iban"}))
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("value"))
    );

    // Listing with filters and cursor pagination.
    for i in 0..5 {
        t.post("/api/v1/blocklists", &a.key, &json!({"list_type": "beneficiary_id", "value": format!("ben_{i}"), "reason": format!("batch {i}")})).await;
    }
    let (s, page) = t
        .get(
            "/api/v1/blocklists?list_type=beneficiary_id&limit=2",
            &a.key,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let mut seen: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (_, p) = t
            .get(
                &format!("/api/v1/blocklists?list_type=beneficiary_id&limit=2&cursor={cursor}"),
                &a.key,
            )
            .await;
        seen.extend(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["value"].as_str().unwrap().to_owned()),
        );
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["ben_0", "ben_1", "ben_2", "ben_3", "ben_4"]);
    let (_, q) = t.get("/api/v1/blocklists?q=MULE", &a.key).await;
    assert_eq!(q["data"].as_array().unwrap().len(), 1);
    let (_, q) = t.get("/api/v1/blocklists?flow_scope=payin", &a.key).await;
    assert_eq!(q["data"].as_array().unwrap().len(), 1);
    let (s, v) = t.get("/api/v1/blocklists?list_type=nope", &a.key).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("INVALID_TYPE"))
    );
    let (s, _) = t.get("/api/v1/blocklists?limit=0", &a.key).await;
    assert_eq!(s, 400);

    // PATCH by path and by body id; deactivate; clear reason.
    let id = e["id"].as_str().unwrap();
    let (s, v, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/blocklists/{id}"),
            Some(&a.key),
            Some(&json!({"severity": "review", "reason": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["severity"].as_str(), v["reason"].is_null()),
        (Some("review"), true)
    );
    let (s, v, _) = t
        .request(
            Method::PATCH,
            "/api/v1/blocklists",
            Some(&a.key),
            Some(&json!({"id": id, "is_active": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["is_active"], false);
    let (s, v, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/blocklists/{id}"),
            Some(&a.key),
            Some(&json!({"severity": "nuke"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("INVALID_SEVERITY"))
    );
    let (s, v, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/blocklists/{id}"),
            Some(&a.key),
            Some(&json!({"flow_scope": "payin"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (409, Some("DUPLICATE"))
    );
    let (_, q) = t.get("/api/v1/blocklists?is_active=false", &a.key).await;
    assert_eq!(q["data"].as_array().unwrap().len(), 1);

    // DELETE needs the admin role.
    let analyst = t.key(&a, "secret", "analyst").await;
    let (s, v, _) = t
        .request(
            Method::DELETE,
            &format!("/api/v1/blocklists/{id}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let (s, _, _) = t
        .request(
            Method::DELETE,
            &format!("/api/v1/blocklists/{id}"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = t.get(&format!("/api/v1/blocklists/{id}"), &a.key).await;
    assert_eq!(s, 404);
}

async fn matching_scope_severity_expiry(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let payout = clean_payload();
    // Pay-in scoped entries never match a payout.
    t.post(
        "/api/v1/blocklists",
        &a.key,
        &json!({"list_type": "clabe", "value": "032180000118359719", "flow_scope": "payin"}),
    )
    .await;
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_eq!(v["decision"], "approve", "{v}");
    // Flag on the beneficiary id: +40 → review.
    t.post("/api/v1/blocklists", &a.key, &json!({"list_type": "beneficiary_id", "value": "ben_clean", "severity": "flag", "flow_scope": "payout"})).await;
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_eq!(
        (v["risk_score"].as_u64(), v["decision"].as_str()),
        (Some(40), Some("review")),
        "{v}"
    );
    assert_eq!(v["signals"], json!(["blocklist_beneficiary_id"]));
    // A block on the CLABE for all flows: hard block.
    let (_, blk) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": "032-180000118359719", "flow_scope": "all"}),
        )
        .await;
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_eq!(v["decision"], "decline", "{v}");
    assert_eq!(v["risk_score"], 100);
    assert_eq!(v["blocked_by"], "blocklist:clabe");
    // The declined transfer's webhook is transaction.blocked.
    assert_eq!(t.count("outbox", &a).await, 3);
    // Entries that expire stop matching at expires_at, with no job running.
    let id = blk["id"].as_str().unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (s, v, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/blocklists/{id}"),
            Some(&a.key),
            Some(&json!({"expires_at": soon.to_rfc3339()})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_eq!(v["decision"], "decline");
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    let (_, v) = t.assess(&a.key, &payout).await;
    assert_eq!(v["decision"], "review", "expired entry still matched: {v}");
    // An entry created already expired never matches.
    t.post("/api/v1/blocklists", &a.key, &json!({"list_type": "iban", "value": "DE89 3704 0044 0532 0130 00", "expires_at": "2020-01-01T00:00:00Z"})).await;
    let mut p = payout.clone();
    p["beneficiary"] = json!({"iban": "de89370400440532013000", "name": "Hans"});
    let (_, v) = t.assess(&a.key, &p).await;
    assert!(!v["signals"].to_string().contains("blocklist_iban"), "{v}");
    // Review severity: +25.
    t.post(
        "/api/v1/blocklists",
        &a.key,
        &json!({"list_type": "swift_bic", "value": "bnmxmxmm", "severity": "review"}),
    )
    .await;
    p["beneficiary"]["swift_bic"] = json!("BNMX MXMM");
    let (_, v) = t.assess(&a.key, &p).await;
    assert!(
        v["signals"].to_string().contains("blocklist_swift_bic"),
        "{v}"
    );
}

async fn tenant_isolation(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let (_, e) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": "032180000118359719"}),
        )
        .await;
    let id = e["id"].as_str().unwrap();
    // B does not see, read, patch or delete A's entry…
    let (_, list) = t.get("/api/v1/blocklists", &b.key).await;
    assert_eq!(list["data"], json!([]));
    let (s, _) = t.get(&format!("/api/v1/blocklists/{id}"), &b.key).await;
    assert_eq!(s, 404);
    let (s, _, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/blocklists/{id}"),
            Some(&b.key),
            Some(&json!({"severity": "flag"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = t
        .request(
            Method::PATCH,
            "/api/v1/blocklists",
            Some(&b.key),
            Some(&json!({"id": id, "is_active": false})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = t
        .request(
            Method::DELETE,
            &format!("/api/v1/blocklists/{id}"),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // …and A's entry does not decide B's payouts, while it still decides A's.
    let (_, v) = t.assess(&b.key, &clean_payload()).await;
    assert_eq!(v["decision"], "approve");
    let (_, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(v["decision"], "decline");
    // B may hold the same value itself (uniqueness is per tenant).
    let (s, _) = t
        .post(
            "/api/v1/blocklists",
            &b.key,
            &json!({"list_type": "clabe", "value": "032180000118359719"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, e2) = t.get(&format!("/api/v1/blocklists/{id}"), &a.key).await;
    assert_eq!(e2["severity"], "block");
}

/// Every read an assessment makes is an exact index probe: a blocklist
/// lookup per identifier on (tenant, type, value), the history row, the
/// idempotency record and the key, never a scan that grows with the table.
async fn per_assess_reads_are_index_probes(db: Db) {
    let t = TestApp::start(db).await;
    let plans = t.app.store.assess_query_plans().await.unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p.query).collect();
    assert_eq!(
        names,
        [
            "assess_context",
            "assess_context_payin",
            "velocity_counts",
            "idempotency_lookup",
            "key_by_hash"
        ]
    );
    for p in &plans {
        eprintln!("{}:\n{}", p.query, p.plan);
        match db {
            Db::Sqlite => {
                for line in p.plan.lines().filter(|l| l.contains("SCAN")) {
                    assert!(
                        line.contains("UNION") || line.contains("SUBQUERY"),
                        "{}: a scan: `{line}` in\n{}",
                        p.query,
                        p.plan
                    );
                }
            }
            Db::Postgres => {
                assert!(!p.plan.contains("Seq Scan"), "{}:\n{}", p.query, p.plan);
            }
        }
    }
    let context = &plans[0].plan;
    match db {
        Db::Sqlite => {
            let probes = context
                .lines()
                .filter(|l| {
                    l.starts_with("SEARCH blocklist_entries USING INDEX")
                        && l.contains("(tenant_id=? AND list_type=? AND value=?")
                })
                .count();
            assert_eq!(probes, 5, "one exact probe per identifier:\n{context}");
            assert!(
                context
                    .lines()
                    .any(|l| l.contains("SEARCH beneficiary_history")
                        && l.contains("tenant_id=? AND origin_key=? AND beneficiary_key=?")),
                "{context}"
            );
        }
        Db::Postgres => {
            let probes = context
                .lines()
                .filter(|l| l.contains("Index Cond") && l.contains("(value = "))
                .count();
            assert_eq!(probes, 5, "one exact probe per identifier:\n{context}");
            assert!(context.contains("beneficiary_history"), "{context}");
        }
    }
    // Velocity: each key's steps are one range of the primary key (tenant,
    // entity, key, step), not the age index pruning uses.
    let velocity = &plans[2].plan;
    assert!(!velocity.contains("velocity_counts_age"), "{velocity}");
    match db {
        Db::Sqlite => assert!(
            velocity
                .lines()
                .any(|l| l.contains("SEARCH velocity_counts USING PRIMARY KEY")
                    && l.contains(
                        "tenant_id=? AND entity=? AND key_hash=? AND bucket_ms>? AND bucket_ms<?"
                    )),
            "{velocity}"
        ),
        Db::Postgres => assert!(velocity.contains("velocity_counts_pkey"), "{velocity}"),
    }
}

/// Sends an import body as `content_type`, checked against the spec.
async fn import(
    t: &TestApp,
    key: &str,
    query: &str,
    content_type: &str,
    body: String,
) -> (reqwest::StatusCode, Value) {
    let path = "/api/v1/blocklists/import";
    let resp = t
        .client
        .post(format!("{}{path}{query}", t.base))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let v: Value = resp.json().await.unwrap();
    crate::common::check("POST", path, status, &headers, &v);
    (status, v)
}

/// Bulk import: CSV and NDJSON, all or nothing with per-row errors and
/// line numbers, duplicates reported (or fatal when asked), imported
/// entries match at once, tenants apart.
async fn bulk_import(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let count = |v: &Value| v["data"].as_array().unwrap().len();
    // One bad row: nothing is stored, every bad row is named by line.
    let csv = "list_type,value,flow_scope,severity\n\
               email,Fraud@Example.com,payin,block\n\
               ip_range,10.0.0.0/8,all,flag\n\
               planet,mars,all,block\n\
               clabe,032180000118359719,payout,sometimes\n";
    let (s, v) = import(&t, &a.key, "", "text/csv", csv.into()).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(v["error"]["details"]["error_count"], 2, "{v}");
    let errors = &v["error"]["details"]["errors"];
    assert_eq!(errors[0]["line"], 4, "{v}");
    assert_eq!(errors[0]["field"], "list_type");
    assert_eq!(errors[1]["line"], 5);
    assert_eq!(errors[1]["field"], "severity");
    let (_, list) = t.get("/api/v1/blocklists", &a.key).await;
    assert_eq!(count(&list), 0, "{list}");
    // An assessment before the import: this node now holds the tenant's
    // list types (none), so the match below needs the import to move the
    // probe counter (the first e-mail entry, in the import's statements).
    let payin = json!({"amount": 100, "currency": "MXN", "email": "fraud@example.com"});
    let (_, v) = t.post("/api/v1/assess", &a.key, &payin).await;
    assert_eq!(v["blocked_by"], Value::Null, "{v}");

    // The good rows import; values are normalized as single entries are.
    let csv = "list_type,value,flow_scope,severity,reason\n\
               email,Fraud@Example.com,payin,block,chargebacks\n\
               ip_range,::ffff:10.1.2.3/104,all,flag,\n\
               card_bin,411111,payin,review,\n";
    let (s, v) = import(&t, &a.key, "", "text/csv; charset=utf-8", csv.into()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["rows"].as_u64(), v["inserted"].as_u64()),
        (Some(3), Some(3))
    );
    let (_, list) = t.get("/api/v1/blocklists?list_type=ip_range", &a.key).await;
    assert_eq!(list["data"][0]["value"], "10.0.0.0/8", "{list}");
    // Imported entries match at once.
    let (_, v) = t.post("/api/v1/assess", &a.key, &payin).await;
    assert_eq!(v["blocked_by"], "blocklist:email", "{v}");
    // So does a type first listed by an import without any range (the
    // range trigger does not move the counter then; the type trigger does).
    let by_phone = json!({"amount": 100, "currency": "MXN", "phone": "+52 55 1234 5678"});
    let (_, v) = t.post("/api/v1/assess", &a.key, &by_phone).await;
    assert_eq!(v["blocked_by"], Value::Null, "{v}");
    let csv = "list_type,value\nphone,+52 55 1234 5678\n";
    let (s, v) = import(&t, &a.key, "", "text/csv", csv.into()).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = t.post("/api/v1/assess", &a.key, &by_phone).await;
    assert_eq!(v["blocked_by"], "blocklist:phone", "{v}");

    // NDJSON; a repeat of an existing entry and a repeat within the file
    // are reported with their lines and skipped.
    let ndjson = [
        json!({"list_type": "email", "value": "fraud@example.com", "flow_scope": "payin"}),
        json!({"list_type": "phone", "value": "+52 55 1111 2222"}),
        json!({"list_type": "phone", "value": "+525511112222"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (s, v) = import(&t, &a.key, "", "application/x-ndjson", ndjson.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["inserted"], 1, "{v}");
    assert_eq!(v["duplicate_count"], 2);
    assert_eq!(v["duplicates"][0]["line"], 1);
    assert_eq!(v["duplicates"][1]["line"], 3);
    // Asked to fail on duplicates: 409, nothing imported.
    let more = format!(
        "{ndjson}\n{}",
        json!({"list_type": "customer_id", "value": "cus_9"})
    );
    let (s, v) = import(
        &t,
        &a.key,
        "?on_duplicate=fail",
        "application/x-ndjson",
        more,
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "DUPLICATE");
    let (_, list) = t
        .get("/api/v1/blocklists?list_type=customer_id", &a.key)
        .await;
    assert_eq!(count(&list), 0, "{list}");
    // Wrong media type, wrong option, empty file, no permission.
    let (s, v) = import(&t, &a.key, "", "application/pdf", "x".into()).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE"))
    );
    let (s, _) = import(
        &t,
        &a.key,
        "?on_duplicate=maybe",
        "text/csv",
        "list_type,value\n".into(),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = import(&t, &a.key, "", "text/csv", "list_type,value\n".into()).await;
    assert_eq!(s, 400);
    let public = t.key(&a, "publishable", "integration").await;
    let (s, v) = import(
        &t,
        &public,
        "",
        "text/csv",
        "list_type,value\nemail,x@y.com\n".into(),
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("PUBLIC_KEY_NOT_ALLOWED"))
    );
    // Larger than a JSON body may be (64 KiB): 3,000 rows.
    let mut big = String::from("list_type,value,flow_scope\n");
    for i in 0..3_000 {
        big.push_str(&format!("customer_id,cus_bulk_{i:06},payin\n"));
    }
    assert!(big.len() > 64 * 1024);
    let (s, v) = import(&t, &a.key, "", "text/csv", big).await;
    assert_eq!(
        (s.as_u16(), v["inserted"].as_u64()),
        (200, Some(3_000)),
        "{v}"
    );
    // Tenant B sees none of A's entries and imports its own.
    let (_, list) = t.get("/api/v1/blocklists", &b.key).await;
    assert_eq!(count(&list), 0, "{list}");
    let (s, v) = import(
        &t,
        &b.key,
        "",
        "text/csv",
        "list_type,value\nemail,fraud@example.com\n".into(),
    )
    .await;
    assert_eq!((s.as_u16(), v["inserted"].as_u64()), (200, Some(1)), "{v}");
}

crate::both_backends!(
    bulk_import,
    crud_and_validation,
    matching_scope_severity_expiry,
    tenant_isolation,
    per_assess_reads_are_index_probes,
);

/// PostgreSQL: every blocklist writer takes the tenant's probe counter
/// before it writes an entry. Here a transaction of the test's own holds
/// the counter (as an import does between its chunks, or a fraud report
/// between its entries) while the API adds a range, then writes the same
/// range itself. Before, the API's insert wrote the range first and
/// waited for the counter in its trigger, the transaction then waited on
/// that uncommitted range: a deadlock, one side aborted with a 500. Now
/// the API waits before writing anything, the transaction's insert goes
/// through at once, and the API answers 409 DUPLICATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocklist_writers_take_the_probe_counter_first() {
    let t = TestApp::start(Db::Postgres).await;
    let a = t.tenant().await;
    let raw = t.raw_pool().await;
    let mut tx = raw.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO blocklist_versions (tenant_id, probes) VALUES ($1, 0) \
         ON CONFLICT (tenant_id) DO UPDATE SET probes = blocklist_versions.probes",
    )
    .bind(&a.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    let body = json!({"list_type": "ip_range", "value": "10.9.0.0/16", "flow_scope": "all"});
    let added = {
        let (base, client, key) = (t.base.clone(), t.client.clone(), a.key.clone());
        tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/v1/blocklists"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    // Let the API's insert reach the counter and wait there.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!added.is_finished(), "the API did not wait for the counter");
    let insert = sqlx::query(
        "INSERT INTO blocklist_entries (id, tenant_id, list_type, value, flow_scope, severity, \
         reason, source, is_active, expires_at, created_at, updated_at) \
         VALUES ('bl_raw', $1, 'ip_range', '10.9.0.0/16', 'all', 'block', NULL, 'manual', 1, NULL, 0, 0)",
    )
    .bind(&a.id);
    let written = tokio::time::timeout(std::time::Duration::from_secs(5), insert.execute(&mut *tx))
        .await
        .expect("the transaction's insert waited on the API's");
    written.unwrap();
    tx.commit().await.unwrap();
    let (status, v) = added.await.unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("DUPLICATE")),
        "{v}"
    );
    raw.close().await;
}
