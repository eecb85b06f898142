//! What an account's calls in progress are spending, so that concurrent calls share one
//! balance (and one profile's daily spend limit) instead of each being given all of it.
//!
//! Every rated call — placed, in to a number, a `<Dial>` leg, a PBX's call out — takes a
//! [`SpendTicket`] on its budgets before it rings: the account's balance and, when its outbound
//! voice profile has one, what is left of that profile's daily spend limit. A budget refuses a
//! new call whose first block is not covered by what is left once the calls already on it are
//! counted: an answered call at what it has cost so far (rounded up to its increments), a
//! ringing one at its first block.
//!
//! Once calls are answered, a budget knows when their charges together will exceed it and
//! tells each of its calls that moment ([`SpendTicket::used_up`]); every change (a call
//! answered, one settled, a new one admitted) moves it. All of the budget's calls are ended
//! then, so that together they are billed no more than it held.
//!
//! What changes a budget from outside — a credit, a message's or a number's charge, another
//! node's ended calls — reaches it when the balance is read again ([`LiveSpend::refresh`],
//! every `[rating] balance_refresh_secs`). Budgets are per node: calls of one account carried
//! by different nodes of a shared PostgreSQL do not see each other while they last.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use opentact_rating::Rate;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// What a call spends against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    /// The account's balance.
    Balance(Uuid),
    /// What is left today of an outbound voice profile's daily spend limit.
    DailySpend { account: Uuid, profile: Uuid },
}

/// A budget being read from the store: while it is, the charges of its calls are counted, so
/// that one landing during the read is not missed ([`LiveSpend::reading`]).
#[derive(Debug)]
pub struct BudgetReading {
    spend: Arc<LiveSpend>,
    key: BudgetKey,
    settled_before: i64,
}

impl BudgetReading {
    /// What the store said the budget holds (charges of ended calls included), and why its
    /// calls are ended when it is used up.
    pub fn read(self, amount_micros: i64, used_up_reason: String) -> BudgetRead {
        BudgetRead { reading: self, amount_micros, used_up_reason }
    }
}

impl Drop for BudgetReading {
    fn drop(&mut self) {
        let mut ledger = self.spend.ledger.lock();
        if let Some(budget) = ledger.budgets.get_mut(&self.key) {
            budget.readers -= 1;
            if budget.readers == 0 && budget.members.is_empty() {
                ledger.budgets.remove(&self.key);
            }
        }
    }
}

/// A budget as the store read it, for [`LiveSpend::admit`].
#[derive(Debug)]
pub struct BudgetRead {
    reading: BudgetReading,
    amount_micros: i64,
    used_up_reason: String,
}

/// A budget that does not pay a new call's first block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub key: BudgetKey,
    /// What the budget holds before its calls in progress are counted.
    pub amount_micros: i64,
    /// What its calls in progress have cost (answered) or will cost at least (ringing).
    pub held_micros: i64,
    /// How many calls hold it.
    pub calls: usize,
}

/// When a call must end, and why; `None`: not while the budgets stay as they are.
type Deadline = Option<(Instant, String)>;

struct Budget {
    amount_micros: i64,
    used_up_reason: String,
    /// What its calls have been charged since it was created: a read that raced a charge.
    settled_micros: i64,
    /// Reads of it from the store under way: it is kept while there are.
    readers: usize,
    members: HashSet<u64>,
    deadline: Option<Instant>,
}

impl Budget {
    fn empty() -> Budget {
        Budget {
            amount_micros: 0,
            used_up_reason: String::new(),
            settled_micros: 0,
            readers: 0,
            members: HashSet::new(),
            deadline: None,
        }
    }
}

struct Spender {
    rate: Rate,
    answered: Option<Instant>,
    budgets: Vec<BudgetKey>,
    deadline: watch::Sender<Deadline>,
}

#[derive(Default)]
struct Ledger {
    budgets: HashMap<BudgetKey, Budget>,
    spenders: HashMap<u64, Spender>,
    next_id: u64,
}

/// This node's calls in progress, by what they spend against.
#[derive(Default)]
pub struct LiveSpend {
    ledger: Mutex<Ledger>,
}

impl std::fmt::Debug for LiveSpend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ledger = self.ledger.lock();
        f.debug_struct("LiveSpend")
            .field("budgets", &ledger.budgets.len())
            .field("calls", &ledger.spenders.len())
            .finish()
    }
}

impl LiveSpend {
    pub fn new() -> Arc<LiveSpend> {
        Arc::new(LiveSpend::default())
    }

    /// Start reading `key` from the store: call before the read, [`BudgetReading::read`] after.
    pub fn reading(self: &Arc<Self>, key: BudgetKey) -> BudgetReading {
        let mut ledger = self.ledger.lock();
        let budget = ledger.budgets.entry(key).or_insert_with(Budget::empty);
        budget.readers += 1;
        BudgetReading { spend: self.clone(), key, settled_before: budget.settled_micros }
    }

    /// Admit a call at `rate` on `budgets`, each just read from the store, or say which does
    /// not pay its first block.
    pub fn admit(self: &Arc<Self>, rate: Rate, budgets: Vec<BudgetRead>) -> Result<SpendTicket, Shortfall> {
        self.admit_at(rate, budgets, Instant::now())
    }

    fn admit_at(
        self: &Arc<Self>,
        rate: Rate,
        budgets: Vec<BudgetRead>,
        now: Instant,
    ) -> Result<SpendTicket, Shortfall> {
        let admitted = self.admit_locked(rate, &budgets, now);
        // The reads' pins are let go only now, with the ledger unlocked.
        drop(budgets);
        admitted
    }

    fn admit_locked(
        self: &Arc<Self>,
        rate: Rate,
        budgets: &[BudgetRead],
        now: Instant,
    ) -> Result<SpendTicket, Shortfall> {
        let mut ledger = self.ledger.lock();
        let first_block = rate.first_block_micros();
        let mut amounts = Vec::with_capacity(budgets.len());
        for read in budgets {
            let key = read.reading.key;
            let (held, calls) = ledger.held(key, now);
            let amount = ledger.amount_as_read(read);
            if amount - held < first_block {
                return Err(Shortfall { key, amount_micros: amount, held_micros: held, calls });
            }
            amounts.push(amount);
        }
        let id = ledger.next_id;
        ledger.next_id += 1;
        let (deadline, _) = watch::channel(None);
        let keys: Vec<BudgetKey> = budgets.iter().map(|read| read.reading.key).collect();
        for (read, amount) in budgets.iter().zip(amounts) {
            let budget = ledger.budgets.entry(read.reading.key).or_insert_with(Budget::empty);
            budget.amount_micros = amount;
            budget.used_up_reason.clone_from(&read.used_up_reason);
            budget.members.insert(id);
        }
        ledger.spenders.insert(id, Spender { rate, answered: None, budgets: keys.clone(), deadline });
        for key in &keys {
            ledger.recompute(*key, now);
        }
        Ok(SpendTicket { spend: self.clone(), id })
    }

    /// What the calls on `key` hold now: answered ones what they have cost so far, ringing
    /// ones their first block.
    pub fn held(&self, key: BudgetKey) -> i64 {
        self.ledger.lock().held(key, Instant::now()).0
    }

    /// The balances that calls in progress spend now: what [`LiveSpend::refresh`] re-reads.
    pub fn balances_in_use(&self) -> Vec<BudgetKey> {
        let ledger = self.ledger.lock();
        ledger
            .budgets
            .iter()
            .filter(|(key, budget)| matches!(key, BudgetKey::Balance(_)) && !budget.members.is_empty())
            .map(|(key, _)| *key)
            .collect()
    }

    /// Put what the store says a budget holds now in place of what it held when its newest
    /// call was admitted: what changed it since from outside this ledger — a credit, a
    /// message's charge, a number's month, another node's calls' charges — moves its calls'
    /// moment. A budget without calls is left alone.
    pub fn refresh(&self, read: BudgetRead) {
        self.refresh_at(&read, Instant::now());
    }

    fn refresh_at(&self, read: &BudgetRead, now: Instant) {
        let mut ledger = self.ledger.lock();
        let key = read.reading.key;
        let amount = ledger.amount_as_read(read);
        let Some(budget) = ledger.budgets.get_mut(&key) else { return };
        if budget.members.is_empty() {
            return;
        }
        budget.amount_micros = amount;
        budget.used_up_reason.clone_from(&read.used_up_reason);
        ledger.recompute(key, now);
    }

    fn answered_at(&self, id: u64, now: Instant) {
        let mut ledger = self.ledger.lock();
        let Some(spender) = ledger.spenders.get_mut(&id) else { return };
        if spender.answered.is_some() {
            return;
        }
        spender.answered = Some(now);
        for key in spender.budgets.clone() {
            ledger.recompute(key, now);
        }
    }

    fn subscribe(&self, id: u64) -> Option<watch::Receiver<Deadline>> {
        self.ledger.lock().spenders.get(&id).map(|spender| spender.deadline.subscribe())
    }

    /// The call `id` ended and was charged `charged_micros` (now in the store): it leaves its
    /// budgets, which hold that much less.
    fn leave_at(&self, id: u64, charged_micros: i64, now: Instant) {
        let mut ledger = self.ledger.lock();
        let Some(spender) = ledger.spenders.remove(&id) else { return };
        for key in spender.budgets {
            let Some(budget) = ledger.budgets.get_mut(&key) else { continue };
            budget.members.remove(&id);
            budget.amount_micros -= charged_micros;
            budget.settled_micros += charged_micros;
            if budget.members.is_empty() && budget.readers == 0 {
                ledger.budgets.remove(&key);
            } else {
                ledger.recompute(key, now);
            }
        }
    }
}

impl Ledger {
    /// What `read`'s budget holds, as the store said less what its calls were charged while
    /// it read: such a charge may or may not be in the read, so it is taken as not — the
    /// budget is never thought larger than it is.
    fn amount_as_read(&self, read: &BudgetRead) -> i64 {
        let raced = self
            .budgets
            .get(&read.reading.key)
            .map_or(0, |budget| budget.settled_micros - read.reading.settled_before);
        read.amount_micros - raced.max(0)
    }

    /// What the calls on `key` hold at `now`, and how many they are.
    fn held(&self, key: BudgetKey, now: Instant) -> (i64, usize) {
        let Some(budget) = self.budgets.get(&key) else { return (0, 0) };
        let held = budget
            .members
            .iter()
            .filter_map(|id| self.spenders.get(id))
            .map(|spender| match spender.answered {
                Some(answered) => spender.rate.call_charge(millis(now - answered)).price_micros,
                None => spender.rate.first_block_micros(),
            })
            .sum();
        (held, budget.members.len())
    }

    /// Work out when `key`'s answered calls will have used it up, and tell each of its calls
    /// the earlier of that and its other budget's moment.
    fn recompute(&mut self, key: BudgetKey, now: Instant) {
        let Some(budget) = self.budgets.get(&key) else { return };
        let talking: Vec<(&Rate, Instant)> = budget
            .members
            .iter()
            .filter_map(|id| self.spenders.get(id))
            .filter_map(|spender| spender.answered.map(|answered| (&spender.rate, answered)))
            .collect();
        let deadline = used_up_at(&talking, budget.amount_micros, now);
        let members: Vec<u64> = budget.members.iter().copied().collect();
        if let Some(budget) = self.budgets.get_mut(&key) {
            budget.deadline = deadline;
        }
        for id in members {
            let Some(spender) = self.spenders.get(&id) else { continue };
            let earliest = spender
                .budgets
                .iter()
                .filter_map(|key| self.budgets.get(key))
                .filter_map(|budget| budget.deadline.map(|at| (at, budget.used_up_reason.clone())))
                .min_by_key(|(at, _)| *at);
            spender.deadline.send_if_modified(|current| {
                let changed = *current != earliest;
                *current = earliest.clone();
                changed
            });
        }
    }
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// The last instant at which calls answered at the given instants, at their rates, have
/// together cost no more than `amount_micros`; `None` when their minutes cost nothing.
fn used_up_at(talking: &[(&Rate, Instant)], amount_micros: i64, now: Instant) -> Option<Instant> {
    let cost_after = |offset_ms: u64| -> i64 {
        talking
            .iter()
            .map(|(rate, answered)| {
                let elapsed = millis(now.saturating_duration_since(*answered)).saturating_add(offset_ms);
                rate.call_charge(elapsed).price_micros
            })
            .fold(0i64, i64::saturating_add)
    };
    // A bound by which the budget is surely exceeded: any one priced call alone exceeds it a
    // block after what the whole of it would pay for.
    let horizon_ms = talking
        .iter()
        .filter_map(|(rate, answered)| {
            let secs = rate.affordable_secs(amount_micros)?;
            let block = u64::from(rate.increment.initial_secs.max(rate.increment.increment_secs));
            let alone_ms = (secs + block) * 1000 + 1;
            Some(alone_ms.saturating_sub(millis(now.saturating_duration_since(*answered))))
        })
        .min()?;
    if cost_after(0) > amount_micros {
        return Some(now);
    }
    // The first millisecond at which the cost exceeds the budget lies in (low, high].
    let (mut low, mut high) = (0u64, horizon_ms.max(1));
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if cost_after(middle) > amount_micros { high = middle } else { low = middle }
    }
    Some(now + Duration::from_millis(low))
}

/// A call's place on its budgets: it leaves them when charged ([`SpendTicket::settle`]) or,
/// charged nothing, when dropped. Leaving twice changes nothing: the second finds it gone.
pub struct SpendTicket {
    spend: Arc<LiveSpend>,
    id: u64,
}

impl std::fmt::Debug for SpendTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendTicket").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SpendTicket {
    /// The call answered now: it spends from here on.
    pub fn answered(&self) {
        self.spend.answered_at(self.id, Instant::now());
    }

    /// Resolves, with the reason, when the call's budgets are used up (a little early:
    /// `end_early_by`, for the moments between this clock and the CDR's); pending while they
    /// are not, or once the call has left them.
    pub async fn used_up(&self, end_early_by: Duration) -> String {
        let Some(mut deadline) = self.spend.subscribe(self.id) else {
            return std::future::pending().await;
        };
        loop {
            let current = deadline.borrow_and_update().clone();
            let sleep = async {
                match &current {
                    Some((at, _)) => {
                        tokio::time::sleep_until(at.checked_sub(end_early_by).unwrap_or(*at)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => return current.map(|(_, reason)| reason).unwrap_or_default(),
                changed = deadline.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }

    /// The call was charged `charged_micros`: it leaves its budgets, which now hold that less.
    pub fn settle(&self, charged_micros: i64) {
        self.spend.leave_at(self.id, charged_micros, Instant::now());
    }
}

impl Drop for SpendTicket {
    fn drop(&mut self) {
        self.settle(0);
    }
}

#[cfg(test)]
mod tests {
    use opentact_rating::Increment;

    use super::*;

    const ACCOUNT: Uuid = Uuid::from_u128(1);

    /// 0.60 a minute: 0.01 a second.
    fn rate(initial_secs: u32, increment_secs: u32) -> Rate {
        Rate {
            prefix: "1".to_owned(),
            per_minute_micros: 600_000,
            per_sms_micros: None,
            increment: Increment { initial_secs, increment_secs },
            description: String::new(),
        }
    }

    fn balance(spend: &Arc<LiveSpend>, amount_micros: i64) -> Vec<BudgetRead> {
        let reading = spend.reading(BudgetKey::Balance(ACCOUNT));
        vec![reading.read(amount_micros, format!("the balance of {amount_micros} is used up"))]
    }

    fn deadline(ticket: &SpendTicket) -> Deadline {
        ticket.spend.subscribe(ticket.id).and_then(|rx| rx.borrow().clone())
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn one_call_may_talk_what_the_balance_pays() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let ticket = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t0).unwrap();
        assert_eq!(deadline(&ticket), None, "a ringing call spends nothing yet");
        spend.answered_at(ticket.id, t0);
        let (at, reason) = deadline(&ticket).unwrap();
        assert_eq!(at - t0, secs(10), "0.10 at 0.01 a second");
        assert_eq!(reason, "the balance of 100000 is used up");
    }

    #[test]
    fn two_calls_share_the_balance_and_are_told_one_moment() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let first = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t0).unwrap();
        spend.answered_at(first.id, t0);
        // 4 s on, the first has cost 0.04: 0.06 is left for the second.
        let t4 = t0 + secs(4);
        let second = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t4).unwrap();
        spend.answered_at(second.id, t4);
        // Together they spend 0.02 a second: 0.06 lasts 3 s.
        assert_eq!(deadline(&first).unwrap().0, t4 + secs(3));
        assert_eq!(deadline(&second).unwrap().0, t4 + secs(3));
    }

    #[test]
    fn a_call_that_ends_gives_the_others_what_it_did_not_spend() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let first = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t0).unwrap();
        let second = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t0).unwrap();
        spend.answered_at(first.id, t0);
        spend.answered_at(second.id, t0);
        assert_eq!(deadline(&second).unwrap().0, t0 + secs(5));
        // The first ends after 2 s and is charged 0.02: the second has the other 0.08 alone,
        // 0.02 of which it has spent.
        spend.leave_at(first.id, 20_000, t0 + secs(2));
        assert_eq!(deadline(&second).unwrap().0, t0 + secs(8));
        // Settled again (its ticket dropped, say): nothing is taken twice.
        spend.leave_at(first.id, 20_000, t0 + secs(2));
        assert_eq!(deadline(&second).unwrap().0, t0 + secs(8));
    }

    #[test]
    fn a_call_is_refused_what_the_calls_in_progress_hold() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        // 60/60: a ringing call holds its first minute, 0.60.
        let ringing = spend.admit_at(rate(60, 60), balance(&spend, 1_000_000), t0).unwrap();
        let refused = spend.admit_at(rate(60, 60), balance(&spend, 1_000_000), t0).unwrap_err();
        assert_eq!(
            refused,
            Shortfall {
                key: BudgetKey::Balance(ACCOUNT),
                amount_micros: 1_000_000,
                held_micros: 600_000,
                calls: 1
            }
        );
        // Answered 61 s ago, it holds two minutes.
        spend.answered_at(ringing.id, t0);
        let refused = spend.admit_at(rate(1, 1), balance(&spend, 1_205_000), t0 + secs(61)).unwrap_err();
        assert_eq!(refused.held_micros, 1_200_000);
        drop(ringing);
        assert!(spend.admit_at(rate(60, 60), balance(&spend, 1_000_000), t0).is_ok(), "the call left");
        assert_eq!(spend.ledger.lock().spenders.len(), 0, "the admitted one was dropped at once");
        assert!(spend.ledger.lock().budgets.is_empty(), "budgets without calls are forgotten");
    }

    #[test]
    fn increments_are_counted_whole() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        // 0.60 a minute in 6 s blocks after a first 30 s: 0.30, then 0.06 a block. 0.50 pays
        // the first 30 s and three blocks, 48 s.
        let ticket = spend.admit_at(rate(30, 6), balance(&spend, 500_000), t0).unwrap();
        spend.answered_at(ticket.id, t0);
        assert_eq!(deadline(&ticket).unwrap().0 - t0, secs(48));
    }

    #[test]
    fn a_daily_limit_smaller_than_the_balance_ends_the_call_first() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let daily = BudgetKey::DailySpend { account: ACCOUNT, profile: Uuid::from_u128(2) };
        let mut budgets = balance(&spend, 100_000);
        budgets.push(spend.reading(daily).read(30_000, "the daily limit is reached".to_owned()));
        let ticket = spend.admit_at(rate(1, 1), budgets, t0).unwrap();
        spend.answered_at(ticket.id, t0);
        assert_eq!(deadline(&ticket), Some((t0 + secs(3), "the daily limit is reached".to_owned())));
    }

    #[test]
    fn a_charge_that_raced_the_read_is_not_counted_twice_nor_missed() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let first = spend.admit_at(rate(1, 1), balance(&spend, 100_000), t0).unwrap();
        spend.answered_at(first.id, t0);
        let reading = spend.reading(BudgetKey::Balance(ACCOUNT));
        // The first is charged 0.03, and leaves, while the second's read (which missed the
        // charge) is on its way.
        let t3 = t0 + secs(3);
        spend.leave_at(first.id, 30_000, t3);
        drop(first);
        let second = spend.admit_at(rate(1, 1), vec![reading.read(100_000, String::new())], t3).unwrap();
        spend.answered_at(second.id, t3);
        assert_eq!(deadline(&second).unwrap().0 - t3, secs(7));
    }

    #[test]
    fn a_credit_during_the_call_gives_it_more_time() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let ticket = spend.admit_at(rate(1, 1), balance(&spend, 30_000), t0).unwrap();
        spend.answered_at(ticket.id, t0);
        assert_eq!(deadline(&ticket).unwrap().0, t0 + secs(3));
        assert_eq!(spend.balances_in_use(), [BudgetKey::Balance(ACCOUNT)]);
        // Credited 0.10 while it talks: the store says 0.13 (its own charge comes at its end).
        let read = spend.reading(BudgetKey::Balance(ACCOUNT)).read(130_000, "0.13 is used up".to_owned());
        spend.refresh_at(&read, t0 + secs(1));
        assert_eq!(deadline(&ticket), Some((t0 + secs(13), "0.13 is used up".to_owned())));
        drop(read);
        drop(ticket);
        assert!(spend.balances_in_use().is_empty(), "no call, nothing to refresh");
    }

    #[test]
    fn free_minutes_never_run_out() {
        let (spend, t0) = (LiveSpend::new(), Instant::now());
        let mut free = rate(1, 1);
        free.per_minute_micros = 0;
        let ticket = spend.admit_at(free, balance(&spend, 0), t0).unwrap();
        spend.answered_at(ticket.id, t0);
        assert_eq!(deadline(&ticket), None);
    }

    #[tokio::test]
    async fn used_up_resolves_early_with_the_reason() {
        let spend = LiveSpend::new();
        let ticket = spend.admit(rate(1, 1), balance(&spend, 20_000)).unwrap();
        ticket.answered();
        // 2 s of talk, told 1.8 s early: 0.2 s.
        let started = Instant::now();
        let reason = tokio::time::timeout(secs(5), ticket.used_up(Duration::from_millis(1800)))
            .await
            .expect("used up");
        assert_eq!(reason, "the balance of 20000 is used up");
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    }
}
