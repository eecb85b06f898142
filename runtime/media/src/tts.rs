//! Text-to-speech for the `<Say>` verb: the [`Tts`] trait the call code speaks through, and
//! [`EspeakTts`], a local engine that needs no account or network.
//!
//! Synthesis is slow (tens of milliseconds to seconds) next to the 20 ms media clock and the
//! same phrases ("Press one for sales") are said on every call, so results are cached in
//! memory and, optionally, on disk across restarts. The engine is a child process: the text is
//! written to its stdin, never placed on its command line, so text that starts with `-` cannot
//! become an option.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::audio::{self, AudioError};
use crate::cache::AudioCache;
use crate::disk_budget;

/// Longest text synthesised in one call, characters. About five minutes of speech: longer
/// text is a mistake in a flow, and it would hold an engine slot for seconds.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Phrases kept in memory. Prompts are few and repeated; 256 short phrases are a few MB.
pub const MEMORY_CACHE_ENTRIES: usize = 256;
/// Upper bound on the memory cache, samples (30 minutes of 8 kHz audio, ~29 MB), so long
/// texts cannot make 256 entries expensive.
pub const MEMORY_CACHE_SAMPLES: usize = 30 * 60 * crate::SAMPLE_RATE as usize;
/// Engine processes run at once. espeak-ng is single-threaded and CPU-bound; more in
/// parallel than cores only adds latency to every call's prompt.
pub const MAX_PARALLEL_SYNTHESES: usize = 4;
/// How long one synthesis may take before the process is killed. [`MAX_TEXT_CHARS`] of text
/// takes espeak-ng well under a second on a current CPU; a hung engine must not hang the call.
pub const SYNTHESIS_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on the disk cache, bytes ([`EspeakTts::with_disk_budget`]): a flow saying
/// distinct text on every call (a caller's name, an amount) must not fill the disk.
pub const DEFAULT_DISK_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// How much of the engine's stderr is kept in an error, bytes.
const MAX_STDERR_IN_ERROR: usize = 512;

/// Why speech could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The text exceeds [`MAX_TEXT_CHARS`].
    #[error("text to speak is {chars} characters long; the limit is {limit}, split it into several <Say>s")]
    TextTooLong {
        /// Characters in the text.
        chars: usize,
        /// [`MAX_TEXT_CHARS`].
        limit: usize,
    },
    /// The engine binary is not installed.
    #[error(
        "text-to-speech engine `{program}` not found; install the Debian package `{package}` \
         (apt-get install {package})"
    )]
    EngineMissing {
        /// The program that was looked for.
        program: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The engine could not be started for another reason.
    #[error("could not start text-to-speech engine `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The language has no voice in the engine.
    #[error("no text-to-speech voice for language `{language}`; supported: {supported}")]
    UnsupportedLanguage {
        /// The language asked for.
        language: String,
        /// The languages that are supported, comma separated.
        supported: String,
    },
    /// The engine exited with an error.
    #[error("text-to-speech engine `{program}` failed ({status}): {stderr}")]
    EngineFailed {
        /// The program.
        program: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The start of what it wrote to stderr.
        stderr: String,
    },
    /// The engine took longer than [`SYNTHESIS_TIMEOUT`] and was killed.
    #[error("text-to-speech engine `{program}` took longer than {timeout:?} and was stopped")]
    Timeout {
        /// The program.
        program: String,
        /// [`SYNTHESIS_TIMEOUT`].
        timeout: Duration,
    },
    /// Talking to the engine's pipes failed.
    #[error("i/o with text-to-speech engine `{program}` failed: {source}")]
    Io {
        /// The program.
        program: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The engine's output was not audio that [`audio::decode`] accepts.
    #[error("text-to-speech engine output could not be decoded: {0}")]
    Decode(#[from] AudioError),
}

/// A text-to-speech engine.
#[async_trait]
pub trait Tts: Send + Sync + std::fmt::Debug {
    /// Speaks `text` in `language` (a BCP 47 tag such as `en-US`) with `voice` (engine
    /// specific; `man` and `woman` are understood by every engine), returning 8 kHz mono PCM.
    async fn synthesize(&self, text: &str, voice: &str, language: &str) -> Result<Arc<[i16]>, TtsError>;
}

/// The Debian package providing espeak-ng.
const ESPEAK_PACKAGE: &str = "espeak-ng";

/// Languages and the espeak-ng voice that speaks them. A tag not listed falls back to its
/// primary subtag's first entry (`es-AR` → `es`).
const LANGUAGES: &[(&str, &str)] = &[
    ("en-us", "en-us"),
    ("en-gb", "en-gb"),
    ("en-au", "en-gb"),
    ("en-in", "en-gb"),
    ("en", "en-us"),
    ("es-es", "es"),
    ("es-mx", "es-419"),
    ("es-us", "es-419"),
    ("es", "es"),
    ("fr-fr", "fr-fr"),
    ("fr-ca", "fr-fr"),
    ("fr", "fr-fr"),
    ("de-de", "de"),
    ("de", "de"),
    ("it-it", "it"),
    ("it", "it"),
    ("pt-br", "pt-br"),
    ("pt-pt", "pt"),
    ("pt", "pt"),
    ("nl-nl", "nl"),
    ("nl", "nl"),
    ("sv-se", "sv"),
    ("da-dk", "da"),
    ("nb-no", "nb"),
    ("fi-fi", "fi"),
    ("pl-pl", "pl"),
    ("ru-ru", "ru"),
    ("ja-jp", "ja"),
    ("ko-kr", "ko"),
    ("zh-cn", "cmn"),
    ("cmn-cn", "cmn"),
];

/// The espeak-ng voice (`-v` value) for a language and a voice name.
fn espeak_voice(language: &str, voice: &str) -> Result<String, TtsError> {
    let tag = language.trim().to_ascii_lowercase().replace('_', "-");
    let tag = if tag.is_empty() { "en-us".to_owned() } else { tag };
    let primary = tag.split('-').next().unwrap_or_default();
    let base = LANGUAGES
        .iter()
        .find(|(known, _)| *known == tag)
        .or_else(|| LANGUAGES.iter().find(|(known, _)| *known == primary))
        .map(|(_, espeak)| *espeak)
        .ok_or_else(|| TtsError::UnsupportedLanguage {
            language: language.to_owned(),
            supported: LANGUAGES.iter().map(|(tag, _)| *tag).collect::<Vec<_>>().join(", "),
        })?;
    // espeak-ng's variants: m3 and f3 are the clearest at 8 kHz. Other names (including
    // cloud voices such as "Polly.Joanna") get the default voice rather than an error, so a
    // flow written for another engine still speaks.
    let variant = match voice.trim().to_ascii_lowercase().as_str() {
        "man" | "male" => "+m3",
        "woman" | "female" | "alice" => "+f3",
        _ => "",
    };
    Ok(format!("{base}{variant}"))
}

/// Text-to-speech with the espeak-ng program, cached in memory and optionally on disk.
#[derive(Debug)]
pub struct EspeakTts {
    program: PathBuf,
    cache_dir: Option<PathBuf>,
    disk_budget: u64,
    memory: AudioCache<[u8; 32]>,
    slots: Semaphore,
    runs: AtomicU64,
    temp_counter: AtomicU64,
}

impl EspeakTts {
    /// An engine running `espeak-ng` from `PATH`, caching on disk under `cache_dir` when
    /// given (created on first write).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self::with_program("espeak-ng", cache_dir)
    }

    /// An engine running `program` (a path or a name looked up in `PATH`) in espeak-ng's
    /// command-line dialect.
    pub fn with_program(program: impl Into<PathBuf>, cache_dir: Option<PathBuf>) -> Self {
        Self {
            program: program.into(),
            cache_dir,
            disk_budget: DEFAULT_DISK_CACHE_BYTES,
            memory: AudioCache::new(MEMORY_CACHE_ENTRIES, MEMORY_CACHE_SAMPLES),
            slots: Semaphore::new(MAX_PARALLEL_SYNTHESES),
            runs: AtomicU64::new(0),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// Bound the disk cache to `bytes` (default [`DEFAULT_DISK_CACHE_BYTES`]): after each write
    /// the least recently used files are deleted until the rest fit.
    pub fn with_disk_budget(mut self, bytes: u64) -> Self {
        self.disk_budget = bytes;
        self
    }

    /// How many times the engine process has been started: cache hits do not count.
    pub fn engine_runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    fn program_name(&self) -> String {
        self.program.display().to_string()
    }

    fn disk_path(&self, key: &[u8; 32]) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|dir| dir.join(format!("{}.wav", hex::encode(key))))
    }

    async fn read_disk(&self, path: &Path) -> Option<Arc<[i16]>> {
        let bytes = tokio::fs::read(path).await.ok()?;
        // A hit makes the file the most recently used, for the size bound's eviction.
        let touched = path.to_owned();
        let _ = tokio::task::spawn_blocking(move || disk_budget::touch(&touched)).await;
        match audio::decode(&bytes) {
            Ok(samples) => Some(samples.into()),
            Err(error) => {
                // A partial or corrupt file (a crash mid-write on another filesystem): redo it.
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable TTS cache file");
                None
            }
        }
    }

    /// Writes the cache file via a temporary name and a rename, so a reader never sees half
    /// a file. Failure only costs a future synthesis, so it is logged, not returned.
    async fn write_disk(&self, path: &Path, samples: &[i16]) {
        let Some(dir) = path.parent() else { return };
        let temp = dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("tts"),
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let result = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&temp, audio::encode_wav(samples)).await?;
            tokio::fs::rename(&temp, path).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not write TTS cache file");
            let _ = tokio::fs::remove_file(&temp).await;
            return;
        }
        let (dir, budget) = (dir.to_owned(), self.disk_budget);
        match tokio::task::spawn_blocking(move || disk_budget::trim(&dir, budget)).await {
            Ok(Ok(trimmed)) if trimmed.removed > 0 => {
                tracing::debug!(removed = trimmed.removed, bytes = trimmed.bytes, "TTS disk cache trimmed")
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not trim the TTS disk cache"),
            Err(error) => tracing::warn!(%error, "trimming the TTS disk cache failed"),
        }
    }

    async fn run_engine(&self, text: &str, voice: &str) -> Result<Vec<i16>, TtsError> {
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        self.runs.fetch_add(1, Ordering::Relaxed);
        let program = self.program_name();
        let mut child = tokio::process::Command::new(&self.program)
            .arg("--stdout")
            .arg("-v")
            .arg(voice)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => {
                    TtsError::EngineMissing { program: program.clone(), package: ESPEAK_PACKAGE }
                }
                _ => TtsError::Spawn { program: program.clone(), source },
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = text.as_bytes().to_vec();
        // Written concurrently with reading stdout so that neither pipe can fill and block.
        let write = async move {
            let result = stdin.write_all(&input).await;
            drop(stdin); // end of text
            result
        };
        let run = async { tokio::join!(write, child.wait_with_output()) };
        let (written, output) = tokio::time::timeout(SYNTHESIS_TIMEOUT, run)
            .await
            .map_err(|_| TtsError::Timeout { program: program.clone(), timeout: SYNTHESIS_TIMEOUT })?;
        let output = output.map_err(|source| TtsError::Io { program: program.clone(), source })?;
        if !output.status.success() {
            let end = output.stderr.len().min(MAX_STDERR_IN_ERROR);
            return Err(TtsError::EngineFailed {
                program,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr[..end]).trim().to_owned(),
            });
        }
        // The engine exited successfully, so a write error is one it could ignore (it had
        // read what it needed); report it only if no audio came back.
        if let Err(source) = written
            && output.stdout.is_empty()
        {
            return Err(TtsError::Io { program, source });
        }
        Ok(audio::decode_blocking(output.stdout).await?)
    }
}

#[async_trait]
impl Tts for EspeakTts {
    async fn synthesize(&self, text: &str, voice: &str, language: &str) -> Result<Arc<[i16]>, TtsError> {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(TtsError::TextTooLong { chars, limit: MAX_TEXT_CHARS });
        }
        let espeak_voice = espeak_voice(language, voice)?;
        if text.trim().is_empty() {
            return Ok(Arc::from([]));
        }
        // The resolved voice stands for voice and language: `en-US` and `en-us` share entries.
        let mut hasher = Sha256::new();
        for part in [ESPEAK_PACKAGE, &espeak_voice, text] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(samples) = self.memory.get(&key) {
            return Ok(samples);
        }
        let disk = self.disk_path(&key);
        if let Some(path) = &disk
            && let Some(samples) = self.read_disk(path).await
        {
            self.memory.insert(key, samples.clone());
            return Ok(samples);
        }
        let samples: Arc<[i16]> = self.run_engine(text, &espeak_voice).await?.into();
        if let Some(path) = &disk {
            self.write_disk(path, &samples).await;
        }
        self.memory.insert(key, samples.clone());
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_map_to_espeak_voices() {
        assert_eq!(espeak_voice("en-US", "").unwrap(), "en-us");
        assert_eq!(espeak_voice("en-GB", "man").unwrap(), "en-gb+m3");
        assert_eq!(espeak_voice("es-ES", "woman").unwrap(), "es+f3");
        assert_eq!(espeak_voice("fr-FR", "Polly.Celine").unwrap(), "fr-fr");
        assert_eq!(espeak_voice("de_DE", "alice").unwrap(), "de+f3");
        assert_eq!(espeak_voice("es-AR", "").unwrap(), "es");
        assert_eq!(espeak_voice("", "").unwrap(), "en-us");
        let err = espeak_voice("xx-YY", "").unwrap_err();
        assert!(matches!(err, TtsError::UnsupportedLanguage { .. }));
        assert!(err.to_string().contains("`xx-YY`") && err.to_string().contains("en-gb"), "{err}");
        // Nothing from the caller reaches espeak's argv unmapped.
        assert!(espeak_voice("--help", "").is_err());
    }
}
