//! Hostile: tries HTTP to a private and a loopback address; the host must refuse both, and the
//! guest reports what it got.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

struct HttpRefused;

#[cfg(target_arch = "wasm32")]
fn get(url_authority: &str) -> Result<u16, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method".to_owned())?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme".to_owned())?;
    request.set_authority(Some(url_authority)).map_err(|()| "authority".to_owned())?;
    request.set_path_with_query(Some("/")).map_err(|()| "path".to_owned())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response.map_err(|()| "taken".to_owned())?.map_err(|e| format!("{e:?}"))?;
    Ok(response.status())
}

#[cfg(not(target_arch = "wasm32"))]
fn get(_: &str) -> Result<u16, String> {
    Err("no HTTP outside wasm".to_owned())
}

impl opentact_sdk::Flow for HttpRefused {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        for authority in ["10.0.0.1", "127.0.0.1:9"] {
            match get(authority) {
                Ok(status) => opentact_sdk::report(
                    "http",
                    false,
                    &[("url", authority), ("status", &status.to_string())],
                ),
                Err(error) => opentact_sdk::report("http", true, &[("url", authority), ("error", &error)]),
            }
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(HttpRefused);
