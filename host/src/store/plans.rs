//! The query plans of the reads every assessment makes, so a test (or an
//! operator) can check that each is an exact index probe on both backends.
//! A plan that scans a table grows with the table: with a million
//! blocklist entries, one such query turned 2,000 assess/s into 11.
use sqlx::Row;

use super::{Backend, Store, StoreError, assessments, keys, webhooks};

/// One query and its plan, as the backend prints it.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    pub query: &'static str,
    pub plan: String,
}

/// A parameter of a planned query.
enum Bind {
    Text(&'static str),
    Owned(String),
    Int(i64),
}

impl Store {
    /// Plans of the per-assess reads: the payout context (five identifiers
    /// and the history), a pay-in context (an e-mail and an IP's networks),
    /// the velocity counts, the idempotency lookup and the key lookup. On PostgreSQL
    /// sequential scans are disabled while planning, so a small test table
    /// still shows whether an index *can* answer the query exactly.
    pub async fn assess_query_plans(&self) -> Result<Vec<QueryPlan>, StoreError> {
        use Bind::{Int, Text};
        let mut context_binds = vec![Text("ten_plan"), Int(0), Text("payout")];
        for (t, v) in [
            ("clabe", "032180000118359719"),
            ("iban", "DE89370400440532013000"),
            ("account_hash", "ab12"),
            ("swift_bic", "BNMXMXMM"),
            ("beneficiary_id", "ben_1"),
        ] {
            context_binds.push(Text(t));
            context_binds.push(Text(v));
        }
        context_binds.push(Text("acct_1"));
        context_binds.push(Text("ben_1"));
        let context = assessments::context_sql(&[1; 5], true, 0, false).unwrap_or_default();
        // A pay-in: an e-mail, and an IPv4 address with its 33 networks.
        let mut payin_binds = vec![Text("ten_plan"), Int(0), Text("payin")];
        payin_binds.extend([Text("email"), Text("ana@example.com"), Text("ip_range")]);
        let networks: Vec<String> = (0..=32).map(|len| format!("10.0.0.0/{len}")).collect();
        payin_binds.extend(networks.into_iter().map(Bind::Owned));
        let payin = assessments::context_sql(&[1, 33], false, 0, true).unwrap_or_default();
        let velocity = assessments::context_sql(&[], false, 2, false).unwrap_or_default();
        let velocity_binds = vec![
            Text("ten_plan"),
            Int(1),
            Int(2),
            Int(3),
            Int(4),
            Text("customer"),
            Text("00"),
            Text("ip"),
            Text("11"),
        ];
        let queries: [(&'static str, String, Vec<Bind>); 5] = [
            ("assess_context", context, context_binds),
            ("assess_context_payin", payin, payin_binds),
            ("velocity_counts", velocity, velocity_binds),
            (
                "idempotency_lookup",
                assessments::IDEMPOTENCY_LOOKUP.to_owned(),
                vec![Text("ten_plan"), Text("assess_payout"), Text("k"), Int(0)],
            ),
            ("key_by_hash", keys::key_by_hash_sql(), vec![Text("0000")]),
        ];
        let mut plans = Vec::new();
        for (query, sql, binds) in queries {
            plans.push(QueryPlan {
                query,
                plan: self.explain(&sql, binds).await?,
            });
        }
        Ok(plans)
    }

    /// Plan of the delivery worker's "is anything outside the busy
    /// endpoints due?" read (one busy endpoint).
    pub async fn webhook_due_plan(&self) -> Result<QueryPlan, StoreError> {
        Ok(QueryPlan {
            query: "webhook_due_outside_busy",
            plan: self
                .explain(
                    &webhooks::due_outside_sql(1),
                    vec![Bind::Int(0), Bind::Text("whe_busy")],
                )
                .await?,
        })
    }

    /// Plans of the delivery worker's parking sweep: which disabled
    /// endpoints have pending deliveries, and the parking of one.
    pub async fn webhook_park_plans(&self) -> Result<Vec<QueryPlan>, StoreError> {
        Ok(vec![
            QueryPlan {
                query: "webhook_parkable_endpoints",
                plan: self.explain(webhooks::PARKABLE_ENDPOINTS, vec![]).await?,
            },
            QueryPlan {
                query: "webhook_park_endpoint",
                plan: self
                    .explain(webhooks::PARK_ENDPOINT, vec![Bind::Text("whe_off")])
                    .await?,
            },
        ])
    }

    async fn explain(&self, sql: &str, binds: Vec<Bind>) -> Result<String, StoreError> {
        let prefix = match self.backend {
            Backend::Sqlite => "EXPLAIN QUERY PLAN ",
            Backend::Postgres => "EXPLAIN ",
        };
        let text = format!("{prefix}{sql}");
        let mut q = sqlx::query(&text);
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Owned(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await?;
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        let lines: Result<Vec<String>, sqlx::Error> = rows
            .iter()
            .map(|r| match self.backend {
                Backend::Sqlite => r.try_get::<String, _>("detail"),
                Backend::Postgres => r.try_get::<String, _>(0),
            })
            .collect();
        Ok(lines?.join("\n"))
    }
}
