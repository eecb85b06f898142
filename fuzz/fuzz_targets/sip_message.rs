//! Any datagram as the SIP transport receives it: rsipstack's message parser, then what the
//! endpoint reads of a request (digest headers, Contact values, From/To/Request-URI, session
//! timer). Nothing panics.
#![no_main]

/// Longer than any UDP datagram the transport reads; larger inputs only slow the fuzzer.
const MAX_INPUT: usize = 65_535;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() <= MAX_INPUT {
        opentact_sip::fuzzing::message(data);
    }
});
