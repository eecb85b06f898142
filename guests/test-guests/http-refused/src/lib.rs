//! Hostile: tries HTTP GETs to a private and a loopback address through
//! `wasi:http/outgoing-handler`; the host must refuse both. Each outcome is reported as an
//! `http` step (`failed` with the error text, or `finished` with the status), then the guest
//! hangs up. A refusal is an ordinary error here, never a panic.

use opentact_sdk::{Call, Flow, Phase, Result};

/// The requests, as (URL reported, scheme-less authority, path).
const TARGETS: [(&str, &str, &str); 2] =
    [("http://10.0.0.1/", "10.0.0.1", "/"), ("http://127.0.0.1:9/", "127.0.0.1:9", "/")];

/// A blocking GET; the response status, or what went wrong.
#[cfg(target_arch = "wasm32")]
fn get(authority: &str, path: &str) -> std::result::Result<u16, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "invalid method".to_owned())?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "invalid scheme".to_owned())?;
    request.set_authority(Some(authority)).map_err(|()| format!("invalid authority {authority}"))?;
    request.set_path_with_query(Some(path)).map_err(|()| format!("invalid path {path}"))?;
    let response = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let outcome = loop {
        match response.get() {
            Some(outcome) => break outcome,
            None => response.subscribe().block(),
        }
    };
    let response =
        outcome.map_err(|()| "response already taken".to_owned())?.map_err(|e| format!("{e:?}"))?;
    Ok(response.status())
}

/// The host target has no `wasi:http`: every request fails.
#[cfg(not(target_arch = "wasm32"))]
fn get(_authority: &str, _path: &str) -> std::result::Result<u16, String> {
    Err("no wasi:http outside wasm32".to_owned())
}

struct HttpRefused;

impl Flow for HttpRefused {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        for (url, authority, path) in TARGETS {
            match get(authority, path) {
                Ok(status) => opentact_sdk::report(
                    "http",
                    Phase::Finished,
                    &[("url", url), ("status", &status.to_string())],
                ),
                Err(error) => opentact_sdk::report("http", Phase::Failed, &[("url", url), ("error", &error)]),
            }
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(HttpRefused);
