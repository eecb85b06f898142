//! Any RIFF/WAVE file: `audio::decode` returns telephone audio or an error, never panics.
//! Inputs that are not RIFF are left out of the corpus (the `mp3` target covers the rest).
#![no_main]

use libfuzzer_sys::Corpus;

/// Inputs are capped: decoding is linear in the input, so longer files only find "a longer
/// file takes longer".
const MAX_INPUT: usize = 64 * 1024;

libfuzzer_sys::fuzz_target!(|data: &[u8]| -> Corpus {
    if data.len() > MAX_INPUT || !(data.starts_with(b"RIFF") || data.starts_with(b"RIFX")) {
        return Corpus::Reject;
    }
    let _ = opentact_media::audio::decode(data);
    Corpus::Keep
});
