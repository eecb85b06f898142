//! Telephone number data: where a number is.
//!
//! North American area codes come from `data/nanp.tsv`, generated from Google's libphonenumber
//! data by `tools/generate_nanp.py` (state/province from libphonenumber's city-level entries,
//! IANA time zones from its time-zone data). It answers the `<Geo>` conditional of flows and
//! the telecom lookup of the REST API. County, rate center, line type and carrier are not in
//! that data set: they come from the operator's NPA-NXX data ([`exchanges`]), installed with
//! [`install_exchanges`] (the server loads it from its database, and again when the operator
//! imports new data).

pub mod exchanges;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The generated data set.
const NANP_TSV: &str = include_str!("../data/nanp.tsv");

/// Where a number is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166 country code (`US`, `CA`…).
    pub country: String,
    /// State or province code (`NJ`), when known.
    pub state: Option<String>,
    /// The region as libphonenumber names it (`New Jersey`, `New York, NY`).
    pub region: String,
    /// County, when known.
    pub county: Option<String>,
    /// IANA time zones of the area code (the first is the main one; the exchange's own, when
    /// the NPA-NXX data names one, comes first).
    pub time_zones: Vec<String>,
    /// The exchange's rate center, from the NPA-NXX data.
    pub rate_center: Option<String>,
    /// `landline`, `mobile`, `voip`, … from the NPA-NXX data.
    pub line_type: Option<String>,
    /// The carrier holding the exchange or block, and its OCN, from the NPA-NXX data.
    pub carrier: Option<String>,
    pub ocn: Option<String>,
}

/// The operator's NPA-NXX data, swapped whole when new data is installed: a lookup keeps the
/// data it started with.
static EXCHANGES: RwLock<Option<Arc<exchanges::Exchanges>>> = RwLock::new(None);

/// Make `data` the operator's NPA-NXX data for [`lookup`], in place of what was installed.
pub fn install_exchanges(data: exchanges::Exchanges) {
    let data = (!data.is_empty()).then(|| Arc::new(data));
    *EXCHANGES.write().unwrap_or_else(std::sync::PoisonError::into_inner) = data;
}

fn installed_exchanges() -> Option<Arc<exchanges::Exchanges>> {
    EXCHANGES.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// A North American area code's row.
#[derive(Debug)]
struct AreaCode {
    country: &'static str,
    state: &'static str,
    region: &'static str,
    time_zones: &'static str,
}

fn nanp() -> &'static HashMap<u16, AreaCode> {
    static TABLE: OnceLock<HashMap<u16, AreaCode>> = OnceLock::new();
    TABLE.get_or_init(|| {
        NANP_TSV
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let npa = fields.next()?.parse().ok()?;
                let row = AreaCode {
                    country: fields.next()?,
                    state: fields.next()?,
                    region: fields.next()?,
                    time_zones: fields.next().unwrap_or(""),
                };
                Some((npa, row))
            })
            .collect()
    })
}

/// The digits of a number written as `12025550100`, `+1 (202) 555-0100` or `sip:+12025550100@…`.
fn digits(number: &str) -> String {
    let user = number.strip_prefix("sip:").or_else(|| number.strip_prefix("sips:")).unwrap_or(number);
    let user = user.split('@').next().unwrap_or(user);
    user.chars().filter(char::is_ascii_digit).collect()
}

/// Locate a number: digits with the country code first (`12025550100`); a ten-digit number is
/// taken as North American. `None` when the number is not in the data.
pub fn lookup(number: &str) -> Option<Location> {
    let digits = digits(number);
    let national = match digits.len() {
        11 if digits.starts_with('1') => &digits[1..],
        10 => &digits[..],
        _ => return None,
    };
    let npa: u16 = national.get(..3)?.parse().ok()?;
    let data = installed_exchanges();
    let exchange = data.as_deref().and_then(|data| data.lookup(national));
    let area = nanp().get(&npa);
    if area.is_none() && exchange.is_none() {
        return None;
    }
    let mut time_zones: Vec<String> = area
        .map(|row| row.time_zones.split(',').filter(|z| !z.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(zone) = exchange.and_then(|e| e.time_zone.clone()) {
        time_zones.retain(|z| *z != zone);
        time_zones.insert(0, zone);
    }
    let field = |pick: fn(&exchanges::Exchange) -> &Option<String>| exchange.and_then(|e| pick(e).clone());
    Some(Location {
        country: area.map_or("US", |row| row.country).to_owned(),
        state: field(|e| &e.state)
            .or_else(|| area.filter(|row| !row.state.is_empty()).map(|row| row.state.to_owned())),
        region: area.map(|row| row.region.to_owned()).unwrap_or_default(),
        county: field(|e| &e.county),
        time_zones,
        rate_center: field(|e| &e.rate_center),
        line_type: field(|e| &e.line_type),
        carrier: field(|e| &e.carrier),
        ocn: field(|e| &e.ocn),
    })
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn locates_north_american_numbers() {
        let nj = lookup("12015550123").expect("201 is New Jersey");
        assert_eq!(nj.country, "US");
        assert_eq!(nj.state.as_deref(), Some("NJ"));
        assert_eq!(nj.time_zones, ["America/New_York"]);
        let la = lookup("+1 (213) 555-0100").expect("213 is Los Angeles");
        assert_eq!(la.state.as_deref(), Some("CA"));
        assert_eq!(la.time_zones, ["America/Los_Angeles"]);
        let toronto = lookup("sip:+14165550100@example.com").expect("416 is Toronto");
        assert_eq!((toronto.country.as_str(), toronto.state.as_deref()), ("CA", Some("ON")));
    }

    #[test]
    fn unknown_numbers_are_none() {
        assert_eq!(lookup("442071234567"), None);
        assert_eq!(lookup("12115550100"), None); // 211 is a service code, not an area code
        assert_eq!(lookup("alice@example.com"), None);
        assert_eq!(lookup(""), None);
    }
}
