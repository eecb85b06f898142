//! Outbound HTTP through `wasi:http/outgoing-handler`, blocking on its pollables. The host
//! polices where requests may go; this module only speaks the protocol and caps what it reads.

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
use wasi::io::streams::StreamError;

/// Largest response body read, bytes.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Vec<u8>,
}

fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => {
            "refused by the platform's HTTP policy (loopback and private addresses are not allowed)"
                .to_owned()
        }
        ErrorCode::ConnectionRefused => "connection refused".to_owned(),
        ErrorCode::ConnectionTimeout => "timed out connecting".to_owned(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "timed out waiting for the answer".to_owned()
        }
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            "the host name does not resolve".to_owned()
        }
        ErrorCode::ConnectionLimitReached => "too many HTTP requests for this call".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Split `scheme://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("unsupported scheme {other:?}")),
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Ok((scheme, authority, path))
}

/// Send a request and read the response, all within `timeout_ms` per phase.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout_ms: u32,
) -> Result<Response, String> {
    let (scheme, authority, path) = split_url(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|e| format!("header {name:?}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "PUT" => Method::Put,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| format!("invalid request {what} for {url:?}");
    request.set_method(&method).map_err(|()| invalid("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| invalid("host"))?;
    request.set_path_with_query(Some(&path)).map_err(|()| invalid("path"))?;
    let outgoing = request.body().map_err(|()| invalid("body"))?;
    let options = RequestOptions::new();
    let nanos = u64::from(timeout_ms) * 1_000_000;
    // Options the host does not support are left at its defaults (which it caps anyway).
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| describe(&e))?;
    if let Some(bytes) = body {
        let stream = outgoing.write().map_err(|()| invalid("body stream"))?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("sending the body: {e:?}"))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| describe(&e))?;
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response =
        response.map_err(|()| "the response was already taken".to_owned())?.map_err(|e| describe(&e))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "the response body was already taken".to_owned())?;
    let stream = incoming.stream().map_err(|()| "the response body stream was already taken".to_owned())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(format!("reading the answer failed: {}", error.to_debug_string()));
            }
        }
    }
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_parts() {
        let (_, authority, path) = split_url("http://127.0.0.1:8080/menu?x=1").expect("valid");
        assert_eq!((authority, path.as_str()), ("127.0.0.1:8080", "/menu?x=1"));
        let (_, authority, path) = split_url("https://example.com?x=1").expect("valid");
        assert_eq!((authority, path.as_str()), ("example.com", "/?x=1"));
        assert!(split_url("ftp://example.com/").is_err());
        assert!(split_url("example.com").is_err());
    }
}
