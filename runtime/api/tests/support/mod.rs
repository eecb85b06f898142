//! What every API test file shares: the run-on-SQLite-then-fresh-PostgreSQL harness, the
//! request helpers and the envelope assertions. Each file uses what it needs.

#![allow(dead_code, unused_imports)]

pub use std::future::Future;
pub use std::sync::Arc;
pub use std::time::Duration;

pub use anyhow::{Context, bail, ensure};
pub use axum::Router;
pub use axum::body::Body;
pub use axum::http::{Request, StatusCode, header};
pub use base64::Engine;
pub use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
pub use http_body_util::BodyExt;
pub use opentact_api::jwt::{self, Claims};
pub use opentact_api::{ApiConfig, ApiState, JwtSecret, router};
pub use opentact_store::*;
pub use serde_json::{Value, json};
pub use sqlx::Connection;
pub use tower::ServiceExt;
pub use uuid::Uuid;

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PASSWORD: &str = "correct horse battery";

/// What a case gets.
pub struct Ctx {
    pub app: Router,
    pub store: Store,
    pub secret: JwtSecret,
}

pub async fn run<F, Fut>(name: &str, case: F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/opentact.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.context("open sqlite")?;
    assert_eq!(store.backend(), Backend::Sqlite);
    case(ctx(&store)).await.with_context(|| format!("{name} on SQLite"))?;
    store.close().await;

    let admin_url = std::env::var("OPENTACT_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    let admin = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url)).await;
    let mut admin = match admin {
        Ok(Ok(conn)) => conn,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var_os("CI").is_some() {
                bail!("{name}: PostgreSQL at {admin_url} is unreachable ({why}) and CI is set");
            }
            eprintln!("SKIP {name} on PostgreSQL: {admin_url} unreachable ({why}); SQLite half passed");
            return Ok(());
        }
    };
    let db = format!("opentact_api_test_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let url = match admin_url.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &admin_url[..i]),
        _ => bail!("OPENTACT_TEST_PG_URL must end in /<database>"),
    };
    let outcome = async {
        let store = Store::open(&url).await.context("open postgres")?;
        assert_eq!(store.backend(), Backend::Postgres);
        // Spawned so that a failed assertion still lets the database be dropped below.
        let result = tokio::spawn(case(ctx(&store))).await;
        store.close().await;
        anyhow::Ok(result)
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    match outcome? {
        Ok(result) => result.with_context(|| format!("{name} on PostgreSQL")),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(join.into()),
    }
}

pub fn ctx(store: &Store) -> Ctx {
    let secret = JwtSecret::new(b"0123456789abcdef0123456789abcdef-test".to_vec()).unwrap();
    let state = ApiState::new(Arc::new(store.clone()), secret.clone(), ApiConfig::default());
    Ctx { app: router(state), store: store.clone(), secret }
}

#[macro_export]
macro_rules! api_test {
    ($($name:ident),* $(,)?) => {
        mod both_backends {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    super::run(stringify!($name), super::$name).await
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// helpers

/// How a request authenticates.
#[derive(Clone)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// `X-Auth-Token`.
    Token(&'a str),
    Query(&'a str),
    Basic(&'a str, &'a str),
    Header(&'a str),
    /// Any other header: name and value.
    Named(&'static str, String),
}

/// An answer: status and the parsed body (every answer must be JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The payload of a success envelope with this status.
    pub fn ok(&self, status: StatusCode) -> anyhow::Result<&Value> {
        ensure!(self.status == status, "expected {status}, got {} {}", self.status, self.body);
        ensure!(self.body["success"] == json!(true), "not a success envelope: {}", self.body);
        Ok(&self.body["payload"])
    }

    /// Asserts an error envelope with this status whose message contains every `needle`.
    pub fn err(&self, status: StatusCode, needles: &[&str]) -> anyhow::Result<()> {
        ensure!(self.status == status, "expected {status}, got {} {}", self.status, self.body);
        ensure!(self.body["success"] == json!(false), "not an error envelope: {}", self.body);
        ensure!(self.body["status"] == json!(status.as_u16()), "status field: {}", self.body);
        let message = self.body["message"].as_str().context("message is not a string")?;
        for n in needles {
            ensure!(message.contains(n), "message {message:?} lacks {n:?}");
        }
        Ok(())
    }
}

impl Ctx {
    pub async fn send(&self, req: Request<Body>) -> anyhow::Result<Answer> {
        let response = self.app.clone().oneshot(req).await?;
        let status = response.status();
        let ct = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("").to_owned());
        let bytes = response.into_body().collect().await?.to_bytes();
        ensure!(ct.as_deref() == Some("application/json"), "{status}: content type {ct:?}, body {bytes:?}");
        let body: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{status}: body {bytes:?}"))?;
        Ok(Answer { status, body })
    }

    pub fn request(method: &str, uri: &str, auth: Auth<'_>) -> axum::http::request::Builder {
        let uri = match auth {
            Auth::Query(t) => format!("{uri}{}jwt={t}", if uri.contains('?') { '&' } else { '?' }),
            _ => uri.to_owned(),
        };
        let b = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None | Auth::Query(_) => b,
            Auth::Bearer(t) => b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Token(t) => b.header("X-Auth-Token", t),
            Auth::Basic(e, p) => {
                b.header(header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{e}:{p}"))))
            }
            Auth::Header(v) => b.header(header::AUTHORIZATION, v),
            Auth::Named(name, v) => b.header(name, v),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let b = Self::request(method, uri, auth);
        let req = match body {
            Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string()))?,
            None => b.body(Body::empty())?,
        };
        self.send(req).await
    }

    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        auth: Auth<'_>,
        ct: Option<&str>,
        body: &str,
    ) -> anyhow::Result<Answer> {
        let mut b = Self::request(method, uri, auth);
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        self.send(b.body(Body::from(body.to_owned()))?).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> anyhow::Result<Answer> {
        self.call("GET", uri, Auth::Bearer(token), None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> anyhow::Result<Answer> {
        self.call("POST", uri, Auth::Bearer(token), Some(body)).await
    }

    pub async fn patch(&self, uri: &str, token: &str, body: Value) -> anyhow::Result<Answer> {
        self.call("PATCH", uri, Auth::Bearer(token), Some(body)).await
    }

    pub async fn delete(&self, uri: &str, token: &str) -> anyhow::Result<Answer> {
        self.call("DELETE", uri, Auth::Bearer(token), None).await
    }

    /// Creates an account in the store and logs in through the API: its id and a JWT.
    pub async fn signup(&self, email: &str) -> anyhow::Result<(Uuid, String)> {
        let a = self
            .store
            .create_account(NewAccount {
                name: email.into(),
                email: email.into(),
                password: PASSWORD.into(),
                time_zone: "America/New_York".into(),
            })
            .await?;
        let answer = self
            .call("POST", "/rest/auth", Auth::None, Some(json!({"email": email, "password": PASSWORD})))
            .await?;
        let jwt = answer.ok(StatusCode::OK)?["token"].as_str().context("token")?.to_owned();
        Ok((a.uuid, jwt))
    }

    pub async fn seed(&self, numbers: &[(Tn, &str, bool, bool, bool)]) -> anyhow::Result<()> {
        let now = now();
        let rows: Vec<NumberInventory> = numbers
            .iter()
            .map(|&(tn, state, voice, sms, available)| NumberInventory {
                tn,
                npa: i32::try_from((tn / 10_000_000) % 1000).unwrap(),
                state: Some(state.to_owned()),
                voice,
                sms,
                available,
                created_on: now,
                modified_on: now,
            })
            .collect();
        self.store.upsert_numbers(&rows).await?;
        Ok(())
    }
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v[key].as_str().with_context(|| format!("{key} is not a string in {v}"))
}

pub fn tns(page: &Value) -> Vec<i64> {
    page["data"].as_array().map(|d| d.iter().filter_map(|n| n["tn"].as_i64()).collect()).unwrap_or_default()
}
