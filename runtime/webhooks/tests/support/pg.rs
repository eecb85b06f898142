//! A fresh PostgreSQL database for a test, made with `psql` (so that the tests need no
//! database client of their own): on 127.0.0.1:5432, user postgres, trust authentication.

/// A database dropped with the value.
pub struct PgDatabase {
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// `None` when the server is unreachable (a failure under CI).
    pub fn create() -> Option<PgDatabase> {
        let name = format!("opentact_test_{}", uuid::Uuid::new_v4().simple());
        if !psql(&format!("CREATE DATABASE {name}")) {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL at 127.0.0.1:5432 is unreachable and CI is set"
            );
            eprintln!("SKIP: PostgreSQL at 127.0.0.1:5432 is unreachable");
            return None;
        }
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Some(PgDatabase { name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(sql: &str) -> bool {
    std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql])
        .output()
        .is_ok_and(|out| out.status.success())
}
