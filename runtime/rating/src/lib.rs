//! Rating: what a call or a message costs.
//!
//! The operator loads a rating deck, a CSV file with one row per destination prefix:
//!
//! ```text
//! prefix,per_minute,per_sms,increment,description
//! 1,0.0100,0.0040,60/6,United States and Canada
//! 1242,0.1800,0.0500,60/60,Bahamas
//! 44,0.0200,,1/1,United Kingdom
//! ```
//!
//! A number is rated by the row of its longest matching prefix (`12425551234` by `1242`, not
//! `1`). Prices are in the platform's currency and are kept as integer micro-units (1.000000 =
//! 1 000 000), so sums never drift. `increment` is how calls are billed: `60/6` is a first
//! block of 60 seconds, then blocks of 6; a call of 61 s is billed 66 s. An empty `per_sms`
//! means messages to that prefix are not rated (they cost nothing).
//!
//! Lookups walk a ten-way trie of the prefixes' digits, so a lookup costs one array step per
//! digit of the number, whatever the size of the deck (`benches/lookup.rs`).

use std::fmt;

/// Most rows a deck may have.
pub const MAX_ROWS: usize = 5_000_000;

/// Longest prefix, digits (E.164 numbers have at most 15).
pub const MAX_PREFIX_DIGITS: usize = 15;

/// Micro-units in one unit of currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// How a call's seconds are billed: a first block, then blocks of `increment_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment {
    /// The first block: a call that lasts at all is billed at least this long.
    pub initial_secs: u32,
    /// Each block after the first.
    pub increment_secs: u32,
}

impl Increment {
    /// Per-second billing.
    pub const PER_SECOND: Increment = Increment { initial_secs: 1, increment_secs: 1 };

    /// The seconds billed for a call that lasted `secs` (already rounded up to whole seconds).
    pub fn billed_secs(self, secs: u64) -> u64 {
        let initial = u64::from(self.initial_secs);
        let step = u64::from(self.increment_secs);
        match secs {
            0 => 0,
            secs if secs <= initial => initial,
            secs => initial + (secs - initial).div_ceil(step) * step,
        }
    }

    /// The longest billable length (seconds) not longer than `secs`: where a call must end
    /// so as to be billed no more than `secs`. 0 when even the first block is longer.
    pub fn floor_secs(self, secs: u64) -> u64 {
        let initial = u64::from(self.initial_secs);
        let step = u64::from(self.increment_secs);
        if secs < initial { 0 } else { initial + (secs - initial) / step * step }
    }
}

impl fmt::Display for Increment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.initial_secs, self.increment_secs)
    }
}

/// One row of the deck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// The digits it matches (country code first).
    pub prefix: String,
    /// Price of a minute of a call, micro-units.
    pub per_minute_micros: i64,
    /// Price of one SMS part, micro-units; `None` when messages are not rated.
    pub per_sms_micros: Option<i64>,
    pub increment: Increment,
    /// The operator's label (a country, a carrier), shown in the CDR.
    pub description: String,
}

/// What a call or a message costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Seconds billed (calls; 0 for a message).
    pub billed_secs: u64,
    /// Micro-units.
    pub price_micros: i64,
}

impl Rate {
    /// The price of `billed_secs` seconds at the per-minute price, rounded up to the micro-unit.
    fn price_of_secs(&self, billed_secs: u64) -> i64 {
        let micros = i128::from(self.per_minute_micros) * i128::from(billed_secs);
        i64::try_from((micros + 59) / 60).unwrap_or(i64::MAX)
    }

    /// What a call of `duration_ms` (from its answer to its end) costs. An unanswered call
    /// lasts 0 ms and costs nothing.
    pub fn call_charge(&self, duration_ms: u64) -> Charge {
        let billed_secs = self.increment.billed_secs(duration_ms.div_ceil(1000));
        Charge { billed_secs, price_micros: self.price_of_secs(billed_secs) }
    }

    /// The price of a call's first block: what an account must have to start one.
    pub fn first_block_micros(&self) -> i64 {
        self.price_of_secs(u64::from(self.increment.initial_secs))
    }

    /// How long a call can last, in seconds from its answer, on `available_micros`; `None` when
    /// minutes cost nothing. 0 when not even the first block is affordable.
    pub fn affordable_secs(&self, available_micros: i64) -> Option<u64> {
        if self.per_minute_micros <= 0 {
            return None;
        }
        if available_micros <= 0 {
            return Some(0);
        }
        let secs = i128::from(available_micros) * 60 / i128::from(self.per_minute_micros);
        Some(self.increment.floor_secs(u64::try_from(secs).unwrap_or(u64::MAX)))
    }

    /// What a message of `parts` SMS parts costs; `None` when messages to the prefix are not
    /// rated.
    pub fn sms_charge(&self, parts: u32) -> Option<Charge> {
        self.per_sms_micros.map(|per_part| Charge {
            billed_secs: 0,
            price_micros: per_part.saturating_mul(i64::from(parts)),
        })
    }
}

/// Why a deck could not be read. Line numbers count from 1, the header included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeckError {
    #[error(
        "the rating deck is empty: its first line must be a header such as prefix,per_minute,per_sms,increment"
    )]
    Empty,
    #[error(
        "line 1: the header has no {0:?} column (columns: prefix, per_minute, per_sms, increment, description)"
    )]
    MissingColumn(&'static str),
    #[error("line 1: unknown column {0:?} (columns: prefix, per_minute, per_sms, increment, description)")]
    UnknownColumn(String),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the rating deck has more than {MAX_ROWS} rows")]
    TooLarge,
}

/// An amount in micro-units, parsed from a decimal such as `0.0125` (at most six decimals,
/// not negative).
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || !(fraction.is_empty() || digits(fraction)) {
        return Err(format!("{text:?} is not an amount such as 0.0125"));
    }
    if fraction.len() > 6 {
        return Err(format!("{text:?} has more than six decimals (prices are kept in micro-units)"));
    }
    let units: i64 =
        units.parse().ok().filter(|u| *u < 1_000_000_000).ok_or_else(|| format!("{text:?} is too large"))?;
    let fraction_micros: i64 =
        if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().unwrap_or(0) };
    Ok(units * MICROS_PER_UNIT + fraction_micros)
}

/// Micro-units as a decimal with six places (`-1.250000`), how the API shows amounts.
pub fn format_amount(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let per_unit = MICROS_PER_UNIT.unsigned_abs();
    format!("{sign}{}.{:06}", abs / per_unit, abs % per_unit)
}

/// An amount with its currency, as refusals and the ledger write it (`0.004000 USD`).
pub fn format_money(micros: i64, currency: &str) -> String {
    format!("{} {currency}", format_amount(micros))
}

/// An increment such as `60/6` (first block / next blocks, seconds; `6` alone is `6/6`, empty
/// is `60/60`).
pub fn parse_increment(text: &str) -> Result<Increment, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Increment { initial_secs: 60, increment_secs: 60 });
    }
    let (initial, step) = text.split_once('/').unwrap_or((text, text));
    let secs = |s: &str| s.trim().parse::<u32>().ok().filter(|n| (1..=3600).contains(n));
    match (secs(initial), secs(step)) {
        (Some(initial_secs), Some(increment_secs)) => Ok(Increment { initial_secs, increment_secs }),
        _ => Err(format!("increment {text:?}: first block/next blocks in seconds, 1 to 3600, such as 60/6")),
    }
}

/// No rate at this node (`u32::MAX`), else an index into [`Deck::rates`].
const NONE: u32 = u32::MAX;

/// A node of the prefix trie: the next node per digit, and the rate of the prefix ending here.
#[derive(Debug, Clone, Copy)]
struct Node {
    next: [u32; 10],
    rate: u32,
}

impl Node {
    const EMPTY: Node = Node { next: [NONE; 10], rate: NONE };
}

/// A loaded rating deck.
#[derive(Debug, Clone)]
pub struct Deck {
    nodes: Vec<Node>,
    rates: Vec<Rate>,
}

impl Default for Deck {
    fn default() -> Self {
        Deck { nodes: vec![Node::EMPTY], rates: Vec::new() }
    }
}

/// The columns of a deck's header.
#[derive(Debug, Default)]
struct Columns {
    prefix: Option<usize>,
    per_minute: Option<usize>,
    per_sms: Option<usize>,
    increment: Option<usize>,
    description: Option<usize>,
}

impl Deck {
    /// Read a deck from its CSV text (see the crate's documentation). Every row is checked;
    /// the first bad one is named with its line.
    pub fn from_csv(text: &str) -> Result<Deck, DeckError> {
        let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
        let (_, header) = lines.next().ok_or(DeckError::Empty)?;
        let mut columns = Columns::default();
        for (index, name) in header.split(',').map(|name| name.trim().to_ascii_lowercase()).enumerate() {
            let slot = match name.as_str() {
                "prefix" => &mut columns.prefix,
                "per_minute" => &mut columns.per_minute,
                "per_sms" => &mut columns.per_sms,
                "increment" => &mut columns.increment,
                "description" => &mut columns.description,
                _ => return Err(DeckError::UnknownColumn(name)),
            };
            *slot = Some(index);
        }
        let prefix_column = columns.prefix.ok_or(DeckError::MissingColumn("prefix"))?;
        let per_minute_column = columns.per_minute.ok_or(DeckError::MissingColumn("per_minute"))?;
        let mut deck = Deck::default();
        for (index, line) in lines {
            let line_number = index + 1;
            let fail = |reason: String| DeckError::Line { line: line_number, reason };
            if deck.rates.len() >= MAX_ROWS {
                return Err(DeckError::TooLarge);
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let field = |column: Option<usize>| column.and_then(|i| fields.get(i).copied()).unwrap_or("");
            let prefix = field(Some(prefix_column)).trim_start_matches('+');
            if prefix.is_empty()
                || prefix.len() > MAX_PREFIX_DIGITS
                || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(fail(format!(
                    "prefix {:?}: 1 to {MAX_PREFIX_DIGITS} digits, country code first",
                    field(Some(prefix_column))
                )));
            }
            let per_minute_micros =
                parse_amount(field(Some(per_minute_column))).map_err(|e| fail(format!("per_minute: {e}")))?;
            let per_sms_micros = match field(columns.per_sms) {
                "" => None,
                text => Some(parse_amount(text).map_err(|e| fail(format!("per_sms: {e}")))?),
            };
            let increment = parse_increment(field(columns.increment)).map_err(fail)?;
            let rate = Rate {
                prefix: prefix.to_owned(),
                per_minute_micros,
                per_sms_micros,
                increment,
                description: field(columns.description).to_owned(),
            };
            deck.insert(rate).map_err(|existing| {
                fail(format!("prefix {prefix} is already rated (line of {:?})", existing.description))
            })?;
        }
        Ok(deck)
    }

    /// Add a rate; the rate already there when its prefix is taken.
    fn insert(&mut self, rate: Rate) -> Result<(), Rate> {
        let mut node = 0usize;
        for digit in rate.prefix.bytes().map(|b| usize::from(b - b'0')) {
            let next = self.nodes[node].next[digit];
            node = if next == NONE {
                let created = u32::try_from(self.nodes.len()).map_err(|_| rate.clone())?;
                self.nodes.push(Node::EMPTY);
                self.nodes[node].next[digit] = created;
                created as usize
            } else {
                next as usize
            };
        }
        if self.nodes[node].rate != NONE {
            return Err(self.rates[self.nodes[node].rate as usize].clone());
        }
        self.nodes[node].rate = u32::try_from(self.rates.len()).map_err(|_| rate.clone())?;
        self.rates.push(rate);
        Ok(())
    }

    /// The rate of `number` (digits, country code first, a leading `+` allowed): the row with
    /// the longest prefix of it. `None` when no prefix matches or it is not a number.
    pub fn lookup(&self, number: &str) -> Option<&Rate> {
        let digits = number.strip_prefix('+').unwrap_or(number).as_bytes();
        if digits.is_empty() || digits.len() > MAX_PREFIX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut node = &self.nodes[0];
        let mut best = NONE;
        for digit in digits {
            let next = node.next[usize::from(digit - b'0')];
            if next == NONE {
                break;
            }
            node = &self.nodes[next as usize];
            if node.rate != NONE {
                best = node.rate;
            }
        }
        (best != NONE).then(|| &self.rates[best as usize])
    }

    /// How many rows the deck has.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Whether the deck has no rows.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECK: &str = "prefix,per_minute,per_sms,increment,description\n\
                        1,0.0100,0.0040,60/6,United States and Canada\n\
                        1242,0.1800,0.0500,60/60,Bahamas\n\
                        \n\
                        +44,0.02,,1/1,United Kingdom\n";

    #[test]
    fn the_longest_prefix_rates_a_number() {
        let deck = Deck::from_csv(DECK).expect("deck");
        assert_eq!(deck.len(), 3);
        assert_eq!(deck.lookup("12425551234").map(|r| r.prefix.as_str()), Some("1242"));
        assert_eq!(deck.lookup("+12025550100").map(|r| r.prefix.as_str()), Some("1"));
        assert_eq!(deck.lookup("1242").map(|r| r.prefix.as_str()), Some("1242"));
        assert_eq!(deck.lookup("124").map(|r| r.prefix.as_str()), Some("1"));
        assert_eq!(deck.lookup("442071234567").map(|r| r.per_sms_micros), Some(None));
        assert_eq!(deck.lookup("33123456789"), None, "no prefix matches");
        assert_eq!(deck.lookup("alice"), None, "not a number");
        assert_eq!(deck.lookup(""), None);
        assert_eq!(deck.lookup("1234567890123456"), None, "longer than E.164");
    }

    #[test]
    fn calls_are_billed_in_the_decks_increments() {
        let deck = Deck::from_csv(DECK).expect("deck");
        let us = deck.lookup("12025550100").expect("rated");
        assert_eq!(us.per_minute_micros, 10_000);
        assert_eq!(us.call_charge(0), Charge { billed_secs: 0, price_micros: 0 }, "unanswered");
        assert_eq!(us.call_charge(1), Charge { billed_secs: 60, price_micros: 10_000 }, "first block");
        assert_eq!(us.call_charge(60_000).billed_secs, 60);
        // 60.001 s is 61 s, billed as 60 + one block of 6.
        assert_eq!(us.call_charge(60_001), Charge { billed_secs: 66, price_micros: 11_000 });
        assert_eq!(us.call_charge(72_000).billed_secs, 72);
        let uk = deck.lookup("442071234567").expect("rated");
        // Per second: 2.4 s is 3 s; 0.02/min for 3 s is 1 000 micro-units.
        assert_eq!(uk.call_charge(2_400), Charge { billed_secs: 3, price_micros: 1_000 });
        // Rounded up to the micro-unit: 1 s at 0.02/min is 333.33….
        assert_eq!(uk.call_charge(1_000).price_micros, 334);
    }

    #[test]
    fn what_a_balance_affords() {
        let deck = Deck::from_csv(DECK).expect("deck");
        let us = deck.lookup("12025550100").expect("rated");
        assert_eq!(us.first_block_micros(), 10_000);
        assert_eq!(us.affordable_secs(9_999), Some(0), "not even the first minute");
        assert_eq!(us.affordable_secs(10_000), Some(60));
        // 0.0119 affords 71.4 s: the first minute and one 6 s block (66), not two (72).
        assert_eq!(us.affordable_secs(11_900), Some(66));
        assert_eq!(us.call_charge(66_000).price_micros, 11_000, "what it affords it can pay");
        assert_eq!(us.affordable_secs(-5), Some(0));
        let free = Deck::from_csv("prefix,per_minute\n1,0\n").expect("deck");
        assert_eq!(free.lookup("1202").expect("rated").affordable_secs(0), None, "free minutes");
    }

    #[test]
    fn messages_are_rated_per_part() {
        let deck = Deck::from_csv(DECK).expect("deck");
        let us = deck.lookup("12025550100").expect("rated");
        assert_eq!(us.sms_charge(3), Some(Charge { billed_secs: 0, price_micros: 12_000 }));
        assert_eq!(deck.lookup("442071234567").expect("rated").sms_charge(1), None);
    }

    #[test]
    fn amounts_are_micro_units() {
        assert_eq!(parse_amount("0.0125"), Ok(12_500));
        assert_eq!(parse_amount("12"), Ok(12_000_000));
        assert_eq!(parse_amount("1.000001"), Ok(1_000_001));
        assert!(parse_amount("0.0000001").unwrap_err().contains("six decimals"));
        assert!(parse_amount("-1").is_err());
        assert!(parse_amount("1e3").is_err());
        assert!(parse_amount(".5").is_err());
        assert!(parse_amount("99999999999").unwrap_err().contains("too large"));
        assert_eq!(format_amount(12_500), "0.012500");
        assert_eq!(format_amount(-1_250_000), "-1.250000");
        assert_eq!(format_amount(0), "0.000000");
    }

    #[test]
    fn a_bad_deck_is_refused_with_its_line() {
        let error = |text: &str| Deck::from_csv(text).expect_err("refused").to_string();
        assert!(error("").contains("empty"));
        assert!(error("prefix,per_sms\n1,0.1\n").contains("per_minute"));
        assert!(error("prefix,per_minute,rate\n").contains("unknown column \"rate\""));
        assert_eq!(
            error("prefix,per_minute\n1,0.01\n1x,0.02\n"),
            "line 3: prefix \"1x\": 1 to 15 digits, country code first"
        );
        assert!(error("prefix,per_minute\n1,abc\n").starts_with("line 2: per_minute"));
        assert!(error("prefix,per_minute,increment\n1,0.1,60/0\n").contains("increment \"60/0\""));
        assert!(error("prefix,per_minute,description\n1,0.1,US\n1,0.2,again\n").contains("already rated"));
        let default = Deck::from_csv("prefix,per_minute\n1,0.1\n").expect("deck");
        assert_eq!(default.lookup("1").expect("rated").increment.to_string(), "60/60");
    }
}
