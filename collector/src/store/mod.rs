//! Where events live: an embedded SQLite file (the default) or PostgreSQL
//! (when a fleet outgrows one machine), with the same schema, migrations
//! and behaviour.
//!
//! Queries are written once in SQL both databases accept (`$1`
//! placeholders work in SQLite too) and run through [`dispatch!`], which
//! expands the same code for each pool so each is type-checked against its
//! own driver; rows map onto result structs by column name through one
//! generic `FromRow` per struct (`row_struct!` in `types.rs`). Ingest's
//! dedup-and-chain planning is written once (`ingest.rs`); only how each
//! database locks the host and bulk-inserts differs, in `sqlite.rs` and
//! `postgres.rs`. Every value from outside is bound as a parameter, never
//! spliced into SQL text.

mod alerts;
mod chain;
#[cfg(test)]
mod counters_tests;
mod enrollment;
mod incidents;
mod ingest;
mod postgres;
mod queries;
mod sqlite;
mod types;

pub use chain::{BreakKind, Gap};
pub use queries::{DEFAULT_PAGE, MAX_PAGE};
pub use types::*;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Run `$body` with `$pool` bound to the store's pool (the read pool for
/// SQLite), once per database type.
macro_rules! dispatch {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(s) => {
                let $pool = &s.read;
                $body
            }
            $crate::store::Store::Postgres(p) => {
                let $pool = &p.pool;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// Like `dispatch!` but with SQLite's single writer connection, so writes
/// never wait on a busy lock inside SQLite.
macro_rules! dispatch_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(s) => {
                let $pool = &s.write;
                $body
            }
            $crate::store::Store::Postgres(p) => {
                let $pool = &p.pool;
                $body
            }
        }
    };
}
pub(crate) use dispatch_write;

/// Where the database is, from `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite:PATH` (or `sqlite://PATH`).
    Sqlite(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…`, as libpq URLs.
    Postgres(String),
}

impl DbUrl {
    pub fn parse(s: &str) -> Result<DbUrl, StoreError> {
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::BadUrl {
                    url: s.to_string(),
                    reason: "no file path after `sqlite:`",
                });
            }
            Ok(DbUrl::Sqlite(path.into()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DbUrl::Postgres(s.to_string()))
        } else {
            Err(StoreError::BadUrl {
                url: redact(s),
                reason: "expected sqlite:PATH or postgres://user@host/db",
            })
        }
    }

    /// The URL with any password replaced, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DbUrl::Postgres(u) => redact(u),
        }
    }
}

/// `postgres://user:secret@host/db?password=x` →
/// `postgres://user:***@host/db?password=***`.
fn redact(url: &str) -> String {
    let url = redact_userinfo(url);
    match url.split_once('?') {
        Some((head, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{head}?{}", params.join("&"))
        }
        None => url,
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// An open, migrated store.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Connect and bring the schema up to date. Safe to run from several
    /// collector processes at once on one PostgreSQL (migrations take an
    /// advisory lock).
    pub async fn open(url: &DbUrl) -> Result<Store, StoreError> {
        let store = match url {
            DbUrl::Sqlite(path) => Store::Sqlite(sqlite::SqliteStore::open(path).await?),
            DbUrl::Postgres(u) => Store::Postgres(postgres::PgStore::open(u).await?),
        };
        store.migrate(url).await?;
        Ok(store)
    }

    async fn migrate(&self, url: &DbUrl) -> Result<(), StoreError> {
        let result = match self {
            Store::Sqlite(s) => migrator(SQLITE_MIGRATIONS).run(&s.write).await,
            Store::Postgres(p) => migrator(POSTGRES_MIGRATIONS).run(&p.pool).await,
        };
        result.map_err(|source| StoreError::Migrate {
            url: url.display(),
            source,
        })
    }

    /// Store a checked batch from host `host_id`: each uid once, with the
    /// host's gaps, chain breaks and findings brought up to date in the
    /// same transaction.
    pub async fn ingest(
        &self,
        host_id: i64,
        items: Vec<IngestItem>,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.ingest(host_id, items, now).await,
            Store::Postgres(p) => p.ingest(host_id, items, now).await,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Close the pools, waiting for queries in flight.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => {
                s.write.close().await;
                s.read.close().await;
            }
            Store::Postgres(p) => p.pool.close().await,
        }
    }
}

/// (version, description, SQL). The SQL is embedded so the binary needs
/// no files beside it.
type MigrationSource = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: MigrationSource = &[
    (1, "init", include_str!("migrations/sqlite/0001_init.sql")),
    (
        2,
        "finding kind",
        include_str!("migrations/sqlite/0002_finding_kind.sql"),
    ),
    (
        3,
        "enroll approval",
        include_str!("migrations/sqlite/0003_enroll_approval.sql"),
    ),
    (
        4,
        "incidents",
        include_str!("migrations/sqlite/0004_incidents.sql"),
    ),
    (
        5,
        "alerts",
        include_str!("migrations/sqlite/0005_alerts.sql"),
    ),
    (
        6,
        "alert filters",
        include_str!("migrations/sqlite/0006_alert_filters.sql"),
    ),
    (
        7,
        "incident id floor",
        include_str!("migrations/sqlite/0007_incident_id_floor.sql"),
    ),
    (
        8,
        "fleet counters",
        include_str!("migrations/sqlite/0008_fleet_counters.sql"),
    ),
    (
        9,
        "incident event order",
        include_str!("migrations/sqlite/0009_incident_event_order.sql"),
    ),
];
const POSTGRES_MIGRATIONS: MigrationSource = &[
    (1, "init", include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        "finding kind",
        include_str!("migrations/postgres/0002_finding_kind.sql"),
    ),
    (
        3,
        "enroll approval",
        include_str!("migrations/postgres/0003_enroll_approval.sql"),
    ),
    (
        4,
        "incidents",
        include_str!("migrations/postgres/0004_incidents.sql"),
    ),
    (
        5,
        "alerts",
        include_str!("migrations/postgres/0005_alerts.sql"),
    ),
    (
        6,
        "alert filters",
        include_str!("migrations/postgres/0006_alert_filters.sql"),
    ),
    (
        7,
        "incident id floor",
        include_str!("migrations/postgres/0007_incident_id_floor.sql"),
    ),
    (
        8,
        "fleet counters",
        include_str!("migrations/postgres/0008_fleet_counters.sql"),
    ),
    (
        9,
        "incident event order",
        include_str!("migrations/postgres/0009_incident_event_order.sql"),
    ),
];

fn migrator(source: MigrationSource) -> Migrator {
    Migrator::with_migrations(
        source
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls() {
        assert_eq!(
            DbUrl::parse("sqlite:/var/lib/x.db").unwrap(),
            DbUrl::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            DbUrl::parse("sqlite://rel.db").unwrap(),
            DbUrl::Sqlite("rel.db".into())
        );
        assert!(DbUrl::parse("sqlite:").is_err());
        let err = DbUrl::parse("mysql://u:pw@h/db").unwrap_err().to_string();
        assert!(err.contains("u:***@h"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        let pg = DbUrl::parse("postgres://u:pw@h:5432/db?x=y").unwrap();
        assert_eq!(pg.display(), "postgres://u:***@h:5432/db?x=y");
        assert_eq!(
            DbUrl::parse("postgres://u@h/db").unwrap().display(),
            "postgres://u@h/db"
        );
        assert_eq!(
            DbUrl::parse("postgres://u@h/db?sslmode=require&password=pw")
                .unwrap()
                .display(),
            "postgres://u@h/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn both_dialects_have_the_same_migrations_and_tables() {
        let versions = |m: MigrationSource| m.iter().map(|(v, d, _)| (*v, *d)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
        for ((_, _, a), (_, _, b)) in SQLITE_MIGRATIONS.iter().zip(POSTGRES_MIGRATIONS) {
            let shape = |sql: &str| {
                sql.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            };
            // Same statements, same columns in the same order; only types
            // of the id columns differ.
            assert_eq!(shape(a), shape(b));
        }
    }
}
