//! Turns a media verb into the samples a call plays: speech from the TTS engine, files fetched
//! over HTTP(S), recordings of the call, generated tones.

use std::path::PathBuf;
use std::sync::Arc;

use opentact_call::CallError;
use opentact_call::model::{AudioSource, Gender, Media, ToneRequest};
use opentact_media::fetch::AudioFetcher;
use opentact_media::tone::{ToneGenerator, ToneSpec};
use opentact_media::tts::Tts;

/// Longest audio one verb renders (a `loop` of a long file is capped here), samples: 10 min.
const MAX_RENDERED_SAMPLES: usize = 10 * 60 * 8_000;

/// What a media verb renders to.
#[derive(Debug, Clone)]
pub enum Rendered {
    /// Samples to play once per repetition; `repeat` = 0 plays until interrupted.
    Audio { samples: Arc<[i16]>, repeat: u32 },
    /// Silence, ms.
    Silence(u32),
}

/// Renders media for every call of the platform (the caches live here).
#[derive(Debug, Clone)]
pub struct MediaRenderer {
    tts: Arc<dyn Tts>,
    fetcher: Arc<AudioFetcher>,
}

impl MediaRenderer {
    /// A renderer over a TTS engine and a fetcher.
    pub fn new(tts: Arc<dyn Tts>, fetcher: Arc<AudioFetcher>) -> Self {
        MediaRenderer { tts, fetcher }
    }

    /// Render `media`; `recording` finds a recording of the call by name.
    pub async fn render(
        &self,
        media: &Media,
        recording: impl Fn(&str) -> Option<PathBuf>,
    ) -> Result<Rendered, CallError> {
        match media {
            Media::Silence(ms) => Ok(Rendered::Silence(*ms)),
            Media::Say(say) => {
                let voice = say.voice.clone().unwrap_or_else(|| match say.gender {
                    Gender::Female => "woman".to_owned(),
                    Gender::Male => "man".to_owned(),
                });
                let samples = self
                    .tts
                    .synthesize(&say.text, &voice, &say.lang)
                    .await
                    .map_err(|error| CallError::Failed(format!("say: {error}")))?;
                Ok(Rendered::Audio { samples, repeat: say.loop_count })
            }
            Media::Play(play) => {
                let samples = match &play.source {
                    AudioSource::Url(url) => self
                        .fetcher
                        .fetch(url)
                        .await
                        .map_err(|error| CallError::Failed(format!("play {url}: {error}")))?,
                    AudioSource::Recording(name) => {
                        let path = recording(name).ok_or_else(|| {
                            CallError::invalid(
                                "play.recording",
                                format!("no recording named {name:?} in this call"),
                            )
                        })?;
                        let bytes = tokio::fs::read(&path).await.map_err(|error| {
                            CallError::Failed(format!("reading recording {name:?}: {error}"))
                        })?;
                        opentact_media::audio::decode(&bytes)
                            .map_err(|error| CallError::Failed(format!("recording {name:?}: {error}")))?
                            .into()
                    }
                };
                Ok(Rendered::Audio { samples, repeat: play.loop_count })
            }
            Media::Tone(tone) => Ok(Rendered::Audio { samples: render_tone(tone)?, repeat: 1 }),
        }
    }
}

fn render_tone(tone: &ToneRequest) -> Result<Arc<[i16]>, CallError> {
    let spec = ToneSpec {
        frequencies: tone.frequencies.clone(),
        on_ms: tone.on_ms,
        off_ms: tone.off_ms,
        loop_count: tone.loop_count,
        volume_db: tone.volume_db,
        timeout_ms: tone.timeout_ms,
    };
    let total = (spec.length_ms() as usize).saturating_mul(8).min(MAX_RENDERED_SAMPLES);
    let mut generator = ToneGenerator::new(spec);
    let mut samples = vec![0i16; total];
    let written = generator.fill(&mut samples);
    samples.truncate(written);
    Ok(samples.into())
}
