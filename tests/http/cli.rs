//! The `aduana` binary: tenants and keys created by the CLI while the
//! server runs are usable at once; an acknowledged assessment survives
//! `kill -9`.
use std::{process::Stdio, time::Duration};

use aduana_host::store::Store;
use serde_json::Value;

use crate::common::{Db, TestApp, clean_payload, cli};

async fn run_json(cmd: &mut tokio::process::Command) -> Value {
    let out = cmd.output().await.expect("run aduana");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn cli_tenants_and_keys_while_serving(db: Db) {
    let t = TestApp::start(db).await;
    let out = run_json(cli(&t).args([
        "tenant",
        "create",
        "--name",
        "Banco CLI",
        "--type",
        "banco",
        "--json",
    ]))
    .await;
    let tenant_id = out["tenant_id"].as_str().unwrap().to_owned();
    let admin = out["api_key"].as_str().unwrap().to_owned();
    assert!(tenant_id.starts_with("ten_"));
    assert!(admin.starts_with("clm_sk_"));
    // The running server accepts the new key without a restart.
    let (s, v) = t.assess(&admin, &clean_payload()).await;
    assert_eq!(s, 200, "{v}");
    let out = run_json(cli(&t).args([
        "key",
        "create",
        "--tenant",
        &tenant_id,
        "--role",
        "integration",
        "--json",
    ]))
    .await;
    let integration = out["api_key"].as_str().unwrap();
    let (s, _) = t.assess(integration, &clean_payload()).await;
    assert_eq!(s, 200);
    let (s, _) = t.get("/api/v1/keys", integration).await;
    assert_eq!(s, 403, "integration keys cannot manage keys");
    let out = run_json(cli(&t).args([
        "key",
        "create",
        "--tenant",
        &tenant_id,
        "--role",
        "integration",
        "--kind",
        "publishable",
        "--json",
    ]))
    .await;
    assert!(out["api_key"].as_str().unwrap().starts_with("clm_pub_"));
    // Bad input: clear error, non-zero exit, nothing created.
    let out = cli(&t)
        .args(["tenant", "create", "--name", "X", "--type", "cooperativa"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let out = cli(&t)
        .args([
            "key",
            "create",
            "--tenant",
            "ten_missing",
            "--role",
            "admin",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant"));
    // Rate limits from the CLI: a number, or `unlimited`.
    let out = run_json(cli(&t).args([
        "key",
        "create",
        "--tenant",
        &tenant_id,
        "--role",
        "integration",
        "--rate-limit-per-minute",
        "2",
        "--json",
    ]))
    .await;
    let two = out["api_key"].as_str().unwrap().to_owned();
    for expected in [200, 200, 429] {
        let (s, _) = t.assess(&two, &clean_payload()).await;
        assert_eq!(s.as_u16(), expected);
    }
    let out = run_json(cli(&t).args([
        "tenant",
        "create",
        "--name",
        "Sin Limite",
        "--type",
        "psp",
        "--rate-limit-per-minute",
        "unlimited",
        "--json",
    ]))
    .await;
    let unlimited = out["api_key"].as_str().unwrap().to_owned();
    let (_, keys) = t.get("/api/v1/keys", &unlimited).await;
    assert_eq!(keys["data"][0]["rate_limit_per_minute"], Value::Null);
    let out = cli(&t)
        .args([
            "key",
            "create",
            "--tenant",
            &tenant_id,
            "--role",
            "admin",
            "--rate-limit-per-minute",
            "0",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let out = cli(&t).arg("migrate").output().await.unwrap();
    assert!(out.status.success());
}

async fn acknowledged_assessment_survives_kill_9(db: Db) {
    let t = TestApp::start(db).await;
    let tenant = run_json(cli(&t).args([
        "tenant", "create", "--name", "Durable", "--type", "banco", "--json",
    ]))
    .await;
    let key = tenant["api_key"].as_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = cli(&t)
        .arg("serve")
        .env("ADUANA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/health/ready"))
            .send()
            .await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "aduana serve did not become ready");
    let mut body = clean_payload();
    body["idempotency_key"] = "durable-1".into();
    let resp = client
        .post(format!("{base}/api/v1/assess/payout"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let sid = v["session_id"].as_str().unwrap().to_owned();
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let store = Store::connect(t.database_url.as_deref(), &t.data_dir)
        .await
        .unwrap();
    let tenant_id = tenant["tenant_id"].as_str().unwrap();
    let stored = store.assessment(tenant_id, &sid).await.unwrap();
    assert!(stored.is_some(), "acknowledged assessment lost");
    assert_eq!(store.count_rows("outbox", tenant_id).await.unwrap(), 1);
    assert_eq!(
        store
            .count_rows("idempotency_keys", tenant_id)
            .await
            .unwrap(),
        1
    );
    // And the in-process server on the same database replays it.
    let (s, again) = t.assess(&key, &body).await;
    assert_eq!(s, 200);
    assert_eq!(again["session_id"], sid.as_str());
    store.close().await;
}

crate::both_backends!(
    cli_tenants_and_keys_while_serving,
    acknowledged_assessment_survives_kill_9
);
