//! One bind: its reconnect loop and the session on one connection.
//!
//! ```text
//!  run_bind: ┌─► connect ─► bind_transceiver ─► serve ──┐  (session ended: BindDown,
//!            └──────────── back-off ◄───────────────────┘   back-off, again)
//!  serve:  select { frame from the SMSC, shutdown, enquire_link timer,
//!                   earliest response deadline, next submit (if window open) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, ServiceType, Ton, UserMessageReference,
};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::receipt::{self, DeliveryReceipt};
use super::{
    CarrierEvent, InboundSms, MAX_RECEIPTS_IN_FLIGHT, Shared, SubmitOutcome, SubmitRequest, UnknownReason,
};
use crate::model::ReceiptStatus;
use crate::segment;

type Conn = Framed<TcpStream, CommandCodec>;

/// The `esm_class` message-type bits (2–5) of a `deliver_sm` that carry an SMSC delivery
/// receipt (0x04), an SME delivery acknowledgement (0x08) or an intermediate notification (0x20).
const ESM_RECEIPT_BITS: u8 = 0x04 | 0x08 | 0x20;
/// The largest sequence number SMPP allows (0x7FFFFFFF); after it we start again at 1.
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;
/// Answer to a `deliver_sm` we could not hand on (our consumer is gone): "temporary application
/// error", so the SMSC delivers it again later.
const ESME_RX_T_APPN: u32 = 0x64;

/// Why a session ended.
#[derive(Debug, Error)]
pub(super) enum SessionEnd {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("bind refused: command_status {0:#x}")]
    BindRefused(u32),
    #[error("no bind response in time")]
    BindTimeout,
    #[error("connection closed by the SMSC")]
    Closed,
    #[error("read: {0}")]
    Read(String),
    #[error("write: {0}")]
    Write(String),
    #[error("no enquire_link response in time")]
    EnquireLinkTimeout,
    #[error("the SMSC unbound")]
    UnboundBySmsc,
    #[error("shut down")]
    Shutdown,
}

/// A request of ours awaiting its response.
#[derive(Debug)]
enum Pending {
    Submit { reply: oneshot::Sender<SubmitOutcome>, deadline: Instant },
    EnquireLink { deadline: Instant },
    Unbind { deadline: Instant },
}

impl Pending {
    fn deadline(&self) -> Instant {
        match self {
            Pending::Submit { deadline, .. }
            | Pending::EnquireLink { deadline }
            | Pending::Unbind { deadline } => *deadline,
        }
    }
}

/// A bind's state that outlives its sessions.
struct Bind {
    index: usize,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// Taken from the queue but not (fully) written when the last session failed: written first
    /// on the next one.
    carry: Option<SubmitRequest>,
    pending: HashMap<u32, Pending>,
    sequence: u32,
}

pub(super) async fn run_bind(index: usize, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let cfg = &shared.config;
    let min = Duration::from_millis(cfg.reconnect_min_ms);
    let max = Duration::from_millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms));
    let mut bind =
        Bind { index, shared: shared.clone(), shutdown, carry: None, pending: HashMap::new(), sequence: 0 };
    let mut backoff = min;
    loop {
        let mut bound = false;
        let end = bind.session(&mut bound).await;
        // Whatever was written and not answered is now of unknown fate.
        for (_, pending) in bind.pending.drain() {
            if let Pending::Submit { reply, .. } = pending {
                let _ = reply.send(SubmitOutcome::Unknown { reason: UnknownReason::ConnectionLost });
            }
        }
        let stopping = matches!(end, SessionEnd::Shutdown) || *bind.shutdown.borrow();
        if bound || !stopping {
            info!(bind = index, reason = %end, "smpp session ended");
            let _ = shared.events.try_send(CarrierEvent::BindDown { bind: index, reason: end.to_string() });
        }
        if stopping {
            return;
        }
        if bound {
            backoff = min;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = bind.shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(max);
    }
}

impl Bind {
    fn next_sequence(&mut self) -> u32 {
        self.sequence = if self.sequence >= MAX_SEQUENCE { 1 } else { self.sequence + 1 };
        self.sequence
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.config.response_timeout_ms)
    }

    async fn send(conn: &mut Conn, command: Command) -> Result<(), SessionEnd> {
        conn.send(command).await.map_err(|e| SessionEnd::Write(e.to_string()))
    }

    /// One connection: connect, bind, serve until it ends. `bound` tells the caller whether the
    /// bind succeeded (the back-off starts again from its minimum then).
    async fn session(&mut self, bound: &mut bool) -> SessionEnd {
        if *self.shutdown.borrow() {
            return SessionEnd::Shutdown;
        }
        let mut conn = match self.connect_and_bind().await {
            Ok(conn) => conn,
            Err(end) => return end,
        };
        *bound = true;
        info!(bind = self.index, "smpp bound");
        // Awaited: the consumer learns a bind is up before its first submit goes out on it.
        let _ = self.shared.events.send(CarrierEvent::BindUp { bind: self.index }).await;
        match self.serve(&mut conn).await {
            Ok(()) => SessionEnd::Shutdown,
            Err(end) => end,
        }
    }

    async fn connect_and_bind(&mut self) -> Result<Conn, SessionEnd> {
        let cfg = &self.shared.config;
        let stream = timeout(
            Duration::from_millis(cfg.connect_timeout_ms),
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| SessionEnd::ConnectTimeout)?
        .map_err(SessionEnd::Connect)?;
        // Submits are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let mut conn = Framed::new(stream, CommandCodec::new());
        let pdu = BindTransceiver::builder()
            .system_id(c_octet(&cfg.system_id))
            .password(c_octet(&cfg.password))
            .system_type(c_octet(&cfg.system_type))
            .interface_version(InterfaceVersion::Smpp3_4)
            .addr_ton(Ton::Unknown)
            .addr_npi(Npi::Unknown)
            .address_range(COctetString::empty())
            .build();
        let seq = self.next_sequence();
        Self::send(&mut conn, Command::new(CommandStatus::EsmeRok, seq, pdu)).await?;
        let deadline = Instant::now() + self.response_timeout();
        loop {
            let frame = tokio::select! {
                frame = conn.next() => frame,
                _ = sleep_until(deadline) => return Err(SessionEnd::BindTimeout),
                _ = self.shutdown.changed() => return Err(SessionEnd::Shutdown),
            };
            let command = match frame {
                None => return Err(SessionEnd::Closed),
                Some(Err(e)) => return Err(SessionEnd::Read(e.to_string())),
                Some(Ok(command)) => command,
            };
            match command.id() {
                CommandId::BindTransceiverResp | CommandId::GenericNack
                    if command.sequence_number() == seq =>
                {
                    let status = u32::from(command.status());
                    if status != 0 {
                        return Err(SessionEnd::BindRefused(status));
                    }
                    return Ok(conn);
                }
                CommandId::EnquireLink => {
                    let resp =
                        Command::new(CommandStatus::EsmeRok, command.sequence_number(), Pdu::EnquireLinkResp);
                    Self::send(&mut conn, resp).await?;
                }
                other => debug!(bind = self.index, ?other, "ignored before bind"),
            }
        }
    }

    /// Serves a bound session. `Ok` after a clean unbind on shutdown.
    async fn serve(&mut self, conn: &mut Conn) -> Result<(), SessionEnd> {
        let cfg = self.shared.config.clone();
        let period = Duration::from_secs(cfg.enquire_link_secs);
        let mut enquire = tokio::time::interval_at(Instant::now() + period, period);
        enquire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unbinding = false;
        // Receipts being stored ([`super::ReceiptHandler`]) answer here when they are.
        let (acks_tx, mut acks) = mpsc::channel::<(u32, u32)>(MAX_RECEIPTS_IN_FLIGHT);
        let receipts = Receipts { acks: acks_tx, permits: Arc::new(Semaphore::new(MAX_RECEIPTS_IN_FLIGHT)) };
        if let Some(request) = self.carry.take() {
            self.write_submit(conn, request).await?;
        }
        loop {
            let in_flight = self.pending.values().filter(|p| matches!(p, Pending::Submit { .. })).count();
            let window_open = !unbinding && in_flight < cfg.window;
            let next_deadline = self.pending.values().map(Pending::deadline).min();
            let shared = self.shared.clone();
            tokio::select! {
                frame = conn.next() => match frame {
                    None => return Err(SessionEnd::Closed),
                    Some(Err(e)) => return Err(SessionEnd::Read(e.to_string())),
                    Some(Ok(command)) => {
                        if self.incoming(conn, command, &receipts).await? {
                            return Ok(());
                        }
                    }
                },
                // `receipts` holds a sender, so this never ends while the session runs.
                Some((seq, status)) = acks.recv() => {
                    let resp = DeliverSmResp::builder().message_id(COctetString::empty()).build();
                    Self::send(conn, Command::new(CommandStatus::from(status), seq, resp)).await?;
                }
                _ = self.shutdown.changed(), if !unbinding => {
                    unbinding = true;
                    let seq = self.next_sequence();
                    Self::send(conn, Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)).await?;
                    let deadline = Instant::now() + self.response_timeout();
                    self.pending.insert(seq, Pending::Unbind { deadline });
                }
                _ = enquire.tick() => {
                    let seq = self.next_sequence();
                    Self::send(conn, Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)).await?;
                    let deadline = Instant::now() + self.response_timeout();
                    self.pending.insert(seq, Pending::EnquireLink { deadline });
                }
                _ = sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    self.expire()?;
                    if unbinding && !self.pending.values().any(|p| matches!(p, Pending::Unbind { .. })) {
                        // The unbind timed out: close without its response.
                        return Err(SessionEnd::Shutdown);
                    }
                }
                // Cancel-safe: the lock and recv give nothing up when another branch wins.
                request = async { shared.queue.lock().await.recv().await }, if window_open => {
                    match request {
                        Some(request) => self.write_submit(conn, request).await?,
                        // Every SmppCarrier handle is gone.
                        None => return Err(SessionEnd::Shutdown),
                    }
                }
            }
        }
    }

    /// Writes one submit_sm (after its pacing slot) and records it as awaiting its response.
    async fn write_submit(&mut self, conn: &mut Conn, request: SubmitRequest) -> Result<(), SessionEnd> {
        self.shared.pacer.acquire().await;
        let seq = self.next_sequence();
        let command = Command::new(
            CommandStatus::EsmeRok,
            seq,
            submit_pdu(&request.submission, self.shared.config.delivery_receipts),
        );
        if let Err(e) = Self::send(conn, command).await {
            // Not fully written, so the SMSC cannot have taken it: the next session sends it.
            self.carry = Some(request);
            return Err(e);
        }
        let deadline = Instant::now() + self.response_timeout();
        self.pending.insert(seq, Pending::Submit { reply: request.reply, deadline });
        Ok(())
    }

    /// Expires requests past their deadline; an unanswered enquire_link ends the session.
    fn expire(&mut self) -> Result<(), SessionEnd> {
        let now = Instant::now();
        let expired: Vec<u32> =
            self.pending.iter().filter(|(_, p)| p.deadline() <= now).map(|(seq, _)| *seq).collect();
        for seq in expired {
            match self.pending.remove(&seq) {
                Some(Pending::Submit { reply, .. }) => {
                    warn!(bind = self.index, seq, "submit_sm_resp timed out");
                    let _ = reply.send(SubmitOutcome::Unknown { reason: UnknownReason::Timeout });
                }
                Some(Pending::EnquireLink { .. }) => return Err(SessionEnd::EnquireLinkTimeout),
                Some(Pending::Unbind { .. }) | None => {}
            }
        }
        Ok(())
    }

    /// Handles one PDU from the SMSC. `Ok(true)`: our unbind was answered, the session is over.
    async fn incoming(
        &mut self,
        conn: &mut Conn,
        command: Command,
        receipts: &Receipts,
    ) -> Result<bool, SessionEnd> {
        let seq = command.sequence_number();
        let status = u32::from(command.status());
        match command.pdu() {
            Some(Pdu::SubmitSmResp(resp)) => {
                let outcome = if status == 0 {
                    SubmitOutcome::Accepted { message_id: resp.message_id().as_str().to_string() }
                } else {
                    SubmitOutcome::Rejected { command_status: status, transient: super::is_transient(status) }
                };
                self.answer(seq, outcome);
            }
            Some(Pdu::GenericNack) => {
                let outcome = SubmitOutcome::Rejected {
                    command_status: status,
                    transient: super::is_transient(status),
                };
                self.answer(seq, outcome);
            }
            Some(Pdu::EnquireLinkResp) => {
                self.pending.remove(&seq);
            }
            Some(Pdu::UnbindResp) => {
                if let Some(Pending::Unbind { .. }) = self.pending.remove(&seq) {
                    return Ok(true);
                }
            }
            Some(Pdu::EnquireLink) => {
                Self::send(conn, Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)).await?;
            }
            Some(Pdu::Unbind) => {
                Self::send(conn, Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp)).await?;
                return Err(SessionEnd::UnboundBySmsc);
            }
            Some(Pdu::DeliverSm(deliver)) => {
                let event = deliver_event(self.index, deliver);
                if let (Some(handler), CarrierEvent::Receipt(receipt)) = (self.shared.receipts.get(), &event)
                {
                    // Stored off this task; answered when stored (see the serve loop).
                    let permit = receipts.permits.clone().acquire_owned().await;
                    let (handler, receipt, acks) = (handler.clone(), receipt.clone(), receipts.acks.clone());
                    tokio::spawn(async move {
                        let status = handler.receipt(receipt).await;
                        // The session may be gone: then the SMSC delivers the receipt again.
                        let _ = acks.send((seq, status)).await;
                        drop(permit);
                    });
                    return Ok(false);
                }
                let status = match (&self.shared.inbound, event) {
                    (Some(handler), CarrierEvent::Inbound(sms)) => {
                        CommandStatus::from(handler.inbound(sms).await)
                    }
                    (_, event) => match self.shared.events.send(event).await {
                        Ok(()) => CommandStatus::EsmeRok,
                        Err(_) => CommandStatus::from(ESME_RX_T_APPN),
                    },
                };
                let resp = DeliverSmResp::builder().message_id(COctetString::empty()).build();
                Self::send(conn, Command::new(status, seq, resp)).await?;
            }
            _ => {
                let id = command.id();
                // A request we do not serve gets a generic_nack; a stray response is dropped.
                if !id.is_response() && id != CommandId::AlertNotification {
                    let nack = Command::new(CommandStatus::EsmeRinvcmdid, seq, Pdu::GenericNack);
                    Self::send(conn, nack).await?;
                } else {
                    debug!(bind = self.index, ?id, seq, "ignored PDU");
                }
            }
        }
        Ok(false)
    }

    fn answer(&mut self, seq: u32, outcome: SubmitOutcome) {
        match self.pending.remove(&seq) {
            Some(Pending::Submit { reply, .. }) => {
                let _ = reply.send(outcome);
            }
            Some(other) => {
                // A nack of our enquire_link or unbind: keep waiting for its deadline.
                self.pending.insert(seq, other);
            }
            // Late (after its timeout was reported Unknown) or never ours.
            None => debug!(bind = self.index, seq, "response without a pending request"),
        }
    }
}

/// Where a session's receipts being stored report back.
struct Receipts {
    acks: mpsc::Sender<(u32, u32)>,
    permits: Arc<Semaphore>,
}

/// A C-octet string from a checked config field (ASCII, no NUL, within its length).
fn c_octet<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_string(s.to_string()).unwrap_or_else(|_| COctetString::empty())
}

/// Digits only: an international number (TON 1, NPI 1); anything else an alphanumeric sender
/// id (TON 5, NPI 0).
fn source_ton_npi(source: &str) -> (Ton, Npi) {
    if !source.is_empty() && source.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::International, Npi::Isdn)
    } else {
        (Ton::Alphanumeric, Npi::Unknown)
    }
}

fn submit_pdu(s: &super::Submission, receipts: bool) -> SubmitSm {
    let (ton, npi) = source_ton_npi(&s.source);
    let tlvs = s
        .user_message_reference
        .map(|r| MessageSubmissionRequestTlvValue::UserMessageReference(UserMessageReference::new(r)))
        .into_iter()
        .collect();
    SubmitSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(ton)
        .source_addr_npi(npi)
        .source_addr(c_octet(&s.source))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c_octet(&s.destination))
        // From the octet, not EsmClass::default(): rusmpp's default sets an ANSI-41 bit.
        .esm_class(EsmClass::from(s.esm_class))
        .registered_delivery(RegisteredDelivery::from(u8::from(receipts)))
        .data_coding(DataCoding::from(s.data_coding))
        .short_message(OctetString::from_vec(s.short_message.clone()).unwrap_or_default())
        .tlvs(tlvs)
        .build()
}

/// A `deliver_sm` as an event: a receipt when its esm_class says so or it carries
/// `receipted_message_id`, else an inbound message.
fn deliver_event(bind: usize, d: &DeliverSm) -> CarrierEvent {
    let esm_class = u8::from(d.esm_class);
    let data_coding = u8::from(d.data_coding);
    let mut receipted_id = None;
    let mut state = None;
    let mut network_error = None;
    let mut payload = None;
    let mut reference = None;
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::UserMessageReference(r)) => reference = Some(u16::from(*r)),
            Some(TlvValue::ReceiptedMessageId(id)) => receipted_id = Some(id.as_str().to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            Some(TlvValue::NetworkErrorCode(e)) => network_error = Some(e.error_code.to_string()),
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref().to_vec()),
            _ => {}
        }
    }
    let body: Vec<u8> = match payload {
        Some(p) if d.short_message().is_empty() => p,
        _ => d.short_message().as_ref().to_vec(),
    };
    let handset = d.source_addr.as_str().to_string();
    let sender = d.destination_addr.as_str().to_string();
    if esm_class & ESM_RECEIPT_BITS != 0 || receipted_id.is_some() {
        let text = String::from_utf8_lossy(&body);
        let parsed = receipt::parse_text(&text).unwrap_or_default();
        let status = state
            .and_then(receipt::status_from_message_state)
            .or_else(|| parsed.stat.as_deref().and_then(receipt::status_from_stat))
            .unwrap_or(ReceiptStatus::Unknown);
        return CarrierEvent::Receipt(DeliveryReceipt {
            message_id: receipted_id.or(parsed.id).unwrap_or_default(),
            status,
            error: network_error.or(parsed.err),
            submit_date: parsed.submit_date,
            done_date: parsed.done_date,
            handset,
            sender,
            user_message_reference: reference,
        });
    }
    let decoded = segment::decode(data_coding, esm_class, &body);
    CarrierEvent::Inbound(InboundSms {
        bind,
        source: handset,
        destination: sender,
        data_coding,
        esm_class,
        text: decoded.text,
        concat: decoded.concat,
    })
}
