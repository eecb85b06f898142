//! Monthly number charges: what a leased number costs while the operator prices numbers
//! (`[rating] number_monthly`).
//!
//! A number ordered through `POST /rest/order` is charged its first month at once and is paid
//! until a calendar month later (`paid_until` on the lease). An order item the balance does
//! not pay fails with the reason, and the number stays in the inventory: numbers are not
//! rented on credit.
//!
//! The server sweeps the leases whose month is over ([`renew_due`]):
//!
//! - with `autorenew`, the next month is charged and `paid_until` moves a month on
//!   (`tn.changed` `renewed`, `account.changed` with the new balance);
//! - without it, the lease is released (`tn.changed` `released`, "not renewed");
//! - a renewal the balance does not pay is tried again every [`RENEWAL_RETRY`] for the grace
//!   period (`[rating] number_grace_days`), then the lease is released ("unpaid"). The account
//!   is told at the month's first failure, once: `tn.changed` `renewal_failed` with the
//!   reason and when the number is released unless the balance pays by then.
//!
//! Leases from before numbers were priced, and those the operator made (the sample number,
//! `opentact admin provision`), have no `paid_until` and are not billed. Several nodes may
//! sweep at once: a lease renewed or released by one is left alone by the others
//! ([`opentact_store::LeaseChargeOutcome::Stale`]).

use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use opentact_rating::format_money;
use opentact_store::{LeaseChargeOutcome, NewLeaseCharge, StoreError, TnLease, Transaction};
use tracing::{info, warn};
use uuid::Uuid;

use crate::state::ApiState;

/// Leases one sweep looks at; the rest wait for the next.
const SWEEP_BATCH: i64 = 500;

/// How long after an unpaid renewal it is tried again (within the grace period).
pub const RENEWAL_RETRY: Duration = Duration::from_secs(3600);

/// The operator's price of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberPrice {
    /// A month of one number, micro-units (more than zero).
    pub monthly_micros: i64,
    /// How long a renewal the balance does not pay is tried again before the lease is released.
    pub grace: Duration,
}

/// A calendar month after `from` (the 31st becomes the month's last day).
pub fn month_after(from: DateTime<Utc>) -> DateTime<Utc> {
    from.checked_add_months(Months::new(1)).unwrap_or(from)
}

fn description(tn: i64, until: DateTime<Utc>) -> String {
    format!("number {tn}, a month to {}", until.format("%Y-%m-%d"))
}

/// Announces a balance change (`account.changed`, as calls' and messages' charges do).
fn balance_changed(state: &ApiState, account: Uuid, row: &Transaction) {
    let payload =
        opentact_events::balance_changed_payload(row.balance_after_micros, &state.config.currency, row);
    crate::publish::publish(state, account, "account.changed", payload);
}

/// Why an order item is refused for money.
fn unpaid(state: &ApiState, price: NumberPrice, balance_micros: i64) -> String {
    format!(
        "insufficient balance: a number costs {} a month, the balance is {}",
        format_money(price.monthly_micros, &state.config.currency),
        format_money(balance_micros, &state.config.currency)
    )
}

/// Whether the balance pays a new number's first month, before it is leased: `Some` is the
/// order item's failure message.
pub(crate) async fn first_month_refusal(
    state: &ApiState,
    account: Uuid,
) -> Result<Option<String>, StoreError> {
    let Some(price) = state.config.number_price else { return Ok(None) };
    let balance = state.repo.balance(account).await?;
    Ok((balance < price.monthly_micros).then(|| unpaid(state, price, balance)))
}

/// Charges a newly leased number's first month. `Some(message)`: the balance did not pay it
/// (another charge came first), and the lease was released again.
pub(crate) async fn charge_first_month(
    state: &ApiState,
    lease: &TnLease,
) -> Result<Option<String>, StoreError> {
    let Some(price) = state.config.number_price else { return Ok(None) };
    let until = month_after(lease.created_on);
    let charge = NewLeaseCharge {
        lease: lease.uuid,
        amount_micros: price.monthly_micros,
        expected_paid_until: None,
        paid_until: until,
        description: description(lease.tn, until),
    };
    match state.repo.charge_lease(lease.account, charge).await? {
        LeaseChargeOutcome::Charged(row) => {
            balance_changed(state, lease.account, &row);
            Ok(None)
        }
        LeaseChargeOutcome::Unpaid { balance_micros } => {
            state.repo.release_lease(lease.account, lease.uuid).await?;
            Ok(Some(unpaid(state, price, balance_micros)))
        }
        LeaseChargeOutcome::Stale => Ok(None),
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub renewed: usize,
    /// Released at the end of their month (no `autorenew`).
    pub ended: usize,
    /// Released after the grace period, unpaid.
    pub unpaid: usize,
    /// Not paid yet, inside the grace period.
    pub waiting: usize,
}

/// Renews or releases the leases whose paid month is over at `now` (see the module's text).
/// Without a number price nothing is due.
pub async fn renew_due(state: &ApiState, now: DateTime<Utc>) -> Result<Sweep, StoreError> {
    let mut sweep = Sweep::default();
    let Some(price) = state.config.number_price else { return Ok(sweep) };
    for lease in state.repo.leases_due(now, SWEEP_BATCH).await? {
        let Some(paid_until) = lease.paid_until else { continue };
        if !lease.autorenew {
            if release(state, &lease, "not renewed").await? {
                sweep.ended += 1;
            }
            continue;
        }
        let until = month_after(paid_until);
        let charge = NewLeaseCharge {
            lease: lease.uuid,
            amount_micros: price.monthly_micros,
            expected_paid_until: Some(paid_until),
            paid_until: until,
            description: description(lease.tn, until),
        };
        match state.repo.charge_lease(lease.account, charge).await? {
            LeaseChargeOutcome::Charged(row) => {
                info!(tn = lease.tn, lease = %lease.uuid, until = %until, "number renewed");
                sweep.renewed += 1;
                balance_changed(state, lease.account, &row);
                // charge_lease moved only paid_until: the lease as it is now, without a read.
                let renewed = TnLease { paid_until: Some(until), ..lease };
                crate::publish::tn_changed(state, renewed.account, "renewed", &renewed);
            }
            LeaseChargeOutcome::Unpaid { balance_micros } => {
                let grace = chrono::Duration::from_std(price.grace).unwrap_or_default();
                let release_on = paid_until + grace;
                if now >= release_on {
                    if release(state, &lease, "unpaid").await? {
                        sweep.unpaid += 1;
                    }
                    continue;
                }
                let retry = chrono::Duration::from_std(RENEWAL_RETRY).unwrap_or_default();
                let first =
                    state.repo.defer_renewal(lease.uuid, paid_until, (now + retry).min(release_on)).await?;
                if first == Some(true) {
                    warn!(
                        tn = lease.tn,
                        lease = %lease.uuid,
                        balance = balance_micros,
                        %release_on,
                        "the number's next month is unpaid; it is released when the grace period ends"
                    );
                    let mut payload = crate::publish::tn_changed_payload("renewal_failed", &lease);
                    payload["reason"] = serde_json::json!(unpaid(state, price, balance_micros));
                    payload["release_on"] = serde_json::json!(release_on);
                    crate::publish::publish(state, lease.account, "tn.changed", payload);
                }
                sweep.waiting += 1;
            }
            LeaseChargeOutcome::Stale => {}
        }
    }
    Ok(sweep)
}

/// Releases a lease whose month is over; `false` when it was released meanwhile.
async fn release(state: &ApiState, lease: &TnLease, reason: &str) -> Result<bool, StoreError> {
    match state.repo.release_lease(lease.account, lease.uuid).await {
        Ok(released) => {
            info!(tn = lease.tn, lease = %lease.uuid, reason, "number released at the end of its month");
            let mut payload = crate::publish::tn_changed_payload("released", &released);
            payload["reason"] = serde_json::json!(reason);
            crate::publish::publish(state, lease.account, "tn.changed", payload);
            Ok(true)
        }
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::month_after;

    #[test]
    fn a_month_is_a_calendar_month_and_the_31st_ends_shorter_months() {
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().expect("date");
        assert_eq!(month_after(at(2026, 12, 7)), at(2027, 1, 7));
        assert_eq!(month_after(at(2027, 1, 31)), at(2027, 2, 28));
        assert_eq!(month_after(at(2028, 1, 31)), at(2028, 2, 29));
    }
}
