//! RFC 4475's torture messages (tests/fixtures/sip-torture, a byte-exact copy of
//! ../shared/testdata/sip-torture) against `opentact serve`, over UDP and over TCP, each
//! checked against the verdict its README gives, and the server still serving after each.
//!
//! How answers come back: the messages' Via headers name other hosts, but the server's
//! transport stamps every request it receives with `received=<source>;rport=<port>` (RFC 3261
//! §18.2.1, RFC 3581), and responses go to those, so a UDP answer comes back to the test's
//! socket. Over TCP it comes back on the same connection (§18.2.2). Each message goes out on a
//! fresh socket or connection, so a retransmitted answer to one message is never read as the
//! answer to the next.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::platform::Platform;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long the test waits for an answer the server may rightly not give (a drop).
const DROP_WAIT: Duration = Duration::from_millis(300);
/// How long it waits for an answer the server must give.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// The README's verdict on a message, as this test checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Well formed: a request is processed (a final answer other than 400); a response is
    /// absorbed (no answer).
    Valid,
    /// Malformed: a request gets 400 (or one of `also`) or nothing; a response gets nothing.
    Invalid { also: Option<u16> },
    /// Malformed, but RFC 4475 lets a lenient element accept it: any answer, or none.
    Lenient,
    /// Parses; rejecting it is the application's business: a request gets some final answer.
    Later,
    /// RFC 2543 syntax an element keeping backward compatibility accepts: processed.
    Compat,
}

use Verdict::{Compat, Invalid, Later, Lenient, Valid};

const INVALID: Verdict = Invalid { also: None };

/// Every file of the set with its README verdict.
const MESSAGES: [(&str, Verdict); 50] = [
    // 3.1.1 valid messages
    ("wsinv.dat", Valid),
    ("intmeth.dat", Valid),
    ("esc01.dat", Valid),
    ("escnull.dat", Valid),
    ("esc02.dat", Valid),
    ("lwsdisp.dat", Valid),
    ("longreq.dat", Valid),
    ("dblreq.dat", Valid),
    ("semiuri.dat", Valid),
    ("transports.dat", Valid),
    ("mpart01.dat", Valid),
    ("unreason.dat", Valid),
    ("noreason.dat", Valid),
    // 3.1.2 invalid messages
    ("badinv01.dat", INVALID),
    ("clerr.dat", INVALID),
    ("ncl.dat", INVALID),
    ("scalar02.dat", INVALID),
    ("scalarlg.dat", INVALID),
    ("quotbal.dat", Lenient),
    ("ltgtruri.dat", Lenient),
    ("lwsruri.dat", Lenient),
    ("lwsstart.dat", Lenient),
    ("trws.dat", Lenient),
    ("escruri.dat", Lenient),
    ("baddate.dat", Lenient),
    ("regbadct.dat", Lenient),
    ("badaspec.dat", Lenient),
    ("baddn.dat", Lenient),
    // 505 Version Not Supported is what the RFC expects; 400 is as good a refusal.
    ("badvers.dat", Invalid { also: Some(505) }),
    ("mismatch01.dat", INVALID),
    // 501 preferred, 400 acceptable.
    ("mismatch02.dat", Invalid { also: Some(501) }),
    ("bigcode.dat", INVALID),
    // 3.2 transaction layer
    ("badbranch.dat", Later),
    // 3.3 application layer
    ("insuf.dat", Later),
    ("unkscm.dat", Later),
    ("novelsc.dat", Later),
    ("unksm2.dat", Later),
    ("bext01.dat", Later),
    ("invut.dat", Later),
    ("regaut01.dat", Later),
    ("multi01.dat", Later),
    ("mcl01.dat", INVALID),
    ("bcast.dat", Later),
    ("zeromf.dat", Later),
    ("cparam01.dat", Valid),
    ("cparam02.dat", Valid),
    ("regescrt.dat", Valid),
    ("sdp01.dat", Later),
    // 3.4 backward compatibility
    ("inv2543.dat", Compat),
    // not in the RFC: no SIP-Version, a header line without a colon
    ("test.dat", INVALID),
];

/// Where this server's verdict differs from the README's (over one transport, or both), the
/// outcome it has instead and why. The test holds the server to exactly that outcome, so any
/// change (a fix upstream, or a regression) shows here.
const DEVIATIONS: [(&str, Option<Transport>, Outcome, &str); 4] = [
    (
        "intmeth.dat",
        None,
        Outcome::Silent,
        "rsipstack 0.7.14's parser knows a fixed set of methods and drops a request with an \
         extension method before anything of ours sees it (a stream is closed); RFC 4475 wants 501",
    ),
    ("esc02.dat", None, Outcome::Silent, "an extension method (RE%47IST%45R), as intmeth.dat"),
    (
        "wsinv.dat",
        Some(Transport::Tcp),
        Outcome::Answered(400),
        "rsipstack 0.7.14's stream framing does not see `Content-Length   : 150` (white space \
         before the colon, legal HCOLON) and frames the message without its body; the \
         endpoint's Content-Length check then refuses it. Over UDP it is processed (481)",
    ),
    (
        "inv2543.dat",
        Some(Transport::Udp),
        Outcome::Answered(400),
        "RFC 2543 compatibility: without a From tag the transaction layer cannot match the \
         request and would drop it unanswered; validate.rs refuses it with 400 instead",
    ),
];

fn deviation(
    name: &str,
    transport: Transport,
) -> Option<&'static (&'static str, Option<Transport>, Outcome, &'static str)> {
    DEVIATIONS.iter().find(|(file, over, _, _)| *file == name && over.is_none_or(|over| over == transport))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What the server did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Its final answer's status.
    Answered(u16),
    /// Nothing within the wait (for TCP: the connection may also have been closed).
    Silent,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(support::runner::repo().join("tests/fixtures/sip-torture").join(name)).expect("fixture")
}

/// The end of the first message in `bytes` on a stream: the header section, then as many
/// octets as its first Content-Length says (none without one). `None` when the header
/// section never ends or the length is not a number.
fn framed_length(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let length = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| {
            let name = name.trim();
            name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")
        })
        .map(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(Some(0))?;
    Some(end + length)
}

/// What goes on a TCP connection for a message: the whole file, except `dblreq.dat`, whose
/// trailing octets are a UDP datagram's padding (RFC 4475 §3.1.1.8) and would be a second
/// message on a stream. The other files are sent as they are: `clerr.dat` (Content-Length
/// larger than what follows) and `baddn.dat` (no end of headers) leave the server waiting for
/// more, `ncl.dat` and `mcl01.dat` break framing, and `inv2543.dat` (no Content-Length, which
/// a stream requires, RFC 3261 §20.14) has its body read as a next message.
fn tcp_bytes(name: &str, bytes: &[u8]) -> Vec<u8> {
    if name == "dblreq.dat" {
        let end = framed_length(bytes).expect("dblreq frames");
        assert!(end < bytes.len(), "dblreq.dat carries trailing octets");
        return bytes[..end].to_vec();
    }
    bytes.to_vec()
}

/// The status of a response's first line (`SIP/2.0 404 …`), if it is one.
fn status_of(text: &str) -> Option<u16> {
    let rest = text.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

/// The Call-ID of a message (full or compact form), if it has one.
fn call_id_of(text: &str) -> Option<String> {
    text.split("\r\n").take_while(|line| !line.is_empty()).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_owned())
    })
}

/// Send `bytes` on a fresh UDP socket; the first final answer within `wait`.
async fn over_udp(server: SocketAddr, bytes: &[u8], wait: Duration) -> (Outcome, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(bytes, server).await.expect("send");
    let deadline = tokio::time::Instant::now() + wait;
    let mut buffer = vec![0u8; 65_536];
    while let Ok(Ok((length, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await {
        let text = String::from_utf8_lossy(&buffer[..length]);
        if let Some(status) = status_of(&text).filter(|status| *status >= 200) {
            return (Outcome::Answered(status), socket);
        }
    }
    (Outcome::Silent, socket)
}

/// Read SIP responses from `stream` until a final one, `wait` passes or the server closes.
async fn final_on_stream(stream: &mut TcpStream, wait: Duration, call_id: Option<&str>) -> Outcome {
    let deadline = tokio::time::Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await;
        let Ok(Ok(length)) = read else { return Outcome::Silent };
        if length == 0 {
            return Outcome::Silent;
        }
        received.extend_from_slice(&buffer[..length]);
        // Responses here carry no body: each ends at its empty line.
        while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&received[..end + 4]).into_owned();
            received.drain(..end + 4);
            let ours = call_id.is_none_or(|id| call_id_of(&text).as_deref() == Some(id));
            if let Some(status) = status_of(&text).filter(|status| *status >= 200 && ours) {
                return Outcome::Answered(status);
            }
        }
    }
}

/// Send `bytes` on a fresh TCP connection; the first final answer within `wait`.
async fn over_tcp(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Outcome> {
    let mut stream = TcpStream::connect(server).await.ok()?;
    // The server may close while we write (a framing error): that is a drop.
    if stream.write_all(bytes).await.is_err() {
        return Some(Outcome::Silent);
    }
    Some(final_on_stream(&mut stream, wait, None).await)
}

fn options(transport: Transport, local: SocketAddr, server: SocketAddr, n: usize) -> (String, String) {
    let call_id = format!("alive-{n}-{}@torture", std::process::id());
    let via = match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    };
    let text = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/{via} {local};rport;branch=z9hG4bK-alive{n}\r\n\
         From: <sip:probe@{local}>;tag=a{n}\r\nTo: <sip:{server}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    (text, call_id)
}

/// Whether the server answers an OPTIONS with 200 over `transport` (on `socket` for UDP, on
/// a new connection for TCP).
async fn alive(transport: Transport, server: SocketAddr, socket: Option<&UdpSocket>, n: usize) -> bool {
    match transport {
        Transport::Udp => {
            let socket = socket.expect("a UDP socket");
            let (text, call_id) = options(transport, socket.local_addr().expect("local"), server, n);
            socket.send_to(text.as_bytes(), server).await.expect("send");
            let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
            let mut buffer = vec![0u8; 65_536];
            while let Ok(Ok((length, _))) =
                tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await
            {
                let text = String::from_utf8_lossy(&buffer[..length]);
                if status_of(&text) == Some(200) && call_id_of(&text).as_deref() == Some(call_id.as_str()) {
                    return true;
                }
            }
            false
        }
        Transport::Tcp => {
            let Ok(mut stream) = TcpStream::connect(server).await else { return false };
            let (text, call_id) = options(transport, stream.local_addr().expect("local"), server, n);
            if stream.write_all(text.as_bytes()).await.is_err() {
                return false;
            }
            final_on_stream(&mut stream, ANSWER_WAIT, Some(&call_id)).await == Outcome::Answered(200)
        }
    }
}

/// Whether `outcome` is what `verdict` allows for this message over `transport`.
fn allowed(name: &str, verdict: Verdict, response: bool, transport: Transport, outcome: &Outcome) -> bool {
    let stream = transport == Transport::Tcp;
    // On a stream these never complete (Content-Length past the end, no end of headers): the
    // server must wait for more, and answers nothing.
    if stream && matches!(name, "clerr.dat" | "baddn.dat") {
        return *outcome == Outcome::Silent;
    }
    // On a stream a message without Content-Length ends at its headers (RFC 3261 §18.3) and its
    // body is garbage that follows: any answer to the headers, or a closed connection.
    if stream && name == "inv2543.dat" {
        return true;
    }
    if let Some((_, _, deviation, _)) = deviation(name, transport) {
        return outcome == deviation;
    }
    if response {
        // A response that matches no transaction of ours is absorbed, valid or not.
        return *outcome == Outcome::Silent;
    }
    match (verdict, outcome) {
        (Valid | Compat, Outcome::Answered(status)) => *status != 400 && *status < 500 || *status == 501,
        (Valid | Compat, Outcome::Silent) => false,
        (Invalid { also }, Outcome::Answered(status)) => *status == 400 || Some(*status) == also,
        (Invalid { .. }, Outcome::Silent) => true,
        (Lenient, _) => true,
        (Later, Outcome::Answered(_)) => true,
        (Later, Outcome::Silent) => false,
    }
}

fn drop_allowed(verdict: Verdict, response: bool) -> bool {
    response || matches!(verdict, Invalid { .. } | Lenient)
}

async fn run(transport: Transport) {
    let platform = Platform::start(&[]).await;
    if transport == Transport::Tcp {
        // rsipstack binds the TCP listener on its serve task, after the endpoint reports
        // listening (and the platform ready): wait until it accepts.
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        while TcpStream::connect(platform.sip).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "SIP over TCP listens\n{}", platform.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (n, (name, verdict)) in MESSAGES.iter().enumerate() {
        let bytes = fixture(name);
        let response = bytes.starts_with(b"SIP/");
        let wait = if drop_allowed(*verdict, response) { DROP_WAIT } else { ANSWER_WAIT };
        let (outcome, socket) = match transport {
            Transport::Udp => {
                let (outcome, socket) = over_udp(platform.sip, &bytes, wait).await;
                (outcome, Some(socket))
            }
            Transport::Tcp => {
                let outcome = over_tcp(platform.sip, &tcp_bytes(name, &bytes), wait).await;
                let outcome = outcome.unwrap_or_else(|| {
                    panic!("TCP connection for {name} refused\n{}\n{}", table.join("\n"), platform.log())
                });
                (outcome, None)
            }
        };
        let ok = allowed(name, *verdict, response, transport, &outcome);
        let mark = match (ok, deviation(name, transport).is_some()) {
            (false, _) => "  <-- WRONG",
            (true, true) => "  (known deviation)",
            (true, false) => "",
        };
        table.push(format!("{name:<15} {verdict:<24} {outcome:?}{mark}"));
        if !ok {
            wrong.push(*name);
        }
        assert!(
            alive(transport, platform.sip, socket.as_ref(), n).await,
            "{transport:?}: the server answers OPTIONS after {name}\n{}",
            platform.log()
        );
    }
    let table = table.join("\n");
    eprintln!("{transport:?} verdicts:\n{table}");
    assert!(wrong.is_empty(), "{transport:?}: wrong verdicts for {wrong:?}:\n{table}\n{}", platform.log());
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Valid => "valid",
            Invalid { .. } => "invalid",
            Lenient => "invalid, lenient allowed",
            Later => "parses; rejected later",
            Compat => "accept (compat)",
        };
        f.pad(text)
    }
}

#[test]
fn the_fixtures_are_the_fifty_messages_of_the_archive() {
    let dir = support::runner::repo().join("tests/fixtures/sip-torture");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dat"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = MESSAGES.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_messages_over_udp_get_their_verdicts_and_the_server_keeps_serving() {
    run(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_messages_over_tcp_get_their_verdicts_and_the_server_keeps_serving() {
    run(Transport::Tcp).await;
}
