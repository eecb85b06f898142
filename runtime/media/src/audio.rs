//! Audio files in, telephone audio out: decoding WAV and MP3 prompts to 8 kHz mono PCM,
//! resampling, and writing WAV.
//!
//! Prompts come from customers' web servers and TTS engines in whatever format they were saved
//! in, so [`decode`] sniffs the bytes rather than trusting a file name or a `Content-Type`.
//! WAV is parsed here (a few dozen lines of RIFF, and it covers the G.711 tags that general
//! decoders skip); MP3 goes through `symphonia`. Everything ends up as [`SAMPLE_RATE`] mono
//! `i16`, the only format the call's audio path knows.
//!
//! Resampling uses a Kaiser-windowed sinc low-pass (polyphase), because a 44.1 or 48 kHz prompt
//! decimated without one folds everything between 4 kHz and 24 kHz back into the telephone
//! band as audible noise.

use std::io::Cursor;

use crate::SAMPLE_RATE;

/// The longest audio [`decode`] accepts, seconds. Compressed input expands roughly tenfold on
/// decoding, so the byte limits of the fetcher alone do not bound memory; ten minutes is far
/// beyond any prompt and bounds the intermediate buffer to about 115 MB at 48 kHz.
pub const MAX_DECODED_SECONDS: u32 = 600;
/// Lowest source sample rate accepted, Hz. Below this the input is not speech audio.
pub const MIN_SOURCE_RATE: u32 = 1_000;
/// Highest source sample rate accepted, Hz; bounds the resampler's filter length.
pub const MAX_SOURCE_RATE: u32 = 384_000;

/// Why audio could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// There were no samples at all.
    #[error("no audio: {what} holds no samples")]
    Empty {
        /// What was empty: the input, the WAV data chunk, the MP3 stream.
        what: &'static str,
    },
    /// The bytes are neither RIFF/WAVE nor MP3.
    #[error(
        "unsupported audio format (the data starts with {magic}); supply a WAV (PCM, float, \
         µ-law or A-law) or MP3 file"
    )]
    UnknownFormat {
        /// The first bytes of the input, printable ASCII kept and the rest as `\xNN`.
        magic: String,
    },
    /// A WAV file whose sample encoding is not one of those supported.
    #[error(
        "unsupported WAV encoding: format tag {format_tag:#06x} with {bits} bits per sample; \
         use PCM (8/16/24/32-bit), IEEE float (32/64-bit), µ-law or A-law (8-bit)"
    )]
    UnsupportedWav {
        /// The `fmt ` chunk's format tag (the sub-format's for WAVE_FORMAT_EXTENSIBLE).
        format_tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// An MP3 of a layer other than III.
    #[error("unsupported MPEG audio layer {layer}; only MP3 (layer III) is supported")]
    UnsupportedMpegLayer {
        /// The layer found in the first frame header (1 or 2).
        layer: u8,
    },
    /// A WAV header field with an impossible value.
    #[error("invalid WAV header: {reason}")]
    InvalidWav {
        /// Which field is wrong.
        reason: &'static str,
    },
    /// The input ends before a structure it announces.
    #[error("truncated {format}: {detail}")]
    Truncated {
        /// `WAV` or `MP3`.
        format: &'static str,
        /// What is missing.
        detail: &'static str,
    },
    /// The source sample rate is outside [`MIN_SOURCE_RATE`]..=[`MAX_SOURCE_RATE`].
    #[error("unsupported sample rate {rate} Hz; expected {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz")]
    UnsupportedRate {
        /// The rate the file declares.
        rate: u32,
    },
    /// The audio is longer than [`MAX_DECODED_SECONDS`].
    #[error("audio longer than {limit_secs} s; shorten or split it")]
    TooLong {
        /// The limit, seconds.
        limit_secs: u32,
    },
    /// Decoding on the blocking pool was cancelled because the runtime is shutting down.
    #[error("audio decoding was cancelled: the runtime is shutting down")]
    Cancelled,
    /// The MP3 decoder rejected the stream.
    #[error("MP3 decoding failed: {source}")]
    Mp3 {
        /// The decoder's error.
        #[source]
        source: symphonia::core::errors::Error,
    },
}

/// Debug builds only: audio starting with these bytes makes [`decode`] panic, so the tests can
/// show that a panicking decoder ends only its own call.
#[cfg(debug_assertions)]
pub const PANIC_FOR_TESTS: &[u8] = b"OPENTACT-TEST-PANIC";

/// Decodes a WAV or MP3 file to [`SAMPLE_RATE`] mono `i16`, downmixing by averaging the
/// channels and resampling as needed.
pub fn decode(bytes: &[u8]) -> Result<Vec<i16>, AudioError> {
    // Fault injection for the end-to-end test of panic containment (a decoder bug must end
    // only its own call): debug builds only, release builds have no such input.
    #[cfg(debug_assertions)]
    if bytes.starts_with(PANIC_FOR_TESTS) {
        panic!("decoder fault injected by a test");
    }
    if bytes.is_empty() {
        return Err(AudioError::Empty { what: "the input" });
    }
    let (mono, rate) = if bytes.starts_with(b"RIFF") || bytes.starts_with(b"RIFX") {
        decode_wav(bytes)?
    } else if is_mp3(bytes)? {
        decode_mp3(bytes)?
    } else {
        return Err(AudioError::UnknownFormat { magic: magic(bytes) });
    };
    if mono.is_empty() {
        return Err(AudioError::Empty { what: "the audio stream" });
    }
    Ok(to_i16(&resample_f32(&mono, rate, SAMPLE_RATE)))
}

/// [`decode`] on the blocking thread pool: decoding and resampling a long prompt takes
/// milliseconds of CPU that must not stall the runtime's media tasks.
pub(crate) async fn decode_blocking(bytes: Vec<u8>) -> Result<Vec<i16>, AudioError> {
    match tokio::task::spawn_blocking(move || decode(&bytes)).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime is shutting down; nobody is waiting for the audio then.
        Err(_) => Err(AudioError::Cancelled),
    }
}

/// Resamples mono `samples` taken at `from_rate` Hz to [`SAMPLE_RATE`], low-pass filtered
/// below the telephone Nyquist frequency so that nothing aliases. A `from_rate` of zero yields
/// no samples (there is no meaningful answer).
pub fn resample(samples: &[i16], from_rate: u32) -> Vec<i16> {
    if from_rate == 0 {
        return Vec::new();
    }
    if from_rate == SAMPLE_RATE {
        return samples.to_vec();
    }
    let input: Vec<f32> = samples.iter().map(|s| f32::from(*s)).collect();
    to_i16(&resample_f32(&input, from_rate, SAMPLE_RATE))
}

/// Encodes samples as a [`SAMPLE_RATE`], 16-bit, mono WAV file.
///
/// # Panics
///
/// Never for audio of a realistic length; the data size must fit a WAV header (`u32`), i.e.
/// under about 74 hours, else this panics.
pub fn encode_wav(samples: &[i16]) -> Vec<u8> {
    let data_bytes = u32::try_from(samples.len() * 2).expect("audio too long for a WAV header");
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(&wav_header(data_bytes));
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Length of the canonical 16-bit PCM WAV header written by [`wav_header`].
pub(crate) const WAV_HEADER_LEN: usize = 44;
/// Byte offset of the RIFF chunk size in [`wav_header`].
pub(crate) const RIFF_SIZE_OFFSET: u64 = 4;
/// Byte offset of the data chunk size in [`wav_header`].
pub(crate) const DATA_SIZE_OFFSET: u64 = 40;

/// The header of an 8 kHz 16-bit mono PCM WAV with `data_bytes` of samples.
pub(crate) fn wav_header(data_bytes: u32) -> [u8; WAV_HEADER_LEN] {
    let mut header = [0u8; WAV_HEADER_LEN];
    header[0..4].copy_from_slice(b"RIFF");
    header[4..8].copy_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    header[8..12].copy_from_slice(b"WAVE");
    header[12..16].copy_from_slice(b"fmt ");
    header[16..20].copy_from_slice(&16u32.to_le_bytes());
    header[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    header[22..24].copy_from_slice(&1u16.to_le_bytes());
    header[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    header[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    header[32..34].copy_from_slice(&2u16.to_le_bytes());
    header[34..36].copy_from_slice(&16u16.to_le_bytes());
    header[36..40].copy_from_slice(b"data");
    header[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    header
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn magic(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(8)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' { (*b as char).to_string() } else { format!("\\x{b:02x}") }
        })
        .collect()
}

/// MP3 is recognised by a leading ID3v2 tag or an MPEG audio frame sync. Layers I and II share
/// the sync and are refused by name rather than as "unknown".
fn is_mp3(bytes: &[u8]) -> Result<bool, AudioError> {
    if bytes.starts_with(b"ID3") {
        return Ok(true);
    }
    if bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0 {
        return match (bytes[1] >> 1) & 0b11 {
            0b01 => Ok(true),
            0b10 => Err(AudioError::UnsupportedMpegLayer { layer: 2 }),
            0b11 => Err(AudioError::UnsupportedMpegLayer { layer: 1 }),
            _ => Ok(false),
        };
    }
    Ok(false)
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

struct WavFormat {
    tag: u16,
    channels: usize,
    rate: u32,
    bits: u16,
}

fn truncated_wav(detail: &'static str) -> AudioError {
    AudioError::Truncated { format: "WAV", detail }
}

/// Parses RIFF/WAVE into mono samples (in `i16` units, as `f32`) at the file's rate.
fn decode_wav(bytes: &[u8]) -> Result<(Vec<f32>, u32), AudioError> {
    if bytes.starts_with(b"RIFX") {
        // Big-endian WAV: legal but vanishingly rare; say so instead of decoding noise.
        return Err(AudioError::InvalidWav { reason: "big-endian RIFX files are not supported" });
    }
    if bytes.len() < 12 {
        return Err(truncated_wav("shorter than the 12-byte RIFF header"));
    }
    if &bytes[8..12] != b"WAVE" {
        return Err(AudioError::UnknownFormat { magic: magic(bytes) });
    }
    let mut format = None;
    let mut at = 12;
    // The RIFF size is ignored: streaming writers (espeak-ng --stdout among them) put a
    // placeholder there, and the chunk walk is bounded by the input anyway.
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = le_u32(bytes, at + 4) as usize;
        let body_start = at + 8;
        let available = bytes.len() - body_start;
        match id {
            b"fmt " => {
                if size < 16 || available < 16 {
                    return Err(truncated_wav("fmt chunk shorter than 16 bytes"));
                }
                let body = &bytes[body_start..body_start + size.min(available)];
                let mut tag = le_u16(body, 0);
                if tag == FORMAT_EXTENSIBLE {
                    // cbSize (2), valid bits (2), channel mask (4), then the sub-format GUID
                    // whose first two bytes are the real format tag.
                    if body.len() < 26 {
                        return Err(truncated_wav("WAVE_FORMAT_EXTENSIBLE fmt chunk without its sub-format"));
                    }
                    tag = le_u16(body, 24);
                }
                format = Some(WavFormat {
                    tag,
                    channels: usize::from(le_u16(body, 2)),
                    rate: le_u32(body, 4),
                    bits: le_u16(body, 14),
                });
            }
            b"data" => {
                let format =
                    format.ok_or(AudioError::InvalidWav { reason: "data chunk before the fmt chunk" })?;
                // A declared size beyond the input is a streamed header (size unknown when it
                // was written): take what is there.
                let data = &bytes[body_start..body_start + size.min(available)];
                return Ok((wav_samples(&format, data)?, format.rate));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(truncated_wav(if format.is_some() { "no data chunk" } else { "no fmt chunk" }))
}

fn wav_samples(format: &WavFormat, data: &[u8]) -> Result<Vec<f32>, AudioError> {
    if format.channels == 0 {
        return Err(AudioError::InvalidWav { reason: "zero channels" });
    }
    if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&format.rate) {
        return Err(AudioError::UnsupportedRate { rate: format.rate });
    }
    let unsupported = || AudioError::UnsupportedWav { format_tag: format.tag, bits: format.bits };
    let convert: fn(&[u8]) -> f32 = match (format.tag, format.bits) {
        (FORMAT_PCM, 8) => |b| (f32::from(b[0]) - 128.0) * 256.0,
        (FORMAT_PCM, 16) => |b| f32::from(i16::from_le_bytes([b[0], b[1]])),
        (FORMAT_PCM, 24) => |b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 256.0,
        (FORMAT_PCM, 32) => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 65_536.0,
        (FORMAT_FLOAT, 32) => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * 32_768.0,
        (FORMAT_FLOAT, 64) => {
            |b| (f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) * 32_768.0) as f32
        }
        (FORMAT_ULAW, 8) => |b| f32::from(crate::g711::ulaw_decode(b[0])),
        (FORMAT_ALAW, 8) => |b| f32::from(crate::g711::alaw_decode(b[0])),
        _ => return Err(unsupported()),
    };
    let sample_bytes = usize::from(format.bits / 8);
    // Frame size from the encoding, not the header's block align, which some writers get wrong.
    let frame_bytes = sample_bytes * format.channels;
    let frames = data.len() / frame_bytes;
    if frames == 0 {
        return Err(AudioError::Empty { what: "the WAV data chunk" });
    }
    if frames as u64 > u64::from(MAX_DECODED_SECONDS) * u64::from(format.rate) {
        return Err(AudioError::TooLong { limit_secs: MAX_DECODED_SECONDS });
    }
    let scale = 1.0 / format.channels as f32;
    Ok(data
        .chunks_exact(frame_bytes)
        .map(|frame| frame.chunks_exact(sample_bytes).map(convert).sum::<f32>() * scale)
        .collect())
}

/// Length of an ID3v2 tag's header, and of its footer when it has one (ID3v2.4 §3.1, §3.4).
const ID3V2_HEADER_LEN: usize = 10;
/// The header flag that says a footer follows the tag.
const ID3V2_FOOTER_FLAG: u8 = 0x10;

/// The bytes after the leading ID3v2 tags (several may be stacked), or `None` when a tag says
/// it runs past the end of the input. The tags are skipped by their size rather than read: the
/// platform needs no metadata, and symphonia's tag reader allocates whatever a frame header
/// claims (up to 4 GiB for ID3v2.3) before reading it — a 1 KiB prompt could make the server
/// ask for 2 GiB at once, and abort where memory is tight.
fn skip_id3v2(mut bytes: &[u8]) -> Option<&[u8]> {
    while bytes.starts_with(b"ID3") {
        let header = bytes.get(..ID3V2_HEADER_LEN)?;
        // A "synchsafe" integer: 7 bits per byte, the top bits ignored as players do.
        let size = header[6..10].iter().fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7f));
        let footer = if header[5] & ID3V2_FOOTER_FLAG != 0 { ID3V2_HEADER_LEN } else { 0 };
        bytes = bytes.get(ID3V2_HEADER_LEN + size + footer..)?;
    }
    Some(bytes)
}

fn decode_mp3(bytes: &[u8]) -> Result<(Vec<f32>, u32), AudioError> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
    use symphonia::core::errors::Error;
    use symphonia::core::formats::{FormatOptions, FormatReader};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::default::formats::MpaReader;

    let mp3 = |source| AudioError::Mp3 { source };
    let truncated = |detail| AudioError::Truncated { format: "MP3", detail };
    let frames = skip_id3v2(bytes).ok_or(truncated("an ID3v2 tag runs past the end of the file"))?;
    let source = MediaSourceStream::new(Box::new(Cursor::new(frames.to_vec())), Default::default());
    // The MPEG audio reader directly, not symphonia's probe: the probe looks for tags anywhere
    // in its search window and would read an ID3v2 tag placed after some junk. The reader
    // itself skips junk to the first frame.
    let mut reader = MpaReader::try_new(source, &FormatOptions::default()).map_err(|e| match e {
        Error::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => truncated("no complete frame"),
        e => mp3(e),
    })?;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(AudioError::Empty { what: "the MP3 stream" })?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(mp3)?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut mono = Vec::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            Err(e) => return Err(mp3(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A corrupt frame in the middle of a file is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(mp3(e)),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        // A new buffer per packet: the spec may change mid-stream, and packets are small.
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buffer.copy_interleaved_ref(decoded);
        let scale = 32_768.0 / channels as f32;
        mono.extend(buffer.samples().chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * scale));
        if rate > 0 && mono.len() as u64 > u64::from(MAX_DECODED_SECONDS) * u64::from(rate) {
            return Err(AudioError::TooLong { limit_secs: MAX_DECODED_SECONDS });
        }
    }
    if mono.is_empty() {
        return Err(AudioError::Empty { what: "the MP3 stream" });
    }
    if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        return Err(AudioError::UnsupportedRate { rate });
    }
    Ok((mono, rate))
}

fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|s| s.round().clamp(-32_768.0, 32_767.0) as i16).collect()
}

/// Half the filter's length, in periods of the lower of the two rates. With the Kaiser window
/// below this gives a transition band of about 800 Hz at 8 kHz (3.2 to 4 kHz) and ~80 dB of
/// stop-band attenuation.
const HALF_ZERO_CROSSINGS: f64 = 25.0;
/// Kaiser window β for about 80 dB of stop-band attenuation.
const KAISER_BETA: f64 = 7.86;
/// The filter's cutoff (−6 dB) as a fraction of the lower rate: just under its Nyquist
/// frequency, so the transition band ends at Nyquist.
const CUTOFF: f64 = 0.45;
/// Most filter phases precomputed. Ratios whose reduced output step is larger (odd rates such
/// as 44 056 Hz) round the fractional position to the nearest of these, an error of at most
/// 1/1024 of an input sample.
const MAX_PHASES: u64 = 1024;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Zeroth-order modified Bessel function of the first kind, for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, half) = (1.0, 1.0, x / 2.0);
    for k in 1..50 {
        term *= (half / f64::from(k)) * (half / f64::from(k));
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

/// Polyphase windowed-sinc resampler: output sample `n` sits at input position
/// `n · from / to`, and is the dot product of the input around it with the filter phase for
/// that position's fraction.
fn resample_f32(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let (from64, to64) = (u64::from(from), u64::from(to));
    let divisor = gcd(from64, to64);
    let (up, down) = (to64 / divisor, from64 / divisor);
    let phases = up.min(MAX_PHASES);
    // In input samples: the cutoff and the half-width of the kernel.
    let low = f64::from(from.min(to));
    let cutoff = CUTOFF * low / f64::from(from) * 2.0; // normalised to the input Nyquist
    let half_width = HALF_ZERO_CROSSINGS * f64::from(from) / low;
    let half = half_width.ceil() as i64;
    let taps = (2 * half + 1) as usize;
    let i0_beta = bessel_i0(KAISER_BETA);
    let mut table = vec![0f32; phases as usize * taps];
    for phase in 0..phases {
        let fraction = phase as f64 / phases as f64;
        let row = &mut table[phase as usize * taps..(phase as usize + 1) * taps];
        let mut sum = 0.0;
        let mut coefficients = vec![0f64; taps];
        for (i, coefficient) in coefficients.iter_mut().enumerate() {
            let x = (i as i64 - half) as f64 - fraction;
            let ratio = x / half_width;
            if ratio.abs() >= 1.0 {
                continue;
            }
            let arg = std::f64::consts::PI * cutoff * x;
            let sinc = if arg.abs() < 1e-12 { 1.0 } else { arg.sin() / arg };
            let window = bessel_i0(KAISER_BETA * (1.0 - ratio * ratio).sqrt()) / i0_beta;
            *coefficient = cutoff * sinc * window;
            sum += *coefficient;
        }
        // Unit gain at DC in every phase, so a constant input stays constant.
        for (slot, coefficient) in row.iter_mut().zip(&coefficients) {
            *slot = (coefficient / sum) as f32;
        }
    }
    let out_len = (input.len() as u64 * up).div_ceil(down) as usize;
    let mut output = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        let position = n * down;
        let base = (position / up) as i64;
        let phase = (position % up) * phases / up;
        let row = &table[phase as usize * taps..(phase as usize + 1) * taps];
        let first = base - half;
        // Only the part of the kernel that overlaps the input (zero outside).
        let start = first.max(0);
        let end = (first + taps as i64).min(input.len() as i64);
        let mut acc = 0f32;
        if start < end {
            let coefficients = &row[(start - first) as usize..(end - first) as usize];
            for (sample, coefficient) in input[start as usize..end as usize].iter().zip(coefficients) {
                acc += sample * coefficient;
            }
        }
        output.push(acc);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::power;

    fn sine(frequency: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * frequency * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    fn rms(samples: &[i16]) -> f64 {
        (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    /// Zero crossings per second, a frequency estimate independent of the Goertzel bins.
    fn crossings_per_second(samples: &[i16]) -> f64 {
        let crossings = samples.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(SAMPLE_RATE))
    }

    #[test]
    fn resampling_48k_keeps_a_1khz_tone() {
        let out = resample(&sine(1000.0, 48_000, 1.0, 10_000.0), 48_000);
        assert_eq!(out.len(), 8_000);
        let middle = &out[400..7_600];
        let at_1k = power(middle, 1000.0);
        assert!(at_1k > 100.0 * power(middle, 2000.0), "1 kHz does not dominate");
        assert!((crossings_per_second(middle) - 1000.0).abs() < 5.0, "{}", crossings_per_second(middle));
        // Passband gain ≈ 1.
        let level = rms(middle) / (10_000.0 / 2f64.sqrt());
        assert!((level - 1.0).abs() < 0.02, "passband gain {level}");
    }

    #[test]
    fn resampling_48k_removes_a_6khz_tone_instead_of_aliasing_it() {
        let input = sine(6000.0, 48_000, 1.0, 10_000.0);
        let out = resample(&input, 48_000);
        let middle = &out[400..7_600];
        // Plain decimation would fold 6 kHz to 2 kHz at full level (RMS ≈ 7 071).
        let naive: Vec<i16> = input.iter().step_by(6).copied().collect();
        assert!(rms(&naive[400..7_600]) > 7_000.0);
        assert!(rms(middle) < 10.0, "6 kHz leaked through at RMS {}", rms(middle));
        assert!(power(middle, 2000.0) < 1e-6 * power(&naive[400..7_600], 2000.0));
    }

    #[test]
    fn resampling_odd_and_low_rates_keeps_frequency_and_length() {
        for rate in [44_100, 22_050, 16_000, 11_025, 44_057, 6_000] {
            let out = resample(&sine(700.0, rate, 0.5, 8_000.0), rate);
            assert!((out.len() as i64 - 4_000).abs() <= 1, "{rate}: {} samples", out.len());
            let middle = &out[400..3_600];
            let estimate = crossings_per_second(middle);
            assert!((estimate - 700.0).abs() < 10.0, "{rate}: {estimate} Hz");
            let level = rms(middle) / (8_000.0 / 2f64.sqrt());
            assert!((level - 1.0).abs() < 0.03, "{rate}: gain {level}");
        }
    }

    #[test]
    fn resample_at_8k_is_identity_and_zero_rate_is_empty() {
        let input = sine(440.0, 8_000, 0.1, 5_000.0);
        assert_eq!(resample(&input, 8_000), input);
        assert!(resample(&input, 0).is_empty());
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let samples = sine(1000.0, 8_000, 0.25, 12_000.0);
        let wav = encode_wav(&samples);
        assert_eq!(wav.len(), 44 + samples.len() * 2);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(le_u32(&wav, 4) as usize, wav.len() - 8);
        assert_eq!(decode(&wav).unwrap(), samples);
    }

    /// Builds a WAV with an arbitrary fmt chunk, with a junk chunk before it to exercise the
    /// chunk walk.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // odd size, padded
        out.extend_from_slice(b"fmt \x10\0\0\0");
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn decodes_every_pcm_width_and_float() {
        let values: [i16; 4] = [0, 16_384, -16_384, 32_767];
        let pcm8: Vec<u8> = values.iter().map(|v| ((v >> 8) + 128) as u8).collect();
        let pcm16: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let pcm24: Vec<u8> =
            values.iter().flat_map(|v| (i32::from(*v) << 8).to_le_bytes()[0..3].to_vec()).collect();
        let pcm32: Vec<u8> = values.iter().flat_map(|v| (i32::from(*v) << 16).to_le_bytes()).collect();
        let f32le: Vec<u8> = values.iter().flat_map(|v| (f32::from(*v) / 32_768.0).to_le_bytes()).collect();
        let f64le: Vec<u8> = values.iter().flat_map(|v| (f64::from(*v) / 32_768.0).to_le_bytes()).collect();
        assert_eq!(decode(&wav(1, 1, 8_000, 8, &pcm8)).unwrap(), [0, 16_384, -16_384, 32_512]);
        for (tag, bits, data) in
            [(1, 16, pcm16), (1, 24, pcm24), (1, 32, pcm32), (3, 32, f32le), (3, 64, f64le)]
        {
            assert_eq!(decode(&wav(tag, 1, 8_000, bits, &data)).unwrap(), values, "tag {tag} bits {bits}");
        }
    }

    #[test]
    fn decodes_g711_and_extensible_and_downmixes() {
        use crate::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
        let values = [1_000i16, -8_000, 20_000];
        let ulaw: Vec<u8> = values.iter().map(|v| ulaw_encode(*v)).collect();
        let alaw: Vec<u8> = values.iter().map(|v| alaw_encode(*v)).collect();
        assert_eq!(
            decode(&wav(7, 1, 8_000, 8, &ulaw)).unwrap(),
            ulaw.iter().map(|b| ulaw_decode(*b)).collect::<Vec<_>>()
        );
        assert_eq!(
            decode(&wav(6, 1, 8_000, 8, &alaw)).unwrap(),
            alaw.iter().map(|b| alaw_decode(*b)).collect::<Vec<_>>()
        );

        // Stereo 16-bit: left 1000, right 3000 → 2000.
        let stereo: Vec<u8> = [1_000i16, 3_000, -500, -1_500].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(&wav(1, 2, 8_000, 16, &stereo)).unwrap(), [2_000, -1_000]);

        // WAVE_FORMAT_EXTENSIBLE with the PCM sub-format GUID.
        let mut extensible = b"RIFF\0\0\0\0WAVEfmt \x28\0\0\0".to_vec();
        extensible.extend_from_slice(&0xFFFEu16.to_le_bytes());
        extensible.extend_from_slice(&1u16.to_le_bytes());
        extensible.extend_from_slice(&8_000u32.to_le_bytes());
        extensible.extend_from_slice(&16_000u32.to_le_bytes());
        extensible.extend_from_slice(&2u16.to_le_bytes());
        extensible.extend_from_slice(&16u16.to_le_bytes());
        extensible.extend_from_slice(&22u16.to_le_bytes());
        extensible.extend_from_slice(&16u16.to_le_bytes());
        extensible.extend_from_slice(&4u32.to_le_bytes());
        extensible.extend_from_slice(b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71");
        extensible.extend_from_slice(b"data\x04\0\0\0\x10\x00\xf0\xff");
        assert_eq!(decode(&extensible).unwrap(), [16, -16]);
    }

    #[test]
    fn a_streamed_header_with_placeholder_sizes_decodes_what_is_there() {
        // As espeak-ng --stdout writes it: sizes near 2^31 because the length was unknown.
        let mut streamed = wav(1, 1, 8_000, 16, &[0x10, 0x00, 0x20, 0x00, 0x30]);
        let data_size_at = streamed.len() - 5 - 4;
        streamed[data_size_at..data_size_at + 4].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        streamed[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        // The odd trailing byte is half a sample and is dropped.
        assert_eq!(decode(&streamed).unwrap(), [16, 32]);
    }

    #[test]
    fn id3v2_tags_are_skipped_by_their_size_not_read() {
        // Found by the `mp3` fuzz target: an ID3v2.3 frame (TSSE) claiming 0x8000002F bytes made
        // the tag reader allocate 2 GiB before reading it. The tag is now skipped unread (the
        // allocation failed the fuzzer's 2 GiB malloc limit; here the frame claims 4 GiB − 1).
        let mp3 = include_bytes!("../tests/fixtures/tone-1khz-0.5s.mp3");
        let tag_len = ID3V2_HEADER_LEN + 0x78;
        assert_eq!(&mp3[..3], b"ID3");
        assert_eq!(&mp3[tag_len..tag_len + 2], [0xff, 0xf3], "the fixture's first frame follows its tag");
        let mut hostile = mp3.to_vec();
        hostile[ID3V2_HEADER_LEN + 4..ID3V2_HEADER_LEN + 8].copy_from_slice(&[0xff; 4]);
        let clean = decode(mp3).expect("the fixture decodes");
        assert_eq!(decode(&hostile).expect("the tag's contents do not matter"), clean);
        // Two stacked tags (the second with a footer) and junk before the first frame.
        let mut stacked = b"ID3\x04\x00\x10\x00\x00\x00\x02ab0123456789".to_vec();
        stacked.extend_from_slice(b"junk");
        stacked.extend_from_slice(&mp3[tag_len..]);
        let mut stacked_tags = mp3[..tag_len].to_vec();
        stacked_tags.extend_from_slice(&stacked);
        assert_eq!(decode(&stacked_tags).expect("decodes").len(), clean.len());
        // A tag longer than the file.
        let mut long = mp3[..64].to_vec();
        long[6..10].copy_from_slice(&[0x7f; 4]);
        assert!(matches!(decode(&long), Err(AudioError::Truncated { format: "MP3", .. })));
    }

    #[test]
    fn bad_input_gets_a_precise_error() {
        assert!(matches!(decode(b""), Err(AudioError::Empty { .. })));
        let err = decode(b"<html>not found</html>").unwrap_err();
        assert!(matches!(err, AudioError::UnknownFormat { .. }));
        assert!(err.to_string().contains("<html>no"), "{err}");
        assert!(matches!(decode(b"RIFF\0\0"), Err(AudioError::Truncated { .. })));
        assert!(matches!(
            decode(b"RIFF\0\0\0\0WAVE"),
            Err(AudioError::Truncated { detail: "no fmt chunk", .. })
        ));
        let err = decode(&wav(0x55, 1, 8_000, 16, &[0, 0])).unwrap_err();
        assert_eq!(
            err.to_string().split(';').next().unwrap(),
            "unsupported WAV encoding: format tag 0x0055 with 16 bits per sample"
        );
        assert!(matches!(
            decode(&wav(1, 1, 8_000, 12, &[0, 0])),
            Err(AudioError::UnsupportedWav { bits: 12, .. })
        ));
        assert!(matches!(decode(&wav(1, 0, 8_000, 16, &[0, 0])), Err(AudioError::InvalidWav { .. })));
        assert!(matches!(decode(&wav(1, 1, 0, 16, &[0, 0])), Err(AudioError::UnsupportedRate { rate: 0 })));
        assert!(matches!(decode(&wav(1, 1, 8_000, 16, &[])), Err(AudioError::Empty { .. })));
        assert!(matches!(
            decode(&[0xFF, 0xFD, 0x90, 0x00]),
            Err(AudioError::UnsupportedMpegLayer { layer: 2 })
        ));
        let mut long = wav(1, 1, 1_000, 8, &[]);
        let frames = (MAX_DECODED_SECONDS as usize + 1) * 1_000;
        let size_at = long.len() - 4;
        long[size_at..].copy_from_slice(&(frames as u32).to_le_bytes());
        long.resize(long.len() + frames, 128);
        assert!(matches!(decode(&long), Err(AudioError::TooLong { .. })));
    }
}
