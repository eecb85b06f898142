//! The one place an outbound SMS is checked and queued: [`Submitter`] implements
//! [`opentact_control::Messaging::send`] for the REST API (`POST /rest/sms`,
//! `POST /rest/sms/pool`), flows' `send-sms` and webhook apps' replies alike.
//!
//! A message is checked whole before anything is stored, in this order:
//! 1. the destination (7 to 15 digits with the country code);
//! 2. the sender: a number (a lease of the account, in force, with SMS enabled) or one picked
//!    from a messaging profile's pool ([`crate::pool`]);
//! 3. the sender's rules ([`Submitter::sender_rules`]: 10DLC);
//! 4. the text (1 to 918 characters, at most 255 parts), planned into GSM-7 or UCS-2 parts;
//! 5. the rate limits of the number and of its messaging profile ([`crate::rate`]);
//! 6. with a rating deck ([`Submitter::with_rating`]), its price: parts × the destination's
//!    per-SMS price. A destination the deck does not rate, or a balance below the price, is
//!    refused (402); a prefix without an SMS price sends free.
//!
//! It is then stored queued — the row exists before `send` returns — and the sender is poked.
//! A rated message is charged once stored: its record gets the price and the ledger the charge.
//! Messages sent at the same time are stored together, one transaction a batch
//! ([`crate::group`]).

use std::pin::Pin;
use std::sync::Arc;

use opentact_control::{SentSms, SmsFrom, SmsRefusal, SmsSend};
use opentact_store::{NewSms, Repository, SmsDirection, SmsMessage, StoreError, TnLease};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::group::GroupCommit;
use crate::pool::Pool;
use crate::rate::{RateConfig, RateKey, RateLimiter};
use crate::segment;

/// Fewest digits of a destination (with its country code).
pub const MIN_DESTINATION_DIGITS: usize = 7;
/// Most digits of a destination (E.164's limit).
pub const MAX_DESTINATION_DIGITS: usize = 15;

/// The destination as digits without `+`, or why it is not a telephone number.
pub fn destination(to: &str) -> Result<String, SmsRefusal> {
    let trimmed = to.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if (MIN_DESTINATION_DIGITS..=MAX_DESTINATION_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Ok(digits.to_owned());
    }
    Err(SmsRefusal::invalid(
        "to",
        format!(
            "{to:?} is not a telephone number: send {MIN_DESTINATION_DIGITS} to {MAX_DESTINATION_DIGITS} digits \
             with the country code (an optional leading + is allowed)"
        ),
    ))
}

/// How a text goes on the air: `gsm7` or `ucs2`, and its parts; or why it cannot be sent.
pub fn plan(text: &str) -> Result<(&'static str, u32), String> {
    segment::check_length(text).map_err(|e| e.to_string())?;
    let plan = segment::plan(text);
    if plan.parts > segment::MAX_PARTS {
        return Err(format!(
            "the message needs {} parts; a concatenated message has at most {}",
            plan.parts,
            segment::MAX_PARTS
        ));
    }
    let encoding = match plan.encoding {
        segment::Encoding::Gsm7 => "gsm7",
        segment::Encoding::Ucs2 => "ucs2",
    };
    Ok((encoding, u32::try_from(plan.parts).unwrap_or(u32::MAX)))
}

/// What calls in progress hold of a balance, as a refusal says it; empty when nothing.
pub(crate) fn held_by_calls(held_micros: i64, money: &dyn Fn(i64) -> String) -> String {
    if held_micros > 0 {
        format!(" ({} held by calls in progress)", money(held_micros))
    } else {
        String::new()
    }
}

pub(crate) fn unavailable(e: StoreError) -> SmsRefusal {
    SmsRefusal::Unavailable(format!("the message store failed ({e}); send again later"))
}

/// Messages stored in one transaction at most.
pub const MAX_CREATE_BATCH: usize = 256;

/// Why a message of a batch was not stored.
#[derive(Debug)]
enum NotStored {
    /// Its lease is no longer live.
    NotLeased,
    /// The store failed (the whole batch).
    Store(String),
}

type Creates = GroupCommit<(Uuid, NewSms), Result<SmsMessage, NotStored>>;

/// Stores the messages sent at the same time together (see [`crate::group`]).
fn creates(repo: Arc<dyn Repository>) -> Creates {
    GroupCommit::new(MAX_CREATE_BATCH, move |batch: Vec<(Uuid, NewSms)>| {
        let repo = repo.clone();
        async move {
            let n = batch.len();
            match repo.create_sms_batch(batch).await {
                Ok(answers) => answers
                    .into_iter()
                    .map(|answer| {
                        answer.map_err(|e| match e {
                            StoreError::NotFound { .. } => NotStored::NotLeased,
                            e => NotStored::Store(e.to_string()),
                        })
                    })
                    .collect(),
                Err(e) => (0..n).map(|_| Err(NotStored::Store(e.to_string()))).collect(),
            }
        }
    })
}

/// Checks and queues outbound SMS (see the module's doc).
pub struct Submitter {
    pub(crate) repo: Arc<dyn Repository>,
    wake: Arc<Notify>,
    pub(crate) limits: RateLimiter,
    pub(crate) pool: Pool,
    /// Whether the 10DLC rule applies ([`Submitter::with_tendlc`]).
    tendlc: bool,
    creates: Creates,
    /// The rating deck and the currency ([`Submitter::with_rating`]).
    rating: Option<(Arc<opentact_rating::Deck>, String)>,
    /// What calls in progress hold of a balance ([`Submitter::with_call_spend`]).
    call_spend: Option<Arc<dyn opentact_control::CallSpend>>,
    /// Where each charge is announced (`account.changed`; [`Submitter::with_events`]).
    events: Option<Arc<opentact_events::EventBus>>,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter").field("limits", &self.limits.config()).finish_non_exhaustive()
    }
}

impl Submitter {
    /// `wake` is poked after each queued message (the sender's waker).
    pub fn new(repo: Arc<dyn Repository>, wake: Arc<Notify>, rate: RateConfig) -> Self {
        Self {
            creates: creates(repo.clone()),
            repo,
            wake,
            limits: RateLimiter::new(rate),
            pool: Pool::new(None),
            tendlc: false,
            rating: None,
            events: None,
            call_spend: None,
        }
    }

    /// Announce each message's charge on `bus` as `account.changed` with the new balance, as
    /// calls' charges are.
    pub fn with_events(mut self, bus: Arc<opentact_events::EventBus>) -> Self {
        self.events = Some(bus);
        self
    }

    /// Count what the account's calls in progress hold as spent when a message is priced.
    pub fn with_call_spend(mut self, spend: Arc<dyn opentact_control::CallSpend>) -> Self {
        self.call_spend = Some(spend);
        self
    }

    /// Rate messages with `deck` (prices in `currency`) and charge them to the account's
    /// balance (`[rating] deck`); without it messages are free.
    pub fn with_rating(mut self, deck: Option<Arc<opentact_rating::Deck>>, currency: &str) -> Self {
        self.rating = deck.map(|deck| (deck, currency.to_owned()));
        self
    }

    /// The price of `parts` parts to `to`, when it is rated, or why it cannot be sent.
    async fn price(&self, account: Uuid, to: &str, parts: u32) -> Result<Option<(i64, String)>, SmsRefusal> {
        let Some((deck, currency)) = &self.rating else { return Ok(None) };
        let money = |micros: i64| opentact_rating::format_money(micros, currency);
        let rate = deck.lookup(to).ok_or_else(|| {
            SmsRefusal::PaymentRequired(format!("no rate for +{to}: the rating deck has no prefix of it"))
        })?;
        let Some(charge) = rate.sms_charge(parts) else { return Ok(None) };
        let balance = self.repo.balance(account).await.map_err(unavailable)?;
        let held = self.call_spend.as_ref().map_or(0, |spend| spend.held(account));
        if balance - held < charge.price_micros {
            return Err(SmsRefusal::PaymentRequired(format!(
                "insufficient balance: {} left{}, the message ({parts} part{}) to +{to} costs {}",
                money(balance - held),
                held_by_calls(held, &money),
                if parts == 1 { "" } else { "s" },
                money(charge.price_micros)
            )));
        }
        let description = format!(
            "sms to +{to}: {parts} part{} at {} (prefix {})",
            if parts == 1 { "" } else { "s" },
            money(rate.per_sms_micros.unwrap_or_default()),
            rate.prefix
        );
        Ok(Some((charge.price_micros, description)))
    }

    /// Whether US long codes need an approved 10DLC campaign ([`crate::tendlc`]). Off in a bare
    /// `Submitter` (tests of other rules); the server turns it on from
    /// `[messaging] tendlc_enforce`, which is on by default.
    pub fn with_tendlc(mut self, enforce: bool) -> Self {
        self.tendlc = enforce;
        self
    }

    /// Picks pool senders with a fixed seed (tests: the same picks every run).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.pool = Pool::new(Some(seed));
        self
    }

    /// The account's lease of the number `given` (as the caller wrote it), in force and with
    /// SMS enabled, or a refusal on the field `tn`.
    async fn number(&self, account: Uuid, given: &str) -> Result<TnLease, SmsRefusal> {
        let trimmed = given.trim();
        let tn = trimmed
            .strip_prefix('+')
            .unwrap_or(trimmed)
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| SmsRefusal::invalid("tn", format!("{given:?} is not a telephone number")))?;
        let lease = self
            .repo
            .lease_by_tn(tn)
            .await
            .map_err(unavailable)?
            .filter(|l| l.account == account && l.released_on.is_none())
            .ok_or_else(|| {
                SmsRefusal::invalid("tn", format!("the number {tn} is not leased by this account"))
            })?;
        if !lease.sms {
            return Err(SmsRefusal::invalid(
                "tn",
                format!(
                    "SMS is not enabled on the number {tn}: enable it with POST /rest/lease/tn/sms {{\"enable\": [{tn}]}}"
                ),
            ));
        }
        Ok(lease)
    }

    /// The rules a sending number must meet beyond being the account's with SMS — 10DLC: a US
    /// long code sends application-to-person SMS only in an approved campaign. Pool senders
    /// that fail them are left out of the pool.
    pub(crate) async fn sender_rules(&self, lease: &TnLease) -> Result<(), SmsRefusal> {
        if !self.tendlc {
            return Ok(());
        }
        crate::tendlc::check(&*self.repo, lease.account, lease).await.map_err(|e| match e {
            crate::tendlc::TenDlcError::Store(e) => unavailable(e),
            refused => SmsRefusal::invalid("tn", refused.to_string()),
        })
    }

    /// The rate-limit keys of a sender: the number, and its messaging profile if it has one.
    pub(crate) fn rate_keys(lease: &TnLease) -> Vec<RateKey> {
        let mut keys = vec![RateKey::Number(lease.tn)];
        keys.extend(lease.messaging_profile.map(RateKey::Profile));
        keys
    }

    /// [`opentact_control::Messaging::send`].
    pub async fn submit(&self, request: SmsSend) -> Result<SentSms, SmsRefusal> {
        let SmsSend { account, from, to, text, custom_callback_url, origin } = request;
        let to = destination(&to)?;
        let lease = match &from {
            SmsFrom::Tn(given) => {
                let lease = self.number(account, given).await?;
                self.sender_rules(&lease).await?;
                lease
            }
            SmsFrom::Pool { profile } => self.pick(account, *profile, &to).await?,
        };
        let (encoding, parts) = plan(&text).map_err(|reason| SmsRefusal::invalid("message", reason))?;
        self.limits.take(&Self::rate_keys(&lease)).map_err(|limited| SmsRefusal::RateLimited {
            message: limited.to_string(),
            retry_after_secs: limited.retry_after_secs(),
        })?;
        let price = self.price(account, &to, parts).await?;
        let new = NewSms {
            direction: SmsDirection::Smso,
            tn_lease: Some(lease.uuid),
            from: lease.tn.to_string(),
            to,
            text,
            encoding: encoding.into(),
            parts: i32::try_from(parts).unwrap_or(i32::MAX),
            custom_callback_url,
            queue: true,
        };
        let stored = self
            .creates
            .write((account, new))
            .await
            .unwrap_or_else(|| Err(NotStored::Store("the message writer stopped".into())));
        let message = stored.map_err(|e| match e {
            NotStored::NotLeased => SmsRefusal::invalid(
                "tn",
                format!("the number {} is no longer leased by this account", lease.tn),
            ),
            NotStored::Store(e) => {
                SmsRefusal::Unavailable(format!("the message store failed ({e}); send again later"))
            }
        })?;
        tracing::info!(sms = %message.uuid, parts = message.parts, from = %message.from, ?origin, "sms queued");
        self.wake.notify_one();
        let Some(((price_micros, description), (_, currency))) = price.zip(self.rating.as_ref()) else {
            return Ok(message);
        };
        Ok(charge_message(&*self.repo, self.events.as_deref(), currency, message, price_micros, description)
            .await)
    }
}

/// Charges a stored message `amount_micros` — its record gets the price, the ledger the
/// charge, in one transaction — and announces it on `events` as `account.changed` with the new
/// balance: the message as charged, or as it was when the charge failed (logged; the message
/// is kept, uncharged). Messages out and in alike.
pub(crate) async fn charge_message(
    repo: &dyn Repository,
    events: Option<&opentact_events::EventBus>,
    currency: &str,
    message: SmsMessage,
    amount_micros: i64,
    description: String,
) -> SmsMessage {
    let charge = opentact_store::NewCharge {
        target: opentact_store::ChargeTarget::Sms { message: message.uuid },
        amount_micros,
        description,
    };
    match repo.charge(message.account, charge).await {
        Ok(row) => {
            if let Some(bus) = events {
                let payload =
                    opentact_events::balance_changed_payload(row.balance_after_micros, currency, &row);
                bus.publish(opentact_events::Event::now(message.account, "account.changed", None, payload));
            }
            SmsMessage { price_micros: Some(amount_micros), ..message }
        }
        Err(error) => {
            tracing::warn!(sms = %message.uuid, %error, "the message could not be charged; it is kept uncharged");
            message
        }
    }
}

impl opentact_control::Messaging for Submitter {
    fn send(
        &self,
        request: SmsSend,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<SentSms, SmsRefusal>> + Send + '_>> {
        Box::pin(self.submit(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(destination("+14155550100").unwrap(), "14155550100");
        assert_eq!(destination(" 4155550 ").unwrap(), "4155550");
        for bad in ["123", "12ab", "+", "1234567890123456", "-14155550100"] {
            let refused = destination(bad).unwrap_err();
            assert!(
                matches!(&refused, SmsRefusal::Invalid { field, .. } if field == "to"),
                "{bad}: {refused}"
            );
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan("hello").unwrap(), ("gsm7", 1));
        assert_eq!(plan(&"x".repeat(200)).unwrap(), ("gsm7", 2));
        assert_eq!(plan("привет").unwrap(), ("ucs2", 1));
        assert!(plan("").is_err());
        assert!(plan(&"a".repeat(919)).unwrap_err().contains("919"));
    }
}
