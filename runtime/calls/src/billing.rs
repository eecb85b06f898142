//! Money on the calls the platform places: each is rated before it rings, may last only as
//! long as the account can pay, and is charged when it ends.
//!
//! With a rating deck loaded (`[rating] deck`), a call to a number (`POST /rest/call`, a
//! batch's numbers) is rated by the deck's longest matching prefix. It is refused before it
//! rings — the API answers 402, the call's events end with Q.850 21 and the reason — when
//!
//! - no prefix of the deck matches (the platform does not call there),
//! - the rate is above the outbound voice profile's `max_rate`,
//! - the account's balance, or what is left of the profile's `daily_spend_limit` today (UTC),
//!   does not pay the rate's first block.
//!
//! A call that rings is given what the smaller of the two affords, in the rate's increments:
//! it is ended at that length with the same cause and reason. When it ends, its CDR's billable
//! time (answer to end) is billed in the rate's increments, the CDR gets the price and the
//! ledger the charge, in one transaction ([`opentact_store::BillingRepo::charge`]), announced
//! as `account.changed` with the new balance.
//!
//! A flow's `<Dial>` leg to a number is authorized the same way before it rings (refused, the
//! dial fails with the reason) and charged from its answer when it ends, as a ledger row of
//! its own ([`Billing::settle_leg`]). It too talks only as long as the balance pays: then the
//! leg is hung up and the dial fails with the reason (the caller stays, its flow goes on).
//!
//! Concurrent calls of one account share its balance and their profile's daily spend limit
//! ([`crate::spend`]): a new call is refused what the calls in progress hold, and once the
//! budget is used up all of them are ended together. The balance of accounts with calls in
//! progress is re-read every `[rating] balance_refresh_secs`, so a credit during a call gives
//! it more time and a message's charge less. On a shared PostgreSQL each node counts only its
//! own calls in progress (the others' charges reach it with that re-read).
//!
//! Without a deck nothing is rated and nothing is refused. Calls to SIP users and URIs stay on
//! the platform and are not rated.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opentact_call::events::Q850;
use opentact_call::model::DialTarget;
use opentact_call::model::HangupReason;
use opentact_call::{CallBackend, CallSession};
use opentact_rating::{Deck, Rate, format_money};
use opentact_store::{CallPrice, ChargeTarget, NewCharge, OutboundVoiceProfile};
use opentact_voice::SipCall;
use tracing::{Instrument, info, warn};
use uuid::Uuid;

use crate::Repo;
use crate::call_log::CallLog;
use crate::spend::{BudgetKey, LiveSpend, Shortfall, SpendTicket};

/// The Q.850 cause of a call refused or ended for money: 21, call rejected (what SIP's
/// 402 Payment Required maps to, RFC 3398).
pub const PAYMENT_CAUSE: Q850 = Q850::CALL_REJECTED;

/// How much before its allowance a call is ended: its billable time runs from the answer's
/// event to the hangup's, a few milliseconds longer than the timer, and is rounded up to the
/// second — ending exactly at the allowance would bill one second more than was left.
pub const END_EARLY_BY: Duration = Duration::from_millis(500);

/// How every reason for money starts: what a call ended, or a dial failed, for it says.
pub const INSUFFICIENT_BALANCE: &str = "insufficient balance";

/// Whether a dial failed (or a dialled leg was ended) for money, by its reason: the leg's
/// guard ends it with its budget's reason (`crate::spend`), prefixed `dial: `.
pub fn is_unpaid(reason: &str) -> bool {
    reason.trim_start_matches("dial: ").starts_with(INSUFFICIENT_BALANCE)
}

/// Why a call may not be placed, in words the account reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRefusal(pub String);

impl std::fmt::Display for PaymentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A call cleared to ring: its rate, and its place on the budgets it spends (which say how
/// long it may last once answered).
#[derive(Debug, Clone)]
pub struct RatedCall {
    pub rate: Rate,
    pub profile: Option<Uuid>,
    pub ticket: Arc<SpendTicket>,
}

/// The deck and the store.
pub struct Billing {
    deck: Option<Arc<Deck>>,
    /// What calls in to numbers cost (`[rating] inbound_per_minute`); `None`: nothing.
    inbound: Option<Rate>,
    store: Repo,
    /// The platform's currency, in messages (`USD`).
    currency: String,
    /// Where each charge is announced (`account.changed`, `changed: ["balance"]`).
    events: Option<Arc<opentact_events::EventBus>>,
    /// What this node's calls in progress spend.
    live: Arc<LiveSpend>,
    /// Where refusals are counted (`opentact_calls_refused_total{reason="payment"}`).
    metrics: Option<opentact_metrics::CallMetrics>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("deck_rows", &self.deck.as_ref().map(|deck| deck.len()))
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

/// Midnight UTC of today: where a daily spend limit's day starts.
fn start_of_day() -> chrono::DateTime<Utc> {
    let today = Utc::now().date_naive();
    Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default())
}

impl Billing {
    pub fn new(deck: Option<Arc<Deck>>, store: Repo, currency: String) -> Self {
        Billing { deck, inbound: None, store, currency, events: None, live: LiveSpend::new(), metrics: None }
    }

    /// Rate calls in to numbers at `rate` (its prefix unused), when there is one.
    pub fn with_inbound(mut self, rate: Option<Rate>) -> Self {
        self.inbound = rate;
        self
    }

    /// Count the calls refused for money in `metrics`.
    pub fn with_metrics(mut self, metrics: opentact_metrics::CallMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts a refusal for money, and passes the answer on.
    fn counted<T>(&self, answer: Result<T, PaymentRefusal>) -> Result<T, PaymentRefusal> {
        if let (Err(_), Some(metrics)) = (&answer, &self.metrics) {
            metrics.refused(opentact_metrics::CallRefusal::Payment);
        }
        answer
    }

    /// Announce each charge on `bus` as `account.changed` with the new balance.
    pub fn with_events(mut self, bus: Arc<opentact_events::EventBus>) -> Self {
        self.events = Some(bus);
        self
    }

    /// The rating deck, when one is loaded (messages are rated with it too).
    pub fn deck_arc(&self) -> Option<Arc<Deck>> {
        self.deck.clone()
    }

    fn money(&self, micros: i64) -> String {
        format_money(micros, &self.currency)
    }

    /// Whether `account` may call `to` under `profile`, and for how long; `Ok(None)`: the call
    /// is not rated.
    pub async fn authorize(
        &self,
        account: Uuid,
        profile: Option<&OutboundVoiceProfile>,
        to: &DialTarget,
    ) -> Result<Option<RatedCall>, PaymentRefusal> {
        let answer = self.rate_and_admit(account, profile, to).await;
        self.counted(answer)
    }

    async fn rate_and_admit(
        &self,
        account: Uuid,
        profile: Option<&OutboundVoiceProfile>,
        to: &DialTarget,
    ) -> Result<Option<RatedCall>, PaymentRefusal> {
        let (Some(deck), DialTarget::Number(number)) = (&self.deck, to) else {
            return Ok(None);
        };
        let number = number.trim_start_matches('+');
        let rate = deck.lookup(number).ok_or_else(|| {
            PaymentRefusal(format!("no rate for +{number}: the rating deck has no prefix of it"))
        })?;
        if let Some(max_rate) = profile.and_then(|profile| profile.max_rate_micros)
            && rate.per_minute_micros > max_rate
        {
            return Err(PaymentRefusal(format!(
                "+{number} costs {} a minute, above the outbound voice profile's max_rate {}",
                self.money(rate.per_minute_micros),
                self.money(max_rate)
            )));
        }
        let mut budgets = vec![self.read_balance(account).await?];
        if let Some(profile) = profile
            && let Some(limit) = profile.daily_spend_limit_micros
        {
            let reading = self.live.reading(BudgetKey::DailySpend { account, profile: profile.uuid });
            let spent =
                self.store.spent_since(account, profile.uuid, start_of_day()).await.map_err(|error| {
                    warn!(%error, "reading the day's spend");
                    PaymentRefusal("the day's spend cannot be read now; try again".to_owned())
                })?;
            budgets.push(reading.read(
                limit - spent,
                format!(
                    "{INSUFFICIENT_BALANCE}: the call reached the outbound voice profile's daily spend limit of {}",
                    self.money(limit)
                ),
            ));
        }
        let ticket = self.live.admit(rate.clone(), budgets).map_err(|shortfall| {
            let held = self.held_by_calls(&shortfall);
            PaymentRefusal(match shortfall.key {
                BudgetKey::Balance(_) => format!(
                    "{INSUFFICIENT_BALANCE}: {} left{held}, the first {} s to +{number} cost {}",
                    self.money(shortfall.amount_micros - shortfall.held_micros),
                    rate.increment.initial_secs,
                    self.money(rate.first_block_micros())
                ),
                BudgetKey::DailySpend { .. } => {
                    let limit = profile.and_then(|profile| profile.daily_spend_limit_micros).unwrap_or_default();
                    format!(
                        "{INSUFFICIENT_BALANCE}: the outbound voice profile's daily spend limit of {} is reached ({} spent today{held})",
                        self.money(limit),
                        self.money(limit - shortfall.amount_micros)
                    )
                }
            })
        })?;
        Ok(Some(RatedCall { rate: rate.clone(), profile: profile.map(|p| p.uuid), ticket: Arc::new(ticket) }))
    }

    /// The account's balance, read for [`LiveSpend::admit`].
    async fn read_balance(&self, account: Uuid) -> Result<crate::spend::BudgetRead, PaymentRefusal> {
        let reading = self.live.reading(BudgetKey::Balance(account));
        let balance = self.store.balance(account).await.map_err(|error| {
            warn!(%error, "reading the balance");
            PaymentRefusal("the balance cannot be read now; try again".to_owned())
        })?;
        Ok(reading.read(
            balance,
            format!("{INSUFFICIENT_BALANCE}: the balance of {} is used up", self.money(balance)),
        ))
    }

    /// Re-reads the balance of every account with calls in progress, so that what changed it
    /// from outside this node's calls (a credit, a message, a number's month, another node's
    /// calls) moves when they end ([`LiveSpend::refresh`]).
    pub async fn refresh_balances(&self) {
        for key in self.live.balances_in_use() {
            let BudgetKey::Balance(account) = key else { continue };
            match self.read_balance(account).await {
                Ok(read) => self.live.refresh(read),
                Err(refusal) => warn!(%account, %refusal, "re-reading the balance of calls in progress"),
            }
        }
    }

    /// [`Billing::refresh_balances`] every `every`, from now on.
    pub fn keep_balances_fresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let billing = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                billing.refresh_balances().await;
            }
        })
    }

    /// What calls in progress hold of a budget, as a refusal says it; empty when none does.
    fn held_by_calls(&self, shortfall: &Shortfall) -> String {
        match shortfall.calls {
            0 => String::new(),
            1 => format!(" ({} held by a call in progress)", self.money(shortfall.held_micros)),
            calls => format!(" ({} held by {calls} calls in progress)", self.money(shortfall.held_micros)),
        }
    }

    /// Whether `account` may take a call in to one of its numbers, and for how long;
    /// `Ok(None)`: calls in are not rated.
    pub async fn authorize_inbound(&self, account: Uuid) -> Result<Option<RatedCall>, PaymentRefusal> {
        let answer = self.admit_inbound(account).await;
        self.counted(answer)
    }

    async fn admit_inbound(&self, account: Uuid) -> Result<Option<RatedCall>, PaymentRefusal> {
        let Some(rate) = &self.inbound else { return Ok(None) };
        let balance = self.read_balance(account).await?;
        let ticket = self.live.admit(rate.clone(), vec![balance]).map_err(|shortfall| {
            PaymentRefusal(format!(
                "{INSUFFICIENT_BALANCE}: {} left{}, the first {} s of a call in cost {}",
                self.money(shortfall.amount_micros - shortfall.held_micros),
                self.held_by_calls(&shortfall),
                rate.increment.initial_secs,
                self.money(rate.first_block_micros())
            ))
        })?;
        Ok(Some(RatedCall { rate: rate.clone(), profile: None, ticket: Arc::new(ticket) }))
    }

    /// Charge an ended call for its CDR's billable time, answer to end: what the account
    /// reads is what it pays for.
    pub async fn settle_logged(&self, call_log: &CallLog, account: Uuid, call: Uuid, rated: &RatedCall) {
        call_log.flush().await;
        let record = match self.store.get_call(account, call).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                warn!(%call, "the call is not in the call log: it is not charged");
                return;
            }
            Err(error) => {
                warn!(%call, %error, "reading the call's CDR: it is not charged");
                return;
            }
        };
        let billable_ms = match (record.answered_on, record.ended_on) {
            (Some(answered), Some(ended)) => {
                u64::try_from((ended - answered).num_milliseconds()).unwrap_or(0)
            }
            _ => 0,
        };
        self.settle(account, call, rated, billable_ms).await;
    }

    /// Charge a call that ended after `billable_ms` (from its answer to its end; 0 when it was
    /// not answered): its CDR gets the price and the ledger the charge.
    pub async fn settle(&self, account: Uuid, call: Uuid, rated: &RatedCall, billable_ms: u64) {
        let what = format!("call {call}");
        let profile = rated.profile;
        self.charge(account, call, &what, rated, billable_ms, |price| ChargeTarget::Call {
            call,
            price,
            outbound_voice_profile: profile,
        })
        .await;
    }

    /// Charge a `<Dial>` leg of `call` to `to` that talked `billable_ms`: a ledger row of its
    /// own (the call's CDR keeps the call's own price).
    pub async fn settle_leg(&self, account: Uuid, call: Uuid, to: &str, rated: &RatedCall, billable_ms: u64) {
        let leg = opentact_store::new_id();
        let what = format!("call {call}, dialled leg to +{}", to.trim_start_matches('+'));
        let outbound_voice_profile = rated.profile;
        self.charge(account, call, &what, rated, billable_ms, |_| ChargeTarget::Leg {
            call,
            leg,
            outbound_voice_profile,
        })
        .await;
    }

    async fn charge(
        &self,
        account: Uuid,
        call: Uuid,
        what: &str,
        rated: &RatedCall,
        billable_ms: u64,
        target: impl FnOnce(CallPrice) -> ChargeTarget,
    ) {
        let charge = rated.rate.call_charge(billable_ms);
        let price = CallPrice {
            price_micros: charge.price_micros,
            billed_secs: i64::try_from(charge.billed_secs).unwrap_or(i64::MAX),
            rate_prefix: rated.rate.prefix.clone(),
            rate_per_minute_micros: rated.rate.per_minute_micros,
        };
        // A deck's row names its prefix; the rate of calls in has none.
        let label = match (rated.rate.prefix.as_str(), rated.rate.description.as_str()) {
            ("", description) => description.to_owned(),
            (prefix, "") => format!("prefix {prefix}"),
            (prefix, description) => format!("prefix {prefix} {description}"),
        };
        let description = format!(
            "{what}: {} s billed at {} a minute ({label}, {})",
            charge.billed_secs,
            self.money(rated.rate.per_minute_micros),
            rated.rate.increment
        );
        let new = NewCharge { target: target(price), amount_micros: charge.price_micros, description };
        match self.store.charge(account, new).await {
            Ok(row) => {
                rated.ticket.settle(row.amount_micros);
                info!(%call, price = row.amount_micros, balance = row.balance_after_micros, "{what} charged");
                if let Some(bus) = &self.events {
                    let payload = opentact_events::balance_changed_payload(
                        row.balance_after_micros,
                        &self.currency,
                        &row,
                    );
                    bus.publish(opentact_events::Event::now(account, "account.changed", Some(call), payload));
                }
            }
            Err(error) => {
                rated.ticket.settle(0);
                warn!(%call, %error, "{what} could not be charged");
            }
        }
    }
}

impl opentact_control::CallSpend for Billing {
    fn held(&self, account: Uuid) -> i64 {
        self.live.held(BudgetKey::Balance(account))
    }
}

/// Ends a rated call once its budgets are used up (with what its account's other calls in
/// progress spend; a little early: [`END_EARLY_BY`]) with cause 21 and the reason. Abort the
/// returned task when the call ends first.
pub fn end_when_used_up(
    session: &Arc<CallSession>,
    call: &Arc<SipCall>,
    rated: &RatedCall,
) -> tokio::task::JoinHandle<()> {
    let (session, call, ticket) = (session.clone(), call.clone(), rated.ticket.clone());
    let mut answered = session.events().answer_watch();
    tokio::spawn(
        async move {
            if answered.wait_for(|answered| *answered).await.is_err() {
                return;
            }
            ticket.answered();
            let reason = ticket.used_up(END_EARLY_BY).await;
            if !session.is_ended() {
                info!(%reason, "ending the call");
                session.refuse(PAYMENT_CAUSE, reason);
                let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
            }
        }
        .in_current_span(),
    )
}
