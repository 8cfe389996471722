//! The wire under attack and carelessness: slow and idle clients, a flood
//! of half-sent requests against a small descriptor budget, declared
//! oversize bodies, requests hyper cannot parse, bodies that are not JSON,
//! and a shutdown with a half-sent request open. Raw TCP where a client
//! library would not misbehave on purpose.
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{Db, TestApp, clean_payload};

/// Sends `request` raw and reads the whole answer (the server closes the
/// connection, or `Connection: close` was asked for).
async fn raw(addr: &str, request: &[u8]) -> (u16, String, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s).await
}

/// Reads one response until the server closes the connection (at most 5 s).
async fn read_response(s: &mut TcpStream) -> (u16, String, Value) {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), value)
}

fn host_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

fn assert_error_body(status: u16, head: &str, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{head}\n{body}");
    assert!(head.contains("x-request-id: req_"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
}

/// Every error the service can produce carries the error body and a
/// request id: hyper's own parse errors, axum's extractor rejections, a
/// declared oversize body (refused before it is sent) and a body that is
/// not JSON.
async fn one_error_body_for_everything(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let addr = host_of(&t.base);

    // hyper's parse errors.
    let (s, head, body) = raw(&addr, b"GARBAGE\r\n\r\n").await;
    assert_error_body(s, &head, &body, 400, "BAD_REQUEST");
    let (s, head, body) = raw(
        &addr,
        b"POST /api/v1/assess/payout HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    )
    .await;
    assert_error_body(s, &head, &body, 400, "BAD_REQUEST");
    let big = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let (s, head, body) = raw(&addr, big.as_bytes()).await;
    assert_error_body(s, &head, &body, 431, "HEADERS_TOO_LARGE");

    // A path id that is not UTF-8: axum's rejection, in our body.
    let req = format!(
        "GET /api/v1/assessments/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        a.key
    );
    let (s, head, body) = raw(&addr, req.as_bytes()).await;
    assert_error_body(s, &head, &body, 400, "VALIDATION_ERROR");
    assert_eq!(body["error"]["details"]["field"], "path", "{body}");
    // A query string that does not parse.
    let (s, v, h) = t
        .request(
            reqwest::Method::GET,
            "/api/v1/audit?limit=many",
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), &v["error"]["code"]),
        (400, &json!("VALIDATION_ERROR")),
        "{v}"
    );
    assert!(h.contains_key("x-request-id"));

    // Declared over the limit: refused before the body is sent.
    let req = format!(
        "POST /api/v1/assess/payout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
        a.key
    );
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (s, head, body) = read_response(&mut conn).await;
    assert_error_body(s, &head, &body, 413, "PAYLOAD_TOO_LARGE");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Not JSON: 415; no content type at all is read as JSON.
    let url = format!("{}/api/v1/assess/payout", t.base);
    let resp = t
        .client
        .post(&url)
        .bearer_auth(&a.key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(clean_payload().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{v}");
    let resp = t
        .client
        .post(&url)
        .bearer_auth(&a.key)
        .header("content-type", "application/json; charset=utf-8")
        .body(clean_payload().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = t
        .client
        .post(&url)
        .bearer_auth(&a.key)
        .body(clean_payload().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "no content type: JSON");
    // Nothing refused was written.
    assert_eq!(t.count("assessments", &a).await, 2);
}

/// A body that trickles past the body timeout is 408 with the error body;
/// an idle keep-alive connection and a head that never ends are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_body_and_idle_timeouts() {
    let t = TestApp::start_configured(Db::Sqlite, &[], |c| {
        c.server.header_timeout = Duration::from_millis(600);
        c.server.body_timeout = Duration::from_millis(600);
        c.server.idle_timeout = Duration::from_millis(900);
    })
    .await;
    let a = t.tenant().await;
    let addr = host_of(&t.base);

    let req = format!(
        "POST /api/v1/assess/payout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"amount\"",
        a.key
    );
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    slow_body.write_all(req.as_bytes()).await.unwrap();
    let (s, head, body) = read_response(&mut slow_body).await;
    assert_error_body(s, &head, &body, 408, "REQUEST_TIMEOUT");

    // A head that never ends: closed after the header timeout.
    let mut slow_head = TcpStream::connect(&addr).await.unwrap();
    slow_head
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), slow_head.read(&mut buf))
        .await
        .expect("closed within the timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive connection: one request, then silence.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = idle.read(&mut [0u8; 4096]).await.unwrap();
    assert!(n > 0);
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("closed within the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

/// The attack: a process allowed 1,024 descriptors, 1,100
/// connections that each sent half a request. Health checks and
/// authenticated assessments keep answering (the oldest slow connections
/// are evicted), and the slow ones are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_cannot_starve_the_server() {
    let _ = rlimit::increase_nofile_limit(8192);
    let t = TestApp::start(Db::Sqlite).await;
    let a = t.tenant().await;
    // One process, allowed 1,024 descriptors (it cannot raise that).
    let (_node, base) = crate::common::spawn_node_under(
        &t,
        &t.data_dir,
        &[],
        &["prlimit", "--nofile=1024:1024", "--"],
    )
    .await;
    let addr = host_of(&base);
    let mut slow = Vec::new();
    for _ in 0..1_100 {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            continue;
        };
        let _ = s
            .write_all(b"POST /api/v1/assess/payout HTTP/1.1\r\nHost: x\r\nContent-")
            .await;
        slow.push(s);
    }
    assert!(slow.len() >= 1_000, "{} connections opened", slow.len());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = client
            .get(format!("{base}/api/v1/health"))
            .send()
            .await
            .expect("health answers while 1,100 half-sent requests are open");
        assert_eq!(r.status(), 200);
        let r = client
            .post(format!("{base}/api/v1/assess/payout"))
            .bearer_auth(&a.key)
            .json(&clean_payload())
            .send()
            .await
            .expect("assess answers too");
        assert_eq!(r.status(), 200);
    }
    // The slow connections were evicted or timed out: the server closed
    // every one of them within the (10 s) header timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = 0;
    for s in &mut slow {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(left, s.read(&mut [0u8; 16])).await {
            closed += 1;
        }
    }
    assert_eq!(closed, slow.len(), "every half-sent request is closed");
}

/// SIGTERM with a half-sent request open and assessments in flight: the
/// process exits within its grace, and every assessment it acknowledged is
/// stored.
async fn shutdown_has_a_deadline_and_loses_nothing(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let node_dir = match db {
        Db::Sqlite => t.data_dir.clone(),
        Db::Postgres => dir.path().to_owned(),
    };
    let (mut node, base) =
        crate::common::spawn_node_with(&t, &node_dir, &[("ADUANA_SHUTDOWN_GRACE_MS", "1500")])
            .await;
    let addr = host_of(&base);
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /api/v1/assess/payout HTTP/1.1\r\nHost: x\r\nContent-Len")
        .await
        .unwrap();
    // Assessments keep arriving while the signal lands.
    let senders: Vec<_> = (0..4)
        .map(|w| {
            let (client, url, key) = (
                t.client.clone(),
                format!("{base}/api/v1/assess/payout"),
                a.key.clone(),
            );
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..400 {
                    let mut p = clean_payload();
                    p["payment_id"] = json!(format!("sd-{w}-{i}"));
                    match client.post(&url).bearer_auth(&key).json(&p).send().await {
                        Ok(r) if r.status() == 200 => {
                            if let Ok(v) = r.json::<Value>().await {
                                acked.push(v["session_id"].as_str().unwrap().to_owned());
                            }
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = node.id().unwrap().to_string();
    let signalled = Instant::now();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(8), node.wait())
        .await
        .expect("the process exits within its grace (plus slack)")
        .unwrap();
    let took = signalled.elapsed();
    eprintln!("exited {exit:?} {took:?} after SIGTERM");
    assert!(took < Duration::from_millis(4_500), "{took:?}");
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(!acked.is_empty());
    for sid in &acked {
        assert!(
            t.app.store.assessment(&a.id, sid).await.unwrap().is_some(),
            "acknowledged {sid} was lost"
        );
    }
    eprintln!("{} acknowledged assessments, all stored", acked.len());
}

crate::both_backends!(
    one_error_body_for_everything,
    shutdown_has_a_deadline_and_loses_nothing,
);
