//! Ids of stored rows: UUIDv7, so that the id orders rows the way they were made.
//!
//! Lists order by `created_on` (milliseconds) and then by the id. With random (v4) ids, rows
//! made in the same millisecond listed in any order; with v7 ids the tie-break is the creation
//! order too:
//!
//! - **Within one process** the order is total and follows creation: the `uuid` crate makes
//!   every `now_v7` id from one shared, locked context (a millisecond timestamp followed by a
//!   42-bit counter reseeded each millisecond and incremented within it; if the clock steps
//!   back, the last timestamp is kept), so each id is greater than every id made before it.
//! - **Across processes (several nodes)** ids are ordered by their millisecond, as far as the
//!   nodes' clocks agree; two ids made in the same millisecond on two nodes compare by their
//!   random counters. The order is still total (ids are unique), so pages are stable, but
//!   "which came first" between nodes is only as good as their clock sync — as for
//!   `created_on`.
//!
//! Ids are stored as hyphenated lower-case text. Their text order is their byte order in
//! SQLite (`BINARY` collation) and in PostgreSQL under `C` and under linguistic collations
//! too: the hyphens stand at the same places in every id, and digits sort before `a`–`f`.
//!
//! Secrets, tokens and nonces are not ids: they stay random (v4, or the OS's random bytes).

use uuid::Uuid;

/// A new id for a stored row (or for a call or an event that is listed): a UUIDv7, greater
/// than every id this process made before.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn ids_made_in_one_process_increase_as_bytes_and_as_text() {
        let ids: Vec<_> = (0..10_000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "as bytes");
        let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(text.windows(2).all(|w| w[0] < w[1]), "as stored text");
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
    }
}
