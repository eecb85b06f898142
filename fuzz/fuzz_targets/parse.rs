//! Any input: the XML parser returns a document or errors, never panics, never hangs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = opentact_xml::parse(text);
    }
});
