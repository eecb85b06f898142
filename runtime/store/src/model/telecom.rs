//! The operator's NPA-NXX data, as the store keeps it.

use super::Timestamp;

/// One row of the NPA-NXX data: an exchange (`block: None`) or one of its thousands-blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeRow {
    pub npa: u16,
    pub nxx: u16,
    /// The digit after the NXX; `None` for the whole exchange.
    pub block: Option<u8>,
    pub state: Option<String>,
    pub county: Option<String>,
    pub rate_center: Option<String>,
    pub time_zone: Option<String>,
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    pub ocn: Option<String>,
}

/// The last import of the NPA-NXX data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelecomImport {
    /// How many rows it has.
    pub rows: i64,
    /// What was imported (a digest of the file): a node reloads when it changes.
    pub digest: String,
    /// Where it came from (the file's name), for the operator.
    pub source: String,
    pub imported_on: Timestamp,
}
