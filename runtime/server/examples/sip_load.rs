//! A SIP load client for the TLS/SRTP benchmark (`scripts/bench-tls`; not a test): SIP users'
//! registrations per second, and concurrent calls with media both ways, over UDP with plain
//! RTP or over TLS with SRTP (SDES, AES_CM_128_HMAC_SHA1_80), against a running
//! `opentact serve`. SIPp cannot speak TLS or SRTP on this machine, hence a client of our own.
//!
//! ```text
//! sip_load certificate --dir DIR
//! sip_load provision --data-dir DIR --email bench@opentact.local --tn 12025550191
//! sip_load register --server 127.0.0.1:5061 --transport tls --ca cert.pem --seconds 10
//! sip_load calls --server 127.0.0.1:5061 --transport tls --ca cert.pem --calls 200 --server-pid PID
//! ```
//!
//! `provision` adds the SIP domain `bench` (whose calls run the app of `--tn`) and its user
//! `bench` to a data directory. `register` registers as that user as fast as `--concurrency`
//! workers can, each registration on a new connection (a TLS handshake each over TLS), with the
//! digest challenge answered. `calls` places `--calls` calls as that user, ramped at
//! `--ramp-per-sec`, each sending a 20 ms RTP (or SRTP) stream and checking the one it gets
//! back; once all are up it measures the server's CPU (from /proc) over `--measure-secs`.
//! Each prints one JSON line of results.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use opentact_media::srtp::{CryptoSuite, SdesKey, SrtpContexts};
use opentact_sip::digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

const LABEL: &str = "bench";
const USER: &str = "bench";
const PASSWORD: &str = "bench-Pass-1";
const PLATFORM_SIP_DOMAIN: &str = "sip.opentact.local";

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A self-signed certificate for 127.0.0.1: `<dir>/cert.pem` and `<dir>/key.pem`.
    Certificate {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Add the SIP domain `bench` (running the app of `--tn`) and its user `bench`.
    Provision {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        email: String,
        #[arg(long)]
        tn: i64,
    },
    /// Registrations per second, each on a new connection.
    Register {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The server's process id, for its CPU time per registration.
        #[arg(long)]
        server_pid: u32,
        /// Clock ticks a second in /proc's CPU times (`getconf CLK_TCK`).
        #[arg(long, default_value_t = 100)]
        clock_ticks: u32,
    },
    /// Concurrent calls with media both ways; the server's CPU while they are all up.
    Calls {
        #[command(flatten)]
        target: Target,
        /// The number the calls dial (the domain's app answers whatever is dialled).
        #[arg(long, default_value = "12025550191")]
        to: String,
        #[arg(long, default_value_t = 100)]
        calls: usize,
        #[arg(long, default_value_t = 50)]
        ramp_per_sec: u64,
        #[arg(long, default_value_t = 10)]
        measure_secs: u64,
        /// The server's process id, for its CPU time.
        #[arg(long)]
        server_pid: u32,
        /// Clock ticks a second in /proc's CPU times (`getconf CLK_TCK`).
        #[arg(long, default_value_t = 100)]
        clock_ticks: u32,
    },
}

#[derive(clap::Args, Clone)]
struct Target {
    #[arg(long)]
    server: SocketAddr,
    #[arg(long, value_enum)]
    transport: Transport,
    /// The server certificate to trust (TLS).
    #[arg(long)]
    ca: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Udp,
    Tls,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Certificate { dir } => {
            let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
            std::fs::write(dir.join("cert.pem"), generated.cert.pem())?;
            std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem())?;
            Ok(())
        }
        Command::Provision { data_dir, email, tn } => provision(&data_dir, &email, tn).await,
        Command::Register { target, seconds, concurrency, server_pid, clock_ticks } => {
            register_load(target, seconds, concurrency, ServerCpu { pid: server_pid, clock_ticks }).await
        }
        Command::Calls { target, to, calls, ramp_per_sec, measure_secs, server_pid, clock_ticks } => {
            let cpu = ServerCpu { pid: server_pid, clock_ticks };
            call_load(target, &to, calls, ramp_per_sec, measure_secs, cpu).await
        }
    }
}

async fn provision(data_dir: &std::path::Path, email: &str, tn: i64) -> Result<()> {
    use opentact_store::{
        AccountRepo, DigestCredentials, LeaseRepo, NewSipDomain, NewSipUser, SipDomainRepo, Store,
    };
    let store = Store::open(&format!("sqlite://{}?mode=rwc", data_dir.join("opentact.db").display())).await?;
    let account =
        store.account_by_email(email).await?.context("the account (run opentact provision first)")?;
    let lease = store.lease_by_tn(tn).await?.context("the number's lease")?;
    let app = lease.sip_control_app.context("the number's app")?;
    let domain = store
        .create_domain(account.uuid, NewSipDomain { name: LABEL.to_owned(), app: Some(app), event_url: None })
        .await?;
    let realm = format!("{LABEL}.{PLATFORM_SIP_DOMAIN}");
    store
        .create_sip_user(
            account.uuid,
            domain.uuid,
            NewSipUser {
                credentials: DigestCredentials::new(USER, PASSWORD, &realm, &realm),
                is_active: true,
                tn_lease: None,
                same_domain_calls_only: false,
                event_url: None,
            },
        )
        .await?;
    store.close().await;
    Ok(())
}

// --- the link to the server ------------------------------------------------------------------

/// One connection (TLS) or socket (UDP) to the server.
enum Link {
    Udp { socket: UdpSocket, server: SocketAddr },
    Tls { stream: Box<tokio_rustls::client::TlsStream<TcpStream>>, buffer: Vec<u8> },
}

impl Link {
    async fn open(target: &Target, tls: Option<&TlsConnector>) -> Result<Link> {
        match target.transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").await?;
                Ok(Link::Udp { socket, server: target.server })
            }
            Transport::Tls => {
                let connector = tls.context("TLS needs --ca")?;
                let tcp = TcpStream::connect(target.server).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::from(target.server.ip());
                let stream = connector.connect(name, tcp).await?;
                Ok(Link::Tls { stream: Box::new(stream), buffer: Vec::new() })
            }
        }
    }

    fn local(&self) -> Result<SocketAddr> {
        Ok(match self {
            Link::Udp { socket, .. } => socket.local_addr()?,
            Link::Tls { stream, .. } => stream.get_ref().0.local_addr()?,
        })
    }

    fn via(&self) -> &'static str {
        match self {
            Link::Udp { .. } => "UDP",
            Link::Tls { .. } => "TLS",
        }
    }

    fn uri_transport(&self) -> &'static str {
        match self {
            Link::Udp { .. } => "",
            Link::Tls { .. } => ";transport=tls",
        }
    }

    async fn send(&mut self, text: &str) -> Result<()> {
        match self {
            Link::Udp { socket, server } => {
                socket.send_to(text.as_bytes(), *server).await?;
            }
            Link::Tls { stream, .. } => stream.write_all(text.as_bytes()).await?,
        }
        Ok(())
    }

    /// The next message from the server.
    async fn receive(&mut self) -> Result<Message> {
        match self {
            Link::Udp { socket, .. } => {
                let mut datagram = vec![0u8; 65_536];
                let (length, _) = socket.recv_from(&mut datagram).await?;
                Message::parse(&datagram[..length]).context("an unparsable datagram")
            }
            Link::Tls { stream, buffer } => loop {
                if let Some((message, used)) = Message::from_stream(buffer) {
                    buffer.drain(..used);
                    return Ok(message);
                }
                let mut chunk = [0u8; 8192];
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    bail!("the server closed the connection");
                }
                buffer.extend_from_slice(&chunk[..read]);
            },
        }
    }

    /// Send `request` and wait for its final response (provisional ones skipped). Over UDP
    /// the request is sent again as RFC 3261 §17.1 has it (after 0.5 s, then doubling up to
    /// 4 s; an INVITE no more once a provisional response came): a burst of requests can
    /// overflow the server's socket buffer like any network can lose them.
    async fn transact(&mut self, request: &str) -> Result<Message> {
        let cseq = request
            .split("\r\n")
            .find_map(|line| line.strip_prefix("CSeq: "))
            .context("the request's CSeq")?
            .to_owned();
        self.send(request).await?;
        let deadline = Instant::now() + Duration::from_secs(32);
        let (mut retransmit, mut interval) = (matches!(self, Link::Udp { .. }), Duration::from_millis(500));
        let mut next_send = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= deadline {
                bail!("no final answer to {cseq} in 32 s");
            }
            let wait = if retransmit { next_send.min(deadline) } else { deadline } - now;
            let message = match tokio::time::timeout(wait, self.receive()).await {
                Ok(message) => message?,
                Err(_) => {
                    if retransmit && Instant::now() >= next_send {
                        self.send(request).await?;
                        interval = (interval * 2).min(Duration::from_secs(4));
                        next_send = Instant::now() + interval;
                    }
                    continue;
                }
            };
            if message.header("cseq") != Some(cseq.as_str()) {
                continue;
            }
            match message.status {
                Some(status) if status >= 200 => return Ok(message),
                Some(_) if cseq.ends_with("INVITE") => retransmit = false,
                _ => {}
            }
        }
    }
}

/// A SIP message as far as this client needs one.
struct Message {
    /// A response's status; `None` for a request.
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Message {
    fn parse(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let status =
            first.strip_prefix("SIP/2.0 ").and_then(|rest| rest.get(..3)).and_then(|s| s.parse().ok());
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Some(Message { status, headers, body: body.to_owned() })
    }

    /// A whole message at the start of a stream's `buffer`, and the bytes it took.
    fn from_stream(buffer: &[u8]) -> Option<(Message, usize)> {
        let end = buffer.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&buffer[..end]).ok()?;
        let length = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buffer.len() < end + length {
            return None;
        }
        Some((Message::parse(&buffer[..end + length])?, end + length))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }
}

fn random_token() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// The `Authorization`/`Proxy-Authorization` value answering `challenge` for `method uri`.
fn answer_challenge(challenge: &str, method: &str, uri: &str) -> Result<String> {
    let param = |name: &str| -> Option<String> {
        let rest = challenge.strip_prefix("Digest").unwrap_or(challenge);
        rest.split(',').map(str::trim).find_map(|part| {
            let (key, value) = part.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
        })
    };
    let realm = param("realm").context("a realm")?;
    let nonce = param("nonce").context("a nonce")?;
    let ha1 = digest::ha1(USER, &realm, PASSWORD);
    let mut header =
        format!("Digest username=\"{USER}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    if param("qop").is_some_and(|qop| qop.split(',').any(|q| q.trim() == "auth")) {
        let cnonce = random_token();
        let response = digest::response(&ha1, method, uri, &nonce, Some(("00000001", &cnonce, "auth")));
        header += &format!(", response=\"{response}\", qop=auth, nc=00000001, cnonce=\"{cnonce}\"");
    } else {
        header += &format!(", response=\"{}\"", digest::response(&ha1, method, uri, &nonce, None));
    }
    if let Some(opaque) = param("opaque") {
        header += &format!(", opaque=\"{opaque}\"");
    }
    Ok(header + ", algorithm=MD5")
}

fn tls_connector(target: &Target) -> Result<Option<TlsConnector>> {
    let Some(ca) = &target.ca else { return Ok(None) };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).context("--ca")? {
        roots.add(certificate?)?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

// --- registrations -----------------------------------------------------------------------------

async fn register_load(target: Target, seconds: u64, concurrency: usize, server: ServerCpu) -> Result<()> {
    let tls = tls_connector(&target)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = server.seconds()?;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (target, tls) = (target.clone(), tls.clone());
        workers.spawn(async move {
            let (mut done, mut failed, mut times) = (0u64, 0u64, Vec::new());
            let mut first_error = None;
            while Instant::now() < deadline {
                let began = Instant::now();
                match register_once(&target, tls.as_ref(), worker).await {
                    Ok(()) => {
                        done += 1;
                        times.push(began.elapsed());
                    }
                    Err(error) => {
                        failed += 1;
                        first_error.get_or_insert(format!("{error:#}"));
                    }
                }
            }
            (done, failed, times, first_error)
        });
    }
    let (mut done, mut failed, mut times, mut first_error) = (0, 0, Vec::new(), None);
    while let Some(result) = workers.join_next().await {
        let (d, f, t, e) = result?;
        done += d;
        failed += f;
        times.extend(t);
        first_error = first_error.or(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.seconds()? - cpu_before;
    times.sort();
    let percentile =
        |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({
            "registrations": done,
            "failed": failed,
            "per_second": done as f64 / elapsed,
            "server_cpu_percent": cpu / elapsed * 100.0,
            "server_cpu_us_per_registration": if done > 0 { cpu * 1e6 / done as f64 } else { 0.0 },
            "p50_ms": ms(percentile(0.5)),
            "p99_ms": ms(percentile(0.99)),
            "first_error": first_error,
        })
    );
    Ok(())
}

/// One registration on a new connection: REGISTER, the 401 challenge, REGISTER with the
/// digest, 200. Each worker keeps its own Contact, so the registrar updates one binding.
async fn register_once(target: &Target, tls: Option<&TlsConnector>, worker: usize) -> Result<()> {
    let mut link = Link::open(target, tls).await?;
    let local = link.local()?;
    let domain = format!("{LABEL}.{PLATFORM_SIP_DOMAIN}");
    let uri = format!("sip:{domain}");
    let (call_id, tag) = (random_token(), random_token());
    let (via_transport, uri_transport) = (link.via(), link.uri_transport());
    let contact = format!("<sip:{USER}@127.0.0.1:{}{uri_transport}>", 20_000 + worker);
    let request = |cseq: u32, authorization: Option<&str>| {
        let authorization =
            authorization.map(|value| format!("Authorization: {value}\r\n")).unwrap_or_default();
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{} {local};rport;branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
             From: <sip:{USER}@{domain}>;tag={tag}\r\nTo: <sip:{USER}@{domain}>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: 300\r\n{authorization}Content-Length: 0\r\n\r\n",
            via_transport,
            random_token()
        )
    };
    let first = request(1, None);
    let challenge = link.transact(&first).await?;
    if challenge.status != Some(401) {
        bail!("REGISTER answered {:?}, not 401", challenge.status);
    }
    let authorization =
        answer_challenge(challenge.header("www-authenticate").context("a challenge")?, "REGISTER", &uri)?;
    let second = request(2, Some(&authorization));
    let answer = link.transact(&second).await?;
    if answer.status != Some(200) {
        bail!("the authenticated REGISTER answered {:?}", answer.status);
    }
    Ok(())
}

// --- calls -------------------------------------------------------------------------------------

#[derive(Default)]
struct MediaCounters {
    sent: AtomicU64,
    received: AtomicU64,
    /// SRTP packets that failed authentication (or replays), or RTP that did not parse.
    bad: AtomicU64,
    /// Why the first bad packet was bad.
    first_bad: std::sync::Mutex<Option<String>>,
    /// Datagrams from another address than the call's media peer (not checked further).
    strangers: AtomicU64,
    /// Why the first call that was up did not end cleanly.
    first_hangup_error: std::sync::Mutex<Option<String>>,
}

async fn call_load(
    target: Target,
    to: &str,
    calls: usize,
    ramp_per_sec: u64,
    measure_secs: u64,
    server: ServerCpu,
) -> Result<()> {
    let tls = tls_connector(&target)?;
    let counters = Arc::new(MediaCounters::default());
    let (hang_up, _) = tokio::sync::broadcast::channel::<()>(1);
    let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = tokio::task::JoinSet::new();
    let gap = Duration::from_secs_f64(1.0 / ramp_per_sec.max(1) as f64);
    for _ in 0..calls {
        let (target, tls, counters, to) = (target.clone(), tls.clone(), counters.clone(), to.to_owned());
        let (mut hang_up, up) = (hang_up.subscribe(), up_tx.clone());
        tasks.spawn(async move {
            let mut was_up = false;
            let result = call(&target, tls.as_ref(), &to, &counters, &mut hang_up, &up, &mut was_up).await;
            if let Err(error) = &result {
                // Before it was up, the error is the call's; after, the hang-up's.
                if was_up {
                    counters
                        .first_hangup_error
                        .lock()
                        .expect("not poisoned")
                        .get_or_insert(format!("{error:#}"));
                } else {
                    let _ = up.send(Err(format!("{error:#}")));
                }
            }
            result.is_ok()
        });
        tokio::time::sleep(gap).await;
    }
    drop(up_tx);
    let (mut up, mut failed, mut first_error) = (0usize, 0usize, None);
    let wait_until = Instant::now() + Duration::from_secs(30);
    while up + failed < calls {
        match tokio::time::timeout(wait_until.saturating_duration_since(Instant::now()), up_rx.recv()).await {
            Ok(Some(Ok(()))) => up += 1,
            Ok(Some(Err(error))) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
            _ => break,
        }
    }
    // Settle, then measure with every call up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, sent_before, received_before) =
        (server.seconds()?, counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed));
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(measure_secs)).await;
    let seconds = window.elapsed().as_secs_f64();
    let cpu = server.seconds()? - cpu_before;
    let sent = counters.sent.load(Ordering::Relaxed) - sent_before;
    let received = counters.received.load(Ordering::Relaxed) - received_before;
    let _ = hang_up.send(());
    let mut ended = 0;
    while let Some(result) = tasks.join_next().await {
        ended += usize::from(result.unwrap_or(false));
    }
    println!(
        "{}",
        serde_json::json!({
            "calls": calls,
            "up": up,
            "failed": failed,
            "ended_cleanly": ended,
            "server_cpu_percent": cpu / seconds * 100.0,
            "server_cpu_ms_per_call_second": if up > 0 { cpu * 1000.0 / seconds / up as f64 } else { 0.0 },
            "packets_sent_per_second": sent as f64 / seconds,
            "packets_received_per_second": received as f64 / seconds,
            "bad_packets": counters.bad.load(Ordering::Relaxed),
            "first_bad_packet": counters.first_bad.lock().expect("not poisoned").clone(),
            "stranger_packets": counters.strangers.load(Ordering::Relaxed),
            "first_hangup_error": counters.first_hangup_error.lock().expect("not poisoned").clone(),
            "first_error": first_error,
        })
    );
    Ok(())
}

/// The server process whose CPU time is measured.
struct ServerCpu {
    pid: u32,
    clock_ticks: u32,
}

impl ServerCpu {
    /// User and system CPU time the process has used, seconds.
    fn seconds(&self) -> Result<f64> {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).context("the server's /proc stat")?;
        // Fields after the command name (which is in parentheses and may hold spaces):
        // utime and stime are the 14th and 15th of the line.
        let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / f64::from(self.clock_ticks))
    }
}

/// One call: INVITE, the 407 challenge (ACKed), INVITE with the digest, 200, ACK; media both
/// ways until `hang_up`; BYE.
async fn call(
    target: &Target,
    tls: Option<&TlsConnector>,
    to: &str,
    counters: &Arc<MediaCounters>,
    hang_up: &mut tokio::sync::broadcast::Receiver<()>,
    up: &tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    was_up: &mut bool,
) -> Result<()> {
    let mut link = Link::open(target, tls).await?;
    let local = link.local()?;
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let rtp_port = rtp.local_addr()?.port();
    let srtp = target.transport == Transport::Tls;
    let key = SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80)?;
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} {} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{}a=sendrecv\r\n",
        if srtp { "RTP/SAVP" } else { "RTP/AVP" },
        if srtp { format!("a=crypto:{}\r\n", key.attribute()) } else { String::new() }
    );
    let domain = format!("{LABEL}.{PLATFORM_SIP_DOMAIN}");
    let uri = format!("sip:{to}@{domain}");
    let (call_id, tag) = (random_token(), random_token());
    let from = format!("<sip:{USER}@{domain}>;tag={tag}");
    let (via_transport, uri_transport) = (link.via(), link.uri_transport());
    let via = |branch: &str| format!("Via: SIP/2.0/{via_transport} {local};rport;branch={branch}");
    let invite = |cseq: u32, branch: &str, authorization: Option<&str>| {
        let authorization =
            authorization.map(|value| format!("Proxy-Authorization: {value}\r\n")).unwrap_or_default();
        format!(
            "INVITE {uri} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:{USER}@{local}{}>\r\n{authorization}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            via(branch),
            uri_transport,
            sdp.len()
        )
    };
    let branch = format!("z9hG4bK{}", random_token());
    let first = invite(1, &branch, None);
    let challenge = link.transact(&first).await?;
    if challenge.status != Some(407) {
        bail!("INVITE answered {:?}, not 407", challenge.status);
    }
    let ack = format!(
        "ACK {uri} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        via(&branch),
        challenge.header("to").unwrap_or_default()
    );
    link.send(&ack).await?;
    let authorization =
        answer_challenge(challenge.header("proxy-authenticate").context("a challenge")?, "INVITE", &uri)?;
    let second = invite(2, &format!("z9hG4bK{}", random_token()), Some(&authorization));
    let answer = link.transact(&second).await?;
    if answer.status != Some(200) {
        bail!("the authenticated INVITE answered {:?}", answer.status);
    }
    let to_header = answer.header("to").unwrap_or_default().to_owned();
    let remote_target = answer
        .header("contact")
        .and_then(|contact| contact.split('<').nth(1)?.split('>').next())
        .unwrap_or(&uri)
        .to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} {remote_target} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to_header}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            via(&format!("z9hG4bK{}", random_token()))
        )
    };
    link.send(&in_dialog("ACK", 2)).await?;

    // The answer's media address, and its key.
    let body = &answer.body;
    let line = |prefix: &str| body.lines().find_map(|line| line.strip_prefix(prefix)).map(str::trim);
    let address = line("c=IN IP4 ").context("the answer's c= line")?;
    let port = line("m=audio ").and_then(|m| m.split_whitespace().next()).context("the answer's m= line")?;
    let peer: SocketAddr = format!("{address}:{port}").parse()?;
    let mut contexts = match srtp {
        true => {
            let remote = SdesKey::parse(line("a=crypto:").context("the answer's a=crypto")?)?
                .context("a usable crypto line")?;
            Some(SrtpContexts::new(&key, &remote)?)
        }
        false => None,
    };
    let _ = up.send(Ok(()));
    *was_up = true;

    // 20 ms PCMU (silence) out; whatever comes back counted and checked.
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let (ssrc, mut sequence, mut timestamp) = (rand_u64() as u32, rand_u64() as u16, rand_u64() as u32);
    let mut datagram = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = hang_up.recv() => break,
            _ = ticker.tick() => {
                let mut packet = Vec::with_capacity(172);
                packet.extend_from_slice(&[0x80, 0]);
                packet.extend_from_slice(&sequence.to_be_bytes());
                packet.extend_from_slice(&timestamp.to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                packet.extend_from_slice(&[0xFF; 160]);
                let packet = match contexts.as_mut() {
                    Some(contexts) => contexts.protect(&packet).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    None => packet,
                };
                rtp.send_to(&packet, peer).await?;
                counters.sent.fetch_add(1, Ordering::Relaxed);
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(160);
            }
            received = rtp.recv_from(&mut datagram) => {
                let (length, source) = received?;
                if source != peer {
                    counters.strangers.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let checked = match contexts.as_mut() {
                    Some(contexts) => contexts.unprotect(&datagram[..length]).map(drop).map_err(|e| format!("{e:?}")),
                    None => opentact_media::rtp::RtpPacket::parse(&datagram[..length]).map(drop).map_err(|e| e.to_string()),
                };
                match checked {
                    Ok(()) => counters.received.fetch_add(1, Ordering::Relaxed),
                    Err(why) => {
                        counters.first_bad.lock().expect("not poisoned").get_or_insert(why);
                        counters.bad.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    }
    let bye = link.transact(&in_dialog("BYE", 3)).await?;
    if bye.status != Some(200) {
        bail!("BYE answered {:?}", bye.status);
    }
    Ok(())
}
