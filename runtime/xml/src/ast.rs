//! The AST of an Opentact Call Flow XML document: plain data, validated when it was built, so
//! executing it never meets a malformed value. Durations are milliseconds.
//!
//! Both Gather syntaxes (canonical `dtmf_length`/`<DTMF>` and legacy `numDigits`/`<Switch>`)
//! build the same [`Gather`]; only [`Gather::syntax`] records which one was written.

/// Where a node starts in the source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// A whole document: the children of `<Response>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The verbs and conditionals, in document order.
    pub body: Block,
}

/// A sequence of nodes run in order.
pub type Block = Vec<Node>;

/// One verb or conditional block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Where it starts.
    pub span: Span,
    /// The `tag` attribute: echoed into every event the verb causes.
    pub tag: Option<String>,
    /// What it is.
    pub kind: NodeKind,
    /// The `<Error>` attached to it (a child, or the sibling right after it): runs only when
    /// this node fails.
    pub on_error: Option<Block>,
}

/// Verbs and conditional blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// `<Answer delay>`.
    Answer {
        /// Delay before answering.
        delay_ms: u32,
    },
    /// `<Hangup reason>`.
    Hangup {
        /// Why.
        reason: HangupReason,
    },
    /// `<Pause length>`.
    Pause {
        /// Silence length (default 1000).
        length_ms: u32,
    },
    /// `<Say>`.
    Say(Say),
    /// `<Play>`.
    Play(Play),
    /// `<Tone>`.
    Tone(Tone),
    /// `<Gather>`.
    Gather(Box<Gather>),
    /// `<Record>`.
    Record(Record),
    /// `<RecordStart tag>`: background recording of the whole call under the node's tag.
    RecordStart,
    /// `<RecordStop/>`.
    RecordStop,
    /// `<RecordWait/>`: wait until the background recording ends (the caller hangs up).
    RecordWait,
    /// `<Dial>`.
    Dial(Dial),
    /// `<Bridge call>`: join this call with another live call of the account; the flow goes on
    /// after it when the other call hangs up.
    Bridge {
        /// The other call's id (its UUID), as written.
        call: String,
    },
    /// `<Hold timeout>`.
    Hold {
        /// Upper bound on the hold (default 300000).
        timeout_ms: u32,
    },
    /// `<Unhold/>`.
    Unhold,
    /// `<Callback>`: fetch a document that replaces the rest of this one.
    Callback(Callback),
    /// `<Curl>`: an HTTP side call whose response is not executed.
    Curl(Curl),
    /// `<Meta name value>`.
    Meta {
        /// Key.
        name: String,
        /// Value.
        value: String,
    },
    /// `<Call field value>`: runs `body` when the call's field equals the value.
    Call {
        /// `to` or `from`.
        field: CallField,
        /// Compared for equality.
        value: String,
        /// Children.
        body: Block,
    },
    /// `<Geo states county>`: runs `body` when the caller's number is in one of the states (and
    /// the county, when given). No filter = always.
    Geo {
        /// Upper-case state codes.
        states: Vec<String>,
        /// County name, when given.
        county: Option<String>,
        /// Children.
        body: Block,
    },
    /// `<Schedule>` / `<Scheduler>`: runs `body` when now is inside the window.
    Schedule {
        /// The window.
        schedule: Schedule,
        /// Children.
        body: Block,
    },
}

/// Why `<Hangup>` ends the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// Normal clearing.
    Normal,
    /// 486 before answer.
    Busy,
    /// 603 before answer.
    Rejected,
}

/// Which leg hears a media verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The call's own leg (default).
    Aleg,
    /// The other leg of a bridge.
    Bleg,
    /// Both.
    Both,
}

/// Voice gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    /// Default.
    Female,
    /// Male.
    Male,
}

/// Text-to-speech engine class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceType {
    /// Default.
    Standard,
    /// Neural voices.
    WaveNet,
}

/// `<Say>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    /// The text (content or `text`).
    pub text: String,
    /// Engine class.
    pub voice_type: VoiceType,
    /// Gender (default FEMALE).
    pub gender: Gender,
    /// Voice code.
    pub code: Option<String>,
    /// Language (default en-US).
    pub lang: String,
    /// Repetitions (default 1).
    pub loop_count: u32,
    /// Leg.
    pub leg: Leg,
}

/// What `<Play>` plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaySource {
    /// An http(s) URL.
    Url(String),
    /// An earlier `<Record tag="name">` of the call.
    Recording(String),
}

/// `<Play>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// What.
    pub source: PlaySource,
    /// Repetitions (default 1).
    pub loop_count: u32,
    /// Leg.
    pub leg: Leg,
}

/// `<Tone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tone {
    /// Frequencies played together, Hz (`350+440`).
    pub frequencies: Vec<u32>,
    /// Tone on, ms (`don`; 0 = continuous).
    pub on_ms: u32,
    /// Silence, ms (`doff`).
    pub off_ms: u32,
    /// Cycles (`loop`, default 1; `hz="440x3"` multiplies it).
    pub loop_count: u32,
    /// Level in dB (`v`, 0 loudest).
    pub volume_db: i32,
    /// Upper bound, ms (default 30000).
    pub timeout_ms: u32,
    /// Leg.
    pub leg: Leg,
}

/// A prompt of a Gather: the media verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Speech.
    Say(Say),
    /// Audio.
    Play(Play),
    /// Tones.
    Tone(Tone),
    /// Silence, ms.
    Pause(u32),
}

/// Which Gather syntax a document used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherSyntax {
    /// `dtmf_length`, `dtmf_stop`, `url`, `<DTMF>`.
    Canonical,
    /// `numDigits`, `finishOnKey`, `callback`, `<Switch><Case>`.
    Legacy,
}

/// HTTP methods of fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A document fetch (Gather `url`/`callback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The URL.
    pub url: String,
    /// The method.
    pub method: Method,
}

/// A Gather branch: digits → block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The digits that select it.
    pub digits: String,
    /// Where it starts.
    pub span: Span,
    /// What runs.
    pub body: Block,
}

/// `<Gather>`, either syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Which syntax was written.
    pub syntax: GatherSyntax,
    /// Digits to collect (default 1).
    pub max_digits: u32,
    /// Terminating key (canonical default `#`, legacy default `*`).
    pub finish_key: Option<char>,
    /// Wait for the first digit after the prompts, ms (default 10000).
    pub timeout_ms: u32,
    /// Wait between digits, ms (Opentact extension `interDigitTimeout`, default 5000).
    pub inter_digit_timeout_ms: u32,
    /// Prompt + wait repetitions without input (default 1).
    pub attempts: u32,
    /// Where the digits are sent; the answer replaces the rest of the document.
    pub fetch: Option<Fetch>,
    /// Prompts, in order.
    pub prompts: Vec<Prompt>,
    /// Branches on the digits.
    pub branches: Vec<Branch>,
    /// No input after all attempts.
    pub default: Option<Block>,
}

/// `<Record>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The recording's name (its `tag`), "recording" when absent.
    pub name: String,
    /// Transcribe (`asr`).
    pub transcribe: bool,
    /// Silence that ends it, ms (`timeout`, default 5000).
    pub silence_timeout_ms: u32,
    /// Key that ends it (`finishOnKey`, default `#`).
    pub finish_key: Option<char>,
    /// Longest recording, ms (`maxLength`, default 3600000).
    pub max_length_ms: u32,
    /// Verbs run while recording (then it is a background recording around them).
    pub body: Block,
}

/// A Dial target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Digits, country code first.
    Number(String),
    /// A `sip:`/`sips:` URI.
    SipUri(String),
    /// A registered SIP user `login@domain`.
    User(String),
}

impl Target {
    /// Classify a target as written in `<To>`/`<Sip>`/`<Number>`. `None` when it is none of
    /// the three forms.
    pub fn classify(text: &str) -> Option<Target> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("sip:") || lower.starts_with("sips:") {
            return (text.len() > 4 && !text.contains(char::is_whitespace))
                .then(|| Target::SipUri(text.to_owned()));
        }
        let digits = text.strip_prefix('+').unwrap_or(text);
        if !digits.is_empty() && digits.len() <= 15 && digits.chars().all(|c| c.is_ascii_digit()) {
            return Some(Target::Number(digits.to_owned()));
        }
        match text.split_once('@') {
            Some((user, domain))
                if !user.is_empty()
                    && !domain.is_empty()
                    && !text.contains(char::is_whitespace)
                    && !domain.contains('@') =>
            {
                Some(Target::User(text.to_owned()))
            }
            _ => None,
        }
    }
}

/// `<Dial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Rung in parallel.
    pub targets: Vec<Target>,
    /// Ring timeout, ms (default 30000).
    pub timeout_ms: u32,
    /// Caller id shown.
    pub caller_id: Option<String>,
    /// Record the conversation.
    pub record: bool,
}

/// `<Callback>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The URL.
    pub url: String,
    /// Method (default POST).
    pub method: Method,
    /// Send the call object (default true).
    pub body: bool,
    /// Timeout, ms (default 10000).
    pub timeout_ms: u32,
}

/// `<Curl>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curl {
    /// The URL.
    pub url: String,
    /// Method (default GET).
    pub method: Method,
    /// Timeout, ms (default 5000).
    pub timeout_ms: u32,
    /// Request body (text content).
    pub body: Option<String>,
    /// `<Header name value/>` children.
    pub headers: Vec<(String, String)>,
}

/// `<Call field>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallField {
    /// The called number.
    To,
    /// The caller.
    From,
}

/// Days of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A `<Schedule>` window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Days it applies to; empty = every day. With a window crossing midnight, the day is the
    /// day the window started.
    pub days: Vec<Weekday>,
    /// Start and end, seconds since midnight; `None` = all day. End < start crosses midnight.
    pub window: Option<(u32, u32)>,
    /// IANA time zone; `None` = the account's, else UTC.
    pub tz: Option<String>,
}

impl Schedule {
    /// Whether a local time (day of week, seconds since midnight) is inside the window.
    pub fn contains(&self, day: Weekday, seconds: u32) -> bool {
        let day_ok = |d: Weekday| self.days.is_empty() || self.days.contains(&d);
        match self.window {
            None => day_ok(day),
            Some((start, end)) if start <= end => day_ok(day) && (start..=end).contains(&seconds),
            Some((start, end)) => {
                // Crosses midnight: the evening part belongs to today, the morning part to the
                // day before.
                (seconds >= start && day_ok(day)) || (seconds <= end && day_ok(day.previous()))
            }
        }
    }
}

impl Weekday {
    /// The day before.
    pub fn previous(self) -> Weekday {
        match self {
            Weekday::Mon => Weekday::Sun,
            Weekday::Tue => Weekday::Mon,
            Weekday::Wed => Weekday::Tue,
            Weekday::Thu => Weekday::Wed,
            Weekday::Fri => Weekday::Thu,
            Weekday::Sat => Weekday::Fri,
            Weekday::Sun => Weekday::Sat,
        }
    }

    /// From days since Monday (0–6).
    pub fn from_monday(index: u32) -> Weekday {
        match index % 7 {
            0 => Weekday::Mon,
            1 => Weekday::Tue,
            2 => Weekday::Wed,
            3 => Weekday::Thu,
            4 => Weekday::Fri,
            5 => Weekday::Sat,
            _ => Weekday::Sun,
        }
    }
}
