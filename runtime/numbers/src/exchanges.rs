//! The operator's NPA-NXX data: what the built-in area-code data does not know — the county,
//! rate center, line type and carrier of each exchange (NPA-NXX), or of each thousands-block
//! of it (NPA-NXX-X), as the operator's data provider delivers them.
//!
//! A CSV file with a header; `npa` and `nxx` are required, the other columns optional:
//!
//! ```text
//! npa,nxx,block,state,county,rate_center,time_zone,line_type,carrier,ocn
//! 202,555,,DC,District of Columbia,WASHINGTON,America/New_York,landline,Verizon,9206
//! 202,555,1,DC,District of Columbia,WASHINGTON,America/New_York,mobile,T-Mobile,6529
//! ```
//!
//! A number is described by its thousands-block row when there is one (`block` is the digit
//! after the NXX), else by its exchange's row (`block` empty). The server keeps the rows in
//! its database (`opentact admin telecom import`) and installs them
//! ([`crate::install_exchanges`]); [`crate::lookup`] consults them before the area-code data.

use std::collections::HashMap;

/// Most rows the data may have (the whole NANP has under a million thousands-blocks).
pub const MAX_ROWS: usize = 2_000_000;

/// What the data says of an exchange or a block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Two-letter state or province code.
    pub state: Option<String>,
    pub county: Option<String>,
    pub rate_center: Option<String>,
    /// IANA time zone.
    pub time_zone: Option<String>,
    /// `landline`, `mobile`, `voip`, `toll_free`, … as the data names it.
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    /// The carrier's Operating Company Number.
    pub ocn: Option<String>,
}

/// Why the data could not be read; lines count from 1, the header included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("the NPA-NXX data is empty: its first line must be a header such as npa,nxx,block,state,county")]
    Empty,
    #[error("line 1: the header has no {0:?} column")]
    MissingColumn(&'static str),
    #[error(
        "line 1: unknown column {0:?} (columns: npa, nxx, block, state, county, rate_center, time_zone, line_type, carrier, ocn)"
    )]
    UnknownColumn(String),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the NPA-NXX data has more than {MAX_ROWS} rows")]
    TooLarge,
}

/// An exchange (NPA, NXX) or one of its thousands-blocks (NPA, NXX, the digit after the NXX).
pub type ExchangeKey = (u16, u16, Option<u8>);

/// The loaded data: rows by (NPA, NXX, block).
#[derive(Debug, Clone, Default)]
pub struct Exchanges {
    rows: HashMap<ExchangeKey, Exchange>,
}

const COLUMNS: [&str; 10] =
    ["npa", "nxx", "block", "state", "county", "rate_center", "time_zone", "line_type", "carrier", "ocn"];

impl Exchanges {
    /// Read the CSV text (see the module's documentation); the first bad row is named.
    pub fn from_csv(text: &str) -> Result<Self, ExchangeError> {
        let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
        let (_, header) = lines.next().ok_or(ExchangeError::Empty)?;
        let mut index: [Option<usize>; COLUMNS.len()] = [None; COLUMNS.len()];
        for (position, name) in header.split(',').map(|n| n.trim().to_ascii_lowercase()).enumerate() {
            let column = COLUMNS.iter().position(|c| *c == name).ok_or(ExchangeError::UnknownColumn(name))?;
            index[column] = Some(position);
        }
        for required in [0, 1] {
            if index[required].is_none() {
                return Err(ExchangeError::MissingColumn(COLUMNS[required]));
            }
        }
        let mut rows = HashMap::new();
        for (number, line) in lines {
            let line_number = number + 1;
            let fail = |reason: String| ExchangeError::Line { line: line_number, reason };
            if rows.len() >= MAX_ROWS {
                return Err(ExchangeError::TooLarge);
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let field = |column: usize| index[column].and_then(|i| fields.get(i).copied()).unwrap_or("");
            let text = |column: usize| Some(field(column).to_owned()).filter(|v| !v.is_empty());
            let three = |column: usize, name: &str| {
                let value = field(column);
                value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| value.len() == 3 && (200..=999).contains(n))
                    .ok_or_else(|| fail(format!("{name} {value:?}: three digits, 200 to 999")))
            };
            let npa = three(0, "npa")?;
            let nxx = three(1, "nxx")?;
            let block = match field(2) {
                "" => None,
                digit if digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit() => {
                    Some(digit.as_bytes()[0] - b'0')
                }
                other => {
                    return Err(fail(format!("block {other:?}: one digit (the thousands-block) or empty")));
                }
            };
            let state = text(3);
            if let Some(state) = &state
                && !(state.len() == 2 && state.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(fail(format!("state {state:?}: a two-letter code such as DC")));
            }
            let time_zone = text(6);
            if let Some(zone) = &time_zone
                && !zone.contains('/')
                && zone != "UTC"
            {
                return Err(fail(format!("time_zone {zone:?}: an IANA name such as America/New_York")));
            }
            let row = Exchange {
                state,
                county: text(4),
                rate_center: text(5),
                time_zone,
                line_type: text(7).map(|t| t.to_ascii_lowercase()),
                carrier: text(8),
                ocn: text(9),
            };
            if rows.insert((npa, nxx, block), row).is_some() {
                let which = block.map_or(String::new(), |b| format!("-{b}"));
                return Err(fail(format!("{npa}-{nxx}{which} is described twice")));
            }
        }
        Ok(Exchanges { rows })
    }

    /// The row of a ten-digit North American number: its thousands-block's, else its
    /// exchange's.
    pub fn lookup(&self, national: &str) -> Option<&Exchange> {
        let digits = national.as_bytes();
        if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let npa = national[..3].parse().ok()?;
        let nxx = national[3..6].parse().ok()?;
        let block = digits[6] - b'0';
        self.rows.get(&(npa, nxx, Some(block))).or_else(|| self.rows.get(&(npa, nxx, None)))
    }

    /// Data of `rows`, each keyed by NPA, NXX and thousands-block (`None`: the whole
    /// exchange), as [`Exchanges::rows`] gives them; a later row of the same key wins.
    pub fn from_rows(rows: impl IntoIterator<Item = (ExchangeKey, Exchange)>) -> Self {
        Exchanges { rows: rows.into_iter().collect() }
    }

    /// Every row with its key, in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = (ExchangeKey, &Exchange)> {
        self.rows.iter().map(|(key, row)| (*key, row))
    }

    /// How many rows it has.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "npa,nxx,block,state,county,rate_center,time_zone,line_type,carrier,ocn\n\
                        202,555,,DC,District of Columbia,WASHINGTON,America/New_York,landline,Verizon,9206\n\
                        202,555,1,DC,District of Columbia,WASHINGTON,America/New_York,Mobile,T-Mobile,6529\n\
                        \n\
                        201,555,,NJ,Bergen,HACKENSACK,,,,\n";

    #[test]
    fn a_block_row_wins_over_its_exchange() {
        let data = Exchanges::from_csv(DATA).expect("data");
        assert_eq!(data.len(), 3);
        let landline = data.lookup("2025550100").expect("the exchange");
        assert_eq!(landline.line_type.as_deref(), Some("landline"));
        assert_eq!(landline.ocn.as_deref(), Some("9206"));
        let mobile = data.lookup("2025551234").expect("the block");
        assert_eq!(
            (mobile.line_type.as_deref(), mobile.carrier.as_deref()),
            (Some("mobile"), Some("T-Mobile"))
        );
        let bergen = data.lookup("2015550100").expect("county only");
        assert_eq!(bergen.county.as_deref(), Some("Bergen"));
        assert_eq!((bergen.carrier.clone(), bergen.time_zone.clone()), (None, None));
        assert_eq!(data.lookup("2025560100"), None, "another exchange");
        assert_eq!(data.lookup("202555010"), None, "nine digits");
    }

    #[test]
    fn columns_may_come_in_any_order_and_most_are_optional() {
        let data = Exchanges::from_csv("county,nxx,npa\nKings,555,718\n").expect("data");
        assert_eq!(data.lookup("7185550100").and_then(|e| e.county.as_deref()), Some("Kings"));
    }

    #[test]
    fn bad_data_is_refused_with_its_line() {
        let error = |text: &str| Exchanges::from_csv(text).expect_err("refused").to_string();
        assert!(error("").contains("empty"));
        assert!(error("npa,county\n202,X\n").contains("\"nxx\""));
        assert!(error("npa,nxx,lata\n").contains("unknown column \"lata\""));
        assert_eq!(error("npa,nxx\n202,555\n20,555\n"), "line 3: npa \"20\": three digits, 200 to 999");
        assert!(error("npa,nxx,block\n202,555,12\n").starts_with("line 2: block \"12\""));
        assert!(error("npa,nxx,state\n202,555,dc\n").contains("state \"dc\""));
        assert!(error("npa,nxx,time_zone\n202,555,EST\n").contains("time_zone \"EST\""));
        assert!(error("npa,nxx\n202,555\n202,555\n").contains("202-555 is described twice"));
    }
}
