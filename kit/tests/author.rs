//! The rule-author kit end to end through the real `aduana-kit` binary,
//! from folders outside this repository: scaffold (with the bundled SDK, and
//! with `--sdk`), build, test against snapshots, sign, upload, activate, and
//! a payout that shows the new rule's signal, against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/common/mod.rs"]
pub mod common;

use serde_json::{Value, json};

use crate::common::{Db, TestApp, clean_payload};

/// A payout of `major` MXN, domestic and clean otherwise.
fn payout_of(major: &str) -> Value {
    let mut p = clean_payload();
    p["amount"] = json!(major);
    p
}

fn fires(v: &Value, code: &str) -> bool {
    v["signals"].to_string().contains(code)
}

/// The kit binary.
fn cli(_: &TestApp) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aduana-kit"));
    cmd.env("ADUANA_LOG", "warn");
    cmd
}

async fn run_ok(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.output().await.expect("run aduana-kit");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Registers `release.pub` (in `work`) with the server, signs `wasm` with
/// `release.key` and uploads it, activated; the upload's answer.
async fn sign_and_upload(
    t: &TestApp,
    tenant_key: &str,
    work: &std::path::Path,
    wasm: &str,
    kit: impl Fn(&[&str]) -> tokio::process::Command,
) -> Value {
    run_ok(&mut kit(&["keygen", "--out", "release"])).await;
    let public = std::fs::read_to_string(work.join("release.pub")).unwrap();
    let (s, key) = t
        .post(
            "/api/v1/signing-keys",
            tenant_key,
            &json!({"name": "release", "public_key": public.trim()}),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let out = run_ok(&mut kit(&["rule", "sign", wasm, "--key", "release.key"])).await;
    assert!(out.contains("sha256:"), "{out}");
    let out = run_ok(&mut kit(&[
        "rule",
        "upload",
        wasm,
        "--url",
        &t.base,
        "--api-key",
        tenant_key,
        "--key-id",
        key["id"].as_str().unwrap(),
        "--activate",
        "active",
    ]))
    .await;
    serde_json::from_str(out.trim()).unwrap()
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
    let wasm = crate_dir.join("dist/big-spei.wasm");
    let answer = sign_and_upload(&t, &a.key, work.path(), wasm.to_str().unwrap(), kit).await;
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

/// `rule new --flow payin`: the pay-in template builds, passes its own
/// fixtures in the real sandbox, and once signed, uploaded and activated
/// fires on the pay-in whose card the host has counted often enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payin_template_end_to_end() {
    let t = TestApp::start(Db::Sqlite).await;
    let a = t.tenant().await;
    let work = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let sdk = repo.join("guest-sdk");
    let target = repo.join("target").join("kit-e2e");
    let kit = |args: &[&str]| {
        let mut c = cli(&t);
        c.args(args)
            .current_dir(work.path())
            .env("CARGO_TARGET_DIR", &target)
            .env("ADUANA_GUEST_SDK", &sdk)
            .env("CI", "true");
        c
    };
    run_ok(&mut kit(&["rule", "new", "card-burst", "--flow", "payin"])).await;
    let crate_dir = work.path().join("card-burst");
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("Flow::Payin") && lib.contains("ctx.velocity"),
        "{lib}"
    );
    let path = crate_dir.to_str().unwrap();
    let out = run_ok(&mut kit(&["rule", "test", "--accept", "--path", path])).await;
    assert!(out.contains("2 fixtures passed"), "{out}");
    let burst = std::fs::read_dir(crate_dir.join("snapshots"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|s| s.contains("card_burst"))
        .expect("a snapshot with the signal");
    assert!(burst.contains("card: 5 earlier pay-ins in 1h"), "{burst}");
    // An unknown template is refused by the argument parser.
    let out = kit(&["rule", "new", "x-rule", "--flow", "wire"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(!work.path().join("x-rule").exists());

    let wasm = crate_dir.join("dist/card-burst.wasm");
    let answer = sign_and_upload(&t, &a.key, work.path(), wasm.to_str().unwrap(), kit).await;
    assert_eq!(answer["activation"]["mode"], "active", "{answer}");
    // The pay-in pipeline now runs it: the sixth pay-in with one card has
    // five earlier ones in the hour.
    let payin = |i: u32| {
        json!({
            "amount": 150000, "currency": "MXN", "payment_id": format!("p-{i}"),
            "customer_id": format!("cus_{i}"),
            "payment_method": {"type": "card", "card_bin": "41111111", "card_last4": "4242", "card_hash": "card-1"},
        })
    };
    for i in 0..5 {
        let (s, v) = t.post("/api/v1/assess", &a.key, &payin(i)).await;
        assert_eq!(s, 200, "{v}");
        assert!(!fires(&v, "card_burst_card_burst"), "{i}: {v}");
    }
    let (_, v) = t.post("/api/v1/assess", &a.key, &payin(5)).await;
    assert!(fires(&v, "card_burst_card_burst"), "{v}");
    // Replay and backtest re-run the uploaded pay-in rule on the stored
    // velocity counts: the same decisions, no errors.
    let sid = v["session_id"].as_str().unwrap();
    let (s, r) = t
        .post(
            &format!("/api/v1/assessments/{sid}/replay"),
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["identical"], true, "{r}");
    let (s, bt) = t
        .post(
            "/api/v1/rules/card-burst/versions/0.1.0/backtest",
            &a.key,
            &json!({"flow": "payin"}),
        )
        .await;
    assert_eq!(s, 200, "{bt}");
    assert_eq!(bt["evaluated"], 6, "{bt}");
    assert_eq!(bt["errors"], 0, "{bt}");
    assert_eq!(bt["changed"], 0, "{bt}");
    // Payout's assessments are another flow: none here.
    let (s, bt) = t
        .post(
            "/api/v1/rules/card-burst/versions/0.1.0/backtest",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{bt}");
    assert_eq!(bt["evaluated"], 0, "{bt}");
}
