//! Number pools (`POST /rest/sms/pool`): the sender of a message is picked from a messaging
//! profile's numbers — the account's leases attached to the profile, in force, with SMS enabled,
//! that meet the sender rules (10DLC).
//!
//! Which one:
//! - **Usable** numbers only. A number at one of its rate limits (or whose profile is) is never
//!   picked; when every number is, the message is refused as rate limited (429). With
//!   `skip_unhealthy_tns`, *unhealthy* numbers are left out too: a number is unhealthy when, of its
//!   latest [`HEALTH_SAMPLE`] outbound messages of the last [`HEALTH_WINDOW_SECS`] seconds, at least
//!   [`HEALTH_MIN_FINISHED`] are finished (delivered, undelivered or failed) and at least
//!   [`HEALTH_MAX_BAD_PERCENT`] % of those finished undelivered or failed. It is healthy again when
//!   its failures age out of the window or deliveries outweigh them.
//! - **Sticky sender** (`sticky_sender`): the number that sent the account's latest message to
//!   this destination, while it is still one of the usable numbers of the pool (read from the
//!   message log, so it holds across restarts and nodes).
//! - Otherwise **by weight**: long codes and toll-free numbers are two classes, picked with
//!   probability `long_code_weight` : `toll_free_weight` (a class without usable numbers is not
//!   picked; a class of weight 0 only when the other has none), then uniformly within the class.
//!
//! No usable number at all: 422 "no healthy sender in the pool" on `messaging_profile`.

use chrono::Utc;
use opentact_control::SmsRefusal;
use opentact_store::{
    LeaseFilter, ListParams, MessagingProfile, Order, SmsDirection, SmsFilter, SmsState, TnLease,
};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::submit::{Submitter, unavailable};
use crate::tendlc::{SenderKind, sender_kind};

/// How far back a number's outcomes count for its health, seconds.
pub const HEALTH_WINDOW_SECS: i64 = 3600;
/// How many of a number's latest outbound messages are looked at.
pub const HEALTH_SAMPLE: u32 = 50;
/// Fewest finished messages before a number can be judged unhealthy.
pub const HEALTH_MIN_FINISHED: usize = 5;
/// Share of finished messages undelivered or failed (percent) at which a number is unhealthy.
pub const HEALTH_MAX_BAD_PERCENT: usize = 50;

/// Page size when reading an account's leases.
const LEASE_PAGE: u32 = 1000;

/// Whether a number's latest outcomes (newest first) make it unhealthy (see the module's doc).
pub fn unhealthy(states: impl IntoIterator<Item = SmsState>) -> bool {
    let (mut finished, mut bad) = (0usize, 0usize);
    for state in states {
        match state {
            SmsState::Delivered => finished += 1,
            SmsState::Undelivered | SmsState::Failed => {
                finished += 1;
                bad += 1;
            }
            _ => {}
        }
    }
    finished >= HEALTH_MIN_FINISHED && bad * 100 >= finished * HEALTH_MAX_BAD_PERCENT
}

/// The random source of weighted picks: SplitMix64, seeded from the clock unless given.
#[derive(Debug)]
pub struct Pool {
    state: Mutex<u64>,
}

impl Pool {
    pub fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
        });
        Self { state: Mutex::new(seed) }
    }

    fn next(&self) -> u64 {
        let mut s = self.state.lock();
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The index in `candidates` (not empty) picked by weight with the random `r` (see the module's
/// doc).
pub fn choose(candidates: &[TnLease], long_code_weight: i32, toll_free_weight: i32, r: u64) -> usize {
    let (toll_free, long_code): (Vec<usize>, Vec<usize>) =
        (0..candidates.len()).partition(|&i| sender_kind(candidates[i].tn) == SenderKind::TollFree);
    let lcw = u64::try_from(long_code_weight.max(0)).unwrap_or(0);
    let tfw = u64::try_from(toll_free_weight.max(0)).unwrap_or(0);
    let class = match (long_code.is_empty(), toll_free.is_empty()) {
        (true, _) => &toll_free,
        (_, true) => &long_code,
        _ if lcw + tfw == 0 => {
            if r.is_multiple_of(2) {
                &long_code
            } else {
                &toll_free
            }
        }
        _ => {
            if (r % (lcw + tfw)) < lcw {
                &long_code
            } else {
                &toll_free
            }
        }
    };
    // The high bits pick within the class (the low ones picked the class).
    let within = usize::try_from((r >> 32) % class.len() as u64).unwrap_or(0);
    class[within]
}

impl Submitter {
    /// The profile's numbers: the account's leases in force attached to it, with SMS.
    async fn pool_numbers(&self, account: Uuid, profile: Uuid) -> Result<Vec<TnLease>, SmsRefusal> {
        let mut numbers = Vec::new();
        let mut skip = 0;
        loop {
            let page = self
                .repo
                .list_leases(account, LeaseFilter::default(), ListParams::page(LEASE_PAGE, skip))
                .await
                .map_err(unavailable)?;
            let n = page.data.len();
            numbers.extend(
                page.data
                    .into_iter()
                    .filter(|l| l.sms && l.released_on.is_none() && l.messaging_profile == Some(profile)),
            );
            if n < LEASE_PAGE as usize {
                return Ok(numbers);
            }
            skip += LEASE_PAGE;
        }
    }

    async fn healthy(&self, account: Uuid, tn: i64) -> Result<bool, SmsRefusal> {
        let filter = SmsFilter {
            direction: Some(SmsDirection::Smso),
            from: Some(tn.to_string()),
            since: Some(Utc::now() - chrono::Duration::seconds(HEALTH_WINDOW_SECS)),
            ..Default::default()
        };
        let params = ListParams { take: HEALTH_SAMPLE, skip: 0, order: Order::Desc };
        let latest = self.repo.search_sms(account, filter, params).await.map_err(unavailable)?;
        Ok(!unhealthy(latest.data.into_iter().map(|m| m.state)))
    }

    /// The sender of the account's latest outbound message to `to`.
    async fn last_sender(&self, account: Uuid, to: &str) -> Result<Option<String>, SmsRefusal> {
        let filter =
            SmsFilter { direction: Some(SmsDirection::Smso), to: Some(to.to_owned()), ..Default::default() };
        let params = ListParams { take: 1, skip: 0, order: Order::Desc };
        let latest = self.repo.search_sms(account, filter, params).await.map_err(unavailable)?;
        Ok(latest.data.into_iter().next().map(|m| m.from))
    }

    async fn profile(&self, account: Uuid, profile: Uuid) -> Result<MessagingProfile, SmsRefusal> {
        let p = self.repo.get_messaging_profile(account, profile).await.map_err(unavailable)?.ok_or_else(
            || SmsRefusal::invalid("messaging_profile", format!("messaging profile {profile} not found")),
        )?;
        if !p.number_pool_enable {
            return Err(SmsRefusal::invalid(
                "messaging_profile",
                format!(
                    "the number pool of messaging profile {profile} is not enabled: enable it with PATCH \
                     /rest/profile/messaging/{profile} {{\"number_pool_enable\": true}}"
                ),
            ));
        }
        Ok(p)
    }

    /// Picks the sender of a message to `to` (digits) from `account`'s profile `profile`.
    pub(crate) async fn pick(&self, account: Uuid, profile: Uuid, to: &str) -> Result<TnLease, SmsRefusal> {
        let p = self.profile(account, profile).await?;
        let numbers = self.pool_numbers(account, profile).await?;
        let total = numbers.len();
        let mut usable = Vec::with_capacity(total);
        let mut limited = None;
        for lease in numbers {
            if self.sender_rules(&lease).await.is_err() {
                continue;
            }
            if let Err(l) = self.limits.check(&Self::rate_keys(&lease)) {
                limited =
                    Some(limited.map_or(
                        l.clone(),
                        |m: crate::rate::Limited| {
                            if l.retry_after_ms < m.retry_after_ms { l } else { m }
                        },
                    ));
                continue;
            }
            if p.skip_unhealthy_tns && !self.healthy(account, lease.tn).await? {
                continue;
            }
            usable.push(lease);
        }
        if usable.is_empty() {
            if let Some(l) = limited {
                return Err(SmsRefusal::RateLimited {
                    message: format!("every number of the pool is at a rate limit: {l}"),
                    retry_after_secs: l.retry_after_secs(),
                });
            }
            return Err(SmsRefusal::invalid(
                "messaging_profile",
                format!(
                    "no healthy sender in the pool of messaging profile {profile} ({total} numbers with SMS \
                     attached, none usable now): attach SMS-enabled numbers with PATCH /rest/lease/tn/{{uuid}} \
                     {{\"messaging_profile_uuid\": \"{profile}\"}}, or send from a number with POST /rest/sms"
                ),
            ));
        }
        if p.sticky_sender
            && let Some(last) = self.last_sender(account, to).await?
            && let Some(i) = usable.iter().position(|l| l.tn.to_string() == last)
        {
            return Ok(usable.swap_remove(i));
        }
        let i = choose(&usable, p.long_code_weight, p.toll_free_weight, self.pool.next());
        Ok(usable.swap_remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(tn: i64) -> TnLease {
        TnLease {
            uuid: Uuid::new_v4(),
            account: Uuid::nil(),
            tn,
            voice: false,
            sms: true,
            autorenew: false,
            tn_profile: None,
            sip_connection: None,
            sip_control_app: None,
            messaging_profile: None,
            created_on: Utc::now(),
            modified_on: Utc::now(),
            released_on: None,
            event_url: None,
            paid_until: None,
        }
    }

    #[test]
    fn weights_split_the_picks_between_classes() {
        let pool = Pool::new(Some(7));
        let numbers = [lease(12025550100), lease(12025550101), lease(18885550100)];
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[choose(&numbers, 3, 1, pool.next())] += 1;
        }
        // 3:1 → about 1000 toll-free, 1500 for each long code.
        assert!((800..1200).contains(&counts[2]), "{counts:?}");
        assert!((1300..1700).contains(&counts[0]) && (1300..1700).contains(&counts[1]), "{counts:?}");
        // Weight 0: never, while the other class has numbers.
        assert!((0..500).all(|_| choose(&numbers, 1, 0, pool.next()) != 2));
        assert!((0..500).all(|_| choose(&numbers, 0, 1, pool.next()) == 2));
        assert_eq!(choose(&numbers[2..], 1, 0, pool.next()), 0);
    }

    #[test]
    fn health() {
        use SmsState::*;
        assert!(!unhealthy([Failed, Failed, Failed, Failed]), "too few to judge");
        assert!(unhealthy([Failed, Undelivered, Failed, Delivered, Delivered, Queued]));
        assert!(!unhealthy([Failed, Failed, Delivered, Delivered, Delivered, Sent]));
    }
}
