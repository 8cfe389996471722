//! Authentication, key kinds, permissions and key management, with
//! cross-tenant checks.
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, clean_payload};

async fn authentication_errors(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let body = clean_payload();
    let (s, v, _) = t
        .request(Method::POST, "/api/v1/assess/payout", None, Some(&body))
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (s, v) = t
        .assess("clm_sk_not_a_real_key_at_all_000000000000", &body)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (s, v) = t.assess("sk_live_whatever", &body).await;
    assert_eq!(s, 401, "{v}");
    // Keys in query strings are refused even when valid.
    let path = format!("/api/v1/blocklists?api_key={}", a.key);
    let (s, v, _) = t.request(Method::GET, &path, None, None).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    // Publishable keys: only pay-in assess.
    let publishable = t.key(&a, "publishable", "integration").await;
    assert!(publishable.starts_with("clm_pub_"));
    let (s, v) = t.assess(&publishable, &body).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("PUBLIC_KEY_NOT_ALLOWED"))
    );
    // Ingest keys: only ingestion (401 elsewhere).
    let ingest = t.key(&a, "ingest", "integration").await;
    assert!(ingest.starts_with("clm_wh_"));
    let (s, v) = t.assess(&ingest, &body).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    // Role permissions.
    let integration = t.key(&a, "secret", "integration").await;
    let (s, _) = t.assess(&integration, &body).await;
    assert_eq!(s, 200);
    let (s, v) = t.get("/api/v1/blocklists", &integration).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let analyst = t.key(&a, "secret", "analyst").await;
    let (s, _) = t.get("/api/v1/blocklists", &analyst).await;
    assert_eq!(s, 200);
    let (s, v) = t.get("/api/v1/keys", &analyst).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
}

async fn key_management(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let (s, created) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"name": "core", "role": "integration"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let new_key = created["api_key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("clm_sk_"));
    assert_eq!(created["permissions"], json!(["assess", "fraud:report"]));
    let (s, _) = t.assess(&new_key, &clean_payload()).await;
    assert_eq!(s, 200);
    // Listed without the secret; last use is tracked.
    let (s, list) = t.get("/api/v1/keys", &a.key).await;
    assert_eq!(s, 200);
    let text = list.to_string();
    assert!(!text.contains(&new_key), "secret leaked in listing");
    assert!(!text.contains("key_hash"));
    let entry = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap();
    assert_eq!(entry["name"], "core");
    // Invalid requests.
    let (s, v) = t
        .post("/api/v1/keys", &a.key, &json!({"role": "overlord"}))
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("role"))
    );
    let (s, v) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"permissions": ["assess", "everything"]}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("permissions"))
    );
    let (s, v) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"role": "admin", "kind": "magic"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("kind"))
    );
    // Tenant B can neither see nor revoke A's key.
    let (_, list_b) = t.get("/api/v1/keys", &b.key).await;
    assert!(!list_b.to_string().contains(created["id"].as_str().unwrap()));
    let path = format!("/api/v1/keys/{}", created["id"].as_str().unwrap());
    let (s, v, _) = t.request(Method::DELETE, &path, Some(&b.key), None).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (s, _) = t.assess(&new_key, &clean_payload()).await;
    assert_eq!(s, 200, "B's delete must not affect A's key");
    // Revocation: at once on this node, within a second on another one
    // (whose cache held the key when it was revoked).
    let data_dir = tempfile::tempdir().unwrap();
    let node_dir = match db {
        Db::Sqlite => t.data_dir.clone(),
        Db::Postgres => data_dir.path().to_owned(),
    };
    let (_node, other) = crate::common::spawn_node(&t, &node_dir).await;
    let assess_other = || {
        let req = t
            .client
            .post(format!("{other}/api/v1/assess/payout"))
            .bearer_auth(&new_key)
            .json(&clean_payload());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(assess_other().await, 200);
    let (s, _) = t.assess(&new_key, &clean_payload()).await;
    assert_eq!(s, 200, "cached on this node too");
    let (s, _, _) = t.request(Method::DELETE, &path, Some(&a.key), None).await;
    assert_eq!(s, 200);
    let revoked = std::time::Instant::now();
    let (s, v) = t.assess(&new_key, &clean_payload()).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "the revoking node's next request"
    );
    while assess_other().await != 401 {
        assert!(
            revoked.elapsed() < std::time::Duration::from_millis(1500),
            "the other node still accepts the revoked key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!(
        "other node refused the revoked key after {:?}",
        revoked.elapsed()
    );
    let (s, _, _) = t.request(Method::DELETE, &path, Some(&a.key), None).await;
    assert_eq!(s, 404, "revoking twice");
}

async fn rate_limits_per_key(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let (s, created) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"role": "integration", "rate_limit_per_minute": 3}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let limited = created["api_key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let (s, _) = t.assess(&limited, &clean_payload()).await;
        assert_eq!(s, 200);
    }
    let (s, v, headers) = t
        .request(
            Method::POST,
            "/api/v1/assess/payout",
            Some(&limited),
            Some(&clean_payload()),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED"))
    );
    for h in [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(headers.contains_key(h), "missing {h}");
    }
    assert_eq!(headers["x-ratelimit-limit"], "3");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another key of the same tenant is not affected; the rejected request wrote nothing.
    let (s, _) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200);
    assert_eq!(t.count("assessments", &a).await, 4);
    // The default for new keys is 100 per minute; null means unlimited.
    let (_, d) = t
        .post("/api/v1/keys", &a.key, &json!({"role": "integration"}))
        .await;
    assert_eq!(d["rate_limit_per_minute"], 100);
    let (_, u) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"role": "integration", "rate_limit_per_minute": null}),
        )
        .await;
    assert_eq!(u["rate_limit_per_minute"], serde_json::Value::Null);
    let (s, v) = t
        .post(
            "/api/v1/keys",
            &a.key,
            &json!({"role": "integration", "rate_limit_per_minute": 0}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["details"]["field"].as_str()),
        (400, Some("rate_limit_per_minute"))
    );
}

/// With `ADUANA_REDIS_URL`, two nodes count one budget per key; when Redis
/// is down, rate-limited keys get 503 `RATE_LIMIT_STORE_UNAVAILABLE` (never an
/// unchecked pass) while unlimited keys keep working; it recovers by itself.
async fn redis_shared_rate_limits(db: Db) {
    use crate::common::{TestRedis, spawn_node_with};
    let mut redis = TestRedis::start();
    let url = redis.url();
    let t = TestApp::start_configured(db, &[], |c| c.redis_url = Some(url.clone())).await;
    // A second process on the same database (for SQLite, the same file).
    let (_node2, two) = spawn_node_with(&t, &t.data_dir, &[("ADUANA_REDIS_URL", &url)]).await;
    let nodes = [t.base.clone(), two];
    let assess = |base: &str, key: &str| {
        let req = t
            .client
            .post(format!("{base}/api/v1/assess/payout"))
            .bearer_auth(key)
            .json(&clean_payload());
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body: Value = r.json().await.unwrap();
            (status, body, headers)
        }
    };
    let limited_key = |tenant: crate::common::TestTenant| {
        let t = &t;
        async move {
            let (s, k) = t
                .post(
                    "/api/v1/keys",
                    &tenant.key,
                    &json!({"role": "integration", "rate_limit_per_minute": 4}),
                )
                .await;
            assert_eq!(s, 201, "{k}");
            k["api_key"].as_str().unwrap().to_owned()
        }
    };
    let a = t.tenant().await;
    let b = t.tenant().await;
    let ka = limited_key(a.clone()).await;
    let kb = limited_key(b.clone()).await;

    // Four requests spread over both nodes use up the one budget...
    for i in 0..4 {
        let (s, body, _) = assess(&nodes[i % 2], &ka).await;
        assert_eq!(s, 200, "request {i}: {body}");
    }
    // ...so both nodes refuse the fifth, with the documented headers.
    for base in &nodes {
        let (s, body, headers) = assess(base, &ka).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (429, Some("RATE_LIMITED")),
            "{body}"
        );
        assert_eq!(headers["x-ratelimit-limit"], "4");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=15).contains(&retry), "{retry}");
    }
    // Another tenant's key (and this tenant's unlimited key) are unaffected.
    let (s, _, _) = assess(&nodes[1], &kb).await;
    assert_eq!(s, 200);
    let (s, _, _) = assess(&nodes[1], &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(
        t.count("assessments", &a).await,
        5,
        "refused requests wrote nothing"
    );
    let (s, ready) = t.get("/api/v1/health/ready", &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(
        ready["rate_limit_store"],
        json!({"kind": "redis", "status": "ok"})
    );

    // The per-day window is shared too, and judged with the minute window
    // in one step: the refusal names the day limit and waits ~12 h.
    let (s, k) = t
        .post(
            "/api/v1/keys",
            &b.key,
            &json!({"role": "integration", "rate_limit_per_minute": 50, "rate_limit_per_day": 2}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let daily = k["api_key"].as_str().unwrap().to_owned();
    for base in &nodes {
        assert_eq!(assess(base, &daily).await.0, 200);
    }
    let (s, body, headers) = assess(&nodes[0], &daily).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED"))
    );
    assert_eq!(headers["x-ratelimit-limit"], "2");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((40_000..=43_200).contains(&retry), "{retry}");

    // Redis goes away: limited keys are refused with 503 quickly, on both nodes.
    redis.stop();
    for base in &nodes {
        let started = std::time::Instant::now();
        let (s, body, _) = assess(base, &kb).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (503, Some("RATE_LIMIT_STORE_UNAVAILABLE")),
            "{body}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
    let (s, _, _) = assess(&nodes[0], &a.key).await;
    assert_eq!(s, 200, "keys without limits never consult the store");
    let (s, ready) = t.get("/api/v1/health/ready", &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(ready["rate_limit_store"]["status"], "unavailable");
    assert_eq!(t.count("assessments", &b).await, 3, "a 503 writes nothing");

    // Back (empty): both nodes reconnect on their own.
    redis.restart();
    for base in &nodes {
        let mut last = 0;
        for _ in 0..100 {
            last = assess(base, &kb).await.0;
            if last == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(last, 200, "{base} did not reconnect to Redis");
    }
}

crate::both_backends!(
    authentication_errors,
    key_management,
    rate_limits_per_key,
    redis_shared_rate_limits,
    operator_api
);

async fn operator_api(db: crate::common::Db) {
    use crate::common::{OPERATOR_TOKEN, TestApp, clean_payload};
    let t = TestApp::start(db).await;
    let body = serde_json::json!({"name": "Banco Operado", "organization_type": "banco", "rate_limit_per_minute": null});
    // Only the operator token opens it.
    let (s, v) = t.post("/api/v1/operator/tenants", "wrong", &body).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let a = t.tenant().await;
    let (s, _) = t.post("/api/v1/operator/tenants", &a.key, &body).await;
    assert_eq!(s, 401, "a tenant admin key is not the operator token");
    let (s, v) = t
        .post(
            "/api/v1/operator/tenants",
            OPERATOR_TOKEN,
            &serde_json::json!({"name": "X", "organization_type": "cooperativa"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["details"]["field"], "organization_type");
    let (s, created) = t
        .post("/api/v1/operator/tenants", OPERATOR_TOKEN, &body)
        .await;
    assert_eq!(s, 201, "{created}");
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("clm_sk_"));
    // The new tenant works at once, with the unlimited key asked for.
    let (s, _) = t.assess(key, &clean_payload()).await;
    assert_eq!(s, 200);
    let (_, keys) = t.get("/api/v1/keys", key).await;
    assert_eq!(
        keys["data"][0]["rate_limit_per_minute"],
        serde_json::Value::Null
    );
    let (s, list) = t.get("/api/v1/operator/tenants", OPERATOR_TOKEN).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&created["tenant_id"].as_str().unwrap()) && ids.contains(&a.id.as_str()));
    let (_, audit) = t.get("/api/v1/audit", key).await;
    assert_eq!(audit["data"][0]["action"], "tenant.created");
    assert_eq!(audit["data"][0]["actor"], "operator");
    // Without a configured token the operator API is off.
    let off = TestApp::start_configured(db, &[], |c| c.operator_token = None).await;
    let (s, v) = off
        .post("/api/v1/operator/tenants", OPERATOR_TOKEN, &body)
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
}
