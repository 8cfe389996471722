//! Outbound webhooks (§6) over real HTTP on both databases, delivered to
//! real local receivers: signatures (both schemes, checked here and by the
//! documentation's shell, Node and Python examples), sequence and
//! previous id, the event feed, retries (failing-then-succeeding, 429 with
//! Retry-After, a redirect), 410 disabling, a hanging endpoint not
//! delaying another, rotation, manual retry and recovery, URL safety, and
//! tenant isolation on every route.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aduana_host::webhooks::signing::{verify_clausum, verify_standard};
use axum::{
    Router,
    body::Bytes,
    extract::{Path as AxPath, State},
    http::{HeaderMap, StatusCode as AxStatus},
    response::{IntoResponse, Response},
    routing::post,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Db, TestApp, TestTenant, clean_payload};

/// What a receiver path answers to its n-th request (from 0).
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    Ok,
    /// 500 for the first n requests, then 200.
    FailFirst(usize),
    Gone,
    /// 429 with `Retry-After: 1` for the first request, then 200.
    RateLimitedOnce,
    Redirect,
    /// Sleeps this long, then 200.
    Hang(Duration),
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    behaviours: Mutex<HashMap<String, Behaviour>>,
    received: Mutex<Vec<Received>>,
}

/// A local webhook receiver with a behaviour per path.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    AxPath(path): AxPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = state
        .behaviours
        .lock()
        .unwrap()
        .get(&path)
        .copied()
        .unwrap_or(Behaviour::Ok);
    let n = {
        let mut received = state.received.lock().unwrap();
        let n = received.iter().filter(|r| r.path == path).count();
        received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        n
    };
    match behaviour {
        Behaviour::Ok => (AxStatus::OK, "thanks").into_response(),
        Behaviour::FailFirst(k) if n < k => {
            (AxStatus::INTERNAL_SERVER_ERROR, "core is down").into_response()
        }
        Behaviour::FailFirst(_) => (AxStatus::OK, "ok now").into_response(),
        Behaviour::Gone => (AxStatus::GONE, "no such hook").into_response(),
        Behaviour::RateLimitedOnce if n == 0 => (
            AxStatus::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        Behaviour::RateLimitedOnce => (AxStatus::OK, "ok").into_response(),
        Behaviour::Redirect => (
            AxStatus::FOUND,
            [("location", "http://169.254.169.254/latest")],
            "",
        )
            .into_response(),
        Behaviour::Hang(d) => {
            tokio::time::sleep(d).await;
            (AxStatus::OK, "late").into_response()
        }
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route("/{path}", post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// The URL of `path`, answering with `behaviour`.
    pub fn url(&self, path: &str, behaviour: Behaviour) -> String {
        self.state
            .behaviours
            .lock()
            .unwrap()
            .insert(path.to_owned(), behaviour);
        format!("http://{}/{path}", self.addr)
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (up to `within`) until `path` got at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received(path);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A test app whose webhooks may reach loopback receivers, retrying fast.
pub async fn hooks_app(db: Db) -> TestApp {
    hooks_app_retrying(db, &[0, 1, 1]).await
}

/// [`hooks_app`] with retries after `schedule` seconds.
async fn hooks_app_retrying(db: Db, schedule: &[u64]) -> TestApp {
    let schedule: Vec<Duration> = schedule.iter().copied().map(Duration::from_secs).collect();
    TestApp::start_configured(db, &[], move |c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_schedule = schedule;
        c.webhooks.timeout = Duration::from_millis(800);
        c.webhooks.poll = Duration::from_millis(20);
    })
    .await
}

async fn create_hook(t: &TestApp, tenant: &TestTenant, body: &Value) -> Value {
    let (s, v) = t.post("/api/v1/webhooks", &tenant.key, body).await;
    assert_eq!(s, 201, "{v}");
    v
}

fn verify(r: &Received, secret: &str) -> bool {
    let now = chrono::Utc::now().timestamp();
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    verify_clausum(secret, &r.header("x-clausum-signature"), &r.body, now, 300)
        && verify_standard(
            secret,
            &r.header("webhook-signature"),
            &r.header("webhook-id"),
            ts,
            &r.body,
        )
}

/// Creation, validation, the delivered request and its signatures, the
/// sequence, the feed and the delivery log.
async fn webhooks_deliver_signed_numbered_events(db: Db) {
    let t = hooks_app(db).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    let hook = create_hook(
        &t,
        &a,
        &json!({"url": rx.url("core", Behaviour::Ok), "description": "core reconciliation"}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    assert_eq!(hook["events"], json!([]));
    assert_eq!(hook["is_active"], true);
    // The secret is never shown again, and not stored in plain text.
    let (_, shown) = t
        .get(
            &format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    assert!(shown.get("secret").is_none(), "{shown}");
    let (_, list) = t.get("/api/v1/webhooks", &a.key).await;
    assert!(!list.to_string().contains(&secret));
    let stored = t
        .app
        .store
        .webhook_endpoint(&a.id, hook["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.secret.starts_with("v1:"),
        "sealed: {}",
        stored.secret
    );
    assert!(!stored.secret.contains(&secret[6..]));

    let (s, first) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{first}");
    let (s, second) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{second}");
    let got = rx.wait_for("core", 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "both events delivered");
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let by_session = |sid: &Value| {
        bodies
            .iter()
            .find(|b| &b["data"]["session_id"] == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no event for {sid}: {bodies:?}"))
    };
    let e1 = by_session(&first["session_id"]);
    let e2 = by_session(&second["session_id"]);
    assert_eq!(e1["event"], "transaction.created");
    assert_eq!(e1["data"]["flow"], "payout");
    assert_eq!(e1["data"]["decision"], first["decision"]);
    assert_eq!(e1["sequence"], 1, "{e1}");
    assert_eq!(e1["previous_id"], Value::Null);
    assert_eq!(e2["sequence"], 2, "{e2}");
    assert_eq!(e2["previous_id"], e1["id"]);
    for r in &got {
        assert!(verify(r, &secret), "signatures verify: {:?}", r.headers);
        assert!(!verify(
            r,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ));
        assert_eq!(r.header("webhook-id"), r.json()["id"].as_str().unwrap());
        assert_eq!(r.header("x-clausum-event"), "transaction.created");
        assert_eq!(
            r.header("x-clausum-timestamp"),
            r.header("webhook-timestamp")
        );
        assert_eq!(r.header("content-type"), "application/json");
    }
    // The feed lists both in order, pages on the last id, filters by type.
    let (s, feed) = t.get("/api/v1/events", &a.key).await;
    assert_eq!(s, 200, "{feed}");
    assert_eq!(feed["data"].as_array().unwrap().len(), 2, "{feed}");
    assert_eq!(
        feed["data"][0], e1,
        "the feed and the delivery agree byte for byte"
    );
    let (_, after) = t
        .get(
            &format!("/api/v1/events?after={}", e1["id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    assert_eq!(after["data"].as_array().unwrap().len(), 1);
    assert_eq!(after["data"][0]["id"], e2["id"]);
    let (_, none) = t
        .get("/api/v1/events?type=transaction.blocked", &a.key)
        .await;
    assert_eq!(none["data"], json!([]));
    let (s, v) = t.get("/api/v1/events?type=transfer.made", &a.key).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = t.get("/api/v1/events?after=evt_unknown", &a.key).await;
    assert_eq!(s, 404, "{v}");
    // The delivery log.
    let id = hook["id"].as_str().unwrap();
    // Outcomes are recorded in batches, a moment after the receipt.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let (s, log) = t
            .get(&format!("/api/v1/webhooks/{id}/deliveries"), &a.key)
            .await;
        assert_eq!(s, 200, "{log}");
        let done = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered");
        if done || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deliveries = log["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{log}");
    for d in deliveries {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempt_log"][0]["status_code"], 200);
        assert_eq!(d["attempt_log"][0]["response_body_head"], "thanks");
    }
    // Metrics count deliveries.
    let metrics = t
        .client
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aduana_webhook_deliveries_total{outcome=\"delivered\"}"),
        "{metrics}"
    );
}

/// A receiver failing then succeeding, 429 with Retry-After, a redirect
/// (not followed), 410 (disables), a hanging receiver that does not delay
/// another endpoint, filters by event.
async fn webhooks_retry_disable_and_isolate_slow_endpoints(db: Db) {
    let t = hooks_app(db).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    let flaky = create_hook(
        &t,
        &a,
        &json!({"url": rx.url("flaky", Behaviour::FailFirst(1))}),
    )
    .await;
    create_hook(
        &t,
        &a,
        &json!({"url": rx.url("busy", Behaviour::RateLimitedOnce)}),
    )
    .await;
    let moved = create_hook(
        &t,
        &a,
        &json!({"url": rx.url("moved", Behaviour::Redirect)}),
    )
    .await;
    let gone = create_hook(&t, &a, &json!({"url": rx.url("gone", Behaviour::Gone)})).await;
    create_hook(
        &t,
        &a,
        &json!({"url": rx.url("hang", Behaviour::Hang(Duration::from_secs(30)))}),
    )
    .await;
    create_hook(&t, &a, &json!({"url": rx.url("fast", Behaviour::Ok)})).await;
    create_hook(
        &t,
        &a,
        &json!({"url": rx.url("blocked-only", Behaviour::Ok), "events": ["transaction.blocked"]}),
    )
    .await;

    let sent = Instant::now();
    let (s, v) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    // The fast endpoint is served at once though another one hangs.
    let fast = rx.wait_for("fast", 1, Duration::from_secs(5)).await;
    assert_eq!(fast.len(), 1);
    assert!(
        fast[0].at.duration_since(sent) < Duration::from_secs(3),
        "a hanging endpoint delayed another: {:?}",
        fast[0].at.duration_since(sent)
    );
    // Failing, then delivered on the retry with the same event id.
    let flaky_got = rx.wait_for("flaky", 2, Duration::from_secs(10)).await;
    assert_eq!(flaky_got.len(), 2);
    assert_eq!(
        flaky_got[0].header("webhook-id"),
        flaky_got[1].header("webhook-id")
    );
    assert_eq!(flaky_got[0].body, flaky_got[1].body, "same bytes on retry");
    // 429 with Retry-After: 1 is retried about a second later.
    let busy = rx.wait_for("busy", 2, Duration::from_secs(10)).await;
    assert_eq!(busy.len(), 2);
    assert!(busy[1].at.duration_since(busy[0].at) >= Duration::from_millis(900));
    // The redirect is not followed, and the reason is logged.
    let flaky_id = flaky["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = t
            .get(&format!("/api/v1/webhooks/{flaky_id}/deliveries"), &a.key)
            .await;
        if log["data"][0]["status"] == "delivered" {
            let attempts = log["data"][0]["attempt_log"].as_array().unwrap();
            assert_eq!(attempts.len(), 2, "{log}");
            assert_eq!(attempts[0]["status_code"], 500);
            assert_eq!(attempts[0]["error"], "HTTP 500");
            assert_eq!(attempts[0]["response_body_head"], "core is down");
            assert_eq!(attempts[1]["status_code"], 200);
            break;
        }
        assert!(Instant::now() < deadline, "flaky never delivered: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved_id = moved["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = t
            .get(&format!("/api/v1/webhooks/{moved_id}/deliveries"), &a.key)
            .await;
        if log["data"][0]["status"] == "failed" {
            let err = log["data"][0]["last_error"].as_str().unwrap();
            assert!(err.contains("not followed"), "{err}");
            assert_eq!(log["data"][0]["attempts"], 3, "the whole schedule: {log}");
            break;
        }
        assert!(Instant::now() < deadline, "redirect never failed: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.received("moved").len(), 3);
    // 410 disables the endpoint, once, with a reason.
    let gone_id = gone["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, e) = t.get(&format!("/api/v1/webhooks/{gone_id}"), &a.key).await;
        if e["is_active"] == false {
            assert!(
                e["disabled_reason"].as_str().unwrap().contains("410"),
                "{e}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "410 never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A disabled endpoint gets nothing more; the filter keeps the
    // blocked-only endpoint out of transaction.created.
    let (s, _) = t.assess(&a.key, &clean_payload()).await;
    assert_eq!(s, 200);
    rx.wait_for("fast", 2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received("gone").len(), 1);
    assert!(rx.received("blocked-only").is_empty());
    // Re-enabling clears the reason; the hanging endpoint timed out and is
    // logged as such.
    let (s, e) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/webhooks/{gone_id}"),
            Some(&a.key),
            Some(&json!({"is_active": true})),
        )
        .await
        .into_pair();
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["disabled_reason"], Value::Null);
    assert_eq!(e["failure_streak"], 0);
}

/// A disabled endpoint's undelivered deliveries are parked (`paused`),
/// also when they become pending afterwards (the sweep), and go out once
/// it is enabled again.
async fn webhooks_park_disabled_endpoints(db: Db) {
    // The retry comes 3 s after the failed attempt: time to disable first.
    let t = hooks_app_retrying(db, &[0, 3]).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    let hook = create_hook(
        &t,
        &a,
        &json!({"url": rx.url("p", Behaviour::FailFirst(1))}),
    )
    .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let deliveries = |status: &'static str| {
        let (t, key, id) = (&t, a.key.clone(), id.clone());
        async move {
            let (s, v) = t
                .get(
                    &format!("/api/v1/webhooks/{id}/deliveries?status={status}"),
                    &key,
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v["data"].as_array().unwrap().clone()
        }
    };
    t.assess(&a.key, &clean_payload()).await;
    rx.wait_for("p", 1, Duration::from_secs(5)).await;
    // The failed first attempt is recorded: pending, retried in ~5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries("pending")
        .await
        .first()
        .map(|d| d["attempts"].clone())
        != Some(json!(1))
    {
        assert!(Instant::now() < deadline, "first attempt never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let patch = |active: bool| {
        let (t, key, id) = (&t, a.key.clone(), id.clone());
        async move {
            let (s, e) = t
                .request(
                    Method::PATCH,
                    &format!("/api/v1/webhooks/{id}"),
                    Some(&key),
                    Some(&json!({"is_active": active})),
                )
                .await
                .into_pair();
            assert_eq!(s, 200, "{e}");
        }
    };
    patch(false).await;
    let parked = deliveries("paused").await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(deliveries("pending").await.is_empty());
    let delivery = parked[0]["id"].as_str().unwrap().to_owned();
    // A manual retry makes it pending; the sweep parks it again.
    let (s, d) = t
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    assert_eq!(t.app.store.park_inactive_deliveries().await.unwrap(), 1);
    assert_eq!(deliveries("paused").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received("p").len(),
        1,
        "a disabled endpoint got a request"
    );
    // Enabled again: pending, and delivered at its next attempt.
    patch(true).await;
    assert!(deliveries("paused").await.is_empty());
    rx.wait_for("p", 2, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries("delivered").await.len() != 1 {
        assert!(Instant::now() < deadline, "never recorded as delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The status filter knows `paused`, and nothing else new.
    let (s, v) = t
        .get(
            &format!("/api/v1/webhooks/{id}/deliveries?status=parked"),
            &a.key,
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

/// A worker turn that fails (a trigger refuses every new delivery) loses
/// no assessment and numbers nothing. Once the failure is gone, every
/// event goes out, numbered without a gap.
async fn webhooks_failing_turn_loses_no_assessment(db: Db) {
    let t = hooks_app(db).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    create_hook(&t, &a, &json!({"url": rx.url("r", Behaviour::Ok)})).await;
    let raw = t.raw_pool().await;
    t.inject_insert_failure(&raw, "webhook_deliveries").await;
    for _ in 0..5 {
        let (s, v) = t.assess(&a.key, &clean_payload()).await;
        assert_eq!(s, 200, "{v}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(t.count("assessments", &a).await, 5);
    assert_eq!(t.count("outbox", &a).await, 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.received("r").is_empty(), "a delivery without its row");
    let (_, feed) = t.get("/api/v1/events", &a.key).await;
    assert_eq!(feed["data"], json!([]), "numbered by a failed turn");
    t.remove_insert_failure(&raw, "webhook_deliveries").await;
    let got = rx.wait_for("r", 5, Duration::from_secs(10)).await;
    let mut sequences: Vec<i64> = got
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
}

/// Rotation (both secrets sign during the overlap; 0 revokes at once),
/// manual retry and recovery, and the URL rules.
async fn webhooks_rotate_retry_recover(db: Db) {
    let t = hooks_app(db).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    let hook = create_hook(&t, &a, &json!({"url": rx.url("r", Behaviour::Ok)})).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let (s, rotated) = t
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["secret_rotation"]["previous_secret_valid_until"].is_string());
    t.assess(&a.key, &clean_payload()).await;
    let got = rx.wait_for("r", 1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verify(&got[0], &new) && verify(&got[0], &old));
    let (s, rotated) = t
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &a.key,
            &json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(rotated["secret_rotation"], Value::Null);
    t.assess(&a.key, &clean_payload()).await;
    let got = rx.wait_for("r", 2, Duration::from_secs(5)).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    assert!(verify(&got[1], &newest) && !verify(&got[1], &new));
    let (s, v) = t
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &a.key,
            &json!({"overlap_seconds": 9_999_999}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // Manual retry of one delivery, then recovery of everything since.
    let (_, log) = t
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), &a.key)
        .await;
    let delivery = log["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, d) = t
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    assert_eq!(d["status"], "pending");
    let got = rx.wait_for("r", 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    let since = chrono::Utc::now() - chrono::Duration::minutes(5);
    let (s, v) = t
        .post(
            &format!("/api/v1/webhooks/{id}/recover"),
            &a.key,
            &json!({"since": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["queued"], 2);
    let got = rx.wait_for("r", 5, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 5);
    let (s, v) = t
        .post(
            &format!("/api/v1/webhooks/{id}/recover"),
            &a.key,
            &json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 400, "older than the retention: {v}");
}

/// URL rules without the private-address relaxation, other validation,
/// permissions, and tenant isolation on every route.
async fn webhooks_validate_and_isolate_tenants(db: Db) {
    let t = TestApp::start_configured(db, &[], |c| {
        c.webhooks.poll = Duration::from_millis(20);
    })
    .await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    for (url, says) in [
        ("http://hooks.bank.example/x", "https"),
        ("https://127.0.0.1/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[::1]/x", "private"),
        ("https://10.2.3.4/x", "private"),
        ("https://localhost/x", "resolves only to private"),
        ("https://user:pw@93.184.216.34/x", "user name"),
        ("not a url", "absolute URL"),
    ] {
        let (s, v) = t
            .post("/api/v1/webhooks", &a.key, &json!({"url": url}))
            .await;
        assert_eq!(s, 400, "{url}: {v}");
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["details"]["field"], "url");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{url}: {v}"
        );
    }
    for body in [
        json!({"url": "https://93.184.216.34/x", "events": ["transfer.made"]}),
        json!({"url": "https://93.184.216.34/x", "description": "x".repeat(501)}),
        json!({"url": "https://93.184.216.34/x", "secret": "mine"}),
        json!({"events": []}),
    ] {
        let (s, v) = t.post("/api/v1/webhooks", &a.key, &body).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let hook = create_hook(
        &t,
        &a,
        &json!({"url": "https://93.184.216.34/hook", "events": ["transaction.blocked", "rule.activated"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    // Permissions: a publishable key and an integration key may not.
    let public = t.key(&a, "publishable", "integration").await;
    let (s, v) = t.get("/api/v1/webhooks", &public).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "PUBLIC_KEY_NOT_ALLOWED");
    let integration = t.key(&a, "secret", "integration").await;
    let (s, _) = t.get("/api/v1/webhooks", &integration).await;
    assert_eq!(s, 403);
    // Tenant B sees nothing of A's, on every route.
    let (_, list) = t.get("/api/v1/webhooks", &b.key).await;
    assert_eq!(list["data"], json!([]));
    t.assess(&a.key, &clean_payload()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, feed) = t.get("/api/v1/events", &a.key).await;
        if !feed["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "A's event never numbered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, feed_b) = t.get("/api/v1/events", &b.key).await;
    assert_eq!(feed_b["data"], json!([]));
    let paths: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{id}"),
            Some(json!({"is_active": false})),
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/deliveries/whd_x/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/recover"),
            Some(json!({"since": "2026-12-01T00:00:00Z"})),
        ),
        (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
    ];
    for (method, path, body) in &paths {
        let (s, v, _) = t
            .request(method.clone(), path, Some(&b.key), body.as_ref())
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    // A's endpoint is untouched; A can update and delete it.
    let (s, e) = t.get(&format!("/api/v1/webhooks/{id}"), &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(e["is_active"], true);
    let (s, e) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&a.key),
            Some(&json!({"events": ["transaction.created"], "description": null})),
        )
        .await
        .into_pair();
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["events"], json!(["transaction.created"]));
    let (s, v, _) = t
        .request(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = t.get(&format!("/api/v1/webhooks/{id}"), &a.key).await;
    assert_eq!(s, 404);
    // Every change is in A's audit log (never a secret), none in B's.
    let (_, log) = t.get("/api/v1/audit", &a.key).await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == id)
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["webhook.created", "webhook.updated", "webhook.deleted"],
        "{log}"
    );
    assert!(!log.to_string().contains(hook["secret"].as_str().unwrap()));
    let (_, log_b) = t.get("/api/v1/audit", &b.key).await;
    assert!(!log_b.to_string().contains(id), "{log_b}");
}

/// The secrets key every process of a multi-process test shares.
const SECRETS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Environment of a delivering `aduana serve` node in these tests.
const NODE_ENV: &[(&str, &str)] = &[
    ("ADUANA_WEBHOOK_ALLOW_PRIVATE", "1"),
    ("ADUANA_SECRETS_KEY", SECRETS_KEY),
    ("ADUANA_WEBHOOK_TIMEOUT_MS", "1500"),
    ("ADUANA_WEBHOOK_POLL_MS", "20"),
    ("ADUANA_WEBHOOK_RETRY_SCHEDULE", "0,1,1,1,1,1,1,1"),
];

/// An app that accepts loopback endpoints but leaves delivery to the
/// `aduana serve` nodes a test starts.
/// The worker's "is anything sendable due?" ignores busy endpoints (at
/// their concurrency cap: a hanging receiver's backlog) and still sees
/// every other endpoint's due delivery, and only pending ones that are due.
async fn webhooks_due_check_skips_busy_endpoints(db: Db) {
    use sqlx::Executor;
    let t = api_only_app(db).await;
    let a = t.tenant().await;
    let hang = create_hook(&t, &a, &json!({"url": "http://127.0.0.1:9/hang"})).await;
    let other = create_hook(&t, &a, &json!({"url": "http://127.0.0.1:9/other"})).await;
    let (hang, other) = (
        hang["id"].as_str().unwrap().to_owned(),
        other["id"].as_str().unwrap().to_owned(),
    );
    let raw = t.raw_pool().await;
    let store = &t.app.store;
    let now = 1_000_000_i64;
    let delivery = |id: &str, endpoint: &str, status: &str, due: i64| {
        format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event, status, \
             attempts, next_attempt_at, created_at, updated_at) \
             VALUES ('{id}', '{}', '{endpoint}', 'evt_{id}', 'transaction.created', '{status}', \
             0, {due}, 0, 0)",
            a.id
        )
    };
    assert!(!store.deliveries_due(now, &[]).await.unwrap());
    // A backlog of the busy endpoint, all due.
    for i in 0..50 {
        raw.execute(delivery(&format!("whd_h{i}"), &hang, "pending", now - 10).as_str())
            .await
            .unwrap();
    }
    let busy = [hang.clone()];
    assert!(store.deliveries_due(now, &[]).await.unwrap());
    assert!(!store.deliveries_due(now, &busy).await.unwrap());
    // The other endpoint's rows count only when pending and due.
    raw.execute(delivery("whd_o1", &other, "delivered", now - 10).as_str())
        .await
        .unwrap();
    raw.execute(delivery("whd_o2", &other, "failed", now - 10).as_str())
        .await
        .unwrap();
    raw.execute(delivery("whd_o3", &other, "pending", now + 10).as_str())
        .await
        .unwrap();
    assert!(!store.deliveries_due(now, &busy).await.unwrap());
    assert!(store.deliveries_due(now + 10, &busy).await.unwrap());
    let both = [hang.clone(), other.clone()];
    assert!(!store.deliveries_due(now + 10, &both).await.unwrap());
    // A disabled endpoint's due rows are not sendable.
    let (s, _) = t
        .request(
            Method::PATCH,
            &format!("/api/v1/webhooks/{other}"),
            Some(&a.key),
            Some(&json!({"is_active": false})),
        )
        .await
        .into_pair();
    assert_eq!(s, 200);
    raw.execute(delivery("whd_o4", &other, "pending", now - 10).as_str())
        .await
        .unwrap();
    assert!(!store.deliveries_due(now + 10, &busy).await.unwrap());
    // Another tenant's due delivery is sendable like any other.
    let b = t.tenant().await;
    let theirs = create_hook(&t, &b, &json!({"url": "http://127.0.0.1:9/b"})).await;
    let theirs = theirs["id"].as_str().unwrap();
    raw.execute(
        delivery("whd_b1", theirs, "pending", now - 10)
            .replace(&a.id, &b.id)
            .as_str(),
    )
    .await
    .unwrap();
    assert!(store.deliveries_due(now, &busy).await.unwrap());
    // One probe of the pending index per endpoint, on both databases.
    let plan = store.webhook_due_plan().await.unwrap().plan;
    match t.db {
        Db::Sqlite => assert!(
            plan.contains("INDEX webhook_deliveries_pending (endpoint_id=?"),
            "{plan}"
        ),
        Db::Postgres => assert!(
            plan.contains("webhook_deliveries_pending")
                && plan.contains("Index Cond: ((endpoint_id = e.id)"),
            "{plan}"
        ),
    }
    // The parking sweep parks the disabled endpoint's pending delivery and
    // leaves the hanging endpoint's backlog alone; it finds what to park
    // with one probe per disabled endpoint, never a walk of every pending
    // delivery (a hanging endpoint's backlog), and parks by endpoint.
    assert_eq!(store.park_inactive_deliveries().await.unwrap(), 1);
    assert_eq!(store.park_inactive_deliveries().await.unwrap(), 0);
    assert!(store.deliveries_due(now, &[]).await.unwrap());
    for p in store.webhook_park_plans().await.unwrap() {
        let plan = p.plan;
        match t.db {
            Db::Sqlite => assert!(
                plan.contains("webhook_deliveries_pending (endpoint_id=?)")
                    && !plan.contains("webhook_deliveries_due"),
                "{}: {plan}",
                p.query
            ),
            Db::Postgres => assert!(
                plan.contains("webhook_deliveries_pending")
                    && !plan.contains("Seq Scan on webhook_deliveries"),
                "{}: {plan}",
                p.query
            ),
        }
    }
}

async fn api_only_app(db: Db) -> TestApp {
    TestApp::start_configured(db, &[], |c| {
        c.webhooks.deliver = false;
        c.webhooks.allow_private = true;
        c.secrets_key = Some(SECRETS_KEY.to_owned());
    })
    .await
}

async fn assess_on(t: &TestApp, base: &str, key: &str, i: usize) -> String {
    let mut body = clean_payload();
    body["payment_id"] = json!(format!("pay-{i}"));
    let r = t
        .client
        .post(format!("{base}/api/v1/assess/payout"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["session_id"].as_str().unwrap().to_owned()
}

/// Waits until every session in `sessions` reached `path`; the sessions
/// that did not.
async fn missing(rx: &Receiver, path: &str, sessions: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let seen: std::collections::HashSet<String> = rx
            .received(path)
            .iter()
            .filter_map(|r| r.json()["data"]["session_id"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<String> = sessions
            .iter()
            .filter(|s| !seen.contains(*s))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// kill -9 with events pending and in flight: after a restart every
/// acknowledged event is delivered at least once, with one event id per
/// event.
async fn webhooks_survive_kill_9(db: Db) {
    let t = api_only_app(db).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    // The receiver holds requests past the timeout, so attempts are in
    // flight when the node dies.
    create_hook(
        &t,
        &a,
        &json!({"url": rx.url("core", Behaviour::Hang(Duration::from_secs(3)))}),
    )
    .await;
    let other = tempfile::tempdir().unwrap();
    let dir = match db {
        Db::Sqlite => t.data_dir.clone(),
        Db::Postgres => other.path().to_path_buf(),
    };
    let (mut node, base) = crate::common::spawn_node_with(&t, &dir, NODE_ENV).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        sessions.push(assess_on(&t, &base, &a.key, i).await);
    }
    assert!(
        !rx.wait_for("core", 1, Duration::from_secs(10))
            .await
            .is_empty()
    );
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    rx.url("core", Behaviour::Ok);
    let (_node, _) = crate::common::spawn_node_with(&t, &dir, NODE_ENV).await;
    let lost = missing(&rx, "core", &sessions, Duration::from_secs(40)).await;
    assert!(lost.is_empty(), "events lost across kill -9: {lost:?}");
    // A retried event keeps its id.
    let mut ids: HashMap<String, String> = HashMap::new();
    for r in rx.received("core") {
        let body = r.json();
        let sid = body["data"]["session_id"].as_str().unwrap().to_owned();
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(ids.entry(sid).or_insert_with(|| id.clone()), &id);
    }
}

/// Two `aduana serve` nodes on one PostgreSQL share the deliveries:
/// every event arrives (duplicates allowed, none lost) and numbers stay
/// gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_two_nodes_share_deliveries_postgres() {
    let t = api_only_app(Db::Postgres).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    create_hook(&t, &a, &json!({"url": rx.url("core", Behaviour::Ok)})).await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_n1, b1) = crate::common::spawn_node_with(&t, d1.path(), NODE_ENV).await;
    let (_n2, b2) = crate::common::spawn_node_with(&t, d2.path(), NODE_ENV).await;
    let mut sessions = Vec::new();
    for i in 0..40 {
        let base = if i % 2 == 0 { &b1 } else { &b2 };
        sessions.push(assess_on(&t, base, &a.key, i).await);
    }
    let lost = missing(&rx, "core", &sessions, Duration::from_secs(20)).await;
    assert!(lost.is_empty(), "lost: {lost:?}");
    let mut sequences: Vec<i64> = rx
        .received("core")
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences, (1..=40).collect::<Vec<_>>());
}

/// The verification examples in docs/webhooks.md (shell with openssl,
/// Node, Python) accept a real delivered event and refuse a tampered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_doc_snippets_verify_a_delivered_event() {
    let t = hooks_app(Db::Sqlite).await;
    let rx = Receiver::start().await;
    let a = t.tenant().await;
    let hook = create_hook(&t, &a, &json!({"url": rx.url("doc", Behaviour::Ok)})).await;
    // Mid-rotation, so the examples meet two signatures.
    let id = hook["id"].as_str().unwrap();
    let (_, rotated) = t
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &a.key,
            &json!({}),
        )
        .await;
    let secret = rotated["secret"].as_str().unwrap().to_owned();
    t.assess(&a.key, &clean_payload()).await;
    let got = rx.wait_for("doc", 1, Duration::from_secs(5)).await;
    let r = &got[0];
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/webhooks.md"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    let tampered_file = dir.path().join("tampered");
    std::fs::write(&body_file, &r.body).unwrap();
    let mut tampered = r.body.to_vec();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    std::fs::write(&tampered_file, &tampered).unwrap();
    for (name, program) in [
        ("verify.sh", "sh"),
        ("verify.js", "node"),
        ("verify.py", "python3"),
    ] {
        let marker = format!("<!-- snippet: {name} -->");
        let start = doc
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} missing from the doc"));
        let rest = &doc[start + marker.len()..];
        let open = rest.find("```").unwrap();
        let code_start = open + rest[open..].find('\n').unwrap() + 1;
        let code_end = code_start + rest[code_start..].find("```").unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &rest[code_start..code_end]).unwrap();
        for (file, should_pass) in [(&body_file, true), (&tampered_file, false)] {
            let out = std::process::Command::new(program)
                .arg(&path)
                .env("WEBHOOK_SECRET", &secret)
                .env("BODY_FILE", file)
                .env("SIG_HEADER", r.header("x-clausum-signature"))
                .env("WEBHOOK_ID", r.header("webhook-id"))
                .env("WEBHOOK_TIMESTAMP", r.header("webhook-timestamp"))
                .env("WEBHOOK_SIGNATURE", r.header("webhook-signature"))
                .output()
                .unwrap_or_else(|e| panic!("running {program}: {e}"));
            assert_eq!(
                out.status.success(),
                should_pass,
                "{name} on {}: {}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

trait IntoPair {
    fn into_pair(self) -> (StatusCode, Value);
}

impl IntoPair for (StatusCode, Value, reqwest::header::HeaderMap) {
    fn into_pair(self) -> (StatusCode, Value) {
        (self.0, self.1)
    }
}

crate::both_backends!(
    webhooks_deliver_signed_numbered_events,
    webhooks_retry_disable_and_isolate_slow_endpoints,
    webhooks_rotate_retry_recover,
    webhooks_park_disabled_endpoints,
    webhooks_failing_turn_loses_no_assessment,
    webhooks_due_check_skips_busy_endpoints,
    webhooks_validate_and_isolate_tenants,
    webhooks_survive_kill_9,
);
