//! The operator's NPA-NXX data.

use crate::sql::BeginWrite;
use async_trait::async_trait;

use super::{Store, ms, with_pool};
use crate::error::Result;
use crate::model::*;
use crate::repo::TelecomRepo;

/// Rows per INSERT: 10 values each, well under SQLite's and PostgreSQL's bound parameters.
const INSERT_CHUNK: usize = 500;

/// The stored `block` of the whole exchange.
const WHOLE_EXCHANGE: i32 = -1;

#[derive(sqlx::FromRow)]
struct ExchangeDbRow {
    npa: i32,
    nxx: i32,
    block: i32,
    state: Option<String>,
    county: Option<String>,
    rate_center: Option<String>,
    time_zone: Option<String>,
    line_type: Option<String>,
    carrier: Option<String>,
    ocn: Option<String>,
}

impl ExchangeDbRow {
    fn into_model(self) -> ExchangeRow {
        ExchangeRow {
            npa: u16::try_from(self.npa).unwrap_or_default(),
            nxx: u16::try_from(self.nxx).unwrap_or_default(),
            block: u8::try_from(self.block).ok(),
            state: self.state,
            county: self.county,
            rate_center: self.rate_center,
            time_zone: self.time_zone,
            line_type: self.line_type,
            carrier: self.carrier,
            ocn: self.ocn,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ImportDbRow {
    row_count: i64,
    digest: String,
    source: String,
    imported_on: i64,
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO telecom_exchange (npa, nxx, block, state, county, rate_center, time_zone, line_type, \
         carrier, ocn) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let first = row * 10;
        let params: Vec<String> = (1..=10).map(|column| format!("${}", first + column)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    sql
}

#[async_trait]
impl TelecomRepo for Store {
    async fn replace_exchanges(
        &self,
        rows: &[ExchangeRow],
        digest: &str,
        source: &str,
    ) -> Result<TelecomImport> {
        let imported = TelecomImport {
            rows: i64::try_from(rows.len()).unwrap_or(i64::MAX),
            digest: digest.to_owned(),
            source: source.to_owned(),
            imported_on: now(),
        };
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query("DELETE FROM telecom_exchange").execute(&mut *tx).await?;
            for chunk in rows.chunks(INSERT_CHUNK) {
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_sql(chunk.len())));
                for row in chunk {
                    insert = insert
                        .bind(i32::from(row.npa))
                        .bind(i32::from(row.nxx))
                        .bind(row.block.map_or(WHOLE_EXCHANGE, i32::from))
                        .bind(&row.state)
                        .bind(&row.county)
                        .bind(&row.rate_center)
                        .bind(&row.time_zone)
                        .bind(&row.line_type)
                        .bind(&row.carrier)
                        .bind(&row.ocn);
                }
                insert.execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO telecom_import (id, row_count, digest, source, imported_on) VALUES (1, $1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET row_count = excluded.row_count, digest = excluded.digest, \
                 source = excluded.source, imported_on = excluded.imported_on",
            )
            .bind(imported.rows)
            .bind(digest)
            .bind(source)
            .bind(ms(imported.imported_on))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(imported)
    }

    async fn telecom_import(&self) -> Result<Option<TelecomImport>> {
        let row: Option<ImportDbRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT row_count, digest, source, imported_on FROM telecom_import WHERE id = 1",
        )
        .fetch_optional(p)
        .await?);
        Ok(row.map(|row| TelecomImport {
            rows: row.row_count,
            digest: row.digest,
            source: row.source,
            imported_on: from_millis(row.imported_on),
        }))
    }

    async fn exchanges(&self) -> Result<Vec<ExchangeRow>> {
        let rows: Vec<ExchangeDbRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT npa, nxx, block, state, county, rate_center, time_zone, line_type, carrier, ocn \
             FROM telecom_exchange",
        )
        .fetch_all(p)
        .await?);
        Ok(rows.into_iter().map(ExchangeDbRow::into_model).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::insert_sql;

    #[test]
    fn each_row_binds_its_ten_columns() {
        assert_eq!(
            insert_sql(2).split(" VALUES ").nth(1),
            Some(
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), ($11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            )
        );
    }
}
