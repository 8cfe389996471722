//! Misbehaving rules inside a tenant pipeline: each is contained, the
//! pipeline's `on_error` decides, and every tenant keeps being served.
use serde_json::json;

use crate::common::{Db, TestApp, clean_payload, guest};

async fn hostile_rules_are_contained(db: Db) {
    let components: Vec<Vec<u8>> = [
        "infinite-loop",
        "memory-bomb",
        "panic",
        "oversized-output",
        "garbage-output",
    ]
    .iter()
    .map(|n| guest(n))
    .collect();
    let refs: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
    let t = TestApp::start_with(db, &refs).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let hostile = [
        ("hostile-infinite-loop", "fuel budget exhausted"),
        ("hostile-memory-bomb", "memory limit exceeded"),
        ("hostile-panic", "unreachable"),
        ("hostile-oversized-output", "output too large"),
        ("hostile-garbage-output", "invalid output"),
    ];
    let mut rules = vec![
        json!({"rule_id": "payout-integrity"}),
        json!({"rule_id": "blocklist"}),
    ];
    rules.extend(hostile.iter().map(|(id, _)| json!({"rule_id": id})));
    let settings = json!({"pipeline": {"payout": {"rules": rules}}});
    t.set_settings(&a, &settings).await;

    // on_error = ignore (default): the assessment answers with warnings.
    let started = std::time::Instant::now();
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(800),
        "within the deadline"
    );
    assert_eq!(v["decision"], "approve", "{v}");
    let warnings = v["field_warnings"].to_string();
    for (id, reason) in hostile {
        assert!(
            warnings.contains(&format!("rules.{id}")),
            "{id}: {warnings}"
        );
        assert!(
            warnings.contains(reason),
            "{id} should say `{reason}`: {warnings}"
        );
    }
    // The stored record says which rules errored and why.
    let stored = t
        .app
        .store
        .assessment(&a.id, v["session_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&stored.rules).unwrap();
    let errored = recorded
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "errored")
        .count();
    assert_eq!(errored, hostile.len());

    // The service keeps serving the other tenant meanwhile, and repeatedly.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let key = if i % 2 == 0 {
            a.key.clone()
        } else {
            b.key.clone()
        };
        let url = format!("{}/api/v1/assess/payout", t.base);
        let client = t.client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&clean_payload())
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }

    // on_error = review / decline change the decision.
    let settings = json!({"pipeline": {"payout": {"rules": [
        {"rule_id": "payout-integrity"},
        {"rule_id": "hostile-panic", "on_error": "review"}
    ]}}});
    t.set_settings(&a, &settings).await;
    let (_, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(v["decision"], "review", "{v}");
    let settings = json!({"pipeline": {"payout": {"rules": [
        {"rule_id": "hostile-infinite-loop", "on_error": "decline"}
    ]}}});
    t.set_settings(&a, &settings).await;
    let (_, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(v["decision"], "decline", "{v}");
    assert_eq!(v["blocked_by"], "rule_error:hostile-infinite-loop");
    // A pipeline past its deadline answers 504 ASSESS_TIMEOUT and writes nothing.
    let settings = json!({"pipeline": {"payout": {"deadline_ms": 1, "rules": [
        {"rule_id": "hostile-infinite-loop"}, {"rule_id": "hostile-infinite-loop"}
    ]}}});
    t.set_settings(&a, &settings).await;
    let before = t.count("assessments", &a).await;
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (504, Some("ASSESS_TIMEOUT")),
        "{v}"
    );
    assert_eq!(t.count("assessments", &a).await, before);
    // Tenant B never ran any of A's rules.
    let (_, v) = t.assess(&b.key, &clean_payload()).await;
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["field_warnings"], json!([]));
}

crate::both_backends!(hostile_rules_are_contained);
