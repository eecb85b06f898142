//! What documents mean: defaults, aliases, both Gather syntaxes, Error attachment, positions,
//! limits, and robustness against mangled input.

use opentact_xml::ast::*;
use opentact_xml::parse;

fn only(xml: &str) -> Node {
    let document = parse(xml).unwrap_or_else(|e| panic!("{xml}\n{e}"));
    assert_eq!(document.body.len(), 1, "{xml}");
    document.body.into_iter().next().expect("one node")
}

#[test]
fn defaults_follow_the_spec() {
    assert_eq!(only("<Response><Pause/></Response>").kind, NodeKind::Pause { length_ms: 1000 });
    let NodeKind::Say(say) = only("<Response><Say>hi</Say></Response>").kind else { panic!("say") };
    assert_eq!(
        (say.lang.as_str(), say.gender, say.loop_count, say.leg),
        ("en-US", Gender::Female, 1, Leg::Aleg)
    );
    let NodeKind::Tone(tone) = only(r#"<Response><Tone hz="350+440"/></Response>"#).kind else {
        panic!("tone")
    };
    assert_eq!(
        (tone.frequencies, tone.timeout_ms, tone.volume_db, tone.loop_count),
        (vec![350, 440], 30_000, 0, 1)
    );
    let NodeKind::Dial(dial) = only("<Response><Dial><To>12223334455</To></Dial></Response>").kind else {
        panic!()
    };
    assert_eq!(dial.timeout_ms, 30_000);
    assert_eq!(only("<Response><Hold/></Response>").kind, NodeKind::Hold { timeout_ms: 300_000 });
    let NodeKind::Callback(cb) = only(r#"<Response><Callback url="https://e.com/x"/></Response>"#).kind
    else {
        panic!()
    };
    assert_eq!((cb.method, cb.body), (Method::Post, true));
    let NodeKind::Curl(curl) = only(r#"<Response><Curl url="https://e.com/x"/></Response>"#).kind else {
        panic!()
    };
    assert_eq!((curl.method, curl.timeout_ms), (Method::Get, 5000));
    assert_eq!(
        only("<Response><Hangup/></Response>").kind,
        NodeKind::Hangup { reason: HangupReason::Normal }
    );
}

#[test]
fn gather_defaults_differ_only_in_the_legacy_finish_key() {
    let NodeKind::Gather(canonical) = only("<Response><Gather><Say>x</Say></Gather></Response>").kind else {
        panic!()
    };
    assert_eq!(
        (
            canonical.max_digits,
            canonical.finish_key,
            canonical.timeout_ms,
            canonical.attempts,
            canonical.inter_digit_timeout_ms
        ),
        (1, Some('#'), 10_000, 1, 5000)
    );
    let NodeKind::Gather(legacy) =
        only(r#"<Response><Gather numDigits="1"><Say>x</Say></Gather></Response>"#).kind
    else {
        panic!()
    };
    assert_eq!((legacy.syntax, legacy.finish_key), (GatherSyntax::Legacy, Some('*')));
}

fn strip(mut gather: Gather) -> Gather {
    gather.syntax = GatherSyntax::Canonical;
    for branch in &mut gather.branches {
        branch.span = Span::default();
        strip_block(&mut branch.body);
    }
    if let Some(default) = &mut gather.default {
        strip_block(default);
    }
    gather
}

fn strip_block(block: &mut Block) {
    for node in block {
        node.span = Span::default();
        if let Some(error) = &mut node.on_error {
            strip_block(error);
        }
    }
}

#[test]
fn both_gather_syntaxes_build_the_same_gather() {
    let canonical = r##"<Response>
      <Gather dtmf_length="2" dtmf_stop="#" timeout="7000" attempts="3" url="https://e.com/d" method="GET">
        <Say>Enter two digits.</Say><Pause length="500"/>
        <DTMF value="11"><Say>Eleven.</Say></DTMF>
        <DTMF value="42"><Say>Forty-two.</Say></DTMF>
        <Default><Say>Nothing.</Say></Default>
        <Error><Say>Unknown.</Say></Error>
      </Gather></Response>"##;
    let legacy = r##"<Response><Gather numDigits="2" finishOnKey="#" timeout="7000" attempts="3" callback="https://e.com/d" method="get">
        <Say>Enter two digits.</Say>
        <Pause length="500"/>
        <Switch>
          <Case dtmf="11"><Say>Eleven.</Say></Case>
          <Case dtmf="42"><Say>Forty-two.</Say></Case>
          <Default><Say>Nothing.</Say></Default>
          <Error><Say>Unknown.</Say></Error>
        </Switch>
      </Gather></Response>"##;
    let (a, b) = (only(canonical), only(legacy));
    let (NodeKind::Gather(ga), NodeKind::Gather(gb)) = (a.kind, b.kind) else { panic!("gathers") };
    assert_eq!((ga.syntax, gb.syntax), (GatherSyntax::Canonical, GatherSyntax::Legacy));
    assert_eq!(strip(*ga), strip(*gb));
    let (mut ea, mut eb) = (a.on_error.expect("error"), b.on_error.expect("error"));
    strip_block(&mut ea);
    strip_block(&mut eb);
    assert_eq!(ea, eb);
}

#[test]
fn error_attaches_to_the_verb_before_it_or_its_parent() {
    let document = parse(
        r#"<Response>
          <Dial><To>1</To></Dial>
          <Error><Say>sibling</Say></Error>
          <Callback url="https://e.com"><Error><Say>child</Say></Error></Callback>
          <Say>after</Say>
        </Response>"#,
    )
    .expect("valid");
    assert_eq!(document.body.len(), 3, "Error is not a node of its own");
    assert!(document.body[0].on_error.is_some());
    assert!(document.body[1].on_error.is_some());
    assert!(document.body[2].on_error.is_none());
}

const OTHER_CALL: &str = "5f0c1e3a-8d6b-4c2e-9a71-0b4f3d2e1c9a";

/// The errors of a document that must be refused: (line, column, message).
fn refused(xml: &str) -> Vec<(u32, u32, String)> {
    let errors = parse(xml).expect_err(xml);
    errors.errors().iter().map(|e| (e.line, e.column, e.message.clone())).collect()
}

#[test]
fn bridge_takes_the_other_calls_id_and_a_tag() {
    let node = only(&format!(r#"<Response><Bridge call=" {OTHER_CALL} " tag="join"/></Response>"#));
    assert_eq!(node.kind, NodeKind::Bridge { call: OTHER_CALL.to_owned() }, "the id is trimmed");
    assert_eq!(node.tag.as_deref(), Some("join"));
    assert!(node.on_error.is_none());
    let long = "a".repeat(opentact_xml::MAX_BRIDGE_CALL_BYTES);
    let node = only(&format!(r#"<response><BRIDGE call="{long}"></BRIDGE></response>"#));
    assert_eq!(node.kind, NodeKind::Bridge { call: long }, "case-insensitive, limit inclusive");
}

#[test]
fn bridge_error_attaches_as_a_child_or_the_next_sibling() {
    let document = parse(&format!(
        r#"<Response>
          <Bridge call="{OTHER_CALL}">
            <Error><Say>That call has ended.</Say></Error>
          </Bridge>
          <Bridge call="{OTHER_CALL}"/>
          <Error><Say>sibling</Say></Error>
          <Say>after</Say>
        </Response>"#
    ))
    .expect("valid");
    assert_eq!(document.body.len(), 3, "Error is not a node of its own");
    let child = document.body[0].on_error.as_ref().expect("child <Error>");
    let NodeKind::Say(say) = &child[0].kind else { panic!("say in the handler: {child:?}") };
    assert_eq!(say.text, "That call has ended.");
    assert!(document.body[1].on_error.is_some(), "a sibling <Error> attaches too");
    assert!(document.body[2].on_error.is_none());

    let twice =
        refused(&format!(r#"<Response><Bridge call="{OTHER_CALL}"><Error/><Error/></Bridge></Response>"#));
    assert!(twice[0].2.contains("only one <Error>"), "{twice:?}");
    let both =
        refused(&format!(r#"<Response><Bridge call="{OTHER_CALL}"><Error/></Bridge><Error/></Response>"#));
    assert!(both[0].2.contains("only one <Error>"), "{both:?}");
}

#[test]
fn bridge_without_call_says_what_to_add_and_where() {
    let errors = refused("<Response>\n  <Say>hi</Say>\n  <Bridge tag=\"x\"/>\n</Response>");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (line, column, message) = &errors[0];
    assert_eq!((*line, *column), (3, 3), "the <Bridge> element");
    assert_eq!(message, r#"<Bridge> needs call="…" with the id of another live call of the account"#);
}

#[test]
fn bridge_with_an_empty_call_is_refused_at_the_attribute() {
    for value in ["", "   "] {
        let errors = refused(&format!("<Response>\n<Bridge tag=\"t\" call=\"{value}\"/></Response>"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (line, column, message) = &errors[0];
        assert_eq!((*line, *column), (2, 17), "the call attribute");
        assert!(message.starts_with("<Bridge> call must not be empty"), "{message}");
    }
    let long = "a".repeat(opentact_xml::MAX_BRIDGE_CALL_BYTES + 1);
    let errors = refused(&format!(r#"<Response><Bridge call="{long}"/></Response>"#));
    assert!(errors[0].2.contains("call is 257 bytes; at most 256"), "{errors:?}");
}

#[test]
fn bridge_refuses_unknown_attributes_and_children() {
    let errors = refused(&format!(r#"<Response><Bridge call="{OTHER_CALL}" timeout="5000"/></Response>"#));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].2, r#"<Bridge> has no attribute "timeout"; allowed: call, tag"#);
    assert_eq!(errors[0].1, 63, "the column of the attribute");

    // Every mistake of one element is reported at once.
    let errors = refused(r#"<Response><Bridge callId="x"/></Response>"#);
    let messages: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(errors.len(), 2, "{messages:?}");
    assert!(messages[0].contains("needs call=\"…\""), "{messages:?}");
    assert!(messages[1].contains("no attribute \"callId\""), "{messages:?}");

    let errors =
        refused(&format!(r#"<Response><Bridge call="{OTHER_CALL}"><Say>x</Say></Bridge></Response>"#));
    assert!(errors[0].2.contains("<Bridge> cannot contain <Say>; it can only contain <Error>"), "{errors:?}");
    let errors =
        refused(&format!(r#"<Response><Bridge call="{OTHER_CALL}">{OTHER_CALL}</Bridge></Response>"#));
    assert!(errors[0].2.contains("cannot contain text; give the other call's id as call="), "{errors:?}");

    let errors = refused("<Response><Bridges call=\"x\"/></Response>");
    assert!(
        errors[0].2.contains("Dial, Bridge, Hold"),
        "the unknown-element message lists Bridge: {errors:?}"
    );
}

#[test]
fn element_names_are_case_insensitive_and_aliases_work() {
    let document = parse(
        r#"<response><SAY>a</SAY><callback>https://e.com/x</callback><Scheduler dow="sat"><say>b</say></Scheduler>
           <Dial><Number>1</Number><Sip>sip:a@b</Sip><To>alice@acme.sip.example</To></Dial></response>"#,
    )
    .expect("valid");
    let NodeKind::Dial(dial) = &document.body[3].kind else { panic!("dial") };
    assert_eq!(
        dial.targets,
        [
            Target::Number("1".into()),
            Target::SipUri("sip:a@b".into()),
            Target::User("alice@acme.sip.example".into())
        ]
    );
}

#[test]
fn positions_are_line_and_column() {
    let document = parse("<Response>\n  <Say>a</Say>\n    <Pause/>\n</Response>").expect("valid");
    assert_eq!(document.body[0].span, Span { line: 2, column: 3 });
    assert_eq!(document.body[1].span, Span { line: 3, column: 5 });
    let errors = parse("<Response>\n\n   <Nope/>\n   <Say/>\n</Response>").expect_err("two errors");
    let positions: Vec<(u32, u32)> = errors.errors().iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(positions, [(3, 4), (4, 4)], "every error is reported: {errors}");
}

#[test]
fn limits_are_enforced() {
    let deep = format!(
        "<Response>{}{}</Response>",
        "<Call field=\"to\" value=\"1\">".repeat(40),
        "</Call>".repeat(40)
    );
    assert!(parse(&deep).expect_err("too deep").to_string().contains("nest deeper"));
    let big = format!("<Response><Say>{}</Say></Response>", "a".repeat(opentact_xml::MAX_DOCUMENT_BYTES));
    assert!(parse(&big).expect_err("too big").to_string().contains("at most"));
    let long = format!("<Response><Say>{}</Say></Response>", "a".repeat(opentact_xml::MAX_TEXT_BYTES + 1));
    assert!(parse(&long).expect_err("too long").to_string().contains("bytes; at most"));
    let many = format!("<Response><Dial>{}</Dial></Response>", "<To>1</To>".repeat(11));
    assert!(parse(&many).expect_err("too many").to_string().contains("at most 10 targets"));
}

#[test]
fn schedule_windows_cross_midnight() {
    let NodeKind::Schedule { schedule, .. } =
        only(r#"<Response><Schedule dow="fri" time="22:00:00-06:00:00"><Say>x</Say></Schedule></Response>"#)
            .kind
    else {
        panic!()
    };
    assert!(schedule.contains(Weekday::Fri, 23 * 3600));
    assert!(schedule.contains(Weekday::Sat, 3600), "Saturday 01:00 is Friday night");
    assert!(!schedule.contains(Weekday::Fri, 3600), "Friday 01:00 is Thursday night");
    assert!(!schedule.contains(Weekday::Fri, 12 * 3600));
}

#[test]
fn schedule_times_out_of_range_are_refused_not_overflowed() {
    // Found by the `parse` fuzz target: hours × 3600 was computed before the range check and
    // overflowed (a panic in debug builds).
    for time in ["020:224251000:6-00:00", "4294967295:00-01:00", "01:00-00:4294967295:00", "24:00-01:00"] {
        let xml = format!(r#"<Response><Schedule time="{time}"><Say>x</Say></Schedule></Response>"#);
        let error = parse(&xml).expect_err("an impossible clock");
        assert!(error.to_string().contains("time must be HH:MM:SS-HH:MM:SS"), "{time}: {error}");
    }
}

/// A fixed-seed xorshift, so the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mangled_documents_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good");
    let seeds: Vec<String> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    let pieces = [
        "<",
        ">",
        "/>",
        "</",
        "\"",
        "&",
        "&amp;",
        "<Gather>",
        "<Error/>",
        "x=\"1\"",
        "\u{0}",
        "é",
        "<![CDATA[",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut refused = 0;
    for round in 0..4000 {
        let seed = &seeds[round % seeds.len()];
        let mut bytes: Vec<char> = seed.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes.truncate(at),
                1 => {
                    let piece = pieces[rng.below(pieces.len())];
                    bytes.splice(at..at, piece.chars());
                }
                _ => {
                    if at < bytes.len() {
                        bytes.remove(at);
                    }
                }
            }
        }
        let text: String = bytes.into_iter().collect();
        if parse(&text).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 1000, "most mangled documents are refused ({refused})");
}
