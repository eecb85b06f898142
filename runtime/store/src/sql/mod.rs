//! The SQL backends. One implementation serves both databases: every query is written once
//! in SQL both accept (`$N` placeholders, which sqlx's SQLite driver maps by number), and
//! [`with_pool!`] expands each method body once per backend so the driver types stay static.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use crate::error::{ObjectKind, Result, StoreError};

mod account;
mod app;
mod batch;
mod billing;
mod call_log;
mod command_relay;
mod event_relay;
mod invite;
mod lease;
mod limit;
mod message;
mod messaging;
mod node;
mod order;
mod profile;
mod sip;
mod stats;
mod telecom;
mod tendlc;
mod verified;
mod webhook;

pub use command_relay::{COMMAND_CHANNEL, OUTCOME_CHANNEL};
pub use event_relay::EVENT_CHANNEL;

/// Connections a PostgreSQL pool opens at most.
pub const PG_MAX_CONNECTIONS: u32 = 16;

/// Connections a SQLite pool opens at most (SQLite has one writer; readers run in parallel
/// thanks to WAL).
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// How long a SQLite writer waits for the lock before failing with "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The store: a connection pool to SQLite or PostgreSQL, implementing every repository trait.
/// Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Seals the secrets the store must give back (signing keys); `None`: they are stored as
    /// given, and sealed ones cannot be read.
    sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
}

/// Notifications from the database ([`Store::listen`]).
pub struct StoreListener(sqlx::postgres::PgListener);

impl std::fmt::Debug for StoreListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreListener").finish_non_exhaustive()
    }
}

impl StoreListener {
    /// The next notification: (channel, payload). After a lost connection it reconnects and
    /// listens again; what was notified meanwhile is lost (the rows are the durable copy).
    pub async fn recv(&mut self) -> Result<(String, String)> {
        let notification = self.0.recv().await?;
        Ok((notification.channel().to_owned(), notification.payload().to_owned()))
    }
}

/// A transaction that writes, begun so that it can always write once it has begun.
///
/// On SQLite (WAL) a transaction begun plainly (`BEGIN`, deferred) that reads first gets a
/// snapshot; if another connection writes before it does, its first write fails at once with
/// SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out. `BEGIN IMMEDIATE` takes the write
/// lock at the start (waiting the busy timeout for it), so the transaction's reads and writes
/// see one state and it never fails half-way for another's write. PostgreSQL's row locks and
/// its default isolation need no such care.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

/// Runs `$body` with `$p` bound to the concrete pool. The body is compiled once per backend.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            crate::sql::Pool::Sqlite($p) => $body,
            crate::sql::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Picks the static SQL text for an [`Order`](crate::Order): `$head` must end in `ORDER BY
/// created_on`; the id breaks ties so pages are stable.
macro_rules! ordered {
    ($order:expr, $head:expr, $tail:expr) => {
        match $order {
            crate::repo::Order::Asc => concat!($head, " ASC, id ASC", $tail),
            crate::repo::Order::Desc => concat!($head, " DESC, id DESC", $tail),
        }
    };
}
pub(crate) use ordered;

impl Store {
    /// The same store, sealing the secrets it must give back under `sealer` (the server's
    /// secret key file); see [`crate::seal`].
    pub fn with_sealer(mut self, sealer: crate::seal::Sealer) -> Self {
        self.sealer = Some(std::sync::Arc::new(sealer));
        self
    }

    /// `value` as it is stored for `owner`: sealed when the store has a key.
    pub(crate) fn seal(&self, value: &str, owner: &str) -> Result<String> {
        match &self.sealer {
            Some(sealer) => sealer.seal(value, owner),
            None => Ok(value.to_owned()),
        }
    }

    /// A stored secret of `owner`, opened.
    pub(crate) fn unseal(&self, stored: &str, owner: &str) -> Result<String> {
        match &self.sealer {
            Some(sealer) => sealer.open(stored, owner),
            None => crate::seal::open_without_key(stored),
        }
    }

    /// Opens the store named by `url` and applies pending migrations.
    ///
    /// - `sqlite://path/to/file.db?mode=rwc` (or `sqlite:path`): a file, created with its
    ///   directory if missing. `sqlite::memory:` works for throw-away stores.
    /// - `postgres://user@host:port/db` (or `postgresql://`): an existing database.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                // With WAL, NORMAL syncs at checkpoints, not at each commit: a commit survives
                // the process being killed (the WAL is in the OS's hands), and only a power
                // loss may take the last few — the trade every WAL deployment makes for
                // millisecond writes (the webhook outbox writes per event batch).
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                create_dir(dir)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .connect_with(options)
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            Ok(Store { pool: Pool::Sqlite(pool), sealer: None })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new().max_connections(PG_MAX_CONNECTIONS).connect(url).await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Ok(Store { pool: Pool::Postgres(pool), sealer: None })
        } else {
            Err(StoreError::UnsupportedUrl { url: redact(url) })
        }
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Listens for notifications on `channels` (PostgreSQL LISTEN, on a connection of its own);
    /// `None` on SQLite, which has none.
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<StoreListener>> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(p) => {
                // Not from the store's pool: a listener holds its connection for the process's
                // life, and `close` waits for every connection of the pool to come back.
                let own = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*p.connect_options()).clone())
                    .await?;
                let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
                listener.listen_all(channels.iter().copied()).await?;
                Ok(Some(StoreListener(listener)))
            }
        }
    }

    /// Closes every connection; waits for the ones in use to be returned.
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }

    /// `NotFound { kind, id }` unless `id` is a live object of that kind owned by `account`.
    /// Used to check references before writing them, so the caller learns which id is wrong
    /// (the composite foreign keys would only say that some reference is).
    pub(crate) async fn ensure_live(&self, account: Uuid, target: Ref, id: Uuid) -> Result<()> {
        let (kind, sql) = match target {
            Ref::TnLease => (
                ObjectKind::TnLease,
                "SELECT COUNT(*) FROM tn_lease WHERE account_id = $1 AND id = $2 AND released_on IS NULL",
            ),
            Ref::TnProfile => (
                ObjectKind::TnProfile,
                "SELECT COUNT(*) FROM tn_profile WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
            Ref::SipConnection => (
                ObjectKind::SipConnection,
                "SELECT COUNT(*) FROM sip_connection WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
            Ref::SipControlApp => (
                ObjectKind::SipControlApp,
                "SELECT COUNT(*) FROM sip_control_app WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
            Ref::SipDomain => (
                ObjectKind::SipDomain,
                "SELECT COUNT(*) FROM sip_domain WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
            Ref::MessagingProfile => (
                ObjectKind::MessagingProfile,
                "SELECT COUNT(*) FROM messaging_profile WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
            Ref::OutboundVoiceProfile => (
                ObjectKind::OutboundVoiceProfile,
                "SELECT COUNT(*) FROM outbound_voice_profile \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            ),
        };
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(sql)
            .bind(account.to_string())
            .bind(id.to_string())
            .fetch_one(p)
            .await?);
        if n == 0 { Err(StoreError::not_found(kind, id)) } else { Ok(()) }
    }

    pub(crate) async fn ensure_live_opt(&self, account: Uuid, target: Ref, id: Option<Uuid>) -> Result<()> {
        match id {
            Some(id) => self.ensure_live(account, target, id).await,
            None => Ok(()),
        }
    }
}

/// The kinds of object other objects point at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ref {
    TnLease,
    TnProfile,
    SipConnection,
    SipControlApp,
    SipDomain,
    OutboundVoiceProfile,
    MessagingProfile,
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Parses an id column.
pub(crate) fn uuid(kind: ObjectKind, column: &'static str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt { kind, column, value: s.to_owned() })
}

pub(crate) fn opt_uuid(kind: ObjectKind, column: &'static str, s: Option<&str>) -> Result<Option<Uuid>> {
    s.map(|s| uuid(kind, column, s)).transpose()
}

pub(crate) fn opt_str(id: Option<Uuid>) -> Option<String> {
    id.map(|u| u.to_string())
}

pub(crate) fn ms(t: crate::model::Timestamp) -> i64 {
    t.timestamp_millis()
}

/// An SQL `IN (…)` list of ids, for one statement over many rows. Safe to splice into SQL text:
/// the ids are printed from `Uuid`s, so nothing but hex digits and hyphens gets in.
pub(crate) fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    ids.into_iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ")
}

/// Applies a patch field: `Some(v)` replaces, `None` keeps.
pub(crate) fn patch<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}
