//! Calls the platform places: `POST /rest/call` and the calls of a batch. Each is an outbound
//! [`SipCall`] run by the same [`CallRunner`] as inbound calls: `call.initiated`, the callee
//! rings, `call.answered` and the flow — or `call.hangup` with the callee's cause.
//!
//! An outbound voice profile's limits hold here: `channel_limit` counts the profile's calls in
//! progress (ringing or up), `calls_per_second` spaces their starts. A single call that would
//! exceed the channel limit, or wait too long for its rate slot, is refused: the API answers
//! 429 and the call's own events end with Q.850 34 and the reason. A batch waits instead.
//! A profile's `record_calls` records each of its calls from the answer to the end.
//! With several nodes sharing PostgreSQL the counts are the database's
//! ([`ProfileLimits::shared`], [`opentact_store::LimitRepo`]): a channel is a lease row that
//! the nodes take under the profile's advisory lock, a start slot a row they move on, so the
//! nodes together hold the profile's limits. When the database cannot be reached a node counts
//! its own calls alone rather than refuse every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentact_call::events::Q850;
use opentact_call::model::Direction;
use opentact_control::{Calling, Originate, OriginateError};
use opentact_store::{LimitRepo, OutboundVoiceProfile, ShakenSignPolicy};
use opentact_voice::{Destination, SipCall};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use crate::admission::Refusal;
use crate::billing::{Billing, PAYMENT_CAUSE, PaymentRefusal, RatedCall, end_when_used_up};
use crate::call_runner::{CallEnd, CallRunner, Flow, new_call_info};
use crate::shared_limits::SharedLimits;

/// The name of the recording of a call its profile records (`record_calls`).
pub const RECORDED_CALL: &str = "call";

/// Longest a single call waits for its profile's rate slot before it is refused.
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(5);

/// One profile's use on this node.
#[derive(Debug)]
struct ProfileUse {
    channels: usize,
    /// When the profile's next call may start.
    next_start: Instant,
}

/// Channels in use and rate slots per outbound voice profile.
#[derive(Debug, Default)]
pub struct ProfileLimits {
    profiles: Mutex<HashMap<Uuid, ProfileUse>>,
    /// Woken whenever a channel is given back.
    freed: Notify,
    /// Nodes share the database: it counts.
    shared: Option<SharedLimits>,
}

/// How often a batch waiting for a channel asks the database again: a channel freed on
/// another node wakes nobody here.
const SHARED_CHANNEL_POLL: Duration = Duration::from_millis(250);

/// A channel of a profile, given back when dropped (the call ended).
#[derive(Debug)]
pub struct Channel {
    limits: Arc<ProfileLimits>,
    profile: Uuid,
    /// Its lease in the database, when nodes share one.
    lease: Option<Uuid>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        if let Some(usage) = self.limits.profiles.lock().get_mut(&self.profile) {
            usage.channels = usage.channels.saturating_sub(1);
        }
        if let (Some(lease), Some(shared)) = (self.lease, &self.limits.shared) {
            let limits = self.limits.clone();
            shared.give_back(lease, move || limits.freed.notify_waiters());
        }
        self.limits.freed.notify_waiters();
    }
}

/// Why a profile refused a call now.
fn channel_refusal(profile: &OutboundVoiceProfile, limit: i32) -> String {
    format!(
        "channel limit reached: outbound voice profile {:?} ({}) allows {limit} concurrent calls",
        profile.name, profile.uuid
    )
}

/// The scope of a profile's limits in the database.
fn scope(profile: &OutboundVoiceProfile) -> String {
    format!("profile:{}", profile.uuid)
}

impl ProfileLimits {
    /// Limits counted in `store`, together with the other nodes that share it; this node is
    /// `node` there.
    pub fn shared(store: Arc<dyn LimitRepo>, node: String) -> Self {
        ProfileLimits { shared: Some(SharedLimits::new(store, node)), ..ProfileLimits::default() }
    }

    fn limit(profile: &OutboundVoiceProfile) -> Option<usize> {
        profile.channel_limit.map(|limit| usize::try_from(limit.max(0)).unwrap_or(0))
    }

    /// A channel now, or why not.
    pub async fn try_channel(self: &Arc<Self>, profile: &OutboundVoiceProfile) -> Result<Channel, String> {
        let mut lease = None;
        if let (Some(shared), Some(limit)) = (&self.shared, Self::limit(profile)) {
            match shared.take(&scope(profile), limit).await {
                Ok(Some(id)) => lease = Some(id),
                Ok(None) => return Err(channel_refusal(profile, profile.channel_limit.unwrap_or(0))),
                Err(error) => {
                    warn!(%error, "channel limit: the database is unreachable; this node counts alone")
                }
            }
        }
        let mut profiles = self.profiles.lock();
        let usage = profiles
            .entry(profile.uuid)
            .or_insert_with(|| ProfileUse { channels: 0, next_start: Instant::now() });
        if lease.is_none()
            && let Some(limit) = Self::limit(profile)
            && usage.channels >= limit
        {
            return Err(channel_refusal(profile, profile.channel_limit.unwrap_or(0)));
        }
        usage.channels += 1;
        Ok(Channel { limits: self.clone(), profile: profile.uuid, lease })
    }

    /// A channel, once one is free.
    pub async fn channel(self: &Arc<Self>, profile: &OutboundVoiceProfile) -> Channel {
        loop {
            // Register for the wake-up before checking, so a channel freed in between counts.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Ok(channel) = self.try_channel(profile).await {
                return channel;
            }
            if self.shared.is_some() {
                let _ = tokio::time::timeout(SHARED_CHANNEL_POLL, freed).await;
            } else {
                freed.await;
            }
        }
    }

    /// Reserve the profile's next start slot: when a call may start under its
    /// `calls_per_second`. `None` (nothing reserved) when that is further than `max_wait`.
    pub async fn start_slot(
        &self,
        profile: &OutboundVoiceProfile,
        max_wait: Option<Duration>,
    ) -> Option<Instant> {
        let Some(rate) = profile.calls_per_second.filter(|rate| *rate > 0).map(i32::unsigned_abs) else {
            return Some(Instant::now());
        };
        if let Some(shared) = &self.shared {
            let interval_us = 1_000_000 / i64::from(rate);
            let now_us = chrono::Utc::now().timestamp_micros();
            let max_wait_us = max_wait.map(|max| i64::try_from(max.as_micros()).unwrap_or(i64::MAX));
            match shared.reserve_rate_slot(&scope(profile), interval_us, now_us, max_wait_us).await {
                Ok(Some(slot_us)) => {
                    let wait = u64::try_from(slot_us - now_us).unwrap_or(0);
                    return Some(Instant::now() + Duration::from_micros(wait));
                }
                Ok(None) => return None,
                Err(error) => {
                    warn!(%error, "call rate limit: the database is unreachable; this node counts alone")
                }
            }
        }
        let now = Instant::now();
        let mut profiles = self.profiles.lock();
        let usage =
            profiles.entry(profile.uuid).or_insert_with(|| ProfileUse { channels: 0, next_start: now });
        let slot = usage.next_start.max(now);
        if max_wait.is_some_and(|max| slot - now > max) {
            return None;
        }
        usage.next_start = slot + Duration::from_secs(1) / rate;
        Some(slot)
    }
}

/// Places outbound calls.
#[derive(Debug)]
pub struct Originator {
    pub runner: Arc<CallRunner>,
    pub limits: Arc<ProfileLimits>,
    /// Rates calls to numbers and charges them ([`crate::billing`]).
    pub billing: Arc<Billing>,
}

/// A call ready to be placed.
#[derive(Debug)]
pub struct Prepared {
    pub id: Uuid,
    account: Uuid,
    call: Arc<SipCall>,
    session: Arc<opentact_call::CallSession>,
    flow: Flow,
    /// The profile's `shaken_sign_policy` is off: the call's legs go unsigned while it lasts.
    unsigned: Option<crate::shaken::Unsigned>,
    /// The profile's `record_calls`: the call is recorded from its answer to its end.
    record_calls: bool,
}

impl Originator {
    /// Build the call and its session (`call.initiated` goes out now); it is placed by
    /// [`Originator::place`].
    pub async fn prepare(&self, account: Uuid, request: &Originate) -> Result<Prepared, OriginateError> {
        let runner = &self.runner;
        let (component, mode) = runner
            .flow_for_mode(account, &request.mode, request.app.as_ref().and_then(|app| app.current_component))
            .await
            .map_err(OriginateError::Unavailable)?;
        let time_zone =
            runner.store.get_account(account).await.ok().flatten().map(|account| account.time_zone);
        let info = new_call_info(
            account,
            request.app.as_ref(),
            request.from_tn.to_string(),
            request.to.as_str().to_owned(),
            Some(request.from_tn),
            Direction::Outbound,
            time_zone,
        );
        let id = Uuid::parse_str(&info.id).unwrap_or_else(|_| Uuid::new_v4());
        let destination = Destination {
            target: request.to.clone(),
            caller_id: None,
            ring_timeout: Duration::from_secs(u64::from(request.ring_timeout_secs)),
        };
        let call = SipCall::outbound(
            info,
            destination,
            runner.voice.clone(),
            runner.renderer.clone(),
            runner.dialer.clone(),
        );
        let flow = Flow { account, app: request.app.clone(), component, mode };
        // The calling number's own event webhook hears the call too.
        if let Some(url) = &request.event_url {
            runner.webhooks.call_also_to(&id.to_string(), url);
        }
        let session = runner.session(&call, &flow);
        let unsigned = request
            .profile
            .as_ref()
            .filter(|profile| profile.shaken_sign_policy == ShakenSignPolicy::Off)
            .map(|_| runner.dialer.shaken.leave_unsigned(&id.to_string()));
        let record_calls = request.profile.as_ref().is_some_and(|profile| profile.record_calls);
        Ok(Prepared { id, account, call, session, flow, unsigned, record_calls })
    }

    /// Ring the call and run its flow to the end; `refusal` ends it at once with that cause
    /// and reason; `answered` hears when the callee answers. A `rated` call is ended when it
    /// has used what the account can pay, and charged when it ends.
    pub async fn place(
        &self,
        prepared: Prepared,
        refusal: Option<(Q850, String)>,
        rated: Option<RatedCall>,
        answered: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> CallEnd {
        let span = info_span!("call", call = %prepared.id, direction = "out");
        let _unsigned = prepared.unsigned;
        if refusal.is_some() {
            return self
                .runner
                .run_outbound(prepared.call, prepared.session, prepared.flow, refusal, answered)
                .instrument(span)
                .await;
        }
        // A rated call talks what the account can pay for.
        let allowance = rated.as_ref().map(|rated| {
            let _entered = span.enter();
            end_when_used_up(&prepared.session, &prepared.call, rated)
        });
        // Hear the answer; from then on record the call (its profile's `record_calls`).
        let (on_answer, answer) = tokio::sync::oneshot::channel();
        let watcher = {
            let (session, record) = (prepared.session.clone(), prepared.record_calls);
            tokio::spawn(
                async move {
                    if answer.await.is_err() {
                        return;
                    }
                    if let Some(answered) = answered {
                        let _ = answered.send(());
                    }
                    if record && let Err(error) = session.record_start(RECORDED_CALL.to_owned()).await {
                        warn!(%error, "the call is not recorded");
                    }
                }
                .instrument(span.clone()),
            )
        };
        let end = self
            .runner
            .run_outbound(prepared.call, prepared.session, prepared.flow, None, Some(on_answer))
            .instrument(span.clone())
            .await;
        watcher.abort();
        if let Some(allowance) = allowance {
            allowance.abort();
        }
        if let Some(rated) = &rated {
            self.billing
                .settle_logged(&self.runner.call_log, prepared.account, prepared.id, rated)
                .instrument(span)
                .await;
        }
        end
    }
}

/// `POST /rest/call`.
#[derive(Debug, Clone)]
pub struct RestCalling(pub Arc<Originator>);

impl Calling for RestCalling {
    fn originate(
        &self,
        account: Uuid,
        request: Originate,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Uuid, OriginateError>> + Send + '_>> {
        Box::pin(async move {
            let originator = self.0.clone();
            let account_slot = match originator.runner.admission.admit(account).await {
                Ok(slot) => Ok(slot),
                Err(Refusal::Draining) => {
                    return Err(OriginateError::Unavailable(Refusal::Draining.to_string()));
                }
                Err(refusal) => Err(refusal.to_string()),
            };
            let limits = &originator.limits;
            let (channel, slot) = match &request.profile {
                Some(profile) => {
                    let channel = limits.try_channel(profile).await;
                    let slot = match &channel {
                        Ok(_) => limits.start_slot(profile, Some(MAX_RATE_WAIT)).await,
                        Err(_) => None,
                    };
                    (Some(channel), slot)
                }
                None => (None, Some(Instant::now())),
            };
            let refusal = match (&channel, slot, &request.profile) {
                _ if account_slot.is_err() => account_slot.as_ref().err().cloned(),
                (Some(Err(reason)), _, _) => Some(reason.clone()),
                (_, None, Some(profile)) => Some(format!(
                    "call rate limit reached: outbound voice profile {:?} ({}) starts {} calls per second",
                    profile.name,
                    profile.uuid,
                    profile.calls_per_second.unwrap_or_default()
                )),
                _ => None,
            };
            // Rated only when no limit refused it: a refused call costs nothing.
            let rating = match refusal {
                None => {
                    Some(originator.billing.authorize(account, request.profile.as_ref(), &request.to).await)
                }
                Some(_) => None,
            };
            let prepared = originator.prepare(account, &request).await?;
            let id = prepared.id;
            if let Some(reason) = refusal {
                // The call exists in the events and the log, and ends with why.
                originator
                    .place(prepared, Some((Q850::NO_CIRCUIT_AVAILABLE, reason.clone())), None, None)
                    .await;
                return Err(OriginateError::Limit { call: id, reason });
            }
            let rated = match rating {
                Some(Err(PaymentRefusal(reason))) => {
                    originator.place(prepared, Some((PAYMENT_CAUSE, reason.clone())), None, None).await;
                    return Err(OriginateError::PaymentRequired { call: id, reason });
                }
                Some(Ok(rated)) => rated,
                None => None,
            };
            let channel = channel.and_then(Result::ok);
            tokio::spawn(async move {
                if let Some(slot) = slot {
                    tokio::time::sleep_until(slot).await;
                }
                originator.place(prepared, None, rated, None).await;
                drop(channel);
                drop(account_slot);
            });
            Ok(id)
        })
    }
}
