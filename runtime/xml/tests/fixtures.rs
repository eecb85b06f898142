//! The fixture corpus: every document in fixtures/good parses; every document in fixtures/bad
//! is refused with the error its `.expected` file names (a substring of the error text).

use std::path::Path;

fn corpus(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect()
}

#[test]
fn good_documents_parse() {
    let good = corpus("good");
    assert!(good.len() >= 20, "the good corpus is there");
    for (name, text) in good {
        if let Err(errors) = opentact_xml::parse(&text) {
            panic!("{name} should parse:\n{errors}");
        }
    }
}

#[test]
fn bad_documents_are_refused_with_their_message() {
    let bad = corpus("bad");
    assert!(bad.len() >= 40, "the bad corpus is there");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
    for (name, text) in bad {
        let expected =
            std::fs::read_to_string(dir.join(name.replace(".xml", ".expected"))).expect("expected file");
        let expected = expected.trim();
        match opentact_xml::parse(&text) {
            Ok(_) => panic!("{name} should be refused"),
            Err(errors) => {
                let message = errors.to_string();
                assert!(message.contains(expected), "{name}: expected {expected:?} in:\n{message}");
                assert!(message.starts_with("line "), "{name}: errors carry a position: {message}");
            }
        }
    }
}
