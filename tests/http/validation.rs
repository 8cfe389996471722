//! Bad input gets the documented error body and writes nothing.
use serde_json::{Value, json};

use crate::common::{Db, TestApp, clean_payload};

fn with(mut base: Value, path: &[&str], v: Value) -> Value {
    let mut cur = &mut base;
    for (i, p) in path.iter().enumerate() {
        if i == path.len() - 1 {
            cur[*p] = v.clone();
        } else {
            cur = &mut cur[*p];
        }
    }
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

async fn rejects_bad_payout_requests(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let p = clean_payload;
    let cases: Vec<(Value, &str)> = vec![
        (without(p(), "amount"), "amount"),
        (without(p(), "currency"), "currency"),
        (without(p(), "beneficiary"), "beneficiary"),
        (
            with(p(), &["beneficiary"], json!({"swift_bic": "BNMXMXMM"})),
            "beneficiary",
        ),
        (with(p(), &["amount"], json!(-5)), "amount"),
        (with(p(), &["amount"], json!("12.345")), "amount"),
        (with(p(), &["amount"], json!("abc")), "amount"),
        (with(p(), &["amount"], json!(true)), "amount"),
        (with(p(), &["amount"], json!("1e40")), "amount"),
        (
            with(
                with(p(), &["amount_unit"], json!("minor")),
                &["amount"],
                json!(10.5),
            ),
            "amount",
        ),
        (with(p(), &["amount_unit"], json!("cents")), "amount_unit"),
        (with(p(), &["amount_unit"], json!(5)), "amount_unit"),
        (with(p(), &["currency"], json!("XYZ")), "currency"),
        (
            with(
                with(p(), &["currency"], json!("CLP")),
                &["amount"],
                json!("10.5"),
            ),
            "amount",
        ),
        (
            with(p(), &["beneficiary", "country"], json!("ZZ")),
            "beneficiary.country",
        ),
        (
            with(p(), &["beneficiary", "country"], json!("MEX")),
            "beneficiary.country",
        ),
        (
            with(p(), &["origin", "country"], json!("XX")),
            "origin.country",
        ),
        (
            with(p(), &["beneficiary", "name"], json!(42)),
            "beneficiary.name",
        ),
        (
            with(p(), &["payout", "channel"], json!("carrier-pigeon")),
            "payout.channel",
        ),
        (
            with(p(), &["payout", "first_to_beneficiary"], json!("yes")),
            "payout.first_to_beneficiary",
        ),
        (with(p(), &["metadata"], json!([1, 2])), "metadata"),
        (json!([1, 2, 3]), "body"),
    ];
    for (body, field) in cases {
        let (s, v) = t.assess(&a.key, &body).await;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR", "{body} → {v}");
        assert_eq!(v["error"]["details"]["field"], field, "{body} → {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // KWD allows three decimals; unknown fields are ignored; the rail alias works.
    let ok = with(
        with(
            with(p(), &["currency"], json!("KWD")),
            &["amount"],
            json!("10.125"),
        ),
        &["surprise"],
        json!({"x": 1}),
    );
    let ok = with(
        ok,
        &["payout"],
        json!({"rail": "wire", "initiated_by": "ana@bank.kw"}),
    );
    let (s, v) = t.assess(&a.key, &ok).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["amount"],
        json!({"minor": 10125, "major": "10.125", "currency": "KWD"})
    );

    // Malformed JSON and oversized bodies.
    let resp = t
        .client
        .post(format!("{}/api/v1/assess/payout", t.base))
        .bearer_auth(&a.key)
        .header("content-type", "application/json")
        .body("{\"amount\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
    let big = json!({"amount": 1, "currency": "MXN", "beneficiary": {"name": "x"}, "metadata": {"pad": "x".repeat(70_000)}});
    let (s, v) = t.assess(&a.key, &big).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["code"], "PAYLOAD_TOO_LARGE");
    // Nothing was written by any rejected request.
    assert_eq!(t.count("assessments", &a).await, 1);
    assert_eq!(t.count("outbox", &a).await, 1);
}

async fn amounts_are_exact(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    for (amount, unit, minor, major) in [
        (json!(25000.00), "major", 2500000, "25000.00"),
        (json!("0.10"), "major", 10, "0.10"),
        (json!(0.3), "major", 30, "0.30"),
        (
            json!(123456789012.99),
            "major",
            12345678901299_u64,
            "123456789012.99",
        ),
        (json!(7), "minor", 7, "0.07"),
        (
            json!("99999999999999"),
            "minor",
            99999999999999_u64,
            "999999999999.99",
        ),
    ] {
        let mut p = clean_payload();
        p["amount"] = amount.clone();
        p["amount_unit"] = json!(unit);
        let (s, v) = t.assess(&a.key, &p).await;
        assert_eq!(s, 200, "{amount} {unit}: {v}");
        assert_eq!(v["amount"]["minor"], json!(minor), "{amount} {unit}");
        assert_eq!(v["amount"]["major"], major, "{amount} {unit}");
    }
    // The amount's text, number or string, is digits with an optional
    // decimal part: nothing a client could read differently.
    let body = |amount: &str, unit: Option<&str>| {
        let unit = unit.map_or(String::new(), |u| format!(r#""amount_unit": "{u}", "#));
        format!(
            r#"{{"amount": {amount}, {unit}"currency": "MXN", "beneficiary": {{"name": "Proveedor SA", "country": "MX"}}}}"#
        )
    };
    let send = |text: String| {
        let req = t
            .client
            .post(format!("{}/api/v1/assess/payout", t.base))
            .bearer_auth(&a.key)
            .header("content-type", "application/json")
            .body(text);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let before = t.count("assessments", &a).await;
    for (amount, unit) in [
        ("1e5", Some("major")),
        ("1E+5", None),
        (r#""1e5""#, Some("major")),
        (r#"" 100""#, None),
        (r#""12_3""#, None),
        (r#""+5""#, Some("major")),
        ("-0", None),
        (r#""1,000.00""#, Some("major")),
    ] {
        let (s, v) = send(body(amount, unit)).await;
        assert_eq!(s, 400, "{amount}: {v}");
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR", "{amount}: {v}");
        assert_eq!(v["error"]["details"]["field"], "amount", "{amount}: {v}");
    }
    // The documented example without `amount_unit`: refused with the fix,
    // never assessed as 1/100 of the money.
    for amount in [r#""25000.00""#, "25000.00", r#""100.0""#] {
        let (s, v) = send(body(amount, None)).await;
        assert_eq!(s, 400, "{amount}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("send minor units as an integer")
                && message.contains("set amount_unit to `major`"),
            "{message}"
        );
        let (s, v) = send(body(amount, Some("minor"))).await;
        assert_eq!(s, 400, "{amount} explicit minor: {v}");
    }
    assert_eq!(t.count("assessments", &a).await, before);
    let (s, v) = send(body(r#""25000.00""#, Some("major"))).await;
    assert_eq!(
        (s.as_u16(), &v["amount"]["minor"]),
        (200, &json!(2_500_000)),
        "{v}"
    );
}

crate::both_backends!(rejects_bad_payout_requests, amounts_are_exact);
