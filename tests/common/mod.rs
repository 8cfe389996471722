//! Shared test harness: starts the real app on a loopback port with a fresh
//! database (a SQLite file in a temp dir, or a freshly created PostgreSQL
//! database), and talks to it over real HTTP.
//!
//! PostgreSQL is required: set `ADUANA_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). A missing server fails
//! the PostgreSQL tests loudly; it is never skipped.
#![allow(dead_code)]

pub mod spec;

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use aduana_host::{
    App, Config,
    builtins::COMPONENTS_DIR,
    domain::{ids::object_id, now_ms},
    keys::{KeyRequest, create_key},
    runtime::{Runtime, RuntimeLimits},
    store::Tenant,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("ADUANA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The misbehaving test guests, by file name.
pub fn guest(name: &str) -> Vec<u8> {
    let path = PathBuf::from(COMPONENTS_DIR).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One runtime per test process: compiling the components once keeps the
/// suite fast; every evaluation still gets a fresh instance.
pub fn shared_runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    Arc::clone(RT.get_or_init(|| {
        let limits = RuntimeLimits {
            pool_instances: 64,
            ..RuntimeLimits::default()
        };
        Arc::new(Runtime::new(limits).expect("runtime"))
    }))
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn create_pg_database() -> (String, String) {
    let admin = pg_admin_url();
    let name = format!("aduana_test_{}", object_id("db").trim_start_matches("db_"));
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for the test suite and is unreachable at {admin}: {e}")
        });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(b, _)| b)
        .to_owned();
    (format!("{base}/{name}"), name)
}

pub fn drop_pg_database(name: String) {
    let admin = pg_admin_url();
    // Drop runs outside any runtime: use a short-lived one of our own.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        }
    })
    .join();
}

/// Test keys are unlimited, so suites never trip the default rate limit;
/// the rate-limit test sets its own.
pub fn key_request(kind: &str, role: &str) -> KeyRequest {
    KeyRequest {
        kind: Some(kind.to_owned()),
        role: Some(role.to_owned()),
        rate_limit_per_minute: Some(None),
        ..KeyRequest::default()
    }
}

/// A running app on a fresh database.
pub struct TestApp {
    pub db: Db,
    pub base: String,
    pub app: App,
    pub client: reqwest::Client,
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    _tmp: tempfile::TempDir,
    pg_name: Option<String>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(name);
        }
    }
}

/// The operator token of test apps.
pub const OPERATOR_TOKEN: &str = "op_test_token_0123456789";

/// A tenant with its admin key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub key: String,
}

impl TestApp {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, &[]).await
    }

    /// Starts with extra components loaded next to the built-ins.
    pub async fn start_with(db: Db, extra: &[&[u8]]) -> Self {
        Self::start_configured(db, extra, |_| {}).await
    }

    /// Starts with `adjust` applied to the configuration (the operator token
    /// is [`OPERATOR_TOKEN`] unless `adjust` changes it).
    pub async fn start_configured(
        db: Db,
        extra: &[&[u8]],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_on(db, shared_runtime(), extra, adjust).await
    }

    /// Starts on a runtime of its own with `limits` (slower: the built-in
    /// rules are compiled again).
    pub async fn start_with_limits(db: Db, limits: RuntimeLimits) -> Self {
        let runtime = Arc::new(Runtime::new(limits).expect("runtime"));
        Self::start_on(db, runtime, &[], |_| {}).await
    }

    async fn start_on(
        db: Db,
        runtime: Arc<Runtime>,
        extra: &[&[u8]],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (database_url, pg_name) = match db {
            Db::Sqlite => (None, None),
            Db::Postgres => {
                let (url, name) = create_pg_database().await;
                (Some(url), Some(name))
            }
        };
        let data_dir = tmp.path().join("data");
        let mut config = Config::for_database(database_url.clone(), data_dir.clone());
        config.operator_token = Some(OPERATOR_TOKEN.to_owned());
        adjust(&mut config);
        let app = App::build_with(config, runtime, extra).await.expect("app");
        let server = app.clone().serve().await.expect("serve");
        Self {
            db,
            base: format!("http://{}", server.addr),
            app,
            client: reqwest::Client::new(),
            database_url,
            data_dir,
            _tmp: tmp,
            pg_name,
            server: server.handle,
        }
    }

    /// Creates a tenant and an admin key through the library (the CLI path
    /// has its own test).
    pub async fn tenant(&self) -> TestTenant {
        let t = Tenant {
            id: object_id("ten"),
            name: "Banco de Pruebas".into(),
            organization_type: "banco".into(),
            settings: "{}".into(),
            rules_revision: 0,
            created_at: now_ms(),
        };
        self.app.store.create_tenant(&t).await.expect("tenant");
        let key = create_key(&self.app.store, &t.id, key_request("secret", "admin"))
            .await
            .expect("store")
            .expect("valid key request");
        TestTenant {
            id: t.id,
            key: key.api_key,
        }
    }

    /// Creates another key for `tenant`.
    pub async fn key(&self, tenant: &TestTenant, kind: &str, role: &str) -> String {
        create_key(&self.app.store, &tenant.id, key_request(kind, role))
            .await
            .expect("store")
            .expect("valid key request")
            .api_key
    }

    /// Sends a request and checks the answer against the OpenAPI document
    /// ([`spec::check_response`]).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("http");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        check(method.as_str(), path, status, &headers, &value);
        (status, value, headers)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .request(Method::POST, path, Some(key), Some(body))
            .await;
        (s, v)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.request(Method::GET, path, Some(key), None).await;
        (s, v)
    }

    pub async fn assess(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        self.post("/api/v1/assess/payout", key, body).await
    }

    /// Sends every `(key, body)` assessment at once, each from its own task,
    /// and returns the answers in request order.
    pub async fn assess_concurrently(
        &self,
        requests: Vec<(String, Value)>,
    ) -> Vec<(StatusCode, Value)> {
        let url = format!("{}/api/v1/assess/payout", self.base);
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(key, body)| {
                let send = self.client.post(&url).bearer_auth(key).json(&body).send();
                tokio::spawn(async move {
                    let r = send.await.expect("assess request");
                    let (status, headers) = (r.status(), r.headers().clone());
                    let value = r.json::<Value>().await.expect("JSON answer");
                    check("POST", "/api/v1/assess/payout", status, &headers, &value);
                    (status, value)
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await.expect("assess task"));
        }
        answers
    }

    /// Replaces a tenant's settings and waits out the 1 s auth cache, after
    /// which every request of the tenant sees them.
    pub async fn set_settings(&self, tenant: &TestTenant, settings: &Value) {
        self.app
            .store
            .set_tenant_settings(&tenant.id, &settings.to_string())
            .await
            .expect("settings");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }

    /// A connection of the test's own to the server's database, for what
    /// the API cannot do (injecting a failure with a trigger).
    pub async fn raw_pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/aduana.db", self.data_dir.display()),
        };
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("raw database connection")
    }

    /// Makes every insert into `table` fail (a trigger named
    /// `inject_failure`), through `raw` ([`Self::raw_pool`]).
    pub async fn inject_insert_failure(&self, raw: &sqlx::AnyPool, table: &str) {
        use sqlx::Executor;
        let statements = match self.db {
            Db::Sqlite => vec![format!(
                "CREATE TRIGGER inject_failure BEFORE INSERT ON {table} \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )],
            Db::Postgres => vec![
                "CREATE FUNCTION inject_failure() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER inject_failure BEFORE INSERT ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION inject_failure()"
                ),
            ],
        };
        for sql in statements {
            raw.execute(sql.as_str()).await.expect("inject a failure");
        }
    }

    /// Removes [`Self::inject_insert_failure`]'s trigger from `table`.
    pub async fn remove_insert_failure(&self, raw: &sqlx::AnyPool, table: &str) {
        use sqlx::Executor;
        let sql = match self.db {
            Db::Sqlite => "DROP TRIGGER inject_failure".to_owned(),
            Db::Postgres => format!("DROP TRIGGER inject_failure ON {table}"),
        };
        raw.execute(sql.as_str()).await.expect("remove the failure");
    }

    pub async fn count(&self, table: &str, tenant: &TestTenant) -> i64 {
        self.app
            .store
            .count_rows(table, &tenant.id)
            .await
            .expect("count")
    }
}

/// The codes in an assess answer's `signals`.
pub fn signals(v: &Value) -> Vec<String> {
    v["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .map(|s| s.as_str().expect("code").to_owned())
        .collect()
}

/// Runs each listed `async fn name(db: Db)` once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Postgres).await
                }
            )*
        }
    };
}

/// The documented example payload (its CLABE fails the check digit).
pub fn example_payload() -> Value {
    serde_json::json!({
        "amount": 25000.00, "amount_unit": "major", "currency": "MXN",
        "transaction_type": "payout",
        "beneficiary": { "id": "ben_core_001", "name": "Beneficiary SA", "country": "MX",
                         "clabe": "012180001234567890", "iban": null, "swift_bic": null, "account_hash": null },
        "origin": { "account_id": "acct_orig_01", "country": "MX" },
        "payout": { "channel": "spei", "rail": "spei", "initiated_by": "ops@bank.com", "first_to_beneficiary": false },
        "payment_id": "core-tx-991", "customer_id": "party-17",
        "metadata": { "any": "json" }
    })
}

/// A clean domestic payout: valid CLABE, attributed, core says not first.
pub fn clean_payload() -> Value {
    serde_json::json!({
        "amount": "1500.50", "amount_unit": "major", "currency": "MXN",
        "beneficiary": { "id": "ben_clean", "name": "Proveedor SA", "country": "MX",
                         "clabe": "032180000118359719" },
        "origin": { "account_id": "acct_clean", "country": "MX" },
        "payout": { "channel": "spei", "initiated_by": "maria@bank.mx", "first_to_beneficiary": false }
    })
}

/// A registered signing key and its secret seed.
#[derive(Debug, Clone)]
pub struct Signer {
    pub id: String,
    pub secret: String,
    pub public: String,
}

/// What an upload sends, before it is sent.
#[derive(Debug, Clone)]
pub struct Upload {
    pub module: Vec<u8>,
    pub signature: String,
    pub key_id: String,
    pub manifest: Value,
}

impl Upload {
    /// A correctly signed upload of `module`, with a manifest read from the
    /// component's own metadata.
    pub fn signed(signer: &Signer, module: &[u8]) -> Self {
        let rule = shared_runtime().load(module).expect("component loads");
        let manifest = serde_json::json!({
            "rule_id": rule.metadata.id,
            "version": rule.metadata.version,
            "description": rule.metadata.description,
            "flows": rule.metadata.flows,
            "default_params": rule.metadata.default_params,
        });
        Self {
            module: module.to_vec(),
            signature: aduana_host::domain::signing::sign_module(&signer.secret, module)
                .expect("sign"),
            key_id: signer.id.clone(),
            manifest,
        }
    }
}

/// Components `build.rs` produced for the example rules and test guests.
pub fn component(name: &str) -> Vec<u8> {
    guest(name)
}

impl TestApp {
    /// Generates an ed25519 key pair and registers its public key.
    pub async fn signer(&self, tenant: &TestTenant) -> Signer {
        let (secret, public) = aduana_host::domain::signing::generate_keypair();
        let (s, v) = self
            .post(
                "/api/v1/signing-keys",
                &tenant.key,
                &serde_json::json!({"name": "release key", "public_key": public}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        Signer {
            id: v["id"].as_str().expect("id").to_owned(),
            secret,
            public,
        }
    }

    /// Sends an upload as multipart.
    pub async fn upload(&self, key: &str, u: &Upload) -> (StatusCode, Value) {
        upload_at(&self.client, &self.base, key, u).await
    }

    /// Uploads `module` signed by `signer` and activates it in `mode`.
    pub async fn upload_and_activate(
        &self,
        tenant: &TestTenant,
        signer: &Signer,
        module: &[u8],
        mode: &str,
    ) -> Value {
        let (s, v) = self
            .upload(&tenant.key, &Upload::signed(signer, module))
            .await;
        assert_eq!(s, 201, "{v}");
        let path = format!(
            "/api/v1/rules/{}/versions/{}/activate",
            v["rule_id"].as_str().expect("rule_id"),
            v["version"].as_str().expect("version")
        );
        let (s, a) = self
            .post(&path, &tenant.key, &serde_json::json!({"mode": mode}))
            .await;
        assert_eq!(s, 200, "{a}");
        v
    }
}

/// Sends an upload as multipart to the server at `base`.
pub async fn upload_at(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    u: &Upload,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .part(
            "module",
            reqwest::multipart::Part::bytes(u.module.clone()).file_name("rule.wasm"),
        )
        .text("signature", u.signature.clone())
        .text("key_id", u.key_id.clone())
        .text("manifest", u.manifest.to_string());
    let resp = client
        .post(format!("{base}/api/v1/rules"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("http");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    check("POST", "/api/v1/rules", status, &headers, &value);
    (status, value)
}

/// [`spec::check_response`] for a reqwest answer.
pub fn check(
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    spec::check_response(method, path, status.as_u16(), content_type, body);
}

/// The `aduana` server binary: cargo names it to the host's own tests; the
/// kit's tests find it beside their `aduana-kit` (the workspace builds both
/// into one folder).
pub fn aduana_bin() -> std::path::PathBuf {
    match (
        option_env!("CARGO_BIN_EXE_aduana"),
        option_env!("CARGO_BIN_EXE_aduana-kit"),
    ) {
        (Some(aduana), _) => aduana.into(),
        (None, Some(kit)) => std::path::Path::new(kit)
            .with_file_name(format!("aduana{}", std::env::consts::EXE_SUFFIX)),
        (None, None) => panic!("the harness serves the tests of aduana-host and aduana-kit"),
    }
}

/// The `aduana` binary, pointed at `t`'s database and data dir.
pub fn cli(t: &TestApp) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(aduana_bin());
    cmd.env("ADUANA_DATA_DIR", &t.data_dir)
        .env("ADUANA_LOG", "warn");
    match &t.database_url {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
    cmd
}

/// A separate `aduana serve` process on `t`'s database with its own data
/// dir; killed on drop. Returns once it is ready.
pub async fn spawn_node(
    t: &TestApp,
    data_dir: &std::path::Path,
) -> (tokio::process::Child, String) {
    spawn_node_with(t, data_dir, &[]).await
}

/// [`spawn_node`] with extra environment variables.
pub async fn spawn_node_with(
    t: &TestApp,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    spawn_node_under(t, data_dir, env, &[]).await
}

/// [`spawn_node_with`], run under `wrapper` (e.g. `["prlimit",
/// "--nofile=1024:1024", "--"]`) when it is not empty.
pub async fn spawn_node_under(
    t: &TestApp,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    wrapper: &[&str],
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut cmd = match wrapper.split_first() {
        None => cli(t),
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(aduana_bin());
            c.env("ADUANA_LOG", "warn");
            match &t.database_url {
                Some(url) => c.env("DATABASE_URL", url),
                None => c.env_remove("DATABASE_URL"),
            };
            c
        }
    };
    let child = cmd
        .arg("serve")
        .env("ADUANA_DATA_DIR", data_dir)
        .env("ADUANA_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn aduana serve");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..600 {
        if let Ok(r) = t
            .client
            .get(format!("{base}/api/v1/health/ready"))
            .send()
            .await
            && r.status() == 200
        {
            return (child, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("aduana serve at {base} did not become ready");
}

/// A private `redis-server` on its own port (nothing persisted), so a test
/// can stop and restart it; killed on drop.
pub struct TestRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl TestRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server; its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a fresh, empty server on the same port; returns once it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh checks it)");
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
