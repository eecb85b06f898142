//! Any file that is not RIFF: `audio::decode` sniffs it (ID3, MPEG frame sync) and decodes MP3
//! through symphonia, returning telephone audio or an error, never panicking.
#![no_main]

use libfuzzer_sys::Corpus;

/// Inputs are capped (about 8 s of 16 kbit/s audio): decoding is linear in the input, so longer
/// files only find "a longer file takes longer".
const MAX_INPUT: usize = 16 * 1024;

libfuzzer_sys::fuzz_target!(|data: &[u8]| -> Corpus {
    if data.len() > MAX_INPUT || data.starts_with(b"RIFF") || data.starts_with(b"RIFX") {
        return Corpus::Reject;
    }
    // cargo-fuzz builds with debug assertions, and debug builds of the decoder panic on purpose
    // on this marker (the end-to-end test of panic containment); the fuzzer finds it in a minute.
    #[cfg(debug_assertions)]
    if data.starts_with(opentact_media::audio::PANIC_FOR_TESTS) {
        return Corpus::Reject;
    }
    let _ = opentact_media::audio::decode(data);
    Corpus::Keep
});
