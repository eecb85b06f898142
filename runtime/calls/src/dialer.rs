//! Where `<Dial>` targets ring: numbers through the carrier trunk, SIP users at their registered
//! contacts (same account only), SIP URIs directly (private addresses only when allowed).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use opentact_call::error::CallError;
use opentact_call::model::{CallInfo, DialTarget};
use opentact_sip::{OutboundRequest, SipEndpoint};
use opentact_voice::Dialer;

use crate::Repo;

/// The server's dialer.
pub struct ServerDialer {
    pub endpoint: OnceLock<Arc<SipEndpoint>>,
    pub store: Repo,
    /// The carrier trunk numbers are sent to.
    pub outbound_proxy: Option<SocketAddr>,
    /// The platform's SIP address (From host).
    pub local: IpAddr,
    /// Let SIP URI targets name loopback and private addresses.
    pub allow_private_targets: bool,
    /// The platform's SIP domain (`sip.domain`).
    pub sip_domain: String,
    /// This node's live calls, the peers of a bridge.
    pub live_calls: Arc<crate::live_calls::LiveCalls>,
    /// The accounts' shares of concurrent calls: each `<Dial>` leg takes one.
    pub admission: Arc<crate::Admission>,
    /// SIP trunking: the leg each trunk call rings now, and the outbound voice profiles' limits.
    pub trunk: crate::trunk::Trunking,
    /// STIR/SHAKEN: legs to numbers through the carrier trunk are signed.
    pub shaken: Arc<crate::shaken::Shaken>,
    /// Rates and charges legs to numbers, as placed calls are.
    pub billing: Arc<crate::Billing>,
}

impl std::fmt::Debug for ServerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerDialer").field("outbound_proxy", &self.outbound_proxy).finish_non_exhaustive()
    }
}

/// A `<Dial>` leg's place among its account's calls, and its meter when it is rated.
struct DialLeg {
    _slot: crate::admission::CallSlot,
    meter: Option<LegMeter>,
}

/// Times a rated leg from its answer; when the leg ends (the guard is dropped), charges it.
struct LegMeter {
    billing: Arc<crate::Billing>,
    account: uuid::Uuid,
    call: uuid::Uuid,
    to: String,
    rated: crate::billing::RatedCall,
    answered: Option<std::time::Instant>,
}

impl opentact_voice::LegGuard for DialLeg {
    fn answered(&mut self) {
        if let Some(meter) = &mut self.meter {
            meter.answered = Some(std::time::Instant::now());
            meter.rated.ticket.answered();
        }
    }

    /// When the account's budgets are used up (with its other calls in progress), a little
    /// early ([`crate::billing::END_EARLY_BY`]): the leg's talk is billed from the answer to
    /// the guard's drop, rounded up.
    fn paid_time(&self) -> Option<opentact_voice::PaidTime> {
        let ticket = self.meter.as_ref()?.rated.ticket.clone();
        Some(Box::pin(async move { ticket.used_up(crate::billing::END_EARLY_BY).await }))
    }
}

impl Drop for LegMeter {
    fn drop(&mut self) {
        // A leg that never answered costs nothing.
        let Some(answered) = self.answered else { return };
        let billable_ms = u64::try_from(answered.elapsed().as_millis()).unwrap_or(u64::MAX);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (billing, account, call, to, rated) =
            (self.billing.clone(), self.account, self.call, std::mem::take(&mut self.to), self.rated.clone());
        runtime.spawn(async move { billing.settle_leg(account, call, &to, &rated, billable_ms).await });
    }
}

fn is_private(ip: IpAddr) -> bool {
    opentact_egress::is_non_public(ip)
}

impl ServerDialer {
    /// A caller ID a flow asks for on its outbound legs, if the account may present it: the
    /// call's own parties (a forwarded call keeps its caller, a placed call its number) or a
    /// number the account leases. Anything else would let a customer spoof any number on the
    /// carrier trunk.
    async fn presentable<'a>(&self, caller_id: &'a str, call: &CallInfo) -> Result<&'a str, CallError> {
        if caller_id == call.from || call.tn.is_some_and(|tn| tn.to_string() == caller_id) {
            return Ok(caller_id);
        }
        let refused = || {
            CallError::invalid(
                "dial.caller_id",
                format!(
                    "{caller_id:?} is not a number this account leases: a caller ID must be one of its numbers or verified numbers"
                ),
            )
        };
        let tn = crate::routing::tn_of(caller_id).ok_or_else(refused)?;
        let lease = self
            .store
            .lease_by_tn(tn)
            .await
            .map_err(|error| CallError::Failed(format!("looking up {tn}: {error}")))?;
        if lease.is_some_and(|lease| lease.account.to_string() == call.account) {
            return Ok(caller_id);
        }
        // Or one of its verified caller IDs (numbers it proved it answers).
        let account = call.account.parse().map_err(|_| refused())?;
        match self.store.is_verified_number(account, tn).await {
            Ok(true) => Ok(caller_id),
            Ok(false) => Err(refused()),
            Err(error) => Err(CallError::Failed(format!("looking up {tn}: {error}"))),
        }
    }
}

#[async_trait]
impl Dialer for ServerDialer {
    fn endpoint(&self) -> Option<Arc<SipEndpoint>> {
        self.endpoint.get().cloned()
    }

    fn bridge_peer(&self, account: &str, id: &str) -> Option<opentact_voice::BridgePeer> {
        self.live_calls.bridge_peer(account, id)
    }

    fn offer_codecs(&self, call: &CallInfo, request: &OutboundRequest) -> Option<Vec<u8>> {
        self.trunk.codecs(call, request)
    }

    fn offers_srtp(&self, call: &CallInfo, request: &OutboundRequest) -> bool {
        self.trunk.srtp(call, request)
    }

    async fn admit_leg(
        &self,
        call: &CallInfo,
        target: &DialTarget,
    ) -> Result<Option<opentact_voice::LegSlot>, CallError> {
        let account = call
            .account
            .parse()
            .map_err(|_| CallError::Failed(format!("the call's account {:?} is not an id", call.account)))?;
        // A leg to a number costs what a placed call does: refused when the account cannot
        // pay its first block, charged when it ends ([`crate::billing`]). A SIP connection's
        // call out was rated already, under the connection's outbound voice profile.
        let rated = match self.trunk.take_rated(&call.id) {
            Some(rated) => Some(rated),
            None => self
                .billing
                .authorize(account, None, target)
                .await
                .map_err(|refusal| CallError::LimitExceeded(format!("dial: {refusal}")))?,
        };
        let slot = match self.admission.admit(account).await {
            Ok(slot) => slot,
            Err(refusal) => return Err(CallError::LimitExceeded(format!("dial: {refusal}"))),
        };
        let meter = match (rated, call.id.parse()) {
            (Some(rated), Ok(call)) => Some(LegMeter {
                billing: self.billing.clone(),
                account,
                call,
                to: target.as_str().to_owned(),
                rated,
                answered: None,
            }),
            _ => None,
        };
        Ok(Some(Box::new(DialLeg { _slot: slot, meter })))
    }

    async fn resolve(
        &self,
        target: &DialTarget,
        call: &CallInfo,
        caller_id: Option<&str>,
    ) -> Result<Vec<OutboundRequest>, CallError> {
        // A trunk call ringing its PBX: exactly the address routing chose (`crate::trunk`).
        if let Some(request) = self.trunk.resolve(call, target) {
            return Ok(vec![request]);
        }
        let caller = match caller_id {
            Some(caller_id) => self.presentable(caller_id, call).await?,
            None => call.from.as_str(),
        };
        let from = format!("sip:{caller}@{}", self.local);
        match target {
            DialTarget::Number(digits) => {
                let proxy = self.outbound_proxy.ok_or_else(|| {
                    CallError::Failed("calls to numbers need a carrier trunk (sip.outbound_proxy)".to_owned())
                })?;
                let uri = format!("sip:{digits}@{proxy}");
                let headers = self.shaken.outbound_headers(&self.store, call, caller, digits).await;
                Ok(vec![OutboundRequest {
                    to: uri.clone(),
                    uri,
                    destination: Some(proxy),
                    transport: "udp",
                    from,
                    sdp_offer: String::new(),
                    headers,
                }])
            }
            DialTarget::User(address) => {
                let (login, domain) = address.split_once('@').ok_or_else(|| {
                    CallError::invalid("dial.user", format!("{address:?} is not login@domain"))
                })?;
                let domain = domain.to_ascii_lowercase();
                let unknown = || CallError::Failed(format!("no SIP user {address}"));
                let label = crate::routing::domain_label(&domain, &self.sip_domain).ok_or_else(unknown)?;
                let owned = self
                    .store
                    .domain_by_name(label)
                    .await
                    .map_err(|error| CallError::Failed(format!("looking up {domain}: {error}")))?
                    .is_some_and(|d| d.account.to_string() == call.account);
                // Another account's users are as unknown as users that do not exist.
                if !owned || self.store.sip_user_by_login(label, login).await.ok().flatten().is_none() {
                    return Err(unknown());
                }
                let domain = domain.as_str();
                let Some(endpoint) = self.endpoint.get() else { return Ok(Vec::new()) };
                Ok(endpoint
                    .registrar()
                    .contacts(domain, login)
                    .into_iter()
                    .map(|binding| OutboundRequest {
                        uri: binding.contact.clone(),
                        destination: Some(binding.source),
                        transport: binding.transport,
                        from: from.clone(),
                        to: format!("sip:{login}@{domain}"),
                        sdp_offer: String::new(),
                        headers: Vec::new(),
                    })
                    .collect())
            }
            DialTarget::SipUri(text) => {
                let uri = if text.starts_with("sip:") { text.clone() } else { format!("sip:{text}") };
                let host_port = uri["sip:".len()..].rsplit('@').next().unwrap_or_default();
                let host_port = host_port.split(';').next().unwrap_or_default();
                let destination = resolve(host_port)
                    .await
                    .map_err(|reason| CallError::Failed(format!("{uri}: {reason}")))?;
                // The name's addresses were all checked; the leg goes to the checked one.
                if is_private(destination.ip()) && !self.allow_private_targets {
                    return Err(CallError::Failed(format!(
                        "{uri}: private and loopback addresses are not dialled (sip.allow_private_targets)"
                    )));
                }
                let destination = Some(destination);
                Ok(vec![OutboundRequest {
                    to: uri.clone(),
                    uri,
                    destination,
                    transport: "udp",
                    from,
                    sdp_offer: String::new(),
                    headers: Vec::new(),
                }])
            }
        }
    }
}

/// Where a SIP URI's `host[:port]` points: an IP literal, or an A/AAAA lookup (port 5060 when
/// none is given). SRV and NAPTR (RFC 3263) are not consulted yet.
async fn resolve(host_port: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = host_port.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Ok(ip) = host_port.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 5060));
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse::<u16>().map_err(|_| format!("bad port {port:?}"))?)
        }
        _ => (host_port, 5060),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(format!("{host:?} is not a host name"));
    }
    let lookup =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|error| format!("resolving {host}: {error}"))?;
    let addresses: Vec<SocketAddr> = lookup.collect();
    // A name with any private address is judged by it (DNS rebinding cannot slip one past).
    if let Some(private) = addresses.iter().find(|a| is_private(a.ip())) {
        return Ok(*private);
    }
    addresses.into_iter().next().ok_or_else(|| format!("{host} has no address"))
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[tokio::test]
    async fn targets_resolve_from_literals_and_names() {
        assert_eq!(resolve("192.0.2.10:5070").await, Ok("192.0.2.10:5070".parse().expect("addr")));
        assert_eq!(resolve("192.0.2.10").await, Ok("192.0.2.10:5060".parse().expect("addr")));
        assert_eq!(resolve("[::1]").await, Ok("[::1]:5060".parse().expect("addr")));
        assert_eq!(
            resolve("localhost:5080").await.map(|a| a.port()),
            Ok(5080),
            "names resolve (loopback here)"
        );
        assert!(resolve("bad host").await.is_err());
    }
}
