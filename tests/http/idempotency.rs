//! Idempotency: replays, reuse with another body, concurrent duplicates,
//! per-tenant scope.
use serde_json::json;

use crate::common::{Db, TestApp, clean_payload};

async fn replay_and_reuse(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let mut p = clean_payload();
    p["payout"]["first_to_beneficiary"] = serde_json::Value::Null;
    p["idempotency_key"] = json!("core-991");
    let (s, first) = t.assess(&a.key, &p).await;
    assert_eq!(s, 200);
    assert_eq!(first["idempotency_key"], "core-991");
    assert_eq!(first["signals"], json!(["payout_first_beneficiary"]));
    // Same body (keys reordered, same exact amount): same response, nothing counted twice.
    let reordered: serde_json::Value = serde_json::from_str(&format!(
        "{{\"currency\":\"MXN\",\"idempotency_key\":\"core-991\",\"payout\":{},\"origin\":{},\"beneficiary\":{},\"amount_unit\":\"major\",\"amount\":\"1500.50\"}}",
        p["payout"], p["origin"], p["beneficiary"]
    ))
    .unwrap();
    let (s, again, headers) = t
        .request(
            reqwest::Method::POST,
            "/api/v1/assess/payout",
            Some(&a.key),
            Some(&reordered),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(again, first, "a replay returns the stored response");
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(t.count("assessments", &a).await, 1);
    assert_eq!(t.count("outbox", &a).await, 1);
    // History counted once: a new request (no key) sees one prior transfer.
    let mut fresh = p.clone();
    fresh.as_object_mut().unwrap().remove("idempotency_key");
    let (_, v) = t.assess(&a.key, &fresh).await;
    assert_eq!(v["signals"], json!([]));
    // The header works too, and wins over the body.
    let resp = t
        .client
        .post(format!("{}/api/v1/assess/payout", t.base))
        .bearer_auth(&a.key)
        .header("Idempotency-Key", "core-991")
        .json(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "same key, body without the key field is the same request"
    );
    // Same key, different body → 409, nothing written.
    let mut other = p.clone();
    other["amount"] = json!("1500.51");
    let (s, v) = t.assess(&a.key, &other).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (409, Some("IDEMPOTENCY_KEY_REUSED"))
    );
    assert_eq!(t.count("assessments", &a).await, 2);
    // Keys are scoped per tenant.
    let b = t.tenant().await;
    let (s, vb) = t.assess(&b.key, &other).await;
    assert_eq!(s, 200, "{vb}");
    assert_ne!(vb["session_id"], first["session_id"]);
}

async fn concurrent_duplicates_make_one_assessment(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let mut p = clean_payload();
    p["idempotency_key"] = json!("burst-1");
    let answers = t
        .assess_concurrently(vec![(a.key.clone(), p.clone()); 12])
        .await;
    let mut sessions = std::collections::BTreeSet::new();
    for (status, v) in answers {
        assert_eq!(status, 200, "{v}");
        sessions.insert(v["session_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        sessions.len(),
        1,
        "all duplicates share one session: {sessions:?}"
    );
    assert_eq!(t.count("assessments", &a).await, 1);
    assert_eq!(t.count("outbox", &a).await, 1);
    assert_eq!(t.count("idempotency_keys", &a).await, 1);
    assert_eq!(t.count("beneficiary_history", &a).await, 1);
}

crate::both_backends!(replay_and_reuse, concurrent_duplicates_make_one_assessment);
