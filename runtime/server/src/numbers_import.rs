//! `opentact numbers import <csv>`: load the operator's number inventory.

use std::process::ExitCode;

use anyhow::Context;
use opentact_store::{NumberInventory, NumberRepo};

use crate::cli::ImportArgs;
use crate::config::Config;

/// Most numbers one import takes (a larger inventory is split into files).
pub const MAX_IMPORT_ROWS: usize = 1_000_000;

/// One parsed line, or why it is invalid.
fn parse_line(line: &str, now: chrono::DateTime<chrono::Utc>) -> Result<NumberInventory, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() > 4 {
        return Err(format!("{} fields; expected tn,state,voice,sms", fields.len()));
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let tn_text = field(0).trim_start_matches('+');
    if !(11..=15).contains(&tn_text.len()) || !tn_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("tn {:?}: 11 to 15 digits with the country code, e.g. 12025550100", field(0)));
    }
    let tn: i64 = tn_text.parse().map_err(|_| format!("tn {tn_text:?} is out of range"))?;
    let state = match field(1) {
        "" => None,
        state if state.len() == 2 && state.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(state.to_ascii_uppercase())
        }
        other => return Err(format!("state {other:?}: a two-letter code such as DC")),
    };
    let flag = |i: usize, name: &str| match field(i).to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!("{name} {other:?}: true or false")),
    };
    // NANP numbers: the area code is the three digits after the country code 1.
    let npa =
        if tn_text.len() == 11 && tn_text.starts_with('1') { tn_text[1..4].parse().unwrap_or(0) } else { 0 };
    Ok(NumberInventory {
        tn,
        npa,
        state,
        voice: flag(2, "voice")?,
        sms: flag(3, "sms")?,
        available: true,
        created_on: now,
        modified_on: now,
    })
}

/// Parse a whole file: the numbers, or every invalid line as `line N: reason`.
pub fn parse_csv(text: &str) -> Result<Vec<NumberInventory>, Vec<String>> {
    let now = chrono::Utc::now();
    let mut numbers = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || (index == 0 && line.to_ascii_lowercase().starts_with("tn"))
        {
            continue;
        }
        match parse_line(line, now) {
            Ok(number) => numbers.push(number),
            Err(reason) => errors.push(format!("line {}: {reason}", index + 1)),
        }
    }
    if numbers.len() > MAX_IMPORT_ROWS {
        errors.push(format!("{} numbers: at most {MAX_IMPORT_ROWS} per import", numbers.len()));
    }
    if errors.is_empty() { Ok(numbers) } else { Err(errors) }
}

/// `opentact numbers import`.
pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let numbers = match parse_csv(&text) {
        Ok(numbers) => numbers,
        Err(errors) => {
            for error in &errors {
                eprintln!("{}: {error}", args.file.display());
            }
            eprintln!("nothing imported: fix the {} invalid line(s)", errors.len());
            return Ok(ExitCode::from(crate::flow_cmd::EXIT_INVALID_INPUT));
        }
    };
    let store = crate::provision::open_store(&config).await?;
    for chunk in numbers.chunks(1000) {
        store.upsert_numbers(chunk).await.context("writing the inventory")?;
    }
    store.close().await;
    println!("imported {} numbers from {}", numbers.len(), args.file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn a_valid_file_parses_with_defaults() {
        let numbers =
            parse_csv("tn,state,voice,sms\n12025550100,dc,,\n+13125550101,IL,true,false\n\n# comment\n")
                .expect("valid");
        assert_eq!(numbers.len(), 2);
        assert_eq!(
            (numbers[0].tn, numbers[0].npa, numbers[0].state.as_deref()),
            (12_025_550_100, 202, Some("DC"))
        );
        assert!(numbers[0].voice && numbers[0].sms);
        assert_eq!((numbers[1].npa, numbers[1].sms), (312, false));
    }

    #[test]
    fn every_invalid_line_is_reported_with_its_number() {
        let errors =
            parse_csv("tn,state\n2025550100,DC\n12025550100,District\n12025550101,DC,maybe\n12025550102\n")
                .expect_err("invalid lines");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("line 2: tn"), "{errors:?}");
        assert!(errors[1].starts_with("line 3: state"), "{errors:?}");
        assert!(errors[2].starts_with("line 4: voice"), "{errors:?}");
    }
}
