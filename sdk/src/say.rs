//! Text to speech: the `<Say>` verb.

use crate::bindings::opentact::flow::types::SayRequest;
use crate::{Gender, Leg};

/// Text to speech.
///
/// Defaults match the XML dialect's `<Say>`: language `en-US`, a female voice, spoken once, to
/// the caller (leg `aleg`). A `&str` or `String` converts into a `Say` with those defaults.
///
/// ```no_run
/// use opentact_sdk::{Call, Gender, Result, Say};
///
/// fn greet(call: &Call) -> Result<()> {
///     call.say("Welcome to Acme.")?;
///     call.say(Say::new("Bienvenue chez Acme.").lang("fr-FR").gender(Gender::Male).loops(2))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Say(pub(crate) SayRequest);

impl Say {
    /// Speak `text` (at most 4096 bytes).
    pub fn new(text: impl Into<String>) -> Self {
        Say(SayRequest {
            text: text.into(),
            lang: "en-US".to_owned(),
            gender: Gender::Female,
            voice: None,
            loop_count: 1,
            leg: Leg::Aleg,
        })
    }

    /// The language tag, e.g. `en-US` (the default) or `fr-FR`.
    pub fn lang(mut self, lang: impl Into<String>) -> Self {
        self.0.lang = lang.into();
        self
    }

    /// The voice's gender (female by default).
    pub fn gender(mut self, gender: Gender) -> Self {
        self.0.gender = gender;
        self
    }

    /// A provider voice code, when a specific voice is wanted.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.0.voice = Some(voice.into());
        self
    }

    /// How many times to speak it (1 by default; 0 means until the next verb interrupts).
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }

    /// Which leg of a bridged call hears it (the caller's, `aleg`, by default).
    pub fn leg(mut self, leg: Leg) -> Self {
        self.0.leg = leg;
        self
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &SayRequest {
        &self.0
    }
}

impl From<&str> for Say {
    fn from(text: &str) -> Self {
        Say::new(text)
    }
}

impl From<String> for Say {
    fn from(text: String) -> Self {
        Say::new(text)
    }
}

impl From<Say> for SayRequest {
    fn from(say: Say) -> Self {
        say.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let say = SayRequest::from(Say::new("hi"));
        assert_eq!(say.text, "hi");
        assert_eq!(say.lang, "en-US");
        assert!(matches!(say.gender, Gender::Female));
        assert_eq!(say.voice, None);
        assert_eq!(say.loop_count, 1);
        assert!(matches!(say.leg, Leg::Aleg));
    }

    #[test]
    fn the_builder_fills_the_request() {
        let say = SayRequest::from(
            Say::new("Bonjour").lang("fr-FR").gender(Gender::Male).voice("fr-FR-B").loops(3).leg(Leg::Both),
        );
        assert_eq!((say.lang.as_str(), say.voice.as_deref(), say.loop_count), ("fr-FR", Some("fr-FR-B"), 3));
        assert!(matches!(say.gender, Gender::Male));
        assert!(matches!(say.leg, Leg::Both));
        assert_eq!(Say::from("text").request().text, "text");
    }
}
