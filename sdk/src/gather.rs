//! Collecting DTMF digits: the `<Gather>` verb.

use std::time::Duration;

use crate::bindings::opentact::flow::types::{GatherRequest, Prompt as WitPrompt};
use crate::{Call, GatherResult, Play, Result, Say, Tone, ms};

/// Collect DTMF digits, playing prompts that the first digit interrupts (barge-in).
///
/// Defaults match the XML dialect's `<Gather>`: one digit, `#` ends early, 10 s to wait for the
/// first digit after the prompts, 5 s between digits, one attempt. No input is not an error: the
/// result's `digits` are empty.
///
/// ```no_run
/// use std::time::Duration;
/// use opentact_sdk::{Call, Gather, Result, Say};
///
/// fn ask_pin(call: &Call) -> Result<String> {
///     let pin = Gather::new()
///         .prompt(Say::new("Enter your PIN, then press hash."))
///         .max_digits(4)
///         .finish_key('#')
///         .first_digit_timeout(Duration::from_secs(8))
///         .inter_digit_timeout(Duration::from_secs(3))
///         .attempts(3)
///         .run(call)?;
///     Ok(pin.digits)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Gather(pub(crate) GatherRequest);

impl Default for Gather {
    fn default() -> Self {
        Gather::new()
    }
}

impl Gather {
    /// A gather with the defaults and no prompt.
    pub fn new() -> Self {
        Gather(GatherRequest {
            prompts: Vec::new(),
            max_digits: 1,
            finish_key: Some("#".to_owned()),
            first_digit_timeout_ms: 10_000,
            inter_digit_timeout_ms: 5_000,
            attempts: 1,
        })
    }

    /// Add a prompt, played after the ones before it: a [`Say`] (or text), a [`Play`], a
    /// [`Tone`], or a [`Duration`] of silence.
    pub fn prompt(mut self, prompt: impl Into<Prompt>) -> Self {
        self.0.prompts.push(prompt.into().0);
        self
    }

    /// How many digits to collect: the gather ends when this many are pressed (1–128; 1 by
    /// default).
    pub fn max_digits(mut self, count: u32) -> Self {
        self.0.max_digits = count;
        self
    }

    /// The key that ends the gather early and is not part of the digits (`#` by default; `*` or
    /// a digit also work).
    pub fn finish_key(mut self, key: char) -> Self {
        self.0.finish_key = Some(key.to_string());
        self
    }

    /// No finish key: only `max_digits` or a timeout ends the gather.
    pub fn no_finish_key(mut self) -> Self {
        self.0.finish_key = None;
        self
    }

    /// How long to wait for the first digit once the prompts have ended (10 s by default).
    pub fn first_digit_timeout(mut self, timeout: Duration) -> Self {
        self.0.first_digit_timeout_ms = ms(timeout);
        self
    }

    /// How long to wait between digits once the first one came (5 s by default).
    pub fn inter_digit_timeout(mut self, timeout: Duration) -> Self {
        self.0.inter_digit_timeout_ms = ms(timeout);
        self
    }

    /// How many times prompts + wait are repeated when nothing is pressed (1 or more; 1 by
    /// default).
    pub fn attempts(mut self, count: u32) -> Self {
        self.0.attempts = count;
        self
    }

    /// Run the gather on `call`: the same as [`Call::gather`].
    pub fn run(self, call: &Call) -> Result<GatherResult> {
        call.gather(self)
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &GatherRequest {
        &self.0
    }
}

impl From<Gather> for GatherRequest {
    fn from(gather: Gather) -> Self {
        gather.0
    }
}

/// A prompt played while a [`Gather`] waits; built from a [`Say`] (or text), a [`Play`], a
/// [`Tone`] or a [`Duration`] of silence.
#[derive(Debug, Clone)]
pub struct Prompt(pub(crate) WitPrompt);

impl From<Say> for Prompt {
    fn from(say: Say) -> Self {
        Prompt(WitPrompt::Say(say.0))
    }
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Say::new(text).into()
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Say::new(text).into()
    }
}

impl From<Play> for Prompt {
    fn from(play: Play) -> Self {
        Prompt(WitPrompt::Play(play.0))
    }
}

impl From<Tone> for Prompt {
    fn from(tone: Tone) -> Self {
        Prompt(WitPrompt::Tone(tone.0))
    }
}

impl From<Duration> for Prompt {
    fn from(silence: Duration) -> Self {
        Prompt(WitPrompt::Pause(ms(silence)))
    }
}

impl From<Prompt> for WitPrompt {
    fn from(prompt: Prompt) -> Self {
        prompt.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let gather = GatherRequest::from(Gather::default());
        assert!(gather.prompts.is_empty());
        assert_eq!(gather.max_digits, 1);
        assert_eq!(gather.finish_key.as_deref(), Some("#"));
        assert_eq!(gather.first_digit_timeout_ms, 10_000);
        assert_eq!(gather.inter_digit_timeout_ms, 5_000);
        assert_eq!(gather.attempts, 1);
    }

    #[test]
    fn the_builder_fills_the_request() {
        let gather = GatherRequest::from(
            Gather::new()
                .prompt(Say::new("Enter your PIN"))
                .prompt(Duration::from_millis(500))
                .prompt(Play::url("https://example.com/menu.wav"))
                .prompt(Tone::beep())
                .prompt("or press star")
                .max_digits(4)
                .finish_key('*')
                .first_digit_timeout(Duration::from_secs(3600))
                .inter_digit_timeout(Duration::from_secs(3))
                .attempts(3),
        );
        assert!(matches!(
            gather.prompts.as_slice(),
            [WitPrompt::Say(a), WitPrompt::Pause(500), WitPrompt::Play(_), WitPrompt::Tone(_), WitPrompt::Say(b)]
                if a.text == "Enter your PIN" && b.text == "or press star"
        ));
        assert_eq!((gather.max_digits, gather.finish_key.as_deref()), (4, Some("*")));
        assert_eq!((gather.first_digit_timeout_ms, gather.inter_digit_timeout_ms), (3_600_000, 3_000));
        assert_eq!(gather.attempts, 3);
        assert_eq!(Gather::new().no_finish_key().request().finish_key, None);
    }

    #[test]
    fn long_timeouts_saturate() {
        let gather = Gather::new().first_digit_timeout(Duration::from_secs(u64::MAX)).0;
        assert_eq!(gather.first_digit_timeout_ms, u32::MAX);
    }
}
