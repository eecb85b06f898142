//! SMPP delivery receipts: the de-facto text format of SMPP 3.4 Appendix B
//! (`id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:… text:…`) and the
//! `receipted_message_id` / `message_state` / `network_error_code` TLVs that carry the same facts
//! in typed form. The TLVs win when both are present: they are not subject to the text's
//! vendor variations (upper/lower case keys, missing fields, a truncated `text:`).

use serde::Serialize;

use crate::model::ReceiptStatus;

/// A delivery receipt for one submitted part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReceipt {
    /// The message id the carrier gave in its `submit_sm_resp`.
    pub message_id: String,
    pub status: ReceiptStatus,
    /// The carrier's error code (`err:` or `network_error_code`), when it gave one.
    pub error: Option<String>,
    /// `submit date:` and `done date:` as sent (YYMMDDhhmm[ss]; the carrier's time zone).
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
    /// The receipt's addresses: the handset (`source_addr`) and the sender (`destination_addr`).
    pub handset: String,
    pub sender: String,
    /// The `user_message_reference` of the submit, when the SMSC echoed it (SMPP 3.4 allows it
    /// in a receipt's deliver_sm).
    pub user_message_reference: Option<u16>,
}

/// The receipt's `stat:` word or `message_state` value.
pub fn status_from_stat(stat: &str) -> Option<ReceiptStatus> {
    Some(match stat.to_ascii_uppercase().as_str() {
        "ENROUTE" => ReceiptStatus::Enroute,
        "DELIVRD" | "DELIVERED" => ReceiptStatus::Delivered,
        "EXPIRED" => ReceiptStatus::Expired,
        "DELETED" => ReceiptStatus::Deleted,
        "UNDELIV" | "UNDELIVERABLE" => ReceiptStatus::Undeliverable,
        "ACCEPTD" | "ACCEPTED" => ReceiptStatus::Accepted,
        "UNKNOWN" => ReceiptStatus::Unknown,
        "REJECTD" | "REJECTED" => ReceiptStatus::Rejected,
        "SKIPPED" => ReceiptStatus::Skipped,
        _ => return None,
    })
}

/// The SMPP `message_state` TLV value (SMPP 3.4 §5.2.28).
pub fn status_from_message_state(state: u8) -> Option<ReceiptStatus> {
    Some(match state {
        1 => ReceiptStatus::Enroute,
        2 => ReceiptStatus::Delivered,
        3 => ReceiptStatus::Expired,
        4 => ReceiptStatus::Deleted,
        5 => ReceiptStatus::Undeliverable,
        6 => ReceiptStatus::Accepted,
        7 => ReceiptStatus::Unknown,
        8 => ReceiptStatus::Rejected,
        9 => ReceiptStatus::Skipped,
        _ => return None,
    })
}

/// The fields of a receipt text, by key. Keys are matched case-insensitively; `submit date`
/// and `done date` contain a space; `text:` runs to the end (it may contain anything).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReceiptText {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
}

/// Parses a receipt text; `None` when it has neither an `id:` nor a `stat:`.
pub fn parse_text(text: &str) -> Option<ReceiptText> {
    const KEYS: [&str; 8] = ["id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "text:"];
    let lower = text.to_ascii_lowercase();
    // Where each key starts (at the start of the text or after a space).
    let mut found: Vec<(usize, &str)> = KEYS
        .iter()
        .filter_map(|key| {
            let mut from = 0;
            while let Some(i) = lower[from..].find(key) {
                let at = from + i;
                if at == 0 || lower.as_bytes()[at - 1] == b' ' {
                    return Some((at, *key));
                }
                from = at + key.len();
            }
            None
        })
        .collect();
    found.sort();
    // A key inside the free `text:` is the message's text, not a field.
    if let Some(n) = found.iter().position(|&(_, key)| key == "text:") {
        found.truncate(n + 1);
    }
    let mut out = ReceiptText::default();
    for (n, &(at, key)) in found.iter().enumerate() {
        let start = at + key.len();
        let end =
            if key == "text:" { text.len() } else { found.get(n + 1).map_or(text.len(), |&(next, _)| next) };
        if start > end {
            continue;
        }
        let value = text[start..end].trim().to_string();
        match key {
            "id:" => out.id = Some(value),
            "stat:" => out.stat = Some(value),
            "err:" => out.err = Some(value),
            "submit date:" => out.submit_date = Some(value),
            "done date:" => out.done_date = Some(value),
            _ => {}
        }
    }
    (out.id.is_some() || out.stat.is_some()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_appendix_b_format() {
        let r = parse_text(
            "id:0123456789 sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 \
             stat:DELIVRD err:000 text:Hello id:x stat:UNDELIV",
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("0123456789"));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.submit_date.as_deref(), Some("2612011200"));
        assert_eq!(r.done_date.as_deref(), Some("2612011201"));
        assert_eq!(status_from_stat(r.stat.as_deref().unwrap()), Some(ReceiptStatus::Delivered));
    }

    #[test]
    fn lower_case_and_missing_fields() {
        let r = parse_text("id:abc-1 Stat:undeliv Err:001 text: done date:x").unwrap();
        assert_eq!(r.id.as_deref(), Some("abc-1"));
        assert_eq!(status_from_stat(r.stat.as_deref().unwrap()), Some(ReceiptStatus::Undeliverable));
        assert_eq!(r.err.as_deref(), Some("001"));
        assert_eq!(r.done_date, None);
        assert_eq!(parse_text("hello there"), None);
        // "id:" inside another word is not a key.
        assert_eq!(parse_text("paid:5"), None);
    }

    #[test]
    fn message_state_values() {
        assert_eq!(status_from_message_state(2), Some(ReceiptStatus::Delivered));
        assert_eq!(status_from_message_state(5), Some(ReceiptStatus::Undeliverable));
        assert_eq!(status_from_message_state(0), None);
    }
}
