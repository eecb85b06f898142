//! Inbound SMS (`smsr`): from a carrier's `deliver_sm` to a stored message of the account that
//! leases the number it came in to.
//!
//! ```text
//!  deliver_sm ──► destination → lease (active, SMS enabled)? ── no ──► refused (ESME_RINVDSTADR),
//!                     │ yes                                           stored nowhere
//!                     ▼
//!                 a part of a concatenated message? ── yes, not the last ──► held in memory (taken)
//!                     │ whole
//!                     ▼
//!                 stored: smsr, state received ──► the binary: sms.received, webhooks, then the
//!                                                   number's app or SIP user / SIP connection
//!                                                   (`crate::sip`) ──► settle: delivered | failed
//! ```
//!
//! A message is acknowledged to the SMSC only once it is stored (or, for a part, held), so a
//! store that fails answers "temporary error" and the SMSC delivers it again. Parts of a
//! concatenated message (UDH, 8- or 16-bit reference) are put back together by (sender,
//! number, reference, total), in their sequence order whatever order they came in; parts wait
//! in memory for at most [`PART_TTL`], and at most [`MAX_PENDING_MESSAGES`] messages wait at
//! once (the oldest is dropped first). Held parts are lost when the process stops before the
//! last part arrives — the SMSC took them as delivered.
//!
//! With a price for messages in ([`InboundRouter::with_price`], `[rating] inbound_per_sms`),
//! each part, before it is taken, must find the account's balance paying the whole message
//! (its parts × the price); else it is refused with "temporary error", so the SMSC delivers it
//! again later and nothing is lost while the account tops up. A stored message is charged at
//! once: its record gets the price, the ledger the charge, announced as `account.changed`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use opentact_store::{NewSms, Repository, SmsDirection, SmsMessage, TnLease};
use parking_lot::Mutex;
use tracing::warn;

use crate::smpp::InboundSms;
use crate::smpp::inbound_status::{ESME_RINVDSTADR, ESME_RX_T_APPN};

/// How long the first parts of a concatenated message wait for the rest.
pub const PART_TTL: Duration = Duration::from_secs(10 * 60);
/// Concatenated messages waiting for parts at once.
pub const MAX_PENDING_MESSAGES: usize = 10_000;

/// The parts of one concatenated message.
type PartsKey = (String, String, u16, u8);

#[derive(Debug)]
struct Pending {
    first: Instant,
    parts: BTreeMap<u8, String>,
}

/// Puts concatenated messages back together (see the module docs).
#[derive(Debug)]
pub struct Reassembler {
    ttl: Duration,
    capacity: usize,
    pending: HashMap<PartsKey, Pending>,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(PART_TTL, MAX_PENDING_MESSAGES)
    }
}

impl Reassembler {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), pending: HashMap::new() }
    }

    /// Adds one part: the whole text and its number of parts once every part is in, else `None`.
    /// A message that is not concatenated is whole at once.
    pub fn add(&mut self, sms: &InboundSms, now: Instant) -> Option<(String, usize)> {
        let Some(concat) = sms.concat.filter(|c| c.total > 1) else {
            return Some((sms.text.clone(), 1));
        };
        let ttl = self.ttl;
        self.pending.retain(|_, p| now.duration_since(p.first) < ttl);
        let key = (sms.source.clone(), sms.destination.clone(), concat.reference, concat.total);
        if !self.pending.contains_key(&key) && self.pending.len() >= self.capacity {
            let oldest = self.pending.iter().min_by_key(|(_, p)| p.first).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                warn!(from = %oldest.0, to = %oldest.1, "inbound SMS: too many partial messages; dropping the oldest");
                self.pending.remove(&oldest);
            }
        }
        let entry =
            self.pending.entry(key.clone()).or_insert_with(|| Pending { first: now, parts: BTreeMap::new() });
        // A repeated part (the SMSC delivered it again) replaces the first copy.
        entry.parts.insert(concat.seq, sms.text.clone());
        if entry.parts.len() < usize::from(concat.total) {
            return None;
        }
        let whole = self.pending.remove(&key)?;
        Some((whole.parts.into_values().collect(), usize::from(concat.total)))
    }

    /// Messages waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The number an inbound message was sent to, as the store keys numbers: its digits (a leading
/// `+` is dropped); a ten-digit North American number gets its country code 1.
pub fn destination_tn(destination: &str) -> Option<i64> {
    let digits = destination.strip_prefix('+').unwrap_or(destination);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tn: i64 = digits.parse().ok()?;
    Some(if digits.len() == 10 { 10_000_000_000 + tn } else { tn })
}

/// What became of one `deliver_sm`.
#[derive(Debug)]
pub enum Routed {
    /// A whole message, stored for the account that leases the number.
    Stored { message: Box<SmsMessage>, lease: Box<TnLease> },
    /// A part of a concatenated message, held until the others arrive.
    Held,
    /// Not taken: the SMSC is answered `status`; `reason` says why (for the log).
    Refused { status: u32, reason: String },
}

impl Routed {
    /// The `deliver_sm_resp` status.
    pub fn status(&self) -> u32 {
        match self {
            Routed::Stored { .. } | Routed::Held => 0,
            Routed::Refused { status, .. } => *status,
        }
    }
}

/// What a message in costs its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPrice {
    /// Micro-units per SMS part.
    pub per_part_micros: i64,
    /// The platform's currency, in messages and events.
    pub currency: String,
}

/// Stores inbound messages for the accounts that lease their numbers.
pub struct InboundRouter {
    repo: Arc<dyn Repository>,
    parts: Mutex<Reassembler>,
    price: Option<InboundPrice>,
    /// Where each charge is announced (`account.changed`).
    events: Option<Arc<opentact_events::EventBus>>,
    /// What calls in progress hold of a balance.
    call_spend: Option<Arc<dyn opentact_control::CallSpend>>,
}

impl std::fmt::Debug for InboundRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundRouter").field("parts", &self.parts.lock().pending()).finish_non_exhaustive()
    }
}

impl InboundRouter {
    pub fn new(repo: Arc<dyn Repository>) -> Self {
        Self { repo, parts: Mutex::new(Reassembler::default()), price: None, events: None, call_spend: None }
    }

    /// Charge each message in at `price` (`None`: they are free), announcing the charges on
    /// `events`.
    pub fn with_price(mut self, price: Option<InboundPrice>, events: Arc<opentact_events::EventBus>) -> Self {
        self.price = price;
        self.events = Some(events);
        self
    }

    /// Count what the account's calls in progress hold as spent when a message in is priced.
    pub fn with_call_spend(mut self, spend: Arc<dyn opentact_control::CallSpend>) -> Self {
        self.call_spend = Some(spend);
        self
    }

    /// Whether the account of `lease` can pay for the message `sms` is (a part of): the refusal
    /// when it cannot, or cannot be told now.
    async fn affordable(&self, lease: &TnLease, sms: &InboundSms) -> Result<(), Routed> {
        let Some(price) = &self.price else { return Ok(()) };
        let parts = sms.concat.as_ref().map_or(1, |concat| i64::from(concat.total.max(1)));
        let cost = price.per_part_micros.saturating_mul(parts);
        let money = |micros| opentact_rating::format_money(micros, &price.currency);
        let held = self.call_spend.as_ref().map_or(0, |spend| spend.held(lease.account));
        match self.repo.balance(lease.account).await {
            Ok(balance) if balance - held >= cost => Ok(()),
            Ok(balance) => Err(Routed::Refused {
                status: ESME_RX_T_APPN,
                reason: format!(
                    "insufficient balance: {} left{}, a message in to {} of {parts} part{} costs {}",
                    money(balance - held),
                    crate::submit::held_by_calls(held, &money),
                    lease.tn,
                    if parts == 1 { "" } else { "s" },
                    money(cost)
                ),
            }),
            Err(e) => Err(Routed::Refused {
                status: ESME_RX_T_APPN,
                reason: format!("reading the balance of number {}'s account: {e}", lease.tn),
            }),
        }
    }

    /// Charge a stored message its price: the message as charged (with its price), or as it
    /// was when the charge failed (logged; the message is kept).
    async fn charge(&self, message: SmsMessage) -> SmsMessage {
        let Some(price) = &self.price else { return message };
        let parts = i64::from(message.parts.max(1));
        let amount_micros = price.per_part_micros.saturating_mul(parts);
        let description = format!(
            "sms in from {} to {}: {parts} part{} at {}",
            message.from,
            message.to,
            if parts == 1 { "" } else { "s" },
            opentact_rating::format_money(price.per_part_micros, &price.currency)
        );
        crate::submit::charge_message(
            &*self.repo,
            self.events.as_deref(),
            &price.currency,
            message,
            amount_micros,
            description,
        )
        .await
    }

    /// Checks the destination, puts parts together, stores a whole message (state received).
    pub async fn route(&self, sms: &InboundSms) -> Routed {
        let refused = |status, reason: String| Routed::Refused { status, reason };
        let Some(tn) = destination_tn(&sms.destination) else {
            return refused(
                ESME_RINVDSTADR,
                format!("destination {:?} is not a phone number", sms.destination),
            );
        };
        let lease = match self.repo.lease_by_tn(tn).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return refused(ESME_RINVDSTADR, format!("number {tn} is not leased by any account")),
            Err(e) => return refused(ESME_RX_T_APPN, format!("looking up number {tn}: {e}")),
        };
        if !lease.sms {
            return refused(ESME_RINVDSTADR, format!("SMS is not enabled on number {tn}"));
        }
        if let Err(refused) = self.affordable(&lease, sms).await {
            return refused;
        }
        let Some((text, parts)) = self.parts.lock().add(sms, Instant::now()) else {
            return Routed::Held;
        };
        let encoding = if sms.data_coding == 8 { "ucs2" } else { "gsm7" };
        let new = NewSms {
            direction: SmsDirection::Smsr,
            tn_lease: Some(lease.uuid),
            from: sms.source.clone(),
            to: tn.to_string(),
            text,
            encoding: encoding.into(),
            parts: i32::try_from(parts).unwrap_or(i32::MAX),
            custom_callback_url: None,
            queue: false,
        };
        match self.repo.create_sms(lease.account, new).await {
            Ok(message) => {
                let message = self.charge(message).await;
                Routed::Stored { message: Box::new(message), lease: Box::new(lease) }
            }
            Err(e) => refused(ESME_RX_T_APPN, format!("storing the message for number {tn}: {e}")),
        }
    }

    /// Records where a stored message went: received → delivered (with a note of where, when
    /// given, e.g. the SIP user), or failed with `reason`. The message as it is now, when it
    /// moved (`None` when it had already settled or the store failed).
    pub async fn settle(
        &self,
        message: &SmsMessage,
        outcome: Result<Option<String>, String>,
    ) -> Option<SmsMessage> {
        let (to, reason) = match outcome {
            Ok(note) => (opentact_store::SmsState::Delivered, note),
            Err(reason) => (opentact_store::SmsState::Failed, Some(reason)),
        };
        match self.repo.settle_inbound_sms(message.uuid, to, reason, Utc::now()).await {
            Ok(moved) => moved,
            Err(e) => {
                warn!(error = %e, id = %message.uuid, "recording an inbound SMS's outcome failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Concat;

    fn part(text: &str, reference: u16, total: u8, seq: u8) -> InboundSms {
        InboundSms {
            bind: 0,
            source: "14155550100".into(),
            destination: "12025550177".into(),
            data_coding: 0,
            esm_class: 0x40,
            text: text.into(),
            concat: Some(Concat { reference, total, seq }),
        }
    }

    #[test]
    fn parts_come_back_together_in_order() {
        let mut r = Reassembler::default();
        let now = Instant::now();
        assert_eq!(r.add(&part("world", 7, 3, 2), now), None);
        assert_eq!(r.add(&part("!", 7, 3, 3), now), None);
        // Another message from the same sender, another reference: kept apart.
        assert_eq!(r.add(&part("other ", 8, 2, 1), now), None);
        assert_eq!(r.pending(), 2);
        assert_eq!(r.add(&part("hello ", 7, 3, 1), now), Some(("hello world!".to_owned(), 3)));
        assert_eq!(r.pending(), 1);
        let single = InboundSms { concat: None, ..part("just one", 0, 0, 0) };
        assert_eq!(r.add(&single, now), Some(("just one".to_owned(), 1)));
    }

    #[test]
    fn a_repeated_part_counts_once_and_stale_parts_expire() {
        let mut r = Reassembler::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        assert_eq!(r.add(&part("a", 1, 2, 1), now), None);
        assert_eq!(r.add(&part("a", 1, 2, 1), now), None);
        assert_eq!(r.pending(), 1);
        // After the TTL the first part is gone: the second alone is not a whole message.
        let later = now + Duration::from_secs(61);
        assert_eq!(r.add(&part("b", 1, 2, 2), later), None);
        assert_eq!(r.add(&part("a", 1, 2, 1), later), Some(("ab".to_owned(), 2)));
        // Capacity: a third partial message drops the oldest.
        r.add(&part("x", 2, 2, 1), later);
        r.add(&part("y", 3, 2, 1), later + Duration::from_secs(1));
        r.add(&part("z", 4, 2, 1), later + Duration::from_secs(2));
        assert_eq!(r.pending(), 2);
        assert_eq!(r.add(&part("x2", 2, 2, 2), later + Duration::from_secs(3)), None, "dropped");
    }

    #[test]
    fn destinations_become_store_numbers() {
        assert_eq!(destination_tn("12025550177"), Some(12025550177));
        assert_eq!(destination_tn("+12025550177"), Some(12025550177));
        assert_eq!(destination_tn("2025550177"), Some(12025550177));
        assert_eq!(destination_tn("447700900123"), Some(447700900123));
        assert_eq!(destination_tn("SHORTCODE"), None);
        assert_eq!(destination_tn(""), None);
        assert_eq!(destination_tn("+"), None);
    }
}
