//! Limits counted by all the nodes together (see `LimitRepo`).

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, Pool, Store, ms, with_pool};
use crate::error::Result;
use crate::model::*;
use crate::repo::LimitRepo;

/// One statement counts and takes, so on SQLite (one writer at a time) it is exact; on
/// PostgreSQL two takers could both count below the limit, so they first queue on the scope's
/// advisory lock, held until their transaction ends.
const TAKE_LEASE: &str = "INSERT INTO limit_lease (id, scope, node_id, created_on) \
     SELECT $1, $2, $3, $4 WHERE (SELECT count(*) FROM limit_lease WHERE scope = $2) < $5";

#[async_trait]
impl LimitRepo for Store {
    async fn take_lease(&self, scope: &str, limit: u32, node: &str, id: Uuid, at: Timestamp) -> Result<bool> {
        let taken = match &self.pool {
            Pool::Postgres(p) => {
                let mut tx = p.begin_write().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(scope)
                    .execute(&mut *tx)
                    .await?;
                let taken = sqlx::query(TAKE_LEASE)
                    .bind(id.to_string())
                    .bind(scope)
                    .bind(node)
                    .bind(ms(at))
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                taken
            }
            Pool::Sqlite(p) => sqlx::query(TAKE_LEASE)
                .bind(id.to_string())
                .bind(scope)
                .bind(node)
                .bind(ms(at))
                .bind(i64::from(limit))
                .execute(p)
                .await?
                .rows_affected(),
        };
        Ok(taken == 1)
    }

    async fn give_back_lease(&self, id: Uuid) -> Result<()> {
        with_pool!(self, p => sqlx::query("DELETE FROM limit_lease WHERE id = $1")
            .bind(id.to_string())
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    async fn leases_held(&self, scope: &str) -> Result<u64> {
        let held: i64 = with_pool!(self, p => sqlx::query_scalar("SELECT count(*) FROM limit_lease WHERE scope = $1")
            .bind(scope)
            .fetch_one(p)
            .await?);
        Ok(u64::try_from(held).unwrap_or(0))
    }

    async fn release_node_leases(&self, node: &str) -> Result<u64> {
        let released = with_pool!(self, p => sqlx::query("DELETE FROM limit_lease WHERE node_id = $1")
            .bind(node)
            .execute(p)
            .await?
            .rows_affected());
        Ok(released)
    }

    async fn reserve_rate_slot(
        &self,
        scope: &str,
        interval_us: i64,
        now_us: i64,
        max_wait_us: Option<i64>,
    ) -> Result<Option<i64>> {
        // One statement: the row's lock orders the nodes reserving at once. The slot is the
        // later of now and the scope's next start; the next start moves one interval past it,
        // unless the slot is too far (then the row is left as it was and nothing returned).
        let sql = match self.backend() {
            Backend::Postgres => {
                "INSERT INTO rate_slot (scope, next_start) VALUES ($1, $3 + $2) \
                 ON CONFLICT (scope) DO UPDATE SET next_start = GREATEST(rate_slot.next_start, $3) + $2 \
                 WHERE $4::BIGINT IS NULL OR GREATEST(rate_slot.next_start, $3) - $3 <= $4::BIGINT \
                 RETURNING next_start - $2"
            }
            Backend::Sqlite => {
                "INSERT INTO rate_slot (scope, next_start) VALUES ($1, $3 + $2) \
                 ON CONFLICT (scope) DO UPDATE SET next_start = max(rate_slot.next_start, $3) + $2 \
                 WHERE $4 IS NULL OR max(rate_slot.next_start, $3) - $3 <= $4 \
                 RETURNING next_start - $2"
            }
        };
        let slot: Option<i64> = with_pool!(self, p => sqlx::query_scalar(sql)
            .bind(scope)
            .bind(interval_us)
            .bind(now_us)
            .bind(max_wait_us)
            .fetch_optional(p)
            .await?);
        Ok(slot)
    }
}
