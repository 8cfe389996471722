//! Cases (§7), report fraud (§8) and rule label statistics over real HTTP
//! on both databases: every status transition (allowed and refused),
//! validation, filters and sorting, stats, the report in both formats,
//! four eyes, concurrent changes, idempotent and all-or-nothing fraud
//! reports (a failure injected inside the transaction by a database
//! trigger), the events they leave, tenant isolation on every route, and a
//! fraud report declining the next assess on a second node.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Db, TestApp, TestTenant, clean_payload, example_payload, spawn_node};

async fn patch(t: &TestApp, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let (s, v, _) = t.request(Method::PATCH, path, Some(key), Some(body)).await;
    (s, v)
}

async fn put(t: &TestApp, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let (s, v, _) = t.request(Method::PUT, path, Some(key), Some(body)).await;
    (s, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// A payout assessment of `tenant`; its session id.
async fn assessed(t: &TestApp, tenant: &TestTenant, body: &Value) -> String {
    let (s, v) = t.assess(&tenant.key, body).await;
    assert_eq!(s, 200, "{v}");
    v["session_id"].as_str().unwrap().to_owned()
}

async fn open_case(t: &TestApp, key: &str, body: &Value) -> Value {
    let (s, v) = t.post("/api/v1/cases", key, body).await;
    assert_eq!(s, 201, "{v}");
    v
}

/// A raw connection to the app's database (to inject failures and count
/// rows in tables the API does not count).
async fn raw_db(t: &TestApp) -> sqlx::AnyPool {
    t.raw_pool().await
}

async fn count(db: &sqlx::AnyPool, table: &str, tenant: &TestTenant) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1"
    ))
    .bind(&tenant.id)
    .fetch_one(db)
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

/// Brings a new case to `status` along allowed moves; its id.
async fn case_in(t: &TestApp, tenant: &TestTenant, status: &str) -> String {
    let v = open_case(t, &tenant.key, &json!({"incident_type": "phishing"})).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/cases/{id}");
    let steps: &[&str] = match status {
        "borrador" => &[],
        "en_revision" => &["en_revision"],
        "enviado" => &["en_revision", "submit"],
        "resuelto" => &["en_revision", "submit", "resuelto"],
        "archivado" => &["archivado"],
        other => panic!("{other}"),
    };
    for step in steps {
        let (s, v) = if *step == "submit" {
            t.post(&format!("{path}/submit"), &tenant.key, &json!({}))
                .await
        } else {
            patch(t, &tenant.key, &path, &json!({"status": step})).await
        };
        assert_eq!(s, 200, "{step}: {v}");
    }
    id
}

const STATUSES: &[&str] = &[
    "borrador",
    "en_revision",
    "enviado",
    "resuelto",
    "archivado",
];

async fn cases_follow_the_status_machine(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let allowed = [
        ("borrador", "en_revision"),
        ("borrador", "archivado"),
        ("en_revision", "enviado"),
        ("en_revision", "archivado"),
        ("enviado", "resuelto"),
        ("resuelto", "archivado"),
    ];
    for from in STATUSES {
        for to in STATUSES {
            let id = case_in(&t, &a, from).await;
            let path = format!("/api/v1/cases/{id}");
            let (_, before) = t.get(&path, &a.key).await;
            let (s, v) = if *to == "enviado" && *from == "en_revision" {
                t.post(&format!("{path}/submit"), &a.key, &json!({})).await
            } else {
                patch(&t, &a.key, &path, &json!({"status": to})).await
            };
            if allowed.contains(&(*from, *to)) {
                assert_eq!(s, 200, "{from} → {to}: {v}");
                let (_, after) = t.get(&path, &a.key).await;
                assert_eq!(after["status"], *to);
                assert_eq!(after["version"], before["version"].as_i64().unwrap() + 1);
                let last = after["history"].as_array().unwrap().last().unwrap().clone();
                assert_eq!(last["field"], "status");
                assert_eq!(last["from"], *from);
                assert_eq!(last["to"], *to);
            } else {
                assert_eq!(s, 409, "{from} → {to} must be refused: {v}");
                assert_eq!(code(&v), "INVALID_TRANSITION", "{from} → {to}");
                let (_, after) = t.get(&path, &a.key).await;
                assert_eq!(after, before, "a refused move changed {from} → {to}");
            }
        }
    }
    // Submitting twice.
    let id = case_in(&t, &a, "enviado").await;
    let (s, v) = t
        .post(&format!("/api/v1/cases/{id}/submit"), &a.key, &json!({}))
        .await;
    assert_eq!((s.as_u16(), code(&v)), (409, "ALREADY_SUBMITTED"), "{v}");
}

async fn cases_validate_record_and_report(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let session = assessed(&t, &a, &example_payload()).await;
    let other_session = assessed(&t, &b, &clean_payload()).await;

    // Validation: every enum and the field it names.
    for (body, field) in [
        (json!({}), "incident_type"),
        (json!({"incident_type": "robo"}), "incident_type"),
        (
            json!({"incident_type": "phishing", "jurisdiction": "US"}),
            "jurisdiction",
        ),
        (
            json!({"incident_type": "phishing", "priority": "max"}),
            "priority",
        ),
        (
            json!({"incident_type": "phishing", "amount": 10}),
            "currency",
        ),
        (
            json!({"incident_type": "phishing", "amount": "1.234", "currency": "MXN"}),
            "amount",
        ),
        (
            json!({"incident_type": "phishing", "amount": -1, "currency": "MXN"}),
            "amount",
        ),
        (
            json!({"incident_type": "phishing", "currency": "XYZ", "amount": 1}),
            "currency",
        ),
        (
            json!({"incident_type": "phishing", "incident_date": "2999-01-01"}),
            "incident_date",
        ),
        (
            json!({"incident_type": "phishing", "incident_date": "ayer"}),
            "incident_date",
        ),
        (
            json!({"incident_type": "phishing", "victim_email": "nope"}),
            "victim_email",
        ),
        (
            json!({"incident_type": "phishing", "session_ids": [other_session]}),
            "session_ids",
        ),
        (
            json!({"incident_type": "phishing", "status": "enviado"}),
            "status",
        ),
        (
            json!({"incident_type": "phishing", "subject": {"rfc": "X"}}),
            "subject.rfc",
        ),
    ] {
        let (s, v) = t.post("/api/v1/cases", &a.key, &body).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(code(&v), "VALIDATION_ERROR", "{body}");
        assert_eq!(v["error"]["details"]["field"], field, "{body}: {v}");
    }
    let (s, v) = t
        .post(
            "/api/v1/cases",
            &a.key,
            &json!({"incident_type": "phishing", "colour": 1}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(t.count("outbox", &a).await, 1, "refused cases wrote events");

    let v = open_case(
        &t,
        &a.key,
        &json!({
            "incident_type": "transferencia_no_autorizada", "jurisdiction": "MX",
            "priority": "alta", "amount": "25000.00", "currency": "MXN",
            "incident_date": "2026-11-30", "victim_name": "Ana Pérez",
            "victim_email": "Ana@Example.com", "description": "SPEI no reconocido",
            "session_ids": [session],
            "subject": {"person_type": "fisica", "nationality": "MX", "first_name": "Juan",
                        "paternal_surname": "García", "rfc": "GAJU800101AB1"},
        }),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let reference = v["reference_number"].as_str().unwrap();
    assert!(
        reference.len() == 10
            && reference.starts_with("CLM-")
            && reference[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{reference}"
    );
    assert_eq!(v["status"], "borrador");
    assert_eq!(v["victim_email"], "ana@example.com");
    assert_eq!(
        v["amount"],
        json!({"minor": 2_500_000, "major": "25000.00", "currency": "MXN"})
    );
    // Due 60 calendar days after detection (MX).
    let detected =
        chrono::DateTime::parse_from_rfc3339(v["detected_at"].as_str().unwrap()).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(v["due_at"].as_str().unwrap()).unwrap();
    assert_eq!((due - detected).num_days(), 60);
    // Reasons drafted from the linked assessment's signals.
    let reasons = v["unusual_reasons"].as_str().unwrap();
    assert!(
        reasons.contains("payout_invalid_beneficiary_account"),
        "{reasons}"
    );
    assert_eq!(v["assessments"][0]["session_id"], session.as_str());
    assert!(
        v["assessments"][0]["signals"]
            .as_array()
            .unwrap()
            .contains(&json!("payout_invalid_beneficiary_account"))
    );

    // Notes and edits, with who/when/old → new.
    let path = format!("/api/v1/cases/{id}");
    let (s, note) = t
        .post(
            &format!("{path}/notes"),
            &a.key,
            &json!({"body": "Llamada con la clienta"}),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    let (s, v) = t
        .post(&format!("{path}/notes"), &a.key, &json!({"body": "  "}))
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("body"))
    );
    let (s, v) = patch(
        &t,
        &a.key,
        &path,
        &json!({"priority": "urgente", "unusual_reasons": "- Cuenta mula conocida", "amount": "26000"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    let history = v["history"].as_array().unwrap();
    let change = |field: &str| {
        history
            .iter()
            .find(|h| h["field"] == field)
            .cloned()
            .unwrap_or_else(|| panic!("no {field} change in {history:?}"))
    };
    assert_eq!(change("priority")["from"], "alta");
    assert_eq!(change("priority")["to"], "urgente");
    assert_eq!(change("amount")["from"], "25000.00 MXN");
    assert_eq!(change("amount")["to"], "26000.00 MXN");
    assert!(
        change("priority")["actor"]
            .as_str()
            .unwrap()
            .starts_with("key_")
    );
    assert_eq!(v["notes"][0]["body"], "Llamada con la clienta");
    // An unknown resolution, and a resolution before resolving.
    let (s, v) = patch(
        &t,
        &a.key,
        &path,
        &json!({"resolution": "fraude_confirmado"}),
    )
    .await;
    assert_eq!((s.as_u16(), code(&v)), (400, "VALIDATION_ERROR"), "{v}");

    // Report: not before submission; then JSON and the MX delimited record.
    let (s, v) = t.get(&format!("{path}/report"), &a.key).await;
    assert_eq!(s, 404, "{v}");
    patch(&t, &a.key, &path, &json!({"status": "en_revision"})).await;
    let (s, submitted) = t.post(&format!("{path}/submit"), &a.key, &json!({})).await;
    assert_eq!(s, 200, "{submitted}");
    assert_eq!(submitted["case"]["status"], "enviado");
    let report = &submitted["report"];
    assert_eq!(report["reference_number"], reference);
    assert_eq!(report["operation"]["amount"]["major"], "26000.00");
    assert_eq!(report["unusual_reasons"], "- Cuenta mula conocida");
    assert_eq!(report["subject"]["rfc"], "GAJU800101AB1");
    let (s, stored) = t.get(&format!("{path}/report"), &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(
        stored["report"], *report,
        "the stored report is the submitted one"
    );
    let txt = t
        .client
        .get(format!("{}{path}/report?format=txt", t.base))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(txt.status(), 200);
    assert!(
        txt.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let line = txt.text().await.unwrap();
    assert!(line.ends_with(";\r\n"), "{line:?}");
    let fields: Vec<&str> = line.trim_end().trim_end_matches(';').split(';').collect();
    assert_eq!(fields.len(), 27, "{line}");
    assert_eq!(fields[0], "2");
    assert_eq!(fields[2], &reference[4..]);
    assert_eq!(fields[10], "26000.00");
    assert_eq!(fields[11], "MXN");
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert_eq!(fields[13], today, "detection date");
    assert_eq!(fields[18], "GARCIA");
    assert_eq!(fields[20], "GAJU800101AB1");
    assert_eq!(fields[26], "- CUENTA MULA CONOCIDA");
    let (s, v) = t.get(&format!("{path}/report?format=pdf"), &a.key).await;
    assert_eq!(s, 400, "{v}");
    // A submitted report's fields are frozen; the report never changes.
    let (s, v) = patch(&t, &a.key, &path, &json!({"description": "otra"})).await;
    assert_eq!((s.as_u16(), code(&v)), (409, "ALREADY_SUBMITTED"), "{v}");
    // Resolved as confirmed fraud: `fraud.confirmed`.
    let (s, v) = patch(
        &t,
        &a.key,
        &path,
        &json!({"status": "resuelto", "resolution": "fraude_confirmado"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let events: Vec<String> = t
        .app
        .store
        .outbox_rows(&a.id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    for e in ["case.created", "case.updated", "fraud.confirmed"] {
        assert!(
            events.contains(&e.to_owned()),
            "{e} missing from {events:?}"
        );
    }
    let updated = t.app.store.outbox_rows(&a.id, 100).await.unwrap();
    let priority_change = updated
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.payload).unwrap())
        .find(|p| p["event"] == "case.updated" && p["data"]["changes"]["priority"].is_object())
        .expect("case.updated with the priority change");
    assert_eq!(
        priority_change["data"]["changes"]["priority"],
        json!({"from": "alta", "to": "urgente"})
    );
    // A non-MX case has the JSON report only.
    let cl = open_case(
        &t,
        &a.key,
        &json!({"incident_type": "otro", "jurisdiction": "CL"}),
    )
    .await;
    let cl_path = format!("/api/v1/cases/{}", cl["id"].as_str().unwrap());
    patch(&t, &a.key, &cl_path, &json!({"status": "en_revision"})).await;
    let (s, _) = t
        .post(&format!("{cl_path}/submit"), &a.key, &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, v) = t.get(&format!("{cl_path}/report?format=txt"), &a.key).await;
    assert_eq!(s, 400, "{v}");
}

async fn cases_filter_sort_and_count(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let specs = [
        ("baja", "MX", "100.00", "Luis Gómez", Some("2026-01-05")),
        ("media", "CL", "5000", "Ana Pérez", None),
        ("alta", "MX", "250.50", "Carlos Ruiz", None),
        (
            "urgente",
            "BR",
            "99999.99",
            "Ana Torres",
            Some("2026-11-20"),
        ),
    ];
    let mut ids = Vec::new();
    for (priority, jurisdiction, amount, victim, detected) in specs {
        let mut body = json!({"incident_type": "phishing", "priority": priority,
            "jurisdiction": jurisdiction, "amount": amount, "currency": "MXN", "victim_name": victim});
        if let Some(d) = detected {
            body["detection_date"] = json!(d);
        }
        let v = open_case(&t, &a.key, &body).await;
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    patch(
        &t,
        &a.key,
        &format!("/api/v1/cases/{}", ids[1]),
        &json!({"status": "en_revision"}),
    )
    .await;
    let list = |q: &'static str| {
        let t = &t;
        let key = a.key.clone();
        async move {
            let (s, v) = t.get(&format!("/api/v1/cases{q}"), &key).await;
            assert_eq!(s, 200, "{q}: {v}");
            v
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["victim_name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("").await["total"], 4);
    assert_eq!(names(&list("?status=en_revision").await), ["Ana Pérez"]);
    assert_eq!(names(&list("?priority=urgente").await), ["Ana Torres"]);
    assert_eq!(list("?jurisdiction=MX").await["total"], 2);
    assert_eq!(list("?search=ana").await["total"], 2);
    assert_eq!(
        list("?search=%25").await["total"],
        0,
        "LIKE wildcards are literal"
    );
    assert_eq!(
        names(&list("?sort_by=priority&sort_order=asc").await),
        ["Luis Gómez", "Ana Pérez", "Carlos Ruiz", "Ana Torres"]
    );
    assert_eq!(
        names(&list("?sort_by=amount&sort_order=desc").await),
        ["Ana Torres", "Ana Pérez", "Carlos Ruiz", "Luis Gómez"]
    );
    let page = list("?sort_by=amount&sort_order=asc&limit=2&offset=1").await;
    assert_eq!(names(&page), ["Carlos Ruiz", "Ana Pérez"]);
    assert_eq!(
        (page["total"].as_i64(), page["limit"].as_i64()),
        (Some(4), Some(2))
    );
    // Detected on 2026-01-05: 60 days later is long past.
    let overdue = list("?due=overdue").await;
    assert_eq!(names(&overdue), ["Luis Gómez"]);
    assert_eq!(overdue["data"][0]["overdue"], true);
    let today = chrono::Utc::now().date_naive();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let yesterday = (today - chrono::Days::new(1)).to_string();
    let (_, v) = t
        .get(&format!("/api/v1/cases?from_date={tomorrow}"), &a.key)
        .await;
    assert_eq!(v["total"], 0);
    let (_, v) = t
        .get(&format!("/api/v1/cases?to_date={yesterday}"), &a.key)
        .await;
    assert_eq!(v["total"], 0);
    let (_, v) = t
        .get(
            &format!("/api/v1/cases?from_date={today}&to_date={today}"),
            &a.key,
        )
        .await;
    assert_eq!(v["total"], 4);
    for bad in [
        "?status=abierto",
        "?priority=x",
        "?jurisdiction=US",
        "?sort_by=victim_name",
        "?sort_order=up",
        "?limit=1000",
        "?offset=-1",
        "?from_date=ayer",
        "?due=later",
    ] {
        let (s, v) = t.get(&format!("/api/v1/cases{bad}"), &a.key).await;
        assert_eq!(
            (s.as_u16(), code(&v)),
            (400, "VALIDATION_ERROR"),
            "{bad}: {v}"
        );
    }
    let (s, stats) = t.get("/api/v1/cases/stats", &a.key).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["by_status"]["borrador"], 3);
    assert_eq!(stats["by_status"]["en_revision"], 1);
    assert_eq!(stats["by_status"]["archivado"], 0);
    assert_eq!(stats["by_priority"]["urgente"], 1);
    assert_eq!(stats["by_jurisdiction"]["MX"], 2);
    assert_eq!(stats["overdue"], 1);
    // Detected 2026-11-20 + 60 days: due 2027-01-19 — not within 7 days
    // of today in this suite's era, so only the overdue one counts there.
    assert!(stats["due_soon"].as_i64().unwrap() <= 1);
}

async fn cases_four_eyes_and_concurrency(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let analyst = t.key(&a, "secret", "analyst").await;
    let officer = t.key(&a, "secret", "compliance_officer").await;
    let integration = t.key(&a, "secret", "integration").await;

    let (s, v) = t.get("/api/v1/settings/cases", &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(v["four_eyes"], false);
    assert_eq!(v["due_days"]["MX"], 60);
    let (s, v) = put(
        &t,
        &analyst,
        "/api/v1/settings/cases",
        &json!({"four_eyes": true}),
    )
    .await;
    assert_eq!((s.as_u16(), code(&v)), (403, "FORBIDDEN"), "{v}");
    for bad in [
        json!({"four_eyes": "yes"}),
        json!({"due_days": {"US": 30}}),
        json!({"due_days": {"MX": 0}}),
        json!({"unknown": true}),
    ] {
        let (s, v) = put(&t, &a.key, "/api/v1/settings/cases", &bad).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = put(
        &t,
        &a.key,
        "/api/v1/settings/cases",
        &json!({"four_eyes": true, "due_days": {"CL": 30},
                "reporting_entity": {"name": "Banco Uno", "entity_code": "040012"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["due_days"]["CL"], 30);
    let cl = open_case(
        &t,
        &analyst,
        &json!({"incident_type": "otro", "jurisdiction": "CL"}),
    )
    .await;
    let detected =
        chrono::DateTime::parse_from_rfc3339(cl["detected_at"].as_str().unwrap()).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(cl["due_at"].as_str().unwrap()).unwrap();
    assert_eq!((due - detected).num_days(), 30);

    // The integration role cannot read or write cases.
    let (s, _) = t.get("/api/v1/cases", &integration).await;
    assert_eq!(s, 403);

    // Four eyes: the reviewer may not submit; another key may.
    let v = open_case(&t, &analyst, &json!({"incident_type": "phishing"})).await;
    let path = format!("/api/v1/cases/{}", v["id"].as_str().unwrap());
    let (s, v) = patch(&t, &analyst, &path, &json!({"status": "en_revision"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = t
        .post(&format!("{path}/submit"), &analyst, &json!({}))
        .await;
    assert_eq!((s.as_u16(), code(&v)), (409, "FOUR_EYES_REQUIRED"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("en_revision")
    );
    let (_, still) = t.get(&path, &a.key).await;
    assert_eq!(still["status"], "en_revision");
    let (s, v) = t
        .post(&format!("{path}/submit"), &officer, &json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["report"]["reporting_entity"]["name"], "Banco Uno");
    assert_eq!(v["case"]["reviewed_by"], still["reviewed_by"]);
    assert_ne!(v["case"]["submitted_by"], v["case"]["reviewed_by"]);

    // Concurrent changes: ten moves to en_revision, exactly one wins.
    let v = open_case(&t, &a.key, &json!({"incident_type": "phishing"})).await;
    let path = format!("/api/v1/cases/{}", v["id"].as_str().unwrap());
    let url = format!("{}{path}", t.base);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let send = t
                .client
                .patch(&url)
                .bearer_auth(&a.key)
                .json(&json!({"status": "en_revision"}))
                .send();
            tokio::spawn(async move {
                let r = send.await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let won = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(won, 1, "{outcomes:?}");
    for (s, v) in outcomes.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, code(v)), (409, "INVALID_TRANSITION"), "{v}");
    }
    let (_, after) = t.get(&path, &a.key).await;
    assert_eq!(after["version"], 2);
    let moves = after["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to"] == "en_revision")
        .count();
    assert_eq!(moves, 1);
    // Concurrent edits of different fields both land, one version each.
    let tasks: Vec<_> = [json!({"priority": "alta"}), json!({"description": "x"})]
        .into_iter()
        .map(|body| {
            let send = t.client.patch(&url).bearer_auth(&a.key).json(&body).send();
            tokio::spawn(async move { send.await.unwrap().status().as_u16() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let (_, after) = t.get(&path, &a.key).await;
    assert_eq!(
        (after["version"].as_i64(), after["priority"].as_str()),
        (Some(4), Some("alta"))
    );
    assert_eq!(after["description"], "x");
}

async fn report_fraud_labels_blocks_and_opens_a_case(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let integration = t.key(&a, "secret", "integration").await;
    let raw = raw_db(&t).await;
    let mut payout = example_payload();
    payout["payment_id"] = json!("core-tx-7");
    let session = assessed(&t, &a, &payout).await;

    for (body, status, field) in [
        (json!({"session_id": session}), 400, "reason"),
        (
            json!({"session_id": session, "reason": "robo"}),
            400,
            "reason",
        ),
        (json!({"reason": "chargeback"}), 400, "session_id"),
        (
            json!({"session_id": session, "reason": "chargeback", "evidence_urls": ["ftp://x"]}),
            400,
            "evidence_urls[0]",
        ),
        (
            json!({"session_id": "ps_1_nonexistent", "reason": "chargeback"}),
            404,
            "",
        ),
        (
            json!({"external_transaction_id": "core-tx-unknown", "reason": "chargeback"}),
            404,
            "",
        ),
    ] {
        let (s, v) = t.post("/api/v1/report-fraud", &integration, &body).await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        if status == 400 {
            assert_eq!(v["error"]["details"]["field"], field, "{body}: {v}");
        }
    }
    assert_eq!(count(&raw, "cases", &a).await, 0);

    let body = json!({"external_transaction_id": "core-tx-7", "reason": "account_takeover",
                      "description": "La clienta no reconoce el SPEI",
                      "evidence_urls": ["https://evidence.example/1"]});
    let (s, first) = t.post("/api/v1/report-fraud", &integration, &body).await;
    assert_eq!(s, 201, "{first}");
    let entries = first["blocklist_entries"].as_array().unwrap();
    let mut kinds: Vec<(String, String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["list_type"].as_str().unwrap().to_owned(),
                e["severity"].as_str().unwrap().to_owned(),
                e["flow_scope"].as_str().unwrap().to_owned(),
                e["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (
                "beneficiary_id".into(),
                "block".into(),
                "payout".into(),
                "fraud_report".into()
            ),
            (
                "clabe".into(),
                "block".into(),
                "payout".into(),
                "fraud_report".into()
            ),
        ]
    );
    // The same report again (by its session id this time): same answer,
    // nothing written.
    let counts = |raw: &sqlx::AnyPool| {
        let (raw, a) = (raw.clone(), a.clone());
        async move {
            let mut n = Vec::new();
            for table in [
                "cases",
                "fraud_labels",
                "blocklist_entries",
                "outbox",
                "audit_log",
            ] {
                n.push(count(&raw, table, &a).await);
            }
            n
        }
    };
    let before = counts(&raw).await;
    let (s, again) = t
        .post(
            "/api/v1/report-fraud",
            &integration,
            &json!({"session_id": session, "reason": "other"}),
        )
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, first);
    assert_eq!(counts(&raw).await, before);
    assert_eq!(
        before[..4],
        [1, 1, 2, 3],
        "case, label, 2 entries, 3 events"
    );

    // The case: from the report, linked, with the entries.
    let (s, case) = t
        .get(
            &format!("/api/v1/cases/{}", first["case_id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    assert_eq!(s, 200, "{case}");
    assert_eq!(case["source"], "fraud_report");
    assert_eq!(case["reference_number"], first["reference_number"]);
    assert_eq!(case["priority"], "alta");
    assert_eq!(case["incident_type"], "transferencia_no_autorizada");
    assert_eq!(case["jurisdiction"], "MX");
    assert_eq!(case["amount"]["major"], "25000.00");
    assert_eq!(case["assessments"][0]["session_id"], session.as_str());
    assert_eq!(case["blocklist_entries"].as_array().unwrap().len(), 2);
    assert!(
        case["unusual_reasons"]
            .as_str()
            .unwrap()
            .contains("account_takeover")
    );
    // Events: case.created and fraud.detected, naming the entries.
    let rows = t.app.store.outbox_rows(&a.id, 100).await.unwrap();
    let detected: Value = rows
        .iter()
        .find(|r| r.event == "fraud.detected")
        .map(|r| serde_json::from_str(&r.payload).unwrap())
        .expect("fraud.detected");
    assert_eq!(detected["data"]["session_id"], session.as_str());
    assert_eq!(
        detected["data"]["blocklist_entry_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(rows.iter().any(|r| r.event == "case.created"));

    // The very next assess of that beneficiary is declined.
    let (s, v) = t.assess(&a.key, &example_payload()).await;
    assert_eq!(s, 200);
    assert_eq!(v["decision"], "decline", "{v}");
    assert!(
        v["blocked_by"].as_str().unwrap().starts_with("blocklist:"),
        "{v}"
    );

    // Labels feed the rules: payout-integrity fired on the labelled one.
    assessed(&t, &a, &clean_payload()).await;
    let (s, stats) = t.get("/api/v1/rules/payout-integrity/stats", &a.key).await;
    assert_eq!(s, 200, "{stats}");
    let v1 = &stats["versions"][0];
    assert!(v1["assessments"].as_i64().unwrap() >= 2, "{stats}");
    assert_eq!(v1["labelled_fraud"], 1);
    assert_eq!(v1["fires_labelled_fraud"], 1);
    assert!(v1["fires"].as_i64().unwrap() >= 1);
    assert!(v1["precision"].as_f64().unwrap() > 0.0);
    assert_eq!(v1["recall"], 1.0);
    let (s, _) = t
        .get("/api/v1/rules/payout-integrity/stats?days=0", &a.key)
        .await;
    assert_eq!(s, 400);
    // Confirming the case confirms the label.
    let case_path = format!("/api/v1/cases/{}", first["case_id"].as_str().unwrap());
    patch(&t, &a.key, &case_path, &json!({"status": "en_revision"})).await;
    t.post(&format!("{case_path}/submit"), &a.key, &json!({}))
        .await;
    let (s, v) = patch(
        &t,
        &a.key,
        &case_path,
        &json!({"status": "resuelto", "resolution": "fraude_confirmado"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, stats) = t.get("/api/v1/rules/payout-integrity/stats", &a.key).await;
    assert_eq!(stats["versions"][0]["fires_confirmed_fraud"], 1, "{stats}");
    let (_, case) = t.get(&case_path, &a.key).await;
    assert!(
        case["fraud_reports"][0]["confirmed_at"].is_string(),
        "{case}"
    );

    // Pay-in: email and IP blocked, the BIN flagged, scoped to pay-in.
    let (s, v) = t
        .post(
            "/api/v1/assess",
            &a.key,
            &json!({"amount": 150000, "currency": "MXN", "customer_id": "cus_9",
                    "email": "Mule@Example.com", "device": {"ip": "203.0.113.9"},
                    "payment_method": {"type": "card", "card_bin": "411111", "card_last4": "1111"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let payin_session = v["session_id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .post(
            "/api/v1/report-fraud",
            &integration,
            &json!({"transaction_id": payin_session, "reason": "card_testing"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut got: Vec<(String, String, String, String)> = v["blocklist_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["list_type"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
                e["severity"].as_str().unwrap().to_owned(),
                e["flow_scope"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "card_bin".into(),
                "411111".into(),
                "flag".into(),
                "payin".into()
            ),
            (
                "email".into(),
                "mule@example.com".into(),
                "block".into(),
                "payin".into()
            ),
            (
                "ip_address".into(),
                "203.0.113.9".into(),
                "block".into(),
                "payin".into()
            ),
        ]
    );
}

async fn report_fraud_is_all_or_nothing(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let raw = raw_db(&t).await;
    let session = assessed(&t, &a, &clean_payload()).await;
    // A failure inside the transaction, after the label, the case and the
    // blocklist entries were written: linking an entry to the case fails.
    t.inject_insert_failure(&raw, "case_blocklist_entries")
        .await;
    let tables = [
        "cases",
        "fraud_labels",
        "blocklist_entries",
        "outbox",
        "audit_log",
        "case_assessments",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(count(&raw, table, &a).await);
    }
    let body = json!({"session_id": session, "reason": "mule_account"});
    let (s, v) = t.post("/api/v1/report-fraud", &a.key, &body).await;
    assert_eq!((s.as_u16(), code(&v)), (500, "INTERNAL_ERROR"), "{v}");
    for (table, n) in tables.iter().zip(&before) {
        assert_eq!(
            count(&raw, table, &a).await,
            *n,
            "{table} kept a row of a failed report"
        );
    }
    // The assess path did not change: the beneficiary is not blocked.
    let (_, v) = t.assess(&a.key, &clean_payload()).await;
    assert_ne!(v["decision"], "decline", "{v}");
    t.remove_insert_failure(&raw, "case_blocklist_entries")
        .await;
    let (s, v) = t.post("/api/v1/report-fraud", &a.key, &body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(count(&raw, "fraud_labels", &a).await, 1);
}

async fn cases_isolate_tenants(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let session = assessed(&t, &a, &example_payload()).await;
    let (s, reported) = t
        .post(
            "/api/v1/report-fraud",
            &a.key,
            &json!({"session_id": session, "reason": "chargeback"}),
        )
        .await;
    assert_eq!(s, 201, "{reported}");
    let id = reported["case_id"].as_str().unwrap();
    let path = format!("/api/v1/cases/{id}");
    patch(&t, &a.key, &path, &json!({"status": "en_revision"})).await;
    t.post(&format!("{path}/submit"), &a.key, &json!({})).await;
    put(
        &t,
        &a.key,
        "/api/v1/settings/cases",
        &json!({"four_eyes": true}),
    )
    .await;

    // Tenant B sees none of it, on every route.
    let (s, v) = t.get(&path, &b.key).await;
    assert_eq!((s.as_u16(), code(&v)), (404, "NOT_FOUND"));
    let (s, _) = patch(&t, &b.key, &path, &json!({"priority": "baja"})).await;
    assert_eq!(s, 404);
    let (s, _) = t
        .post(&format!("{path}/notes"), &b.key, &json!({"body": "x"}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = t.post(&format!("{path}/submit"), &b.key, &json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = t.get(&format!("{path}/report"), &b.key).await;
    assert_eq!(s, 404);
    let (s, _) = t
        .post(
            "/api/v1/report-fraud",
            &b.key,
            &json!({"session_id": session, "reason": "chargeback"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = t
        .post(
            "/api/v1/cases",
            &b.key,
            &json!({"incident_type": "otro", "session_ids": [session]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (_, v) = t.get("/api/v1/cases", &b.key).await;
    assert_eq!(v["total"], 0);
    let (_, v) = t
        .get(
            &format!(
                "/api/v1/cases?search={}",
                &reported["reference_number"].as_str().unwrap()[4..]
            ),
            &b.key,
        )
        .await;
    assert_eq!(v["total"], 0);
    let (_, v) = t.get("/api/v1/cases/stats", &b.key).await;
    assert_eq!(v["total"], 0);
    let (_, v) = t.get("/api/v1/settings/cases", &b.key).await;
    assert_eq!(v["four_eyes"], false);
    let (_, v) = t.get("/api/v1/rules/payout-integrity/stats", &b.key).await;
    assert_eq!(v["versions"], json!([]));
    // B's assess of the same beneficiary is not blocked by A's report.
    let (_, v) = t.assess(&b.key, &example_payload()).await;
    assert_ne!(v["decision"], "decline", "{v}");
    // A still has everything.
    let (s, v) = t.get(&path, &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(v["notes"], json!([]));
    assert_eq!(v["status"], "enviado");
}

/// A fraud report through one node declines the next assess of the
/// beneficiary on another node of the same PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_report_declines_on_another_node_postgres() {
    let t = TestApp::start(Db::Postgres).await;
    let a = t.tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let (_node, other) = spawn_node(&t, dir.path()).await;
    let assess_there = |body: Value| {
        let (t, other, key) = (&t, other.clone(), a.key.clone());
        async move {
            let r = t
                .client
                .post(format!("{other}/api/v1/assess/payout"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = assess_there(clean_payload()).await;
    assert_ne!(first["decision"], "decline");
    let (s, v) = t
        .post(
            "/api/v1/report-fraud",
            &a.key,
            &json!({"session_id": first["session_id"], "reason": "app_scam"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let next = assess_there(clean_payload()).await;
    assert_eq!(next["decision"], "decline", "{next}");
    assert!(
        next["blocked_by"]
            .as_str()
            .unwrap()
            .starts_with("blocklist:"),
        "{next}"
    );
}

crate::both_backends!(
    cases_follow_the_status_machine,
    cases_validate_record_and_report,
    cases_filter_sort_and_count,
    cases_four_eyes_and_concurrency,
    report_fraud_labels_blocks_and_opens_a_case,
    report_fraud_is_all_or_nothing,
    cases_isolate_tenants,
);
