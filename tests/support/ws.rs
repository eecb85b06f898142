//! A websocket client of `GET /ws`: connect, authenticate, read events.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A connected websocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connect to the platform's `/ws` and authenticate with `token`; panics unless accepted.
pub async fn subscribe(api: SocketAddr, token: &str) -> Socket {
    connect(api, json!({"action": "auth", "token": token})).await
}

/// Like [`subscribe`], resuming after the event `after` (a reconnect).
pub async fn resume(api: SocketAddr, token: &str, after: &str) -> Socket {
    connect(api, json!({"action": "auth", "token": token, "after": after})).await
}

async fn connect(api: SocketAddr, auth: Value) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{api}/ws")).await.expect("websocket");
    socket.send(Message::Text(auth.to_string().into())).await.expect("send");
    let welcome = next(&mut socket).await;
    assert_eq!(welcome["success"], true, "{welcome}");
    socket
}

/// The next text message, as JSON, within 10 s (pings are skipped).
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a websocket message within 10 s")
            .expect("open")
            .expect("readable");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// Events until one matches `last` (included).
pub async fn until(socket: &mut Socket, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next(socket).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The sample account's password: the server's log is not a terminal here, so the first
/// start's log names the 0600 file that holds it (and never shows the password itself).
pub fn sample_password(log: &str) -> String {
    assert!(
        !log.lines().any(|line| line.contains("sample account created") && line.contains("password=")),
        "the password itself is not logged"
    );
    let path = log
        .lines()
        .find_map(|line| line.split("password_file=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the log names the password file");
    let path = std::path::Path::new(path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).expect("the password file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the operator reads the password file");
    }
    std::fs::read_to_string(path).expect("the password file").trim().to_owned()
}
