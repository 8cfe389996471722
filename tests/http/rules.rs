//! Tenant-signed rules over HTTP: signers, upload checks, activation,
//! shadow mode, rollback, tenant isolation and the audit log.
use serde_json::{Value, json};

use crate::common::{Db, TestApp, Upload, clean_payload, component};

/// A payout of `major` MXN, domestic and clean otherwise.
pub fn payout_of(major: &str) -> Value {
    let mut p = clean_payload();
    p["amount"] = json!(major);
    p
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

async fn signers_and_upload_checks(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let signer = t.signer(&a).await;
    let other = t.signer(&b).await;

    // Signing keys: listed, a bad key is a 400, a duplicate a 409.
    let (s, v) = t.get("/api/v1/signing-keys", &a.key).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"][0]["status"], "active");
    let (s, v) = t
        .post(
            "/api/v1/signing-keys",
            &a.key,
            &json!({"name": "bad", "public_key": "not base64!"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (s, v) = t
        .post(
            "/api/v1/signing-keys",
            &a.key,
            &json!({"name": "again", "public_key": signer.public}),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    let module = component("night-spei");
    let good = Upload::signed(&signer, &module);
    let reject = |check: &'static str, contains: &'static str| {
        move |(s, v): (reqwest::StatusCode, Value)| {
            assert_eq!(s, 400, "{check}: {v}");
            assert_eq!(v["error"]["code"], "RULE_REJECTED", "{v}");
            assert_eq!(v["error"]["details"]["check"], check, "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains(contains),
                "{check}: `{msg}` lacks `{contains}`"
            );
        }
    };

    // Signature problems, checked before anything else.
    let mut u = good.clone();
    u.signature = aduana_host::domain::signing::sign_module(&other.secret, &module).unwrap();
    reject("signature", "does not verify")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.key_id = "sgk_doesnotexist".into();
    reject("signature", "unknown signing key")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.key_id = other.id.clone();
    reject("signature", "unknown signing key")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.module[module.len() / 2] ^= 0x55;
    reject("signature", "does not verify")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.signature = "c2hvcnQ=".into();
    reject("signature", "64 bytes")(t.upload(&a.key, &u).await);

    // Correctly signed, but not an acceptable component.
    let signed = |bytes: Vec<u8>, manifest: &Value| Upload {
        signature: aduana_host::domain::signing::sign_module(&signer.secret, &bytes).unwrap(),
        module: bytes,
        key_id: signer.id.clone(),
        manifest: manifest.clone(),
    };
    let m = good.manifest.clone();
    reject("component", "core Wasm module")(t.upload(&a.key, &signed(wat("(module)"), &m)).await);
    reject("component", "not WebAssembly")(
        t.upload(
            &a.key,
            &signed(b"MZ\x90\0 definitely not wasm".to_vec(), &m),
        )
        .await,
    );
    reject("imports", "wasi:filesystem/preopens@0.2.0")(
        t.upload(
            &a.key,
            &signed(
                wat(r#"(component (import "wasi:filesystem/preopens@0.2.0" (instance)))"#),
                &m,
            ),
        )
        .await,
    );
    reject("imports", "wasi:sockets/tcp@0.2.0")(
        t.upload(
            &a.key,
            &signed(
                wat(r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)))"#),
                &m,
            ),
        )
        .await,
    );
    reject("wit_version", "0.9.0")(
        t.upload(
            &a.key,
            &signed(
                wat(r#"(component (import "aduana:rules/context@0.9.0" (instance)))"#),
                &m,
            ),
        )
        .await,
    );
    reject("world", "does not export `metadata`")(
        t.upload(&a.key, &signed(wat("(component)"), &m)).await,
    );
    let wrong_types = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (export "metadata" (func $f))
        (export "evaluate" (func $f)))"#;
    reject("world", "rule")(t.upload(&a.key, &signed(wat(wrong_types), &m)).await);
    // Three parameters, as in WIT 0.2.0, but of the wrong types.
    let wrong_types_0_2 = r#"(component
        (core module $m
            (func (export "m"))
            (func (export "e") (param i32 i32 i32)))
        (core instance $i (instantiate $m))
        (func $m (canon lift (core func $i "m")))
        (func $e (param "tx" u32) (param "params" u32) (param "context" u32)
            (canon lift (core func $i "e")))
        (export "metadata" (func $m))
        (export "evaluate" (func $e)))"#;
    reject("world", "0.2.0")(t.upload(&a.key, &signed(wat(wrong_types_0_2), &m)).await);
    let mut huge = wat("(module)");
    huge.resize(1024 * 1024 + 10, 0);
    reject("size", "limit")(t.upload(&a.key, &signed(huge, &m)).await);
    // Well past the module limit: still a 400 the client can read (the rest
    // of the body is drained), not a reset connection.
    let mut huger = wat("(module)");
    huger.resize(5 * 1024 * 1024, 0);
    reject("size", "limit")(t.upload(&a.key, &signed(huger, &m)).await);

    // Manifest problems.
    let mut u = good.clone();
    u.manifest["version"] = json!("1.0");
    u.signature = good.signature.clone();
    reject("manifest", "semantic version")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.manifest["rule_id"] = json!("blocklist");
    reject("manifest", "built-in")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.manifest["rule_id"] = json!("someone-else");
    reject("metadata", "night-high-value-spei")(t.upload(&a.key, &u).await);
    let mut u = good.clone();
    u.manifest["params_schema"] =
        json!({"type": "object", "properties": {"weight": {"maximum": 10}}});
    reject("manifest", "params_schema")(t.upload(&a.key, &u).await);

    // Accepted: 201, inactive, signer and digest recorded.
    let (s, v) = t.upload(&a.key, &good).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "inactive");
    assert_eq!(v["rule_id"], "night-high-value-spei");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["signer"], signer.id.as_str());
    let digest = v["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"));
    assert!(
        t.data_dir
            .join("modules")
            .join(format!("{}.wasm", &digest[7..]))
            .exists(),
        "kept in the module store"
    );
    // Versions are immutable.
    let (s, v) = t.upload(&a.key, &good).await;
    assert_eq!(s, 409, "{v}");
    // A revoked key can no longer sign.
    let (s, _) = t
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/signing-keys/{}", signer.id),
            Some(&a.key),
            None,
        )
        .await
        .into_tuple();
    assert_eq!(s, 200);
    let retry = Upload::signed(&signer, &component("structuring"));
    reject("signature", "revoked")(t.upload(&a.key, &retry).await);
    // ... and what it signed can no longer be activated.
    let (s, v) = t
        .post(
            "/api/v1/rules/night-high-value-spei/versions/1.0.0/activate",
            &a.key,
            &json!({"mode": "active"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (409, Some("INVALID_TRANSITION")),
        "{v}"
    );

    // Every upload, accepted or not, and every signer change is audited.
    let (s, v) = t.get("/api/v1/audit?limit=500", &a.key).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "rule.uploaded").count(), 1);
    assert!(
        actions.iter().filter(|a| **a == "rule.rejected").count() >= 17,
        "{actions:?}"
    );
    assert!(actions.contains(&"signing_key.created"));
    assert!(actions.contains(&"signing_key.revoked"));
    let uploaded = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "rule.uploaded")
        .unwrap();
    assert_eq!(uploaded["details"]["digest"], digest.as_str());
    assert_eq!(uploaded["subject"], "night-high-value-spei@1.0.0");
    let (checked, breaks) = t.app.store.verify_audit(None).await.unwrap();
    assert!(checked >= 20);
    assert!(breaks.is_empty(), "{breaks:?}");
    // Tenant B sees none of it.
    let (_, v) = t.get("/api/v1/audit", &b.key).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "signing_key.created"),
        "{v}"
    );
}

trait IntoTuple {
    fn into_tuple(self) -> (reqwest::StatusCode, Value);
}
impl IntoTuple for (reqwest::StatusCode, Value, reqwest::header::HeaderMap) {
    fn into_tuple(self) -> (reqwest::StatusCode, Value) {
        (self.0, self.1)
    }
}

use crate::common::signals;

async fn activate(t: &TestApp, key: &str, rule: &str, version: &str, mode: &str) -> Value {
    let (s, v) = t
        .post(
            &format!("/api/v1/rules/{rule}/versions/{version}/activate"),
            key,
            &json!({ "mode": mode }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn activation_shadow_and_rollback(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    for v in ["tiered-v1", "tiered-v2"] {
        let (s, body) = t
            .upload(&a.key, &Upload::signed(&signer, &component(v)))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    // Nothing runs before activation.
    let (_, v) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert!(
        !signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );

    // v1 active: the next assessment on this node runs it, no restart.
    let act = activate(&t, &a.key, "tiered-amount", "1.0.0", "active").await;
    assert_eq!(act["previous"], Value::Null);
    let (_, v) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert!(
        signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );
    let detail = v["signal_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "tiered_large_amount")
        .unwrap()
        .clone();
    assert_eq!(detail["rule_version"], "1.0.0");
    let (_, v) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(
        !signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );

    // v2 replaces it atomically.
    let act = activate(&t, &a.key, "tiered-amount", "2.0.0", "active").await;
    assert_eq!(act["previous"]["version"], "1.0.0");
    let (_, v) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(
        signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );

    // Rollback to v1.
    activate(&t, &a.key, "tiered-amount", "1.0.0", "active").await;
    let (_, v) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(
        !signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );

    // Shadow: v2 runs beside v1 and is recorded, but never changes the
    // decision; v1 stays active.
    let act = activate(&t, &a.key, "tiered-amount", "2.0.0", "shadow").await;
    assert_eq!(act["previous"], Value::Null, "{act}");
    assert_eq!(
        act["running"],
        json!({"active": "1.0.0", "shadow": "2.0.0"}),
        "{act}"
    );
    let (_, live) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(
        !signals(&live).contains(&"tiered_large_amount".to_owned()),
        "{live}"
    );
    assert_eq!(live["decision"], "approve");
    let session = live["session_id"].as_str().unwrap();
    let (s, explained) = t
        .get(&format!("/api/v1/assessments/{session}"), &a.key)
        .await;
    assert_eq!(s, 200, "{explained}");
    let record = |mode: &str| {
        explained["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule_id"] == "tiered-amount" && r["mode"] == mode)
            .unwrap_or_else(|| panic!("no {mode} record: {explained}"))
            .clone()
    };
    let (active, shadow) = (record("active"), record("shadow"));
    assert_eq!(active["version"], "1.0.0");
    assert_eq!(active["counted"], true);
    assert_eq!(active["signals"], json!([]));
    assert_eq!(shadow["version"], "2.0.0");
    assert_eq!(shadow["counted"], false);
    assert_eq!(shadow["signals"][0]["code"], "tiered_large_amount");
    assert!(shadow["fuel_used"].as_u64().unwrap() > 0);
    assert!(shadow["digest"].as_str().unwrap().starts_with("sha256:"));
    for r in explained["rules"].as_array().unwrap() {
        assert!(r["version"].is_string() && r["outcome"] == "ok", "{r}");
    }

    // Versions list shows what runs.
    let (_, versions) = t.get("/api/v1/rules/tiered-amount/versions", &a.key).await;
    let status: Vec<(&str, &str)> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(status, vec![("1.0.0", "active"), ("2.0.0", "shadow")]);
    assert_eq!(versions["active_version"], "1.0.0");
    assert_eq!(versions["shadow_version"], "2.0.0");
    let (_, list) = t.get("/api/v1/rules", &a.key).await;
    assert!(list["data"].to_string().contains("\"source\":\"builtin\""));
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "tiered-amount")
        .unwrap();
    assert_eq!(
        (&listed["active_version"], &listed["shadow_version"]),
        (&json!("1.0.0"), &json!("2.0.0")),
        "{listed}"
    );

    // Deactivate the shadow version: it stops; the active one keeps deciding.
    let (s, _) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/2.0.0/deactivate",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/2.0.0/deactivate",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (409, Some("INVALID_TRANSITION")),
        "{v}"
    );
    let (_, v) = t.assess(&a.key, &payout_of("15000.00")).await;
    assert!(
        signals(&v).contains(&"tiered_large_amount".to_owned()),
        "{v}"
    );
    let (s, _) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/1.0.0/deactivate",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = t.assess(&a.key, &payout_of("1500.50")).await;
    let (_, explained) = t
        .get(
            &format!("/api/v1/assessments/{}", v["session_id"].as_str().unwrap()),
            &a.key,
        )
        .await;
    assert!(!explained["rules"].to_string().contains("tiered-amount"));
    // A bad mode is a validation error; an unknown version a 404.
    let (s, _) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/2.0.0/activate",
            &a.key,
            &json!({"mode": "loud"}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = t
        .post(
            "/api/v1/rules/tiered-amount/versions/9.9.9/activate",
            &a.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // The audit log has every activation with its digest.
    let (_, v) = t.get("/api/v1/audit?action=rule.activated", &a.key).await;
    let acts = v["data"].as_array().unwrap();
    assert_eq!(acts.len(), 4, "{v}");
    assert!(acts.iter().all(|e| {
        e["details"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    }));
    let (_, v) = t.get("/api/v1/audit?action=rule.deactivated", &a.key).await;
    assert_eq!(v["data"][0]["details"]["version"], "2.0.0");
    assert_eq!(v["data"][0]["details"]["mode"], "shadow");
    assert_eq!(v["data"][1]["details"]["version"], "1.0.0");
}

async fn tenants_never_see_each_others_rules(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let signer = t.signer(&a).await;
    t.upload_and_activate(&a, &signer, &component("tiered-v2"), "active")
        .await;
    let (_, va) = t.assess(&a.key, &payout_of("1500.50")).await;
    assert!(signals(&va).contains(&"tiered_large_amount".to_owned()));
    // A's rule never runs for B.
    let (_, vb) = t.assess(&b.key, &payout_of("1500.50")).await;
    assert!(
        !signals(&vb).contains(&"tiered_large_amount".to_owned()),
        "{vb}"
    );
    // B cannot list, read, activate, deactivate or backtest A's rule.
    let (_, list) = t.get("/api/v1/rules", &b.key).await;
    assert!(!list.to_string().contains("tiered-amount"));
    for (method, path) in [
        ("GET", "/api/v1/rules/tiered-amount/versions"),
        ("GET", "/api/v1/rules/tiered-amount/versions/2.0.0"),
        (
            "POST",
            "/api/v1/rules/tiered-amount/versions/2.0.0/activate",
        ),
        (
            "POST",
            "/api/v1/rules/tiered-amount/versions/2.0.0/deactivate",
        ),
        ("POST", "/api/v1/rules/tiered-amount/deactivate"),
        (
            "POST",
            "/api/v1/rules/tiered-amount/versions/2.0.0/backtest",
        ),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (s, v, _) = t.request(m, path, Some(&b.key), Some(&json!({}))).await;
        assert_eq!(s, 404, "{method} {path}: {v}");
    }
    // Nor A's assessments, signing keys or simulation candidates.
    let session = va["session_id"].as_str().unwrap();
    let (s, _) = t
        .get(&format!("/api/v1/assessments/{session}"), &b.key)
        .await;
    assert_eq!(s, 404);
    let (s, _) = t
        .post(
            &format!("/api/v1/assessments/{session}/replay"),
            &b.key,
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, keys) = t.get("/api/v1/signing-keys", &b.key).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 0);
    let (s, _) = t
        .get(&format!("/api/v1/signing-keys/{}", signer.id), &b.key)
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = t
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/signing-keys/{}", signer.id),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let mut sim = payout_of("1500.50");
    sim["rule_overrides"] = json!([{"rule_id": "tiered-amount", "version": "2.0.0"}]);
    let (s, v) = t.post("/api/v1/simulation/payout", &b.key, &sim).await;
    assert_eq!(s, 400, "{v}");
    // B's pipeline cannot name A's rule either.
    let (s, v, _) = t
        .request(
            reqwest::Method::PUT,
            "/api/v1/pipeline",
            Some(&b.key),
            Some(&json!({"payout": {"rules": [{"rule_id": "tiered-amount"}]}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // Permissions: an integration key cannot upload or read rules.
    let integration = t.key(&a, "secret", "integration").await;
    let (s, _) = t.get("/api/v1/rules", &integration).await;
    assert_eq!(s, 403);
    let (s, _) = t
        .upload(
            &integration,
            &Upload::signed(&signer, &component("tiered-v1")),
        )
        .await;
    assert_eq!(s, 403);
}

/// A rule built against WIT 0.1.0, before the context became an argument
/// of `evaluate`, uploads, activates and assesses: its calls to the host's
/// list lookup and history are answered from the prefetched snapshot.
async fn wit_0_1_rule_still_assesses(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    let v = t
        .upload_and_activate(&a, &signer, &component("wit-v0-1"), "active")
        .await;
    assert_eq!(v["rule_id"], "legacy-context");
    let legacy = |v: &Value| -> Vec<String> {
        v["signal_details"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["code"].as_str().unwrap().starts_with("legacy_"))
            .map(|d| format!("{}: {}", d["code"], d["description"]))
            .collect()
    };
    let p = payout_of("1500.50");
    for prior in 0..2 {
        let (s, v) = t.assess(&a.key, &p).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            legacy(&v),
            vec![format!(r#""legacy_history": "{prior} prior transfers""#)],
            "{v}"
        );
    }
    let (s, e) = t
        .post(
            "/api/v1/blocklists",
            &a.key,
            &json!({"list_type": "clabe", "value": "032180000118359719", "flow_scope": "payout",
                    "severity": "block"}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (s, v) = t.assess(&a.key, &p).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "decline");
    assert_eq!(
        legacy(&v),
        vec![
            format!(
                r#""legacy_list_hit": "entry {}""#,
                e["id"].as_str().unwrap()
            ),
            r#""legacy_history": "2 prior transfers""#.to_owned(),
        ],
        "{v}"
    );
}

/// Upload verification and pipeline validation are services: called
/// without HTTP (as the CLI and operator API would), they check, store and
/// audit exactly as the endpoints do.
async fn upload_and_pipeline_services_without_http(db: Db) {
    use aduana_host::{
        flows::Payout,
        registry::{
            configure::{FlowRequest, FlowUpdate, PipelineError},
            upload::{UploadError, UploadParts, rejected},
        },
    };
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let signer = t.signer(&a).await;
    let module = component("night-spei");
    let good = Upload::signed(&signer, &module);
    let parts = |u: &Upload| UploadParts {
        module: Some(u.module.clone()),
        signature: Some(u.signature.clone().into_bytes()),
        key_id: Some(u.key_id.clone()),
        manifest: Some(u.manifest.to_string()),
    };
    let rules = &t.app.rules;
    let audits = t.count("audit_log", &a).await;

    // A tampered module: refused by the signature check, and audited.
    let mut tampered = good.clone();
    tampered.module.push(0);
    match rules.upload(&a.id, "cli", Ok(parts(&tampered))).await {
        Err(UploadError::Rejected(r)) => assert_eq!(r.check, "signature", "{}", r.reason),
        other => panic!("expected a signature rejection, got {other:?}"),
    }
    // A rejection found while reading the parts is audited the same way.
    match rules
        .upload(&a.id, "cli", Err(rejected("request", "not multipart")))
        .await
    {
        Err(UploadError::Rejected(r)) => assert_eq!(r.check, "request"),
        other => panic!("expected a request rejection, got {other:?}"),
    }
    assert_eq!(t.count("audit_log", &a).await, audits + 2);

    // Accepted, stored inactive; the same version again is a duplicate.
    let uploaded = rules
        .upload(&a.id, "cli", Ok(parts(&good)))
        .await
        .expect("accepted");
    let rule_id = uploaded.record.rule_id.clone();
    assert_eq!(uploaded.record.uploaded_by, "cli");
    assert!(matches!(
        rules.upload(&a.id, "cli", Ok(parts(&good))).await,
        Err(UploadError::Duplicate(_))
    ));
    let (s, v) = t.get("/api/v1/rules", &a.key).await;
    assert_eq!(s, 200);
    assert!(v.to_string().contains(&rule_id), "{v}");

    // Pipeline validation: an unknown rule is refused with its JSON path
    // and nothing is stored.
    let revision = t.get("/api/v1/pipeline", &a.key).await.1["revision"].clone();
    let request = |rules: Value| -> FlowRequest {
        serde_json::from_value(json!({ "rules": rules })).expect("request")
    };
    match rules
        .replace_pipelines(
            &a.id,
            "cli",
            vec![FlowUpdate::new::<Payout>(request(
                json!([{"rule_id": "no-such-rule"}]),
            ))],
        )
        .await
    {
        Err(PipelineError::Invalid { field, message }) => {
            assert_eq!(field, "payout.rules[0].rule_id");
            assert!(message.contains("no-such-rule"), "{message}");
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(
        t.get("/api/v1/pipeline", &a.key).await.1["revision"],
        revision
    );
    // A valid one (the uploaded rule, inactive so not running, and a
    // built-in configured by a shortcut) is stored and is what the
    // endpoint then shows.
    let mut valid = request(json!([{"rule_id": rule_id}, {"rule_id": "high-risk-country"}]));
    valid.high_risk_countries = serde_json::from_value(json!({"black_list": ["kp"]})).unwrap();
    rules
        .replace_pipelines(&a.id, "cli", vec![FlowUpdate::new::<Payout>(valid)])
        .await
        .expect("stored");
    let (_, v) = t.get("/api/v1/pipeline", &a.key).await;
    assert_eq!(v["payout"]["customized"], true, "{v}");
    let ids: Vec<&str> = v["payout"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["high-risk-country"], "{v}");
    assert_eq!(
        v["payout"]["high_risk_countries"]["black_list"],
        json!(["KP"])
    );
}

crate::both_backends!(
    upload_and_pipeline_services_without_http,
    wit_0_1_rule_still_assesses,
    signers_and_upload_checks,
    activation_shadow_and_rollback,
    tenants_never_see_each_others_rules,
);
