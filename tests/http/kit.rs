//! Multi-node activation, the rule-author kit end to end, and the operator
//! commands `aduana replay` and `aduana audit verify`, all through the real
//! binary.
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
    t.upload_and_activate(&a, &signer, &component("tiered-v2"), "active")
        .await;
    let artifacts = t.data_dir.join("artifacts");
    let cwasm: Vec<_> = std::fs::read_dir(&artifacts)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
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

/// scaffold → build → test → sign → upload → activate → a payout shows the
/// new rule's signal, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_author_kit_end_to_end() {
    let t = TestApp::start(Db::Sqlite).await;
    let a = t.tenant().await;
    let work = tempfile::tempdir().unwrap();
    // Shared with other runs so the Wasm build stays incremental.
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target")
        .join("kit-e2e");
    // No checkout to lean on: the SDK bundled with the binary is unpacked
    // into a data directory of this test's own.
    let data_home = tempfile::tempdir().unwrap();
    let kit = |args: &[&str]| {
        let mut c = cli(&t);
        c.args(args)
            .current_dir(work.path())
            .env("CARGO_TARGET_DIR", &target)
            .env("XDG_DATA_HOME", data_home.path())
            .env_remove("ADUANA_GUEST_SDK")
            .env("CI", "true");
        c
    };
    let out = run_ok(&mut kit(&["rule", "new", "big-spei"])).await;
    let crate_dir = work.path().join("big-spei");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    assert!(
        !manifest.contains(repo.to_str().unwrap()),
        "the scaffold must not depend on this checkout: {manifest}"
    );
    assert!(
        manifest.contains(data_home.path().to_str().unwrap()),
        "{out}\n{manifest}"
    );
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "tests/snapshots.rs",
        "fixtures/large.json",
        "aduana-rule.json",
    ] {
        assert!(crate_dir.join(f).exists(), "{f}");
    }
    let path = crate_dir.to_str().unwrap();
    // First run writes the snapshots; then they must match.
    let out = run_ok(&mut kit(&["rule", "test", "--accept", "--path", path])).await;
    assert!(out.contains("fuel"), "{out}");
    assert!(out.contains("2 fixtures passed"), "{out}");
    let snaps: Vec<_> = std::fs::read_dir(crate_dir.join("snapshots"))
        .unwrap()
        .collect();
    assert_eq!(snaps.len(), 2);
    let out = run_ok(&mut kit(&["rule", "test", "--path", path])).await;
    assert!(out.contains("large") && out.contains("ok"), "{out}");
    // A behaviour change fails the test (CI never writes snapshots).
    let fixture = crate_dir.join("fixtures/small.json");
    let original = std::fs::read_to_string(&fixture).unwrap();
    std::fs::write(&fixture, original.replace("150050", "99000000")).unwrap();
    let out = kit(&["rule", "test", "--path", path])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SNAPSHOT DIFFERS"));
    std::fs::write(&fixture, original).unwrap();

    // Keys, signature, upload with activation.
    run_ok(&mut kit(&["keygen", "--out", "release"])).await;
    let public = std::fs::read_to_string(work.path().join("release.pub")).unwrap();
    let (s, key) = t
        .post(
            "/api/v1/signing-keys",
            &a.key,
            &json!({"name": "release", "public_key": public.trim()}),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let wasm = crate_dir.join("dist/big-spei.wasm");
    let wasm = wasm.to_str().unwrap();
    let out = run_ok(&mut kit(&["rule", "sign", wasm, "--key", "release.key"])).await;
    assert!(out.contains("sha256:"), "{out}");
    let out = run_ok(&mut kit(&[
        "rule",
        "upload",
        wasm,
        "--url",
        &t.base,
        "--api-key",
        &a.key,
        "--key-id",
        key["id"].as_str().unwrap(),
        "--activate",
        "active",
    ]))
    .await;
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["activation"]["mode"], "active", "{answer}");
    // The params schema from aduana-rule.json travelled with the manifest.
    let (_, v) = t.get("/api/v1/rules/big-spei/versions/0.1.0", &a.key).await;
    assert_eq!(v["params_schema"]["type"], "object", "{v}");

    let (_, v) = t.assess(&a.key, &payout_of("150000.00")).await;
    assert!(fires(&v, "big_spei_large_amount"), "{v}");
    let (_, v) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(!fires(&v, "big_spei_large_amount"), "{v}");
}

/// `rule new --sdk PATH` from a folder outside the repository: the crate
/// depends on that SDK and builds; a path that is not the SDK is refused
/// with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffold_with_sdk_flag_outside_the_repository() {
    let t = TestApp::start(Db::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    assert!(!work.path().starts_with(repo));
    let sdk = repo.join("guest-sdk");
    let target = repo.join("target").join("kit-e2e");
    let kit = |args: &[&str]| {
        let mut c = cli(&t);
        c.args(args)
            .current_dir(work.path())
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("ADUANA_GUEST_SDK");
        c
    };
    run_ok(&mut kit(&[
        "rule",
        "new",
        "flagged",
        "--sdk",
        sdk.to_str().unwrap(),
    ]))
    .await;
    let crate_dir = work.path().join("flagged");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("path = {:?}", sdk.to_str().unwrap())),
        "{manifest}"
    );
    let mut build = kit(&["rule", "build", "--path", crate_dir.to_str().unwrap()]);
    let out = run_ok(&mut build).await;
    assert!(out.trim().ends_with("dist/flagged.wasm"), "{out}");
    assert!(crate_dir.join("dist/flagged.wasm").is_file());

    // The environment variable works like the flag.
    let mut by_env = kit(&["rule", "new", "by-env"]);
    by_env.env("ADUANA_GUEST_SDK", &sdk);
    run_ok(&mut by_env).await;
    let manifest = std::fs::read_to_string(work.path().join("by-env/Cargo.toml")).unwrap();
    assert!(manifest.contains(sdk.to_str().unwrap()), "{manifest}");

    // Refusals name the fix.
    let refused = |args: Vec<String>| {
        let mut c = kit(&args.iter().map(String::as_str).collect::<Vec<_>>());
        async move {
            let out = c.output().await.unwrap();
            assert!(!out.status.success());
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    };
    let missing = work.path().join("no-such-sdk");
    let err = refused(vec![
        "rule".into(),
        "new".into(),
        "a-rule".into(),
        "--sdk".into(),
        missing.display().to_string(),
    ])
    .await;
    assert!(
        err.contains("--sdk") && err.contains("ADUANA_GUEST_SDK"),
        "{err}"
    );
    let err = refused(vec![
        "rule".into(),
        "new".into(),
        "b-rule".into(),
        "--sdk".into(),
        repo.join("host").display().to_string(),
    ])
    .await;
    assert!(err.contains("is not the aduana guest SDK"), "{err}");
    // No --sdk and nowhere to unpack the bundled one.
    let out = kit(&["rule", "new", "c-rule"])
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither XDG_DATA_HOME nor HOME") && err.contains("--sdk"),
        "{err}"
    );
    assert!(!work.path().join("a-rule").exists() && !work.path().join("c-rule").exists());
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
