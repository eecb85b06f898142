//! Recording a call (or a voicemail) to a WAV file as the audio arrives.
//!
//! The header is written first with zero sizes and fixed up by [`WavRecorder::finish`], so a
//! recording never has to be held in memory. If the recorder is dropped without `finish` (the
//! call task was cancelled), the sizes are fixed up on a best-effort basis so the file is
//! still playable. The writer is synchronous and buffered: the caller runs it off the media
//! clock's task, e.g. behind a channel on a blocking thread.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::SAMPLE_RATE;
use crate::audio::{DATA_SIZE_OFFSET, RIFF_SIZE_OFFSET, WAV_HEADER_LEN, wav_header};

/// Most samples one WAV file can hold: its sizes are 32-bit (about 74 hours at 8 kHz).
pub const MAX_SAMPLES: u64 = (u32::MAX as u64 - WAV_HEADER_LEN as u64) / 2;

/// The size of the file a recorder leaves holding `duration_ms` of audio, bytes: the header
/// and two bytes a sample.
pub fn file_bytes(duration_ms: u64) -> u64 {
    WAV_HEADER_LEN as u64 + duration_ms.saturating_mul(u64::from(SAMPLE_RATE) * 2) / 1000
}

/// Writes 8 kHz, 16-bit, mono WAV incrementally.
#[derive(Debug)]
pub struct WavRecorder {
    /// `None` once finished.
    file: Option<BufWriter<File>>,
    samples: u64,
    /// Most samples this file may hold (its byte allowance, or [`MAX_SAMPLES`]).
    max_samples: u64,
}

impl WavRecorder {
    /// Creates (or truncates) the file at `path` and writes a provisional header.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::create_within(path, u64::MAX)
    }

    /// As [`WavRecorder::create`], for a file of at most `max_bytes` (header included): an
    /// account's remaining recording quota.
    pub fn create_within(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let max_samples = (max_bytes.saturating_sub(WAV_HEADER_LEN as u64) / 2).min(MAX_SAMPLES);
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(&wav_header(0))?;
        Ok(Self { file: Some(file), samples: 0, max_samples })
    }

    /// Appends samples.
    ///
    /// Fails with [`io::ErrorKind::FileTooLarge`] past [`MAX_SAMPLES`], and with
    /// [`io::ErrorKind::QuotaExceeded`] past the allowance of [`WavRecorder::create_within`],
    /// without writing any of `samples`, so the file stays valid and within its bound.
    pub fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        let file = self.file.as_mut().expect("write after finish is impossible: finish takes self");
        if self.samples + samples.len() as u64 > self.max_samples {
            return Err(if self.max_samples < MAX_SAMPLES {
                io::Error::new(
                    io::ErrorKind::QuotaExceeded,
                    format!(
                        "the recording reached its allowance of {} bytes",
                        file_bytes_of(self.max_samples)
                    ),
                )
            } else {
                io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    format!("a WAV file holds at most {MAX_SAMPLES} samples"),
                )
            });
        }
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for sample in samples {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        file.write_all(&bytes)?;
        self.samples += samples.len() as u64;
        Ok(())
    }

    /// What has been recorded so far, ms.
    pub fn duration_ms(&self) -> u64 {
        self.samples * 1_000 / u64::from(SAMPLE_RATE)
    }

    /// Writes the final sizes into the header and flushes the file; returns the duration, ms.
    pub fn finish(mut self) -> io::Result<u64> {
        let file = self.file.take().expect("finish runs once: it takes self");
        fix_up(file, self.samples)?;
        Ok(self.duration_ms())
    }
}

fn file_bytes_of(samples: u64) -> u64 {
    WAV_HEADER_LEN as u64 + samples * 2
}

fn fix_up(mut file: BufWriter<File>, samples: u64) -> io::Result<()> {
    // MAX_SAMPLES keeps both sizes within u32.
    let data_bytes = (samples * 2) as u32;
    file.seek(SeekFrom::Start(RIFF_SIZE_OFFSET))?;
    file.write_all(&(data_bytes + WAV_HEADER_LEN as u32 - 8).to_le_bytes())?;
    file.seek(SeekFrom::Start(DATA_SIZE_OFFSET))?;
    file.write_all(&data_bytes.to_le_bytes())?;
    let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Best effort: there is no one to report an error to.
            let _ = fix_up(file, self.samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_recorder_still_leaves_a_playable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropped.wav");
        let mut recorder = WavRecorder::create(&path).unwrap();
        recorder.write(&[1, 2, 3, 4]).unwrap();
        assert_eq!(recorder.duration_ms(), 0);
        recorder.write(&[5; 156]).unwrap();
        assert_eq!(recorder.duration_ms(), 20);
        drop(recorder);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + 320);
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 320);
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 320 + 36);
        let decoded = crate::audio::decode(&bytes).unwrap();
        assert_eq!(&decoded[..4], &[1, 2, 3, 4]);
        assert_eq!(decoded.len(), 160);
    }

    #[test]
    fn a_recording_within_an_allowance_stops_at_it_and_stays_playable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capped.wav");
        // The header and 400 samples: two 160-sample frames fit, not a third.
        let mut recorder = WavRecorder::create_within(&path, 44 + 800).unwrap();
        recorder.write(&[7; 160]).unwrap();
        recorder.write(&[7; 160]).unwrap();
        let error = recorder.write(&[7; 160]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::QuotaExceeded, "{error}");
        assert_eq!(recorder.finish().unwrap(), 40);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, file_bytes(40));
        assert!(bytes.len() <= 44 + 800);
        assert_eq!(crate::audio::decode(&bytes).unwrap().len(), 320);
    }

    #[test]
    fn file_bytes_counts_the_header_and_two_bytes_a_sample() {
        assert_eq!(file_bytes(0), 44);
        assert_eq!(file_bytes(20), 44 + 320);
        assert_eq!(file_bytes(3_600_000), 44 + 57_600_000);
    }

    #[test]
    fn an_empty_recording_has_a_valid_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        assert_eq!(WavRecorder::create(&path).unwrap().finish().unwrap(), 0);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, crate::audio::encode_wav(&[]));
    }
}
