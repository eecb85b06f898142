//! Any `Authorization`/`Proxy-Authorization` value goes through the digest parser, nonce check,
//! nonce ledger and response check; the same text, split into lines, is parsed as REGISTER
//! Contact header values. Nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    opentact_sip::fuzzing::digest(text);
    let values: Vec<String> = text.lines().map(str::to_owned).collect();
    let _ = opentact_sip::fuzzing::contacts(&values);
});
