//! Multi-node activation, restarts on compiled artifacts, the operator
//! commands `aduana replay` and `aduana audit verify`, and the hand-off of
//! `aduana rule …` to the kit binary, all through the real binary.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::rules::payout_of;
use crate::common::{Db, TestApp, Upload, cli, component, spawn_node, upload_at};

async fn assess_at(t: &TestApp, base: &str, key: &str, body: &Value) -> Value {
    let resp = t
        .client
        .post(format!("{base}/api/v1/assess/payout"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn post_at(t: &TestApp, base: &str, key: &str, path: &str, body: &Value) -> Value {
    let resp = t
        .client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

fn fires(v: &Value, code: &str) -> bool {
    v["signals"].to_string().contains(code)
}

/// Polls node `base` until `want(assessment)` holds; returns how long it took.
async fn until(t: &TestApp, base: &str, key: &str, want: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let v = assess_at(t, base, key, &payout_of("1500.50")).await;
        if want(&v) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node {base} never picked up the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two `aduana serve` processes on one PostgreSQL database: an activation
/// through one takes effect on the other's next assessments within about a
/// second, without restart; so do rollback and deactivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_pick_up_activation() {
    let t = TestApp::start(Db::Postgres).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_n1, one) = spawn_node(&t, dirs.0.path()).await;
    let (_n2, two) = spawn_node(&t, dirs.1.path()).await;
    // Warm node two's view of the tenant (its caches hold the old state).
    assert!(!fires(
        &assess_at(&t, &two, &a.key, &payout_of("1500.50")).await,
        "tiered"
    ));

    for v in ["tiered-v1", "tiered-v2"] {
        let (s, body) = upload_at(
            &t.client,
            &one,
            &a.key,
            &Upload::signed(&signer, &component(v)),
        )
        .await;
        assert_eq!(s, 201, "{body}");
    }
    let activate = |version: &'static str| {
        let (t, one, key) = (&t, one.clone(), a.key.clone());
        async move {
            post_at(
                t,
                &one,
                &key,
                &format!("/api/v1/rules/tiered-amount/versions/{version}/activate"),
                &json!({"mode": "active"}),
            )
            .await
        }
    };
    activate("2.0.0").await;
    let took = until(&t, &two, &a.key, |v| fires(v, "tiered_large_amount")).await;
    eprintln!("activation seen by the other node after {took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // Node two compiled it from the database into its own artifact cache.
    assert!(
        std::fs::read_dir(dirs.1.path().join("artifacts"))
            .unwrap()
            .count()
            >= 2
    );

    // Rollback to v1 (does not fire on 1,500.50).
    activate("1.0.0").await;
    let took = until(&t, &two, &a.key, |v| !fires(v, "tiered_large_amount")).await;
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // Deactivate through node two; node one stops running it.
    activate("2.0.0").await;
    until(&t, &one, &a.key, |v| fires(v, "tiered_large_amount")).await;
    post_at(
        &t,
        &two,
        &a.key,
        "/api/v1/rules/tiered-amount/deactivate",
        &json!({}),
    )
    .await;
    let took = until(&t, &one, &a.key, |v| !fires(v, "tiered_large_amount")).await;
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

/// Restarting a node reuses its compiled artifacts (no recompiling) and a
/// tampered artifact is ignored and rebuilt from the module, never loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_artifacts_and_refuses_tampered_ones() {
    let t = TestApp::start(Db::Sqlite).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    let uploaded = t
        .upload_and_activate(&a, &signer, &component("tiered-v2"), "active")
        .await;
    // The rule's own artifact (the built-ins may have theirs here too,
    // depending on which test of this process compiled them first).
    let hex = uploaded["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let artifacts = t.data_dir.join("artifacts");
    let cwasm: Vec<_> = std::fs::read_dir(&artifacts)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&hex))
        })
        .collect();
    assert_eq!(cwasm.len(), 1, "{cwasm:?}");
    let modified = std::fs::metadata(&cwasm[0]).unwrap().modified().unwrap();

    // A second node process on the same data dir loads it as is.
    let (mut node, base) = spawn_node(&t, &t.data_dir).await;
    assert!(fires(
        &assess_at(&t, &base, &a.key, &payout_of("1500.50")).await,
        "tiered_large_amount"
    ));
    assert_eq!(
        std::fs::metadata(&cwasm[0]).unwrap().modified().unwrap(),
        modified
    );
    node.start_kill().unwrap();
    node.wait().await.unwrap();

    // Flip one byte of the artifact: its tag no longer verifies, so the
    // node recompiles from the stored module instead of loading it.
    let mut bytes = std::fs::read(&cwasm[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cwasm[0], &bytes).unwrap();
    let (_node, base) = spawn_node(&t, &t.data_dir).await;
    assert!(fires(
        &assess_at(&t, &base, &a.key, &payout_of("1500.50")).await,
        "tiered_large_amount"
    ));
    assert_ne!(std::fs::read(&cwasm[0]).unwrap(), bytes, "rewritten");
}

async fn run_ok(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.output().await.expect("run aduana");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `aduana keygen` and `aduana rule …` run the kit binary with the same
/// arguments and exit with its status; without the kit they say how to
/// install it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_commands_run_the_kit() {
    let t = TestApp::start(Db::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("aduana-kit");
    std::fs::write(&fake, "#!/bin/sh\necho \"kit got: $*\"\nexit 3\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (args, expected) in [
        (
            &["rule", "new", "big-spei", "--sdk", "/x"][..],
            "kit got: rule new big-spei --sdk /x",
        ),
        (
            &["keygen", "--out", "release"][..],
            "kit got: keygen --out release",
        ),
        (&["rule", "--help"][..], "kit got: rule --help"),
    ] {
        let out = cli(&t)
            .args(args)
            .env("ADUANA_KIT", &fake)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    }
    let out = cli(&t)
        .args(["rule", "new", "x"])
        .env("ADUANA_KIT", dir.path().join("missing"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a file"));
}

async fn replay_and_audit_verify_commands(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    t.upload_and_activate(&a, &signer, &component("structuring"), "active")
        .await;
    let (_, v) = t.assess(&a.key, &payout_of("140000.00")).await;
    assert!(fires(&v, "payout_structuring_below_threshold"), "{v}");
    let sid = v["session_id"].as_str().unwrap();
    let out = run_ok(cli(&t).args(["replay", sid, "--json"])).await;
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["identical"], true, "{report}");
    let out = cli(&t)
        .args(["replay", "ps_1_missing"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());

    let out = run_ok(cli(&t).args(["audit", "verify"])).await;
    assert!(out.contains("intact"), "{out}");
    // Rewrite history behind the service's back: verify notices.
    let sql = "UPDATE audit_log SET details = '{\"digest\":\"sha256:forged\"}' WHERE seq = 2";
    match &t.database_url {
        Some(url) => {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        None => {
            use sqlx::Connection as _;
            let url = format!("sqlite://{}/aduana.db", t.data_dir.display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
    let out = cli(&t).args(["audit", "verify"]).output().await.unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TAMPERED") && text.contains(&a.id), "{text}");
}

crate::both_backends!(replay_and_audit_verify_commands);
