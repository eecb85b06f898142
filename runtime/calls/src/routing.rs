//! Inbound call routing: who is calling, where to, whether the number's caller-ID lists let the
//! caller through, then the app's flow runs on the call.
//!
//! The order follows the SIP issue. Who is calling: a known trunk (a carrier address from the
//! configuration, or a customer's SIP connection by IP), or else a SIP user proven by digest
//! (the sip crate challenges with 407; wrong credentials get 403). Where to: from a trunk, the
//! Request-URI's number must be leased with voice and an app (else 404), and a blacklisted
//! caller, or one missing from a non-empty whitelist, gets 603; from a SIP user, the domain's
//! app when it has one, else the dialled user of the same account or a number.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use opentact_call::events::EventKind;
use opentact_call::model::{Direction, HangupReason};
use opentact_call::{CallBackend, FlowOutcome};
use opentact_flows::ControlMode;
use opentact_sip::guard::{AuthBan, BanScope};
use opentact_sip::{Caller, InboundHandler, IncomingCall, InviteCredential};
use opentact_store::model::{SipControlApp, SipDomain, SipUser};
use opentact_voice::SipCall;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

pub use opentact_sip::address::{domain_label, tn_of};

use crate::Repo;
use crate::billing::{PAYMENT_CAUSE, end_when_used_up};
use crate::call_runner::{CallRunner, Flow, new_call_info};
use crate::trunk::reason_header;

/// An IP network (`10.0.0.0/8`, `127.0.0.1/32`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr =
            address.trim().parse().map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Network { address, prefix })
    }
}

impl Network {
    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether a caller matches a caller-ID list entry. Entries are numbers with country code or
/// prefixes of them (the store checks that), so a number matches itself and `1310555` matches
/// every number starting with it; a ten-digit NANP caller ID is taken with its country code 1.
fn caller_matches(caller: &str, entry: &str) -> bool {
    let caller = caller.strip_prefix('+').unwrap_or(caller);
    if caller.is_empty() || !caller.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let caller = if caller.len() == 10 { format!("1{caller}") } else { caller.to_owned() };
    let entry = entry.strip_prefix('+').unwrap_or(entry).trim_end_matches('*');
    !entry.is_empty() && caller.starts_with(entry)
}

/// What routing decided.
#[derive(Debug)]
enum Route {
    /// Run an app's flow.
    Run {
        app: Box<SipControlApp>,
        to: String,
        tn: Option<i64>,
        /// The call's own event webhooks besides the account's and the app's: the called
        /// number's, or the SIP domain's and user's (`event_url`s).
        event_urls: Vec<String>,
    },
    /// A SIP user's call to a user or number, with no domain app: the platform connects it.
    Connect {
        account: Uuid,
        xml: String,
        to: String,
        /// As [`Route::Run`]'s.
        event_urls: Vec<String>,
    },
    Reject {
        status: u16,
        reason: String,
    },
}

/// Characters a SIP user part may have to be dialled as `<To>` (nothing XML would need escaped).
fn plain_user(user: &str) -> bool {
    !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// Routes inbound calls and runs their flows.
pub struct CallRouter {
    pub store: Repo,
    /// Runs the calls routing accepts.
    pub runner: Arc<CallRunner>,
    pub carriers: Vec<Network>,
    /// The platform's SIP domain (`sip.domain`).
    pub sip_domain: String,
}

/// Ring a SIP user of the account's domains (its registered phones).
fn dial_user(account: Uuid, user: &str, host: &str, event_urls: Vec<String>) -> Route {
    let xml = format!("<Response><Dial><To>{user}@{host}</To></Dial></Response>");
    Route::Connect { account, xml, to: format!("{user}@{host}"), event_urls }
}

/// The `event_url`s of a SIP domain and one of its users that are set (the webhooks send
/// each URL a call's events once, however many scopes name it).
fn event_urls(domain: &SipDomain, user: Option<&SipUser>) -> Vec<String> {
    [domain.event_url.as_ref(), user.and_then(|user| user.event_url.as_ref())]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

impl std::fmt::Debug for CallRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRouter").field("carriers", &self.carriers).finish_non_exhaustive()
    }
}

impl CallRouter {
    async fn route(&self, call: &IncomingCall) -> Result<Route, opentact_store::StoreError> {
        match &call.caller {
            Caller::Trunk | Caller::Connection { .. } => {
                let route = self.route_to_number(call).await?;
                // A customer's SIP connection is trusted for its own account only: it must not
                // reach (and be billed as) another account's numbers and users. Carriers reach all.
                let target = match &route {
                    Route::Run { app, .. } => Some(app.account),
                    Route::Connect { account, .. } => Some(*account),
                    Route::Reject { .. } => None,
                };
                if let (Some(target), Some(allowed)) = (target, self.connection_accounts(call).await?)
                    && !allowed.contains(&target)
                {
                    return Ok(Route::Reject {
                        status: 403,
                        reason: "a SIP connection reaches only its own account's numbers and users"
                            .to_owned(),
                    });
                }
                Ok(route)
            }
            Caller::User { domain, login } => self.route_from_user(call, domain, login).await,
        }
    }

    /// The accounts a trunk-side caller may reach: `None` for a carrier (every account's
    /// numbers), else the accounts of the SIP connections it came in as (by address or by
    /// digest credentials).
    async fn connection_accounts(
        &self,
        call: &IncomingCall,
    ) -> Result<Option<Vec<Uuid>>, opentact_store::StoreError> {
        match &call.caller {
            Caller::Trunk => {
                let ip = call.source.ip();
                if self.carriers.iter().any(|network| network.contains(ip)) {
                    return Ok(None);
                }
                let connections = self.store.connections_by_ip(&ip.to_string()).await?;
                Ok(Some(connections.iter().filter(|c| c.is_active).map(|c| c.account).collect()))
            }
            Caller::Connection { realm, .. } => {
                let Some(label) =
                    domain_label(&realm.to_ascii_lowercase(), &self.sip_domain).map(str::to_owned)
                else {
                    return Ok(Some(Vec::new()));
                };
                let connection = self.store.connection_by_subdomain(&label).await?;
                Ok(Some(connection.into_iter().map(|c| c.account).collect()))
            }
            Caller::User { .. } => Ok(Some(Vec::new())),
        }
    }

    /// A call from a trunk: the Request-URI's number, its lease and app, the caller-ID lists.
    async fn route_to_number(&self, call: &IncomingCall) -> Result<Route, opentact_store::StoreError> {
        let user = call.request_uri.user.as_deref().unwrap_or_default();
        // A trunk calling user@acme.<platform domain>: the domain's app, else the user.
        let host = call.request_uri.host.to_ascii_lowercase();
        // (A connection's own `<subdomain>.<domain>` is not a SIP domain: its calls go to numbers.)
        let domain = match domain_label(&host, &self.sip_domain) {
            Some(label) => self.store.domain_by_name(label).await?.map(|domain| (label, domain)),
            None => None,
        };
        if let Some((label, domain)) = domain {
            // The dialled user's and its domain's webhooks hear the call.
            let called =
                if plain_user(user) { self.store.sip_user_by_login(label, user).await? } else { None };
            let urls = event_urls(&domain, called.as_ref());
            if let Some(app) = self.domain_app(&domain).await? {
                return Ok(Route::Run {
                    app: Box::new(app),
                    to: format!("{user}@{host}"),
                    tn: None,
                    event_urls: urls,
                });
            }
            if called.is_none() {
                return Ok(Route::Reject { status: 404, reason: format!("no SIP user {user}@{host}") });
            }
            return Ok(dial_user(domain.account, user, &host, urls));
        }
        let Some(tn) = tn_of(user) else {
            return Ok(Route::Reject { status: 404, reason: format!("{user:?} is not a number") });
        };
        let Some(lease) = self.store.lease_by_tn(tn).await? else {
            return Ok(Route::Reject { status: 404, reason: format!("{tn} is not in service") });
        };
        if !lease.voice {
            return Ok(Route::Reject { status: 404, reason: format!("{tn} has no voice service") });
        }
        let Some(app_id) = lease.sip_control_app else {
            return Ok(Route::Reject { status: 404, reason: format!("{tn} has no SIP Control App") });
        };
        let Some(app) = self.store.get_app(lease.account, app_id).await? else {
            return Ok(Route::Reject { status: 404, reason: format!("{tn}'s app no longer exists") });
        };
        if let Some(profile_id) = lease.tn_profile
            && let Some(profile) = self.store.get_tn_profile(lease.account, profile_id).await?
        {
            let caller = call.from.user.as_deref().unwrap_or_default();
            if profile.blacklist.iter().any(|entry| caller_matches(caller, entry)) {
                return Ok(Route::Reject { status: 603, reason: format!("caller {caller} is blacklisted") });
            }
            if !profile.whitelist.is_empty()
                && !profile.whitelist.iter().any(|entry| caller_matches(caller, entry))
            {
                return Ok(Route::Reject {
                    status: 603,
                    reason: format!("caller {caller} is not whitelisted"),
                });
            }
        }
        Ok(Route::Run {
            app: Box::new(app),
            to: tn.to_string(),
            tn: Some(tn),
            event_urls: lease.event_url.into_iter().collect(),
        })
    }

    /// The app a SIP domain's calls run, when it has one that still exists.
    async fn domain_app(
        &self,
        domain: &SipDomain,
    ) -> Result<Option<SipControlApp>, opentact_store::StoreError> {
        match domain.app {
            Some(app_id) => self.store.get_app(domain.account, app_id).await,
            None => Ok(None),
        }
    }

    /// A call from an authenticated SIP user: its domain's app when it has one; otherwise to
    /// another user of the account's domains, or to a number through the carrier trunk.
    async fn route_from_user(
        &self,
        call: &IncomingCall,
        domain: &str,
        login: &str,
    ) -> Result<Route, opentact_store::StoreError> {
        let not_found = |reason: String| Ok(Route::Reject { status: 404, reason });
        let Some(label) = domain_label(domain, &self.sip_domain) else {
            return not_found(format!("{domain} is not a domain of this platform"));
        };
        let Some(own) = self.store.domain_by_name(label).await? else {
            return not_found(format!("{domain} no longer exists"));
        };
        let target_user = call.request_uri.user.clone().unwrap_or_default();
        let caller = self.store.sip_user_by_login(label, login).await?;
        // The calling user's and its domain's webhooks hear the call.
        let mut urls = event_urls(&own, caller.as_ref());
        // A user kept to its domain reaches only that domain's users, whatever else would run.
        let restricted = caller.as_ref().is_some_and(|user| user.same_domain_calls_only);
        if restricted
            && !(plain_user(&target_user)
                && call.request_uri.host.eq_ignore_ascii_case(domain)
                && self.store.sip_user_by_login(label, &target_user).await?.is_some())
        {
            return Ok(Route::Reject {
                status: 403,
                reason: format!("{login}@{domain} may only call users of {domain}"),
            });
        }
        if let Some(app) = self.domain_app(&own).await? {
            let tn = tn_of(&target_user);
            return Ok(Route::Run { app: Box::new(app), to: target_user, tn, event_urls: urls });
        }
        if !plain_user(&target_user) {
            return not_found(format!("{:?} cannot be called", call.request_uri.to_string()));
        }
        let target_host = call.request_uri.host.to_ascii_lowercase();
        if let Some(target_label) = domain_label(&target_host, &self.sip_domain) {
            let Some(target_domain) =
                self.store.domain_by_name(target_label).await?.filter(|d| d.account == own.account)
            else {
                return not_found(format!("{target_user}@{target_host} is not a user of this account"));
            };
            // The called user's (and its domain's) webhooks hear the call too.
            let called = self.store.sip_user_by_login(target_label, &target_user).await?;
            urls.extend(event_urls(&target_domain, called.as_ref()));
            return Ok(dial_user(own.account, &target_user, &target_host, urls));
        }
        if let Some(tn) = tn_of(&target_user) {
            let xml = format!("<Response><Dial><Number>{tn}</Number></Dial></Response>");
            return Ok(Route::Connect { account: own.account, xml, to: tn.to_string(), event_urls: urls });
        }
        not_found(format!("{target_user}@{target_host} is neither a user of this account nor a number"))
    }

    async fn handle(&self, call: IncomingCall) {
        // Numbers on SIP connections, and connections' calls off the platform (`crate::trunk`).
        let Some(call) = self.trunk(call).await else { return };
        let route = match self.route(&call).await {
            Ok(route) => route,
            Err(error) => {
                warn!(%error, "routing failed: the store is unavailable");
                let _ = call.reject(503, Some("routing unavailable"));
                return;
            }
        };
        let shaken = match self.shaken_check(&call, &route).await {
            Ok(check) => check,
            Err((status, reason)) => {
                info!(status, %reason, "call rejected (STIR/SHAKEN)");
                let _ = call.reject(status, Some(&reason));
                return;
            }
        };
        let (flow, to, tn, event_urls) = match route {
            Route::Run { app, to, tn, event_urls } => match self.runner.flow_for(&app).await {
                Ok((component, mode)) => {
                    (Flow { account: app.account, app: Some(*app), component, mode }, to, tn, event_urls)
                }
                Err(reason) => {
                    warn!(app = %app.uuid, %reason, "the app cannot run");
                    let _ = call.reject(500, Some(&reason));
                    return;
                }
            },
            Route::Connect { account, xml, to, event_urls } => {
                let flow = Flow {
                    account,
                    app: None,
                    component: self.runner.xml_guest.clone(),
                    mode: ControlMode::Xml(xml),
                };
                (flow, to, None, event_urls)
            }
            Route::Reject { status, reason } => {
                info!(status, %reason, "call rejected");
                let _ = call.reject(status, Some(&reason));
                return;
            }
        };
        // Held until the call ends: the account's share of this node, and no new calls while
        // the platform stops.
        let _slot = match self.runner.admission.admit(flow.account).await {
            Ok(slot) => slot,
            Err(refusal) => {
                info!(%refusal, "call refused");
                let _ = call.reject(503, Some(&refusal.to_string()));
                return;
            }
        };
        // A call in to a number from outside (not a SIP user's) costs its account.
        let rated_in = match (tn, &call.caller) {
            (Some(_), caller) if !matches!(caller, Caller::User { .. }) => {
                Some(self.runner.dialer.billing.authorize_inbound(flow.account).await)
            }
            _ => None,
        };
        let account_tz =
            self.store.get_account(flow.account).await.ok().flatten().map(|account| account.time_zone);
        let from = call.from.user.clone().unwrap_or_else(|| call.from.to_string());
        let info =
            new_call_info(flow.account, flow.app.as_ref(), from, to, tn, Direction::Inbound, account_tz);
        // From here on the INVITE's span names the call as its events, CDR and REST API do.
        tracing::Span::current().record("call", info.id.as_str());
        // The caller hears it ring while the flow starts (`call.ringing`), unless it is
        // refused at once.
        let rang = !matches!(rated_in, Some(Err(_))) && call.ringing().is_ok();
        let runner = &self.runner;
        let dialer: Arc<dyn opentact_voice::Dialer> = runner.dialer.clone();
        let sip_call = SipCall::new(info, call, runner.voice.clone(), runner.renderer.clone(), Some(dialer));
        let call_id = &opentact_call::CallBackend::info(sip_call.as_ref()).id;
        for url in &event_urls {
            runner.webhooks.call_also_to(call_id, url);
        }
        let session = runner.session_with(&sip_call, &flow, shaken.as_ref());
        if rang {
            session.events().emit(EventKind::Ringing);
        }
        let rated = match rated_in {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(rated))) => Some(rated),
            Some(Err(refusal)) => {
                // The account hears why (`call.hangup`, Q.850 21), the caller gets 402.
                let reason = refusal.to_string();
                info!(%reason, "call refused");
                if let Ok(id) = Uuid::parse_str(&session.info().id) {
                    runner.live_calls.remove(id);
                }
                session.refuse(PAYMENT_CAUSE, reason.clone());
                let _ = sip_call.reject(402, &reason_header(PAYMENT_CAUSE, &reason));
                session.finish(FlowOutcome::Completed).await;
                let _ = CallBackend::hangup(sip_call.as_ref(), HangupReason::Normal).await;
                return;
            }
        };
        let (account, id) = (flow.account, Uuid::parse_str(&session.info().id).ok());
        let allowance = rated.as_ref().map(|rated| end_when_used_up(&session, &sip_call, rated));
        runner.run(sip_call, session, flow).await;
        if let Some(allowance) = allowance {
            allowance.abort();
        }
        if let (Some(rated), Some(id)) = (rated, id) {
            runner.dialer.billing.settle_logged(&runner.call_log, account, id, &rated).await;
        }
    }

    /// STIR/SHAKEN for a trunk's call to an app (`crate::shaken`), under the app's policy and
    /// minimum where it sets them: how to tag the call, or the status and reason that refuse
    /// it. SIP users' calls are the platform's own: not verified.
    async fn shaken_check(
        &self,
        call: &IncomingCall,
        route: &Route,
    ) -> Result<Option<crate::shaken::InboundCheck>, (u16, String)> {
        let Route::Run { app, .. } = route else { return Ok(None) };
        if matches!(call.caller, Caller::User { .. }) {
            return Ok(None);
        }
        self.runner.dialer.shaken.verify_inbound(call, Some(&app.shaken)).await.map(Some)
    }
}

#[async_trait]
impl InboundHandler for CallRouter {
    async fn on_invite(&self, call: IncomingCall) {
        // `call`: the call's uuid, recorded once routing made it; every span below (the flow,
        // its imports' verbs) is inside this one.
        let span = info_span!("call", call = tracing::field::Empty, sip_call_id = %call.call_id, from = %call.from, to = %call.request_uri, source = %call.source);
        self.handle(call).instrument(span).await;
    }

    async fn trusted_source(&self, source: std::net::SocketAddr) -> bool {
        let ip = source.ip();
        if self.carriers.iter().any(|network| network.contains(ip)) {
            return true;
        }
        match self.store.connections_by_ip(&ip.to_string()).await {
            Ok(connections) => connections.iter().any(|connection| connection.is_active),
            Err(error) => {
                warn!(%error, "looking up SIP connections");
                false
            }
        }
    }

    async fn invite_credential(&self, realm: &str, username: &str) -> Option<InviteCredential> {
        let label = domain_label(realm, &self.sip_domain)?;
        if self.store.domain_by_name(label).await.ok().flatten().is_some() {
            let user = self.store.sip_user_by_login(label, username).await.ok().flatten()?;
            return user.is_active.then_some(InviteCredential { ha1: user.ha1, connection: false });
        }
        let connection = self.store.connection_by_subdomain(label).await.ok().flatten()?;
        if connection.login.as_deref() != Some(username) {
            return None;
        }
        Some(InviteCredential { ha1: connection.ha1?, connection: true })
    }

    fn on_auth_ban(&self, ban: &AuthBan) {
        // The ban itself is logged by the SIP layer. A ban that names a user of an account is
        // also that account's business: its SIP user is under attack (or misconfigured), so
        // the account gets `sip.auth.banned` on its bus (websocket, webhooks).
        let Some((login, realm)) = ban.user.as_deref().and_then(|user| user.split_once('@')) else { return };
        let Some(label) = domain_label(&realm.to_ascii_lowercase(), &self.sip_domain).map(str::to_owned)
        else {
            return;
        };
        let (store, bus) = (self.store.clone(), self.runner.bus.clone());
        let payload = serde_json::json!({
            "scope": match ban.scope { BanScope::Source => "source", BanScope::User => "user" },
            "source": ban.source.to_string(),
            "user": format!("{login}@{realm}"),
            "failures": ban.failures,
            "until": chrono::DateTime::<chrono::Utc>::from(ban.until)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        tokio::spawn(async move {
            let Ok(Some(domain)) = store.domain_by_name(&label).await else { return };
            let banned = opentact_sip::guard::AUTH_BANNED_EVENT;
            bus.publish(opentact_events::Event::now(domain.account, banned, None, payload));
        });
    }

    async fn user_ha1(&self, domain: &str, user: &str) -> Option<String> {
        // The domain must exist (users of deleted domains are refused).
        let label = domain_label(&domain.to_ascii_lowercase(), &self.sip_domain)?.to_owned();
        // Not a SIP domain: a credential connection's PBX registering (`crate::trunk`).
        if self.store.domain_by_name(&label).await.ok().flatten().is_none() {
            return self.connection_ha1(&label, user).await;
        }
        let user = self.store.sip_user_by_login(&label, user).await.ok().flatten()?;
        user.is_active.then_some(user.ha1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_their_addresses() {
        let loopback: Network = "127.0.0.0/8".parse().expect("valid");
        assert!(loopback.contains("127.1.2.3".parse().expect("ip")));
        assert!(!loopback.contains("128.0.0.1".parse().expect("ip")));
        let single: Network = "10.0.0.7".parse().expect("valid");
        assert!(single.contains("10.0.0.7".parse().expect("ip")));
        assert!(!single.contains("10.0.0.8".parse().expect("ip")));
        let v6: Network = "fd00::/8".parse().expect("valid");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(!v6.contains("127.0.0.1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Network>().expect_err("prefix").contains("0 to 32"));
        assert!("carrier".parse::<Network>().is_err());
    }

    #[test]
    fn account_domains_are_labels_under_the_platform_domain() {
        assert_eq!(domain_label("acme.sip.opentact.local", "sip.opentact.local"), Some("acme"));
        assert_eq!(domain_label("a.b.sip.opentact.local", "sip.opentact.local"), None);
        assert_eq!(domain_label("acme.example.com", "sip.opentact.local"), None);
        assert_eq!(domain_label("sip.opentact.local", "sip.opentact.local"), None);
        assert_eq!(domain_label("xsip.opentact.local", "sip.opentact.local"), None);
    }

    #[test]
    fn request_uri_users_become_tns() {
        assert_eq!(tn_of("+12025550100"), Some(12_025_550_100));
        assert_eq!(tn_of("12025550100"), Some(12_025_550_100));
        assert_eq!(tn_of("2025550100"), Some(12_025_550_100));
        assert_eq!(tn_of("alice"), None);
        assert_eq!(tn_of(""), None);
    }

    #[test]
    fn caller_lists_match_numbers_and_prefixes() {
        assert!(caller_matches("12025550111", "12025550111"));
        assert!(caller_matches("+12025550111", "1202"));
        assert!(caller_matches("2025550111", "12025550111"));
        assert!(!caller_matches("13105550111", "1202"));
        assert!(!caller_matches("anonymous", "1"), "a caller ID that is not a number matches nothing");
        assert!(!caller_matches("12025550111", ""));
    }
}
