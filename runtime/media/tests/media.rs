//! The media crate against real things: the espeak-ng program, a loopback HTTP server, sox,
//! and an MP3 made by LAME.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opentact_media::audio::{self, AudioError};
use opentact_media::fetch::{AudioFetcher, FetchError, FetchPolicy};
use opentact_media::goertzel::power;
use opentact_media::recorder::WavRecorder;
use opentact_media::tts::{EspeakTts, MAX_TEXT_CHARS, Tts, TtsError};
use opentact_media::{SAMPLE_RATE, SAMPLES_PER_FRAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn sine(frequency: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (f64::from(SAMPLE_RATE) * seconds) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * frequency * i as f64 / f64::from(SAMPLE_RATE)).sin())
                as i16
        })
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

fn espeak_installed() -> bool {
    std::process::Command::new("espeak-ng").arg("--version").output().is_ok()
}

// ---------------------------------------------------------------------------------------------
// audio

/// `tone-1khz-0.5s.mp3`: `sox -n -r 22050 -c 2 -b 16 t.wav synth 0.5 sine 1000 vol 0.5` then
/// `lame -b 32 --id3v2-only t.wav` — stereo, 22.05 kHz, behind an ID3v2 tag, so decoding it
/// exercises the tag sniffing, the downmix and the resampler.
#[test]
fn decodes_an_mp3_to_8khz_mono() {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tone-1khz-0.5s.mp3"))
            .unwrap();
    let samples = audio::decode(&bytes).unwrap();
    // 0.5 s plus the encoder's priming and padding (under 0.1 s).
    assert!((4_000..4_800).contains(&samples.len()), "{} samples", samples.len());
    let middle = &samples[1_000..3_000];
    // `vol 0.5` on both channels: amplitude ≈ 16 384, RMS ≈ 11 585, minus the codec's error.
    assert!((rms(middle) - 11_585.0).abs() < 1_500.0, "RMS {}", rms(middle));
    assert!(power(middle, 1000.0) > 1_000.0 * power(middle, 3000.0));
    // A truncated MP3 (the tag and a sliver of the first frame) is an error, not a panic.
    let err = audio::decode(&bytes[..200]).unwrap_err();
    assert!(
        matches!(err, AudioError::Empty { .. } | AudioError::Truncated { .. } | AudioError::Mp3 { .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// tts

/// The disk cache stays under its size bound: distinct phrases evict the least recently used
/// files, and a phrase read from disk again counts as used.
#[tokio::test]
async fn tts_disk_cache_stays_under_its_size() {
    assert!(espeak_installed(), "espeak-ng is not installed: apt-get install espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let budget = 80 * 1024; // a few seconds of 8 kHz audio
    let size = || -> u64 {
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    let first = "Your account number is one";
    EspeakTts::new(Some(dir.path().to_owned()))
        .with_disk_budget(budget)
        .synthesize(first, "", "en-US")
        .await
        .unwrap();
    let mut written = 0;
    for n in ["two", "three", "four", "five", "six", "seven", "eight", "nine"] {
        // A fresh engine each time: its memory cache is empty, so the first phrase is read
        // from disk (and so kept as recently used).
        let tts = EspeakTts::new(Some(dir.path().to_owned())).with_disk_budget(budget);
        tts.synthesize(first, "", "en-US").await.unwrap();
        assert_eq!(tts.engine_runs(), 0, "the first phrase was evicted although it is used");
        let speech = tts.synthesize(&format!("Your account number is {n}"), "", "en-US").await.unwrap();
        written += speech.len() as u64 * 2;
        assert!(size() <= budget, "the cache holds {} bytes, over its {budget}", size());
    }
    assert!(written > 2 * budget, "the test wrote only {written} bytes of audio");
}

#[tokio::test]
async fn espeak_speaks_and_caches_in_memory_and_on_disk() {
    assert!(espeak_installed(), "espeak-ng is not installed: apt-get install espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let tts = EspeakTts::new(Some(dir.path().to_owned()));

    let speech = tts.synthesize("Press one for sales", "woman", "en-US").await.unwrap();
    let seconds = speech.len() as f64 / f64::from(SAMPLE_RATE);
    assert!((0.8..4.0).contains(&seconds), "{seconds} s of speech");
    assert!(rms(&speech) > 500.0, "speech is near silence: RMS {}", rms(&speech));
    assert_eq!(tts.engine_runs(), 1);

    let again = tts.synthesize("Press one for sales", "woman", "en-US").await.unwrap();
    assert!(Arc::ptr_eq(&speech, &again), "second call not served from the memory cache");
    assert_eq!(tts.engine_runs(), 1);

    // One cache file, named by a SHA-256, holding the same audio.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(name.len() == 64 + 4 && name.ends_with(".wav"), "{name}");
    assert_eq!(audio::decode(&std::fs::read(&files[0]).unwrap()).unwrap(), &speech[..]);

    // A fresh engine (a restart) reads the disk cache instead of running espeak.
    let restarted = EspeakTts::new(Some(dir.path().to_owned()));
    let cached = restarted.synthesize("Press one for sales", "woman", "en-US").await.unwrap();
    assert_eq!(cached, speech);
    assert_eq!(restarted.engine_runs(), 0);

    // Another voice is another synthesis.
    let man = tts.synthesize("Press one for sales", "man", "en-US").await.unwrap();
    assert_ne!(man, speech);
    assert_eq!(tts.engine_runs(), 2);
}

#[tokio::test]
async fn text_that_looks_like_an_option_is_spoken_not_obeyed() {
    assert!(espeak_installed(), "espeak-ng is not installed: apt-get install espeak-ng");
    let tts = EspeakTts::new(None);
    // On the command line `-w /tmp/x` would make espeak write a file and `--help` print help
    // instead of audio; on stdin they are just words.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pwned.wav");
    let text = format!("-w {} --help hello", target.display());
    let speech = tts.synthesize(&text, "", "en-GB").await.unwrap();
    assert!(speech.len() as f64 / f64::from(SAMPLE_RATE) > 1.0);
    assert!(rms(&speech) > 500.0);
    assert!(!target.exists());
}

#[tokio::test]
async fn tts_refuses_long_text_empty_text_is_silence_and_a_missing_engine_names_the_package() {
    let tts = EspeakTts::with_program("/nonexistent/espeak-ng", None);
    let long = "a".repeat(MAX_TEXT_CHARS + 1);
    let err = tts.synthesize(&long, "", "en-US").await.unwrap_err();
    assert!(matches!(err, TtsError::TextTooLong { chars, .. } if chars == MAX_TEXT_CHARS + 1));
    assert!(tts.synthesize("   ", "", "en-US").await.unwrap().is_empty());
    assert!(matches!(tts.synthesize("hi", "", "tlh-KL").await, Err(TtsError::UnsupportedLanguage { .. })));

    let err = tts.synthesize("hello", "", "en-US").await.unwrap_err();
    assert!(matches!(err, TtsError::EngineMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install espeak-ng"), "{err}");
    assert_eq!(tts.engine_runs(), 1);
}

#[tokio::test]
async fn concurrent_syntheses_all_complete() {
    assert!(espeak_installed(), "espeak-ng is not installed: apt-get install espeak-ng");
    let tts = Arc::new(EspeakTts::new(None));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let tts = tts.clone();
            tokio::spawn(async move { tts.synthesize(&format!("option {i}"), "", "es-ES").await })
        })
        .collect();
    for task in tasks {
        let speech = task.await.unwrap().unwrap();
        assert!(rms(&speech) > 500.0);
    }
    assert_eq!(tts.engine_runs(), 10);
}

// ---------------------------------------------------------------------------------------------
// fetch

/// A one-request-per-connection HTTP/1.1 server on loopback; returns its address.
async fn serve(routes: fn(&str) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = socket.write_all(&routes(&path)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    address
}

fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len())
            .into_bytes();
    out.extend_from_slice(body);
    out
}

fn prompt() -> Vec<i16> {
    sine(440.0, 0.5, 8_000.0)
}

fn routes(path: &str) -> Vec<u8> {
    match path {
        "/prompt.wav" => response("200 OK", "Content-Type: audio/wav\r\n", &audio::encode_wav(&prompt())),
        "/moved" => response("302 Found", "Location: /prompt.wav\r\n", b""),
        "/loop" => response("302 Found", "Location: /loop\r\n", b""),
        "/page.html" => response("200 OK", "Content-Type: text/html\r\n", b"<html>Not audio</html>"),
        "/big-declared" => response("200 OK", "", &vec![0u8; 4096]),
        "/big-streamed" => {
            // No Content-Length: the body runs to the end of the connection.
            let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            out.extend_from_slice(&audio::encode_wav(&vec![0i16; 2048]));
            out
        }
        _ => response("404 Not Found", "", b"no such prompt"),
    }
}

fn permissive() -> FetchPolicy {
    FetchPolicy { allow_private: true, ..FetchPolicy::default() }
}

#[tokio::test]
async fn fetches_decodes_and_caches_audio_from_a_server() {
    let address = serve(routes).await;
    let fetcher = AudioFetcher::new(permissive());
    let url = format!("http://{address}/prompt.wav");
    let samples = fetcher.fetch(&url).await.unwrap();
    assert_eq!(&samples[..], &prompt()[..]);
    let again = fetcher.fetch(&url).await.unwrap();
    assert!(Arc::ptr_eq(&samples, &again), "second fetch not served from the cache");

    let redirected = fetcher.fetch(&format!("http://{address}/moved")).await.unwrap();
    assert_eq!(&redirected[..], &prompt()[..]);
    let err = fetcher.fetch(&format!("http://{address}/loop")).await.unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects { .. }), "{err}");
}

#[tokio::test]
async fn loopback_is_refused_by_default_naming_the_address() {
    let address = serve(routes).await;
    let fetcher = AudioFetcher::new(FetchPolicy::default());
    let err = fetcher.fetch(&format!("http://{address}/prompt.wav")).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Refused { address: refused, .. } if *refused == address.ip()),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");

    // Through DNS too: `localhost` resolves to loopback, and that resolved address is named.
    let err = fetcher.fetch(&format!("http://localhost:{}/prompt.wav", address.port())).await.unwrap_err();
    assert!(matches!(&err, FetchError::Refused { address, .. } if address.is_loopback()), "{err}");

    // The same name is fetched when the policy allows private addresses.
    let permissive_fetcher = AudioFetcher::new(permissive());
    assert!(
        permissive_fetcher.fetch(&format!("http://localhost:{}/prompt.wav", address.port())).await.is_ok()
    );
}

#[tokio::test]
async fn http_errors_limits_and_non_audio_are_reported() {
    let address = serve(routes).await;
    let fetcher = AudioFetcher::new(FetchPolicy { max_bytes: 1024, ..permissive() });

    let err = fetcher.fetch(&format!("http://{address}/missing.wav")).await.unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");

    for path in ["/big-declared", "/big-streamed"] {
        let err = fetcher.fetch(&format!("http://{address}{path}")).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { limit: 1024, .. }), "{path}: {err}");
    }

    let err = fetcher.fetch(&format!("http://{address}/page.html")).await.unwrap_err();
    assert!(matches!(&err, FetchError::Decode { source: AudioError::UnknownFormat { .. }, .. }), "{err}");
    assert!(err.to_string().contains("<html>"), "{err}");

    // Nothing listens here any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let err = fetcher.fetch(&format!("http://{closed}/x.wav")).await.unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let fetcher = AudioFetcher::new(FetchPolicy { timeout: Duration::from_millis(300), ..permissive() });
    let err = fetcher.fetch(&format!("http://{address}/slow.wav")).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    held.abort();
}

// ---------------------------------------------------------------------------------------------
// recorder

#[test]
fn records_a_wav_that_decodes_and_sox_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let tone = sine(1000.0, 1.0, 12_000.0);
    let mut recorder = WavRecorder::create(&path).unwrap();
    for frame in tone.chunks(SAMPLES_PER_FRAME) {
        recorder.write(frame).unwrap();
    }
    assert_eq!(recorder.duration_ms(), 1_000);
    assert_eq!(recorder.finish().unwrap(), 1_000);

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(audio::decode(&bytes).unwrap(), tone);

    match std::process::Command::new("sox").arg("--i").arg(&path).output() {
        Ok(output) => {
            assert!(output.status.success(), "sox --i failed: {}", String::from_utf8_lossy(&output.stderr));
            let info = String::from_utf8_lossy(&output.stdout);
            let field = |name: &str| {
                info.lines()
                    .find(|l| l.trim_start().starts_with(name))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default()
            };
            assert_eq!(field("Sample Rate"), "8000", "{info}");
            assert_eq!(field("Channels"), "1", "{info}");
            assert_eq!(field("Precision"), "16-bit", "{info}");
            assert!(field("Duration").starts_with("00:00:01.00 = 8000 samples"), "{info}");
        }
        Err(_) => println!("note: sox is not installed; skipped the sox --i check of {}", path.display()),
    }
}
