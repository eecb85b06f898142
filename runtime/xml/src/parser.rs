//! XML → a small element tree (with source positions) → the validated AST.

use std::fmt;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ast::*;

/// Largest document accepted, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Deepest element nesting accepted (nested gathers and conditionals).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 10_000;
/// Longest text of one element (a `<Say>`), bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most targets of one `<Dial>`.
pub const MAX_DIAL_TARGETS: usize = 10;
/// Longest `call` of a `<Bridge>`, bytes: ample for a call id (a UUID is 36), and short enough
/// that a pasted URL or document is refused at upload rather than failing mid-call.
pub const MAX_BRIDGE_CALL_BYTES: usize = 256;
/// Most errors reported for one document.
const MAX_ERRORS: usize = 50;
/// Longest wait any attribute may ask for: one day, ms.
const MAX_MS: u32 = 24 * 60 * 60 * 1000;
/// Most repetitions of a media verb.
const MAX_LOOP: u32 = 1000;

/// One problem in a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every problem found in a document (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors(Vec<ParseError>);

impl ParseErrors {
    /// The problems, in document order.
    pub fn errors(&self) -> &[ParseError] {
        &self.0
    }
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}

#[derive(Debug)]
struct Attr {
    name: String,
    value: String,
    pos: usize,
}

#[derive(Debug)]
enum Child {
    Element(Element),
    Text(String, usize),
}

#[derive(Debug)]
struct Element {
    /// As written.
    name: String,
    /// Lower-cased, for matching.
    key: String,
    attrs: Vec<Attr>,
    children: Vec<Child>,
    pos: usize,
}

impl Element {
    fn text(&self) -> String {
        let mut text = String::new();
        for child in &self.children {
            if let Child::Text(t, _) = child {
                text.push_str(t);
            }
        }
        text.trim().to_owned()
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(e) => Some(e),
            Child::Text(..) => None,
        })
    }
}

struct Positions {
    line_starts: Vec<usize>,
}

impl Positions {
    fn new(source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self { line_starts }
    }

    fn span(&self, source: &str, offset: usize) -> Span {
        let offset = offset.min(source.len());
        let line = self.line_starts.partition_point(|start| *start <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = source.get(start..offset).map(|s| s.chars().count()).unwrap_or(0) + 1;
        Span {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

struct Parser<'s> {
    source: &'s str,
    positions: Positions,
    errors: Vec<ParseError>,
}

fn lossy(text: &str) -> String {
    text.to_owned()
}

pub(crate) fn resolve_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x').or_else(|| number.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Read the element tree; `Err` holds one error (malformed XML stops the read).
fn read_tree(source: &str, parser: &mut Parser<'_>) -> Option<Element> {
    let mut reader = Reader::from_str(source);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(start);
                parser.error(at, format!("malformed XML: {error}"));
                return None;
            }
        };
        match event {
            Event::Start(ref tag) | Event::Empty(ref tag) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    parser.error(start, format!("the document has more than {MAX_ELEMENTS} elements"));
                    return None;
                }
                if stack.len() >= MAX_DEPTH {
                    parser.error(start, format!("elements nest deeper than {MAX_DEPTH} levels"));
                    return None;
                }
                let name = lossy(tag.name().into_inner());
                let mut attrs = Vec::new();
                let tag_text = source.get(start..).unwrap_or("");
                for attr in tag.attributes() {
                    let attr = match attr {
                        Ok(attr) => attr,
                        Err(error) => {
                            parser.error(start, format!("malformed attribute in <{name}>: {error}"));
                            return None;
                        }
                    };
                    let attr_name = lossy(attr.key.into_inner());
                    let value = match attr.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                        Ok(value) => value.into_owned(),
                        Err(error) => {
                            parser.error(start, format!("attribute {attr_name:?} of <{name}>: {error}"));
                            return None;
                        }
                    };
                    let pos = tag_text.find(&format!("{attr_name}=")).map(|i| start + i).unwrap_or(start);
                    attrs.push(Attr { name: attr_name, value, pos });
                }
                let element =
                    Element { key: name.to_ascii_lowercase(), name, attrs, children: Vec::new(), pos: start };
                if matches!(event, Event::Start(_)) {
                    stack.push(element);
                } else {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Child::Element(element)),
                        None if root.is_none() => root = Some(element),
                        None => {
                            parser.error(start, "only one root element is allowed: <Response>".to_owned());
                            return None;
                        }
                    }
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else { return root };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Child::Element(element)),
                    None if root.is_none() => root = Some(element),
                    None => {
                        parser.error(element.pos, "only one root element is allowed: <Response>".to_owned());
                        return None;
                    }
                }
            }
            Event::Text(text) => {
                let decoded = lossy(&text.into_inner());
                push_text(&mut stack, &mut root, parser, decoded, start)?;
            }
            Event::CData(data) => {
                let decoded = lossy(&data.into_inner());
                push_text(&mut stack, &mut root, parser, decoded, start)?;
            }
            Event::GeneralRef(reference) => {
                let name = lossy(&reference.into_inner());
                let Some(c) = resolve_entity(&name) else {
                    parser.error(
                        start,
                        format!("unknown entity &{name}; (use &amp; &lt; &gt; &quot; &apos; or &#N;)"),
                    );
                    return None;
                };
                push_text(&mut stack, &mut root, parser, c.to_string(), start)?;
            }
            Event::DocType(_) => {
                parser.error(start, "DOCTYPE declarations are not allowed".to_owned());
                return None;
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    parser.error(open.pos, format!("<{}> is never closed", open.name));
                    return None;
                }
                return root;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

fn push_text(
    stack: &mut [Element],
    root: &mut Option<Element>,
    parser: &mut Parser<'_>,
    text: String,
    pos: usize,
) -> Option<()> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Child::Text(existing, _)) = parent.children.last_mut() {
                existing.push_str(&text);
            } else {
                parent.children.push(Child::Text(text, pos));
            }
            Some(())
        }
        None if text.trim().is_empty() => Some(()),
        None => {
            let what = if root.is_some() { "after" } else { "before" };
            parser.error(pos, format!("text {what} the <Response> element"));
            None
        }
    }
}

/// Attributes of one element, consumed as they are read; what is left is unknown.
struct Attrs<'e> {
    element: &'e Element,
    used: Vec<bool>,
}

impl<'s> Parser<'s> {
    fn error(&mut self, offset: usize, message: String) {
        if self.errors.len() < MAX_ERRORS {
            let span = self.positions.span(self.source, offset);
            self.errors.push(ParseError { line: span.line, column: span.column, message });
        }
    }

    fn span(&self, offset: usize) -> Span {
        self.positions.span(self.source, offset)
    }

    fn attrs<'e>(&self, element: &'e Element) -> Attrs<'e> {
        Attrs { element, used: vec![false; element.attrs.len()] }
    }

    /// Report attributes nobody read.
    fn finish_attrs(&mut self, attrs: Attrs<'_>, allowed: &[&str]) {
        for (attr, used) in attrs.element.attrs.iter().zip(attrs.used) {
            if !used {
                let message = if allowed.is_empty() {
                    format!("<{}> takes no attribute {:?}", attrs.element.name, attr.name)
                } else {
                    format!(
                        "<{}> has no attribute {:?}; allowed: {}",
                        attrs.element.name,
                        attr.name,
                        allowed.join(", ")
                    )
                };
                self.error(attr.pos, message);
            }
        }
    }

    fn get<'e>(&mut self, attrs: &mut Attrs<'e>, names: &[&str]) -> Option<(&'e str, &'e Attr)> {
        let mut found = None;
        for (index, attr) in attrs.element.attrs.iter().enumerate() {
            if names.contains(&attr.name.as_str()) {
                attrs.used[index] = true;
                if found.is_some() {
                    self.error(
                        attr.pos,
                        format!("<{}> gives {} more than once", attrs.element.name, names.join(" / ")),
                    );
                } else {
                    found = Some((attr.value.as_str(), attr));
                }
            }
        }
        found
    }

    fn string(&mut self, attrs: &mut Attrs<'_>, names: &[&str]) -> Option<String> {
        self.get(attrs, names).map(|(v, _)| v.trim().to_owned())
    }

    fn number(&mut self, attrs: &mut Attrs<'_>, names: &[&str], default: u32, min: u32, max: u32) -> u32 {
        let Some((value, attr)) = self.get(attrs, names) else { return default };
        match value.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let element = attrs.element.name.clone();
                self.error(
                    attr.pos,
                    format!("<{element}> attribute {:?} must be a whole number from {min} to {max}, got {value:?}", attr.name),
                );
                default
            }
        }
    }

    fn ms(&mut self, attrs: &mut Attrs<'_>, names: &[&str], default: u32) -> u32 {
        self.number(attrs, names, default, 0, MAX_MS)
    }

    fn boolean(&mut self, attrs: &mut Attrs<'_>, names: &[&str], default: bool) -> bool {
        let Some((value, attr)) = self.get(attrs, names) else { return default };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => {
                let element = attrs.element.name.clone();
                self.error(
                    attr.pos,
                    format!("<{element}> attribute {:?} must be true or false, got {value:?}", attr.name),
                );
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        attrs: &mut Attrs<'_>,
        names: &[&str],
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some((value, attr)) = self.get(attrs, names) else { return default };
        let wanted = value.trim().to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(name, _)| name.to_ascii_lowercase() == wanted) {
            return *v;
        }
        let element = attrs.element.name.clone();
        let allowed: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.error(
            attr.pos,
            format!(
                "<{element}> attribute {:?} must be one of {}, got {value:?}",
                attr.name,
                allowed.join(", ")
            ),
        );
        default
    }

    fn key(&mut self, attrs: &mut Attrs<'_>, names: &[&str], default: Option<char>) -> Option<char> {
        let Some((value, attr)) = self.get(attrs, names) else { return default };
        let value = value.trim();
        let mut chars = value.chars();
        match (chars.next(), chars.next()) {
            (None, _) => None,
            (Some(c), None) if is_dtmf(c) => Some(c.to_ascii_uppercase()),
            _ => {
                let element = attrs.element.name.clone();
                self.error(
                    attr.pos,
                    format!(
                        "<{element}> attribute {:?} must be one DTMF key (0-9, *, #, A-D), got {value:?}",
                        attr.name
                    ),
                );
                default
            }
        }
    }

    fn method(&mut self, attrs: &mut Attrs<'_>, default: Method) -> Method {
        let options = [
            ("GET", Method::Get),
            ("POST", Method::Post),
            ("PATCH", Method::Patch),
            ("DELETE", Method::Delete),
        ];
        self.choice(attrs, &["method"], &options, default)
    }

    fn leg(&mut self, attrs: &mut Attrs<'_>) -> Leg {
        self.choice(
            attrs,
            &["leg"],
            &[("aleg", Leg::Aleg), ("bleg", Leg::Bleg), ("both", Leg::Both)],
            Leg::Aleg,
        )
    }

    fn url(&mut self, element: &Element, value: &str, pos: usize) -> Option<String> {
        let value = value.trim();
        if (value.starts_with("http://") || value.starts_with("https://"))
            && value.len() > 8
            && !value.contains(char::is_whitespace)
        {
            Some(value.to_owned())
        } else {
            self.error(pos, format!("<{}> needs an http(s) URL, got {value:?}", element.name));
            None
        }
    }

    /// Refuse child elements and text where none belong.
    fn no_children(&mut self, element: &Element, text_allowed: bool) {
        for child in &element.children {
            match child {
                Child::Element(e) => {
                    self.error(e.pos, format!("<{}> cannot contain <{}>", element.name, e.name))
                }
                Child::Text(t, pos) if !text_allowed && !t.trim().is_empty() => {
                    self.error(*pos, format!("<{}> cannot contain text", element.name));
                }
                Child::Text(..) => {}
            }
        }
    }

    fn text_checked(&mut self, element: &Element) -> String {
        let text = element.text();
        if text.len() > MAX_TEXT_BYTES {
            self.error(
                element.pos,
                format!("<{}> text is {} bytes; at most {MAX_TEXT_BYTES}", element.name, text.len()),
            );
        }
        text
    }

    /// A sequence of verbs and conditionals; `<Error>` attaches to the node before it.
    fn block(&mut self, parent: &Element) -> Block {
        let mut block: Block = Vec::new();
        for child in &parent.children {
            match child {
                Child::Text(text, pos) if !text.trim().is_empty() => {
                    self.error(*pos, format!("unexpected text {:?} in <{}>", shorten(text.trim()), parent.name));
                }
                Child::Text(..) => {}
                Child::Element(element) if element.key == "error" => match block.last_mut() {
                    Some(previous) if previous.on_error.is_none() && can_fail(&previous.kind) => {
                        previous.on_error = Some(self.handler(element));
                    }
                    Some(previous) if previous.on_error.is_some() => {
                        self.error(element.pos, "a verb has only one <Error>".to_owned());
                    }
                    _ => self.error(
                        element.pos,
                        "<Error> must directly follow a verb that can fail, or be inside <Dial>, <Bridge>, <Callback>, <Gather> or <Curl>"
                            .to_owned(),
                    ),
                },
                Child::Element(element) => {
                    if let Some(node) = self.node(element) {
                        block.push(node);
                    }
                }
            }
        }
        block
    }

    /// An `<Error>`/`<Default>` handler: a block, no attributes.
    fn handler(&mut self, element: &Element) -> Block {
        let attrs = self.attrs(element);
        self.finish_attrs(attrs, &[]);
        self.block(element)
    }

    fn node(&mut self, element: &Element) -> Option<Node> {
        let span = self.span(element.pos);
        let mut attrs = self.attrs(element);
        let tag = self.string(&mut attrs, &["tag"]);
        let mut on_error = None;
        let (kind, allowed): (NodeKind, &[&str]) = match element.key.as_str() {
            "answer" => {
                self.no_children(element, false);
                (NodeKind::Answer { delay_ms: self.ms(&mut attrs, &["delay"], 0) }, &["delay", "tag"])
            }
            "hangup" => {
                self.no_children(element, false);
                let reason = self.choice(
                    &mut attrs,
                    &["reason"],
                    &[
                        ("normal", HangupReason::Normal),
                        ("busy", HangupReason::Busy),
                        ("rejected", HangupReason::Rejected),
                    ],
                    HangupReason::Normal,
                );
                (NodeKind::Hangup { reason }, &["reason", "tag"])
            }
            "pause" => {
                self.no_children(element, false);
                (NodeKind::Pause { length_ms: self.ms(&mut attrs, &["length"], 1000) }, &["length", "tag"])
            }
            "say" => (NodeKind::Say(self.say(element, &mut attrs)?), SAY_ATTRS),
            "play" => (NodeKind::Play(self.play(element, &mut attrs)?), PLAY_ATTRS),
            "tone" => (NodeKind::Tone(self.tone(element, &mut attrs)?), TONE_ATTRS),
            "gather" => {
                let (gather, error) = self.gather(element, &mut attrs);
                on_error = error;
                (NodeKind::Gather(Box::new(gather?)), GATHER_ATTRS)
            }
            "record" => {
                let record = Record {
                    name: tag.clone().unwrap_or_else(|| "recording".to_owned()),
                    transcribe: self.boolean(&mut attrs, &["asr"], false),
                    silence_timeout_ms: self.ms(&mut attrs, &["timeout"], 5000),
                    finish_key: self.key(&mut attrs, &["finishOnKey", "finish_on_key"], Some('#')),
                    max_length_ms: self.number(
                        &mut attrs,
                        &["maxLength", "max_length"],
                        3_600_000,
                        1,
                        MAX_MS,
                    ),
                    body: self.block(element),
                };
                (
                    NodeKind::Record(record),
                    &["tag", "asr", "timeout", "finishOnKey", "finish_on_key", "maxLength", "max_length"],
                )
            }
            "recordstart" => {
                self.no_children(element, false);
                (NodeKind::RecordStart, &["tag"])
            }
            "recordstop" => {
                self.no_children(element, false);
                (NodeKind::RecordStop, &["tag"])
            }
            "recordwait" => {
                self.no_children(element, false);
                (NodeKind::RecordWait, &["tag"])
            }
            "dial" => {
                let (dial, error) = self.dial(element, &mut attrs);
                on_error = error;
                (NodeKind::Dial(dial?), &["timeout", "callerId", "caller_id", "record", "tag"])
            }
            "bridge" => {
                let (call, error) = self.bridge(element, &mut attrs);
                on_error = error;
                let Some(call) = call else {
                    // Unknown attributes are reported too, so one upload shows every mistake.
                    self.finish_attrs(attrs, BRIDGE_ATTRS);
                    return None;
                };
                (NodeKind::Bridge { call }, BRIDGE_ATTRS)
            }
            "hold" => {
                self.no_children(element, false);
                (
                    NodeKind::Hold { timeout_ms: self.number(&mut attrs, &["timeout"], 300_000, 1, MAX_MS) },
                    &["timeout", "tag"],
                )
            }
            "unhold" => {
                self.no_children(element, false);
                (NodeKind::Unhold, &["tag"])
            }
            "callback" => {
                let (callback, error) = self.callback(element, &mut attrs);
                on_error = error;
                (NodeKind::Callback(callback?), &["url", "method", "body", "timeout", "tag"])
            }
            "curl" => {
                let (curl, error) = self.curl(element, &mut attrs);
                on_error = error;
                (NodeKind::Curl(curl?), &["url", "method", "timeout", "tag"])
            }
            "meta" => {
                self.no_children(element, false);
                let name = self.string(&mut attrs, &["name"]);
                let value = self.string(&mut attrs, &["value"]);
                let (Some(name), Some(value)) = (name, value) else {
                    self.error(element.pos, format!("<{}> needs both name and value", element.name));
                    self.finish_attrs(attrs, &["name", "value"]);
                    return None;
                };
                if name.is_empty() {
                    self.error(element.pos, format!("<{}> name must not be empty", element.name));
                }
                (NodeKind::Meta { name, value }, &["name", "value"])
            }
            "call" => {
                let field = self.choice(
                    &mut attrs,
                    &["field"],
                    &[("to", CallField::To), ("from", CallField::From)],
                    CallField::To,
                );
                if !element.attrs.iter().any(|a| a.name == "field") {
                    self.error(
                        element.pos,
                        format!("<{}> needs field=\"to\" or field=\"from\"", element.name),
                    );
                }
                let value = self.string(&mut attrs, &["value"]).unwrap_or_else(|| {
                    self.error(element.pos, format!("<{}> needs a value to compare with", element.name));
                    String::new()
                });
                (NodeKind::Call { field, value, body: self.block(element) }, &["field", "value"])
            }
            "geo" => {
                let states = self
                    .string(&mut attrs, &["states", "state"])
                    .map(|s| {
                        s.split(',')
                            .map(|x| x.trim().to_ascii_uppercase())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let county = self.string(&mut attrs, &["county"]).filter(|c| !c.is_empty());
                (NodeKind::Geo { states, county, body: self.block(element) }, &["states", "state", "county"])
            }
            "schedule" | "scheduler" => {
                let schedule = self.schedule(element, &mut attrs);
                (NodeKind::Schedule { schedule, body: self.block(element) }, &["dow", "time", "tz"])
            }
            "default" => {
                self.error(element.pos, "<Default> belongs inside <Gather> or <Switch>".to_owned());
                return None;
            }
            "to" | "sip" | "number" => {
                self.error(element.pos, format!("<{}> belongs inside <Dial>", element.name));
                return None;
            }
            "dtmf" | "switch" | "case" => {
                self.error(element.pos, format!("<{}> belongs inside <Gather>", element.name));
                return None;
            }
            "header" => {
                self.error(element.pos, "<Header> belongs inside <Curl>".to_owned());
                return None;
            }
            _ => {
                self.error(
                    element.pos,
                    format!(
                        "unknown element <{}>; verbs are Answer, Hangup, Pause, Say, Play, Tone, Gather, Record, RecordStart, RecordStop, RecordWait, Dial, Bridge, Hold, Unhold, Callback, Curl, Meta; conditionals are Call, Geo, Schedule",
                        element.name
                    ),
                );
                return None;
            }
        };
        self.finish_attrs(attrs, allowed);
        Some(Node { span, tag, kind, on_error })
    }

    fn say(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> Option<Say> {
        self.no_children(element, true);
        let content = self.text_checked(element);
        let attribute = self.string(attrs, &["text"]);
        let text = match (attribute, content.is_empty()) {
            (Some(text), true) => text,
            (None, false) => content,
            (Some(_), false) => {
                self.error(
                    element.pos,
                    format!("<{}> has both a text attribute and text content; keep one", element.name),
                );
                content
            }
            (None, true) => {
                self.error(element.pos, format!("<{}> has no text to say", element.name));
                return None;
            }
        };
        Some(Say {
            text,
            voice_type: self.choice(
                attrs,
                &["type"],
                &[("Standard", VoiceType::Standard), ("WaveNet", VoiceType::WaveNet)],
                VoiceType::Standard,
            ),
            gender: self.choice(
                attrs,
                &["gender"],
                &[("FEMALE", Gender::Female), ("MALE", Gender::Male)],
                Gender::Female,
            ),
            code: self.string(attrs, &["code"]).filter(|c| !c.is_empty()),
            lang: self
                .string(attrs, &["lang"])
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "en-US".to_owned()),
            loop_count: self.number(attrs, &["loop"], 1, 0, MAX_LOOP),
            leg: self.leg(attrs),
        })
    }

    fn play(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> Option<Play> {
        self.no_children(element, true);
        let content = element.text();
        let url = self.get(attrs, &["url"]).map(|(v, a)| (v.to_owned(), a.pos));
        let record = self.string(attrs, &["record"]);
        let sources =
            usize::from(url.is_some()) + usize::from(record.is_some()) + usize::from(!content.is_empty());
        if sources != 1 {
            self.error(
                element.pos,
                format!(
                    "<{}> needs exactly one of: a URL as content, url=\"…\", or record=\"name\"",
                    element.name
                ),
            );
            return None;
        }
        let source = if let Some(name) = record {
            PlaySource::Recording(name)
        } else if let Some((url, pos)) = url {
            PlaySource::Url(self.url(element, &url, pos)?)
        } else {
            PlaySource::Url(self.url(element, &content, element.pos)?)
        };
        Some(Play { source, loop_count: self.number(attrs, &["loop"], 1, 0, MAX_LOOP), leg: self.leg(attrs) })
    }

    fn tone(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> Option<Tone> {
        self.no_children(element, false);
        let Some((hz, attr)) = self.get(attrs, &["hz"]) else {
            self.error(element.pos, format!("<{}> needs hz, e.g. hz=\"350+440\"", element.name));
            return None;
        };
        let (list, repeat) = match hz.trim().split_once(['x', 'X']) {
            Some((list, repeat)) => {
                (list, repeat.trim().parse::<u32>().ok().filter(|n| (1..=MAX_LOOP).contains(n)))
            }
            None => (hz.trim(), Some(1)),
        };
        let frequencies: Option<Vec<u32>> = list
            .split('+')
            .map(|f| f.trim().parse::<u32>().ok().filter(|f| (20..=3999).contains(f)))
            .collect();
        let (Some(frequencies), Some(repeat)) =
            (frequencies.filter(|f| !f.is_empty() && f.len() <= 4), repeat)
        else {
            self.error(
                attr.pos,
                format!("<{}> hz must be 1–4 frequencies of 20–3999 Hz joined by + with an optional xN repeat (e.g. 350+440 or 440x3), got {hz:?}", element.name),
            );
            return None;
        };
        let volume = match self.get(attrs, &["v"]) {
            None => 0,
            Some((v, attr)) => match v.trim().parse::<i32>() {
                Ok(v) if (-60..=0).contains(&v) => v,
                _ => {
                    self.error(
                        attr.pos,
                        format!("<{}> v must be a level in dB from -60 to 0, got {v:?}", element.name),
                    );
                    0
                }
            },
        };
        let loop_count = self.number(attrs, &["loop"], 1, 1, MAX_LOOP);
        Some(Tone {
            frequencies,
            on_ms: self.ms(attrs, &["don"], 0),
            off_ms: self.ms(attrs, &["doff"], 0),
            loop_count: loop_count.saturating_mul(repeat).min(MAX_LOOP),
            volume_db: volume,
            timeout_ms: self.number(attrs, &["timeout"], 30_000, 1, MAX_MS),
            leg: self.leg(attrs),
        })
    }

    fn prompt(&mut self, element: &Element) -> Option<Prompt> {
        let mut attrs = self.attrs(element);
        let prompt = match element.key.as_str() {
            "say" => Prompt::Say(self.say(element, &mut attrs)?),
            "play" => Prompt::Play(self.play(element, &mut attrs)?),
            "tone" => Prompt::Tone(self.tone(element, &mut attrs)?),
            _ => {
                self.no_children(element, false);
                Prompt::Pause(self.ms(&mut attrs, &["length"], 1000))
            }
        };
        let allowed = match element.key.as_str() {
            "say" => SAY_ATTRS,
            "play" => PLAY_ATTRS,
            "tone" => TONE_ATTRS,
            _ => &["length", "tag"],
        };
        // A prompt's tag is accepted for compatibility; events carry the Gather's tag.
        let _ = self.get(&mut attrs, &["tag"]);
        self.finish_attrs(attrs, allowed);
        Some(prompt)
    }

    fn digits(&mut self, element: &Element, attrs: &mut Attrs<'_>, names: &[&str]) -> Option<String> {
        let Some((value, attr)) = self.get(attrs, names) else {
            self.error(
                element.pos,
                format!("<{}> needs {}=\"…\" with the digits it matches", element.name, names[0]),
            );
            return None;
        };
        let value = value.trim();
        if value.is_empty() || !value.chars().all(is_dtmf) {
            self.error(
                attr.pos,
                format!("<{}> {} must be DTMF keys (0-9, *, #, A-D), got {value:?}", element.name, names[0]),
            );
            return None;
        }
        Some(value.to_ascii_uppercase())
    }

    fn gather(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> (Option<Gather>, Option<Block>) {
        let legacy_attrs = ["numDigits", "finishOnKey", "callback"];
        let legacy = element.attrs.iter().any(|a| legacy_attrs.contains(&a.name.as_str()))
            || element.elements().any(|e| e.key == "switch");
        let syntax = if legacy { GatherSyntax::Legacy } else { GatherSyntax::Canonical };
        let max_digits = self.number(attrs, &["dtmf_length", "length", "numDigits"], 1, 1, 128);
        let default_key = if legacy { '*' } else { '#' };
        let finish_key = self.key(attrs, &["dtmf_stop", "finishOnKey"], Some(default_key));
        let timeout_ms = self.ms(attrs, &["timeout"], 10_000);
        let inter_digit_timeout_ms = self.ms(attrs, &["interDigitTimeout", "inter_digit_timeout"], 5000);
        let attempts = self.number(attrs, &["attempts"], 1, 1, 10);
        let method = self.method(attrs, Method::Post);
        let fetch = match self.get(attrs, &["url", "callback"]) {
            Some((url, attr)) => {
                let pos = attr.pos;
                self.url(element, url, pos).map(|url| Fetch { url, method })
            }
            None => None,
        };
        let mut gather = Gather {
            syntax,
            max_digits,
            finish_key,
            timeout_ms,
            inter_digit_timeout_ms,
            attempts,
            fetch,
            prompts: Vec::new(),
            branches: Vec::new(),
            default: None,
        };
        let mut on_error = None;
        for child in &element.children {
            let Child::Element(child) = child else {
                if let Child::Text(text, pos) = child
                    && !text.trim().is_empty()
                {
                    self.error(
                        *pos,
                        format!("unexpected text {:?} in <{}>", shorten(text.trim()), element.name),
                    );
                }
                continue;
            };
            match child.key.as_str() {
                "say" | "play" | "tone" | "pause" => {
                    if let Some(prompt) = self.prompt(child) {
                        gather.prompts.push(prompt);
                    }
                }
                "dtmf" => {
                    let mut child_attrs = self.attrs(child);
                    if let Some(digits) = self.digits(child, &mut child_attrs, &["value"]) {
                        self.add_branch(&mut gather, child, digits);
                    }
                    self.finish_attrs(child_attrs, &["value"]);
                }
                "switch" => {
                    let switch_attrs = self.attrs(child);
                    self.finish_attrs(switch_attrs, &[]);
                    for case in &child.children {
                        match case {
                            Child::Element(case) if case.key == "case" => {
                                let mut case_attrs = self.attrs(case);
                                if let Some(digits) = self.digits(case, &mut case_attrs, &["dtmf", "value"]) {
                                    self.add_branch(&mut gather, case, digits);
                                }
                                self.finish_attrs(case_attrs, &["dtmf", "value"]);
                            }
                            Child::Element(default) if default.key == "default" => {
                                self.set_once(&mut gather.default, default, "<Default>");
                            }
                            Child::Element(error) if error.key == "error" => {
                                self.set_once(&mut on_error, error, "<Error>");
                            }
                            Child::Element(other) => self.error(
                                other.pos,
                                format!("<{}> cannot contain <{}>; use <Case dtmf=\"…\">, <Default> and <Error>", child.name, other.name),
                            ),
                            Child::Text(text, pos) if !text.trim().is_empty() => {
                                self.error(*pos, format!("unexpected text in <{}>", child.name));
                            }
                            Child::Text(..) => {}
                        }
                    }
                }
                "default" => self.set_once(&mut gather.default, child, "<Default>"),
                "error" => self.set_once(&mut on_error, child, "<Error>"),
                _ => self.error(
                    child.pos,
                    format!(
                        "<{}> cannot be inside <{}>: prompts are Say, Play, Tone and Pause; branches are <DTMF value> (or <Switch><Case dtmf>); then <Default> and <Error>",
                        child.name, element.name
                    ),
                ),
            }
        }
        (Some(gather), on_error)
    }

    fn add_branch(&mut self, gather: &mut Gather, element: &Element, digits: String) {
        if gather.branches.iter().any(|b| b.digits == digits) {
            self.error(element.pos, format!("two branches match the digits {digits:?}"));
            return;
        }
        let span = self.span(element.pos);
        let body = self.block(element);
        gather.branches.push(Branch { digits, span, body });
    }

    fn set_once(&mut self, slot: &mut Option<Block>, element: &Element, what: &str) {
        if slot.is_some() {
            self.error(element.pos, format!("only one {what} is allowed here"));
            return;
        }
        *slot = Some(self.handler(element));
    }

    fn dial(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> (Option<Dial>, Option<Block>) {
        let timeout_ms = self.number(attrs, &["timeout"], 30_000, 1, MAX_MS);
        let caller_id = self.string(attrs, &["callerId", "caller_id"]).filter(|c| !c.is_empty());
        let record = self.boolean(attrs, &["record"], false);
        let mut targets = Vec::new();
        let mut on_error = None;
        for child in &element.children {
            match child {
                Child::Element(target) if matches!(target.key.as_str(), "to" | "sip" | "number") => {
                    let target_attrs = self.attrs(target);
                    self.finish_attrs(target_attrs, &[]);
                    self.no_children(target, true);
                    let text = target.text();
                    match Target::classify(&text) {
                        Some(Target::Number(_)) | Some(Target::User(_)) if target.key == "sip" && !text.contains('@') => {
                            self.error(target.pos, format!("<{}> needs a SIP URI or user@domain, got {text:?}", target.name));
                        }
                        Some(t) => targets.push(t),
                        None => self.error(
                            target.pos,
                            format!("<{}> must be a number (12223334455), a SIP URI (sip:1000@host) or a SIP user (alice@domain), got {:?}", target.name, shorten(&text)),
                        ),
                    }
                }
                Child::Element(error) if error.key == "error" => {
                    self.set_once(&mut on_error, error, "<Error>")
                }
                Child::Element(other) => self.error(
                    other.pos,
                    format!(
                        "<{}> cannot contain <{}>; use <To>, <Sip> or <Number>, and <Error>",
                        element.name, other.name
                    ),
                ),
                Child::Text(text, pos) if !text.trim().is_empty() => {
                    self.error(
                        *pos,
                        format!("put the target of <{}> inside <To>, <Sip> or <Number>", element.name),
                    );
                }
                Child::Text(..) => {}
            }
        }
        if targets.is_empty() {
            self.error(element.pos, format!("<{}> needs at least one <To>, <Sip> or <Number>", element.name));
            return (None, on_error);
        }
        if targets.len() > MAX_DIAL_TARGETS {
            self.error(
                element.pos,
                format!("<{}> rings at most {MAX_DIAL_TARGETS} targets, got {}", element.name, targets.len()),
            );
        }
        (Some(Dial { targets, timeout_ms, caller_id, record }), on_error)
    }

    /// `<Bridge call>`: the other call's id, and an optional `<Error>` child.
    fn bridge(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> (Option<String>, Option<Block>) {
        let mut on_error = None;
        for child in &element.children {
            match child {
                Child::Element(error) if error.key == "error" => {
                    self.set_once(&mut on_error, error, "<Error>")
                }
                Child::Element(other) => self.error(
                    other.pos,
                    format!(
                        "<{}> cannot contain <{}>; it can only contain <Error>",
                        element.name, other.name
                    ),
                ),
                Child::Text(text, pos) if !text.trim().is_empty() => {
                    self.error(
                        *pos,
                        format!(
                            "<{}> cannot contain text; give the other call's id as call=\"…\"",
                            element.name
                        ),
                    );
                }
                Child::Text(..) => {}
            }
        }
        let Some((value, attr)) = self.get(attrs, &["call"]) else {
            self.error(
                element.pos,
                format!(
                    "<{}> needs call=\"…\" with the id of another live call of the account",
                    element.name
                ),
            );
            return (None, on_error);
        };
        let call = value.trim();
        if call.is_empty() {
            self.error(
                attr.pos,
                format!(
                    "<{}> call must not be empty: give the id of another live call of the account",
                    element.name
                ),
            );
            return (None, on_error);
        }
        if call.len() > MAX_BRIDGE_CALL_BYTES {
            self.error(
                attr.pos,
                format!(
                    "<{}> call is {} bytes; at most {MAX_BRIDGE_CALL_BYTES} (a call id is a UUID)",
                    element.name,
                    call.len()
                ),
            );
            return (None, on_error);
        }
        (Some(call.to_owned()), on_error)
    }

    /// Children of Callback/Curl: only `<Error>` (and Curl's `<Header>`), plus text.
    fn callback(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> (Option<Callback>, Option<Block>) {
        let mut on_error = None;
        for child in element.elements() {
            if child.key == "error" {
                self.set_once(&mut on_error, child, "<Error>");
            } else {
                self.error(child.pos, format!("<{}> can only contain <Error>", element.name));
            }
        }
        let method = self.method(attrs, Method::Post);
        let body = self.boolean(attrs, &["body"], true);
        let timeout_ms = self.number(attrs, &["timeout"], 10_000, 1, MAX_MS);
        let content = element.text();
        let url = match (self.get(attrs, &["url"]).map(|(v, a)| (v.to_owned(), a.pos)), content.is_empty()) {
            (Some((url, pos)), true) => self.url(element, &url, pos),
            (None, false) => self.url(element, &content, element.pos),
            (Some(_), false) => {
                self.error(
                    element.pos,
                    format!("<{}> has both a url attribute and a URL as content; keep one", element.name),
                );
                None
            }
            (None, true) => {
                self.error(element.pos, format!("<{}> needs a url", element.name));
                None
            }
        };
        (url.map(|url| Callback { url, method, body, timeout_ms }), on_error)
    }

    fn curl(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> (Option<Curl>, Option<Block>) {
        let mut on_error = None;
        let mut headers = Vec::new();
        for child in element.elements() {
            match child.key.as_str() {
                "error" => self.set_once(&mut on_error, child, "<Error>"),
                "header" => {
                    let mut header_attrs = self.attrs(child);
                    self.no_children(child, false);
                    let name = self.string(&mut header_attrs, &["name"]);
                    let value = self.string(&mut header_attrs, &["value"]);
                    match (name, value) {
                        (Some(name), Some(value))
                            if !name.is_empty()
                                && name
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                        {
                            headers.push((name, value));
                        }
                        _ => self.error(
                            child.pos,
                            "<Header> needs name (letters, digits, -) and value".to_owned(),
                        ),
                    }
                    self.finish_attrs(header_attrs, &["name", "value"]);
                }
                _ => self.error(
                    child.pos,
                    format!("<{}> can only contain <Header>, <Error> and a text body", element.name),
                ),
            }
        }
        let method = self.method(attrs, Method::Get);
        let timeout_ms = self.number(attrs, &["timeout"], 5000, 1, MAX_MS);
        let url = match self.get(attrs, &["url"]).map(|(v, a)| (v.to_owned(), a.pos)) {
            Some((url, pos)) => self.url(element, &url, pos),
            None => {
                self.error(
                    element.pos,
                    format!("<{}> needs a url attribute (its content is the request body)", element.name),
                );
                None
            }
        };
        let body = Some(element.text()).filter(|b| !b.is_empty());
        (url.map(|url| Curl { url, method, timeout_ms, body, headers }), on_error)
    }

    fn schedule(&mut self, element: &Element, attrs: &mut Attrs<'_>) -> Schedule {
        let mut days = Vec::new();
        if let Some((dow, attr)) = self.get(attrs, &["dow"]) {
            for day in dow.split(',').map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()) {
                let parsed = match day.get(..3).unwrap_or("") {
                    "mon" => Some(Weekday::Mon),
                    "tue" => Some(Weekday::Tue),
                    "wed" => Some(Weekday::Wed),
                    "thu" => Some(Weekday::Thu),
                    "fri" => Some(Weekday::Fri),
                    "sat" => Some(Weekday::Sat),
                    "sun" => Some(Weekday::Sun),
                    _ => None,
                };
                match parsed {
                    Some(d) if !days.contains(&d) => days.push(d),
                    Some(_) => {}
                    None => self.error(
                        attr.pos,
                        format!("<{}> dow must list days like mon,tue,wed; got {day:?}", element.name),
                    ),
                }
            }
        }
        let window = match self.get(attrs, &["time"]) {
            None => None,
            Some((time, attr)) => {
                let parsed = time.split_once('-').and_then(|(a, b)| Some((clock(a)?, clock(b)?)));
                if parsed.is_none() {
                    self.error(
                        attr.pos,
                        format!("<{}> time must be HH:MM:SS-HH:MM:SS, got {time:?}", element.name),
                    );
                }
                parsed
            }
        };
        let tz = match self.get(attrs, &["tz"]) {
            None => None,
            Some((tz, attr)) => {
                let tz = tz.trim();
                let plausible = !tz.is_empty()
                    && tz.len() <= 64
                    && tz.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
                if !plausible {
                    self.error(
                        attr.pos,
                        format!(
                            "<{}> tz must be an IANA time zone such as America/New_York, got {tz:?}",
                            element.name
                        ),
                    );
                }
                plausible.then(|| tz.to_owned())
            }
        };
        Schedule { days, window, tz }
    }
}

const SAY_ATTRS: &[&str] = &["text", "type", "gender", "code", "lang", "loop", "leg", "tag"];
const PLAY_ATTRS: &[&str] = &["url", "record", "loop", "leg", "tag"];
const TONE_ATTRS: &[&str] = &["hz", "don", "doff", "loop", "v", "timeout", "leg", "tag"];
const BRIDGE_ATTRS: &[&str] = &["call", "tag"];
const GATHER_ATTRS: &[&str] = &[
    "dtmf_length",
    "length",
    "numDigits",
    "dtmf_stop",
    "finishOnKey",
    "timeout",
    "interDigitTimeout",
    "inter_digit_timeout",
    "attempts",
    "url",
    "callback",
    "method",
    "tag",
];

/// `HH:MM[:SS]` → seconds since midnight.
fn clock(text: &str) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let hours: u32 = parts.next()?.parse().ok()?;
    let minutes: u32 = parts.next()?.parse().ok()?;
    let seconds: u32 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    // `then`, not `then_some`: the sum must only be computed once the parts are in range (a
    // 224251000-hour clock overflowed, found by the `parse` fuzz target).
    (parts.next().is_none() && hours < 24 && minutes < 60 && seconds < 60)
        .then(|| hours * 3600 + minutes * 60 + seconds)
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c.to_ascii_uppercase(), '*' | '#' | 'A'..='D')
}

/// Whether a node can fail, so an `<Error>` after it makes sense.
fn can_fail(kind: &NodeKind) -> bool {
    !matches!(
        kind,
        NodeKind::Call { .. } | NodeKind::Geo { .. } | NodeKind::Schedule { .. } | NodeKind::Meta { .. }
    )
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

pub(crate) fn parse(source: &str) -> Result<Document, ParseErrors> {
    let mut parser = Parser { source, positions: Positions::new(source), errors: Vec::new() };
    if source.len() > MAX_DOCUMENT_BYTES {
        parser.error(0, format!("the document is {} bytes; at most {MAX_DOCUMENT_BYTES}", source.len()));
        return Err(ParseErrors(parser.errors));
    }
    let Some(root) = read_tree(source, &mut parser) else {
        if parser.errors.is_empty() {
            parser.error(0, "the document is empty: expected <Response>…</Response>".to_owned());
        }
        return Err(ParseErrors(parser.errors));
    };
    if root.key != "response" {
        parser.error(root.pos, format!("the root element must be <Response>, got <{}>", root.name));
        return Err(ParseErrors(parser.errors));
    }
    let attrs = parser.attrs(&root);
    parser.finish_attrs(attrs, &[]);
    let body = parser.block(&root);
    if parser.errors.is_empty() { Ok(Document { body }) } else { Err(ParseErrors(parser.errors)) }
}
