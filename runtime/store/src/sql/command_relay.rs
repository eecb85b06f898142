//! Commands relayed to the node that carries a call (see `CommandRelayRepo`).

use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, Store, ms, uuid, with_pool};
use crate::error::{ObjectKind, Result};
use crate::model::*;
use crate::repo::CommandRelayRepo;

/// The channel a node listens on for commands to run; the payload is the node's id.
pub const COMMAND_CHANNEL: &str = "opentact_command";
/// The channel senders listen on for outcomes; the payload is the command's id.
pub const OUTCOME_CHANNEL: &str = "opentact_command_outcome";

#[derive(sqlx::FromRow)]
struct CommandRow {
    id: String,
    account_id: String,
    call_id: String,
    node_id: String,
    name: String,
    xml: String,
    command_id: Option<String>,
    created_on: i64,
}

impl CommandRow {
    fn into_model(self) -> Result<RelayedCommand> {
        Ok(RelayedCommand {
            id: uuid(ObjectKind::Call, "call_command.id", &self.id)?,
            account: uuid(ObjectKind::Account, "call_command.account_id", &self.account_id)?,
            call: uuid(ObjectKind::Call, "call_command.call_id", &self.call_id)?,
            node: self.node_id,
            name: self.name,
            xml: self.xml,
            command_id: self.command_id,
            created_on: crate::model::from_millis(self.created_on),
        })
    }
}

/// The stored form of an outcome: (outcome, state, reason).
fn stored(outcome: &RelayedOutcome) -> (&'static str, Option<&str>, Option<&str>) {
    match outcome {
        RelayedOutcome::Accepted => ("accepted", None, None),
        RelayedOutcome::Duplicate => ("duplicate", None, None),
        RelayedOutcome::NotFound => ("not_found", None, None),
        RelayedOutcome::WrongState { state, reason } => ("wrong_state", Some(state), Some(reason)),
        RelayedOutcome::Expired => ("expired", None, None),
    }
}

impl Store {
    /// `NOTIFY channel, payload` on PostgreSQL (delivered when the surrounding work commits);
    /// nothing on SQLite, whose nodes do not share a database.
    async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if let super::Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(p).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl CommandRelayRepo for Store {
    async fn relay_command(&self, command: &RelayedCommand) -> Result<()> {
        with_pool!(self, p => sqlx::query(
            "INSERT INTO call_command (id, account_id, call_id, node_id, name, xml, command_id, created_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(command.id.to_string())
        .bind(command.account.to_string())
        .bind(command.call.to_string())
        .bind(&command.node)
        .bind(&command.name)
        .bind(&command.xml)
        .bind(command.command_id.as_deref())
        .bind(ms(command.created_on))
        .execute(p)
        .await
        .map(|_| ())?);
        self.notify(COMMAND_CHANNEL, &command.node).await
    }

    async fn claim_relayed_commands(&self, node: &str, limit: u32) -> Result<Vec<RelayedCommand>> {
        // SKIP LOCKED on PostgreSQL: a node's sweep and its listener claiming at once each get
        // other rows; the `outcome IS NULL` test again after the lock claims each row once.
        let sql = match self.backend() {
            Backend::Postgres => {
                "UPDATE call_command SET outcome = 'running' WHERE id IN (SELECT id FROM call_command \
                 WHERE node_id = $1 AND outcome IS NULL ORDER BY created_on, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 AND outcome IS NULL \
                 RETURNING id, account_id, call_id, node_id, name, xml, command_id, created_on"
            }
            Backend::Sqlite => {
                "UPDATE call_command SET outcome = 'running' WHERE id IN (SELECT id FROM call_command \
                 WHERE node_id = $1 AND outcome IS NULL ORDER BY created_on, id LIMIT $2) \
                 RETURNING id, account_id, call_id, node_id, name, xml, command_id, created_on"
            }
        };
        let rows: Vec<CommandRow> =
            with_pool!(self, p => sqlx::query_as(sql).bind(node).bind(i64::from(limit)).fetch_all(p).await?);
        let mut commands = rows.into_iter().map(CommandRow::into_model).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order: the calls' commands run in the order they were sent.
        commands.sort_by_key(|c| (c.created_on, c.id));
        Ok(commands)
    }

    async fn answer_relayed_command(&self, id: Uuid, outcome: &RelayedOutcome, at: Timestamp) -> Result<()> {
        let (outcome, state, reason) = stored(outcome);
        with_pool!(self, p => sqlx::query(
            "UPDATE call_command SET outcome = $2, outcome_state = $3, outcome_reason = $4, answered_on = $5 \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(outcome)
        .bind(state)
        .bind(reason)
        .bind(ms(at))
        .execute(p)
        .await
        .map(|_| ())?);
        self.notify(OUTCOME_CHANNEL, &id.to_string()).await
    }

    async fn relayed_command_outcome(&self, id: Uuid) -> Result<Option<RelayedOutcome>> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = with_pool!(self, p => sqlx::query_as(
            "SELECT outcome, outcome_state, outcome_reason FROM call_command WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(p)
        .await?);
        Ok(row.and_then(|(outcome, state, reason)| match outcome.as_deref() {
            Some("accepted") => Some(RelayedOutcome::Accepted),
            Some("duplicate") => Some(RelayedOutcome::Duplicate),
            Some("not_found") => Some(RelayedOutcome::NotFound),
            Some("wrong_state") => Some(RelayedOutcome::WrongState {
                state: state.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
            }),
            Some("expired") => Some(RelayedOutcome::Expired),
            _ => None,
        }))
    }

    async fn expire_relayed_command(&self, id: Uuid, at: Timestamp) -> Result<bool> {
        let expired = with_pool!(self, p => sqlx::query(
            "UPDATE call_command SET outcome = 'expired', answered_on = $2 WHERE id = $1 AND outcome IS NULL",
        )
        .bind(id.to_string())
        .bind(ms(at))
        .execute(p)
        .await?
        .rows_affected());
        Ok(expired == 1)
    }

    async fn purge_relayed_commands(&self, before: Timestamp) -> Result<u64> {
        let purged = with_pool!(self, p => sqlx::query("DELETE FROM call_command WHERE created_on < $1")
            .bind(ms(before))
            .execute(p)
            .await?
            .rows_affected());
        Ok(purged)
    }
}
