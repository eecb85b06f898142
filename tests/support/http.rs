//! A real HTTP/1.1 server on loopback for the end-to-end tests: serves canned responses by path
//! and records every request it receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A canned response.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    pub fn xml(body: &str) -> Self {
        Self { status: 200, body: body.to_owned(), delay: Duration::ZERO }
    }

    pub fn status(status: u16) -> Self {
        Self { status, body: String::new(), delay: Duration::ZERO }
    }

    pub fn slow(body: &str, delay: Duration) -> Self {
        Self { status: 200, body: body.to_owned(), delay }
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub content_type: Option<String>,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The running server; stops when dropped (the runtime ends).
pub struct TestServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestServer {
    /// Serve `routes` (path → response) on 127.0.0.1, any free port. Unknown paths get 404.
    pub async fn start(routes: &[(&str, Canned)]) -> Self {
        let routes: Arc<HashMap<String, Canned>> =
            Arc::new(routes.iter().map(|(path, canned)| (path.to_string(), canned.clone())).collect());
        let received = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let routes = routes.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let routes = routes.clone();
                        let log = log.clone();
                        async move {
                            let method = request.method().to_string();
                            let uri = request.uri().to_string();
                            let path = request.uri().path().to_owned();
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let headers = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                .collect();
                            let body =
                                request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            log.lock().expect("log").push(Received {
                                method,
                                uri,
                                content_type,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let canned = routes.get(&path).cloned().unwrap_or(Canned::status(404));
                            tokio::time::sleep(canned.delay).await;
                            let response = Response::builder()
                                .status(canned.status)
                                .header("content-type", "application/xml")
                                .body(Full::new(Bytes::from(canned.body)))
                                .expect("response");
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, received }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}
