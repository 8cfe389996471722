//! Group commit: concurrent assessments share transactions, and nothing
//! about that is visible to a caller: every acknowledged assessment is
//! stored once with its history, idempotency record and outbox row,
//! tenants stay apart inside one batch, and one failing write fails alone.
use std::{collections::BTreeMap, time::Duration};

use aduana_host::store::{AssessmentWrite, CommitOutcome, StoreError};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Db, TestApp, TestTenant, clean_payload};

fn payload(origin: &str, beneficiary: &str) -> Value {
    let mut p = clean_payload();
    p["origin"]["account_id"] = json!(origin);
    p["beneficiary"]["id"] = json!(beneficiary);
    p
}

/// No velocity asked (payouts have none).
const NO_VELOCITY: aduana_host::store::VelocityQuery<'static> = aduana_host::store::VelocityQuery {
    keys: &[],
    windows_ms: [0; 3],
};

async fn transfers(t: &TestApp, tenant: &TestTenant, origin: &str, beneficiary: &str) -> i64 {
    let origin = format!("acct:{origin}");
    let beneficiary = format!("id:{beneficiary}");
    let read = t
        .app
        .store
        .assess_context(
            &tenant.id,
            "payout",
            &[],
            Some((&origin, &beneficiary)),
            &NO_VELOCITY,
            aduana_host::domain::now_ms(),
        )
        .await
        .unwrap();
    read.history.map_or(0, |h| h.transfers)
}

async fn concurrent_assessments_are_each_stored_once(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let b = t.tenant().await;
    let mut requests = Vec::new();
    // 20 transfers on one origin → beneficiary pair: one history row,
    // counted 20 times even when many of them share a batch.
    for _ in 0..20 {
        requests.push((a.key.clone(), payload("acct_hot", "ben_hot")));
    }
    // 20 distinct pairs of A, and the same ids under tenant B.
    for i in 0..20 {
        let p = payload(&format!("acct_{i}"), &format!("ben_{i}"));
        requests.push((a.key.clone(), p.clone()));
        requests.push((b.key.clone(), p));
    }
    // 10 duplicates of one idempotent request, and 5 requests that reuse
    // another key with different bodies.
    let mut same = payload("acct_idem", "ben_idem");
    same["idempotency_key"] = json!("gc-same");
    for _ in 0..10 {
        requests.push((a.key.clone(), same.clone()));
    }
    for i in 0..5 {
        let mut p = payload("acct_reuse", &format!("ben_reuse_{i}"));
        p["idempotency_key"] = json!("gc-reuse");
        requests.push((a.key.clone(), p));
    }
    let answers = t.assess_concurrently(requests).await;

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (s, v) in &answers {
        *statuses.entry(s.as_u16()).or_default() += 1;
        if *s == 409 {
            assert_eq!(v["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "{v}");
        } else {
            assert_eq!(*s, 200, "{v}");
        }
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 71), (409, 4)]),
        "every request answered; 4 reuses of `gc-reuse` refused"
    );
    let idem_sessions: std::collections::BTreeSet<&str> = answers[60..70]
        .iter()
        .map(|(_, v)| v["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(idem_sessions.len(), 1, "duplicates share one session");

    // A: 20 hot + 20 distinct + 1 idempotent + 1 reused key; B: 20.
    assert_eq!(t.count("assessments", &a).await, 42);
    assert_eq!(t.count("outbox", &a).await, 42);
    assert_eq!(t.count("idempotency_keys", &a).await, 2);
    assert_eq!(t.count("beneficiary_history", &a).await, 23);
    assert_eq!(t.count("assessments", &b).await, 20);
    assert_eq!(t.count("outbox", &b).await, 20);
    assert_eq!(t.count("beneficiary_history", &b).await, 20);
    assert_eq!(transfers(&t, &a, "acct_hot", "ben_hot").await, 20);
    assert_eq!(transfers(&t, &a, "acct_idem", "ben_idem").await, 1);
    assert_eq!(transfers(&t, &a, "acct_7", "ben_7").await, 1);
    assert_eq!(transfers(&t, &b, "acct_7", "ben_7").await, 1);
    assert_eq!(transfers(&t, &b, "acct_hot", "ben_hot").await, 0);
    // Every acknowledged session is readable, by its own tenant only.
    for (i, (s, v)) in answers.iter().enumerate() {
        if *s != 200 {
            continue;
        }
        let session = v["session_id"].as_str().unwrap();
        let owner = if (20..60).contains(&i) && i % 2 == 1 {
            &b
        } else {
            &a
        };
        let other = if owner.id == a.id { &b } else { &a };
        assert!(
            t.app
                .store
                .assessment(&owner.id, session)
                .await
                .unwrap()
                .is_some(),
            "{session} stored"
        );
        assert!(
            t.app
                .store
                .assessment(&other.id, session)
                .await
                .unwrap()
                .is_none(),
            "{session} invisible to the other tenant"
        );
    }
}

fn write(tenant: &TestTenant, session: &str, beneficiary: &str) -> AssessmentWrite {
    let now = aduana_host::domain::now_ms();
    AssessmentWrite {
        session_id: session.to_owned(),
        tenant_id: tenant.id.clone(),
        flow: "payout".to_owned(),
        decision: "approve".to_owned(),
        risk_score: 0,
        payment_id: None,
        input: "{}".to_owned(),
        context: "{}".to_owned(),
        rules: "[]".to_owned(),
        thresholds: "{}".to_owned(),
        response: "{}".to_owned(),
        created_at: now,
        idempotency: None,
        history: Some(("acct:gc".to_owned(), format!("id:{beneficiary}"))),
        velocity: Vec::new(),
        outbox: Some(aduana_host::store::OutboxRow {
            id: format!("evt_{session}"),
            event: "transaction.created".to_owned(),
            payload: "{}".to_owned(),
        }),
    }
}

/// Holds the database's write lock from another connection until dropped
/// by `release`, so writes queue up and the next batch carries them all.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(t: &TestApp) -> Self {
        match t.db {
            Db::Sqlite => {
                let path = t.data_dir.join("aduana.db");
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                Self::Sqlite(c)
            }
            Db::Postgres => {
                let url = t.database_url.clone().unwrap();
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut c).await.unwrap();
                sqlx::query("LOCK TABLE assessments IN EXCLUSIVE MODE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                Self::Postgres(c)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
            Self::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}

async fn a_failing_write_fails_alone(db: Db) {
    let t = TestApp::start(db).await;
    let a = t.tenant().await;
    let store = t.app.store.clone();
    assert!(matches!(
        store
            .commit_assessment(write(&a, "ps_taken", "ben_x"))
            .await
            .unwrap(),
        CommitOutcome::Committed
    ));

    let lock = WriteLock::take(&t).await;
    // The first write takes the drainer and waits on the lock; the next
    // ones queue behind it and form one batch, the taken session among them.
    let first = tokio::spawn({
        let store = store.clone();
        let w = write(&a, "ps_first", "ben_y");
        async move { store.commit_assessment(w).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut batch = Vec::new();
    for i in 0..9 {
        let session = if i == 4 {
            "ps_taken".to_owned()
        } else {
            format!("ps_b{i}")
        };
        let store = store.clone();
        let w = write(&a, &session, "ben_y");
        batch.push((
            session,
            tokio::spawn(async move { store.commit_assessment(w).await }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.release().await;

    assert!(matches!(
        first.await.unwrap().unwrap(),
        CommitOutcome::Committed
    ));
    for (session, task) in batch {
        let outcome = task.await.unwrap();
        if session == "ps_taken" {
            assert!(matches!(outcome, Err(StoreError::Duplicate)), "{outcome:?}");
        } else {
            assert!(
                matches!(outcome, Ok(CommitOutcome::Committed)),
                "{session}: {outcome:?}"
            );
            assert!(store.assessment(&a.id, &session).await.unwrap().is_some());
        }
    }
    // 1 + 1 + 8 stored; the failed write left nothing behind.
    assert_eq!(t.count("assessments", &a).await, 10);
    assert_eq!(t.count("outbox", &a).await, 10);
    let read = store
        .assess_context(
            &a.id,
            "payout",
            &[],
            Some(("acct:gc", "id:ben_y")),
            &NO_VELOCITY,
            aduana_host::domain::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(read.history.map(|h| h.transfers), Some(9));
}

crate::both_backends!(
    concurrent_assessments_are_each_stored_once,
    a_failing_write_fails_alone
);
