//! Segmentation: how a text becomes SMS parts, and how inbound parts become text.
//!
//! A text that fits the GSM 03.38 / 3GPP TS 23.038 default alphabet (with its extension table)
//! is sent as GSM-7; anything else as UCS-2. One part holds 160 septets or 70 UCS-2 units; a
//! longer text is split into concatenated parts of 153 septets or 67 units, each prefixed with an
//! 8-bit-reference concatenation header (UDH `05 00 03 ref total seq`, 6 octets, which is why a
//! concatenated part holds 7 septets / 3 units less).
//!
//! Encodings on the wire (SMPP):
//! - GSM-7 is sent **unpacked**: one septet per octet, `data_coding` 0 (the SMSC default
//!   alphabet). That is the SMPP convention — packing into 7 bits is the SMSC's job on the air
//!   interface — so a 153-septet part is 153 octets of `short_message` after the 6-octet UDH
//!   (159 octets, within SMPP's 254). An extension character is the escape 0x1B followed by its
//!   code and counts 2 septets; the two are never split across parts.
//! - UCS-2 is UTF-16 big-endian, `data_coding` 8. A character outside the Basic Multilingual
//!   Plane (an emoji) is a surrogate pair: 2 units, never split across parts.

use thiserror::Error;

/// Septets in a single-part GSM-7 message.
pub const GSM7_SINGLE_SEPTETS: usize = 160;
/// Septets in one part of a concatenated GSM-7 message (160 less the 6-octet UDH, 7 septets).
pub const GSM7_CONCAT_SEPTETS: usize = 153;
/// UCS-2 units in a single-part message (140 octets).
pub const UCS2_SINGLE_UNITS: usize = 70;
/// UCS-2 units in one part of a concatenated message ((140 - 6) / 2).
pub const UCS2_CONCAT_UNITS: usize = 67;
/// The longest message the API accepts, in characters (6 full concatenated GSM-7 parts).
pub const MAX_MESSAGE_CHARS: usize = 918;
/// The most parts an 8-bit concatenation header can number.
pub const MAX_PARTS: usize = 255;

/// SMPP `data_coding` of unpacked GSM-7 (the SMSC default alphabet).
pub const DATA_CODING_GSM7: u8 = 0x00;
/// SMPP `data_coding` of IA5 (ASCII), seen on inbound messages.
pub const DATA_CODING_IA5: u8 = 0x01;
/// SMPP `data_coding` of Latin-1, seen on inbound messages.
pub const DATA_CODING_LATIN1: u8 = 0x03;
/// SMPP `data_coding` of UCS-2 (UTF-16 big-endian).
pub const DATA_CODING_UCS2: u8 = 0x08;
/// The `esm_class` bit that says `short_message` starts with a user data header.
pub const ESM_CLASS_UDHI: u8 = 0x40;

/// The GSM-7 escape to the extension table.
const GSM7_ESCAPE: u8 = 0x1B;

/// The 3GPP TS 23.038 default alphabet, indexed by septet. 0x1B is the escape (never a
/// character by itself), written here as a placeholder that no text maps to.
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (code after the escape, character).
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// A GSM-7 character's septets: one for the basic table, the escape and a code for the
/// extension table; `None` for a character GSM-7 cannot carry.
fn gsm7_septets(c: char) -> Option<([u8; 2], usize)> {
    if c == '\u{1B}' {
        return None;
    }
    if let Some(i) = GSM7_BASIC.iter().position(|&g| g == c) {
        return Some(([i as u8, 0], 1));
    }
    GSM7_EXTENSION.iter().find(|&&(_, g)| g == c).map(|&(code, _)| ([GSM7_ESCAPE, code], 2))
}

/// How a message's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The GSM 7-bit default alphabet (sent unpacked, `data_coding` 0).
    Gsm7,
    /// UTF-16 big-endian (`data_coding` 8).
    Ucs2,
}

impl Encoding {
    /// The SMPP `data_coding` of this encoding.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => DATA_CODING_GSM7,
            Encoding::Ucs2 => DATA_CODING_UCS2,
        }
    }
}

/// The encoding a text needs: GSM-7 when every character is in the default alphabet or its
/// extension table, else UCS-2.
pub fn detect(text: &str) -> Encoding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// A text that cannot be sent as SMS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SegmentError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has {chars} characters; at most {max} are allowed")]
    TooLong { chars: usize, max: usize },
    #[error("the message needs {parts} parts; a concatenated message has at most {max}")]
    TooManyParts { parts: usize, max: usize },
}

/// Checks the API's length rule: 1 to [`MAX_MESSAGE_CHARS`] characters (Unicode scalar values).
pub fn check_length(text: &str) -> Result<(), SegmentError> {
    let chars = text.chars().count();
    if chars == 0 {
        return Err(SegmentError::Empty);
    }
    if chars > MAX_MESSAGE_CHARS {
        return Err(SegmentError::TooLong { chars, max: MAX_MESSAGE_CHARS });
    }
    Ok(())
}

/// The shape of a message without encoding it: what the API reports and prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2) in the whole text.
    pub units: usize,
    pub parts: usize,
}

/// One character's encoded units: its octets on the wire and how many units it counts.
fn char_units(encoding: Encoding, c: char) -> ([u8; 4], usize, usize) {
    match encoding {
        Encoding::Gsm7 => {
            let (s, n) = gsm7_septets(c).expect("detect chose GSM-7 for every character");
            ([s[0], s[1], 0, 0], n, n)
        }
        Encoding::Ucs2 => {
            let mut buf = [0u16; 2];
            let units = c.encode_utf16(&mut buf);
            let mut out = [0u8; 4];
            for (i, u) in units.iter().enumerate() {
                out[i * 2..i * 2 + 2].copy_from_slice(&u.to_be_bytes());
            }
            (out, units.len() * 2, units.len())
        }
    }
}

/// The per-part capacities of an encoding: (single part, concatenated part).
fn capacities(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (GSM7_SINGLE_SEPTETS, GSM7_CONCAT_SEPTETS),
        Encoding::Ucs2 => (UCS2_SINGLE_UNITS, UCS2_CONCAT_UNITS),
    }
}

/// Splits the text into per-part payloads (no UDH yet), never splitting a character.
fn split(text: &str, encoding: Encoding) -> (usize, Vec<Vec<u8>>) {
    let (single, concat) = capacities(encoding);
    let total: usize = text.chars().map(|c| char_units(encoding, c).2).sum();
    let capacity = if total <= single { single } else { concat };
    let mut parts = vec![Vec::new()];
    let mut used = 0;
    for c in text.chars() {
        let (octets, len, units) = char_units(encoding, c);
        if used + units > capacity {
            parts.push(Vec::new());
            used = 0;
        }
        parts.last_mut().expect("parts starts non-empty").extend_from_slice(&octets[..len]);
        used += units;
    }
    (total, parts)
}

/// The encoding, size and number of parts of a text.
pub fn plan(text: &str) -> Plan {
    let encoding = detect(text);
    let (units, parts) = split(text, encoding);
    Plan { encoding, units, parts: parts.len() }
}

/// The 8-bit-reference concatenation header: IEI 0x00, length 3, reference, total, sequence
/// (1-based).
pub fn concat_udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
}

/// One part ready for `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `short_message`: the UDH (concatenated messages only) followed by the payload.
    pub short_message: Vec<u8>,
    /// `esm_class`: [`ESM_CLASS_UDHI`] when `short_message` starts with a UDH, else 0.
    pub esm_class: u8,
}

/// A text encoded into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmented {
    pub encoding: Encoding,
    pub parts: Vec<Part>,
}

impl Segmented {
    /// The SMPP `data_coding` of every part.
    pub fn data_coding(&self) -> u8 {
        self.encoding.data_coding()
    }
}

/// Encodes a text into SMS parts. `reference` numbers the parts of one concatenated message
/// so the handset can reassemble them; it should differ between consecutive long messages to
/// the same destination (a per-destination counter, or random).
pub fn segment(text: &str, reference: u8) -> Result<Segmented, SegmentError> {
    if text.is_empty() {
        return Err(SegmentError::Empty);
    }
    let encoding = detect(text);
    let (_, payloads) = split(text, encoding);
    let total = payloads.len();
    if total > MAX_PARTS {
        return Err(SegmentError::TooManyParts { parts: total, max: MAX_PARTS });
    }
    let parts = if total == 1 {
        vec![Part { short_message: payloads.into_iter().next().expect("one part"), esm_class: 0 }]
    } else {
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let mut short_message = concat_udh(reference, total as u8, (i + 1) as u8).to_vec();
                short_message.extend_from_slice(&payload);
                Part { short_message, esm_class: ESM_CLASS_UDHI }
            })
            .collect()
    };
    Ok(Segmented { encoding, parts })
}

/// Where an inbound part belongs in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Concat {
    /// The sender's reference (8- or 16-bit) shared by the message's parts.
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

/// The concatenation element of a user data header (IEI 0x00, 8-bit reference, or 0x08, 16-bit).
fn find_concat(udh: &[u8]) -> Option<Concat> {
    let mut i = 0;
    while i + 2 <= udh.len() {
        let (iei, len) = (udh[i], udh[i + 1] as usize);
        let data = udh.get(i + 2..i + 2 + len)?;
        match (iei, len) {
            (0x00, 3) => {
                return Some(Concat { reference: data[0] as u16, total: data[1], seq: data[2] });
            }
            (0x08, 4) => {
                return Some(Concat {
                    reference: u16::from_be_bytes([data[0], data[1]]),
                    total: data[2],
                    seq: data[3],
                });
            }
            _ => i += 2 + len,
        }
    }
    None
}

/// An inbound `short_message` decoded: its text and, for a part of a concatenated message,
/// where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub concat: Option<Concat>,
}

/// Decodes an inbound `short_message` (or `message_payload`). Unknown data codings are read as
/// Latin-1 so no octet is lost; UCS-2 that is not valid UTF-16 keeps U+FFFD in place of the
/// broken units.
pub fn decode(data_coding: u8, esm_class: u8, bytes: &[u8]) -> Decoded {
    let (concat, body) = if esm_class & ESM_CLASS_UDHI != 0 && !bytes.is_empty() {
        let udh_len = bytes[0] as usize;
        match bytes.get(1..1 + udh_len) {
            Some(udh) => (find_concat(udh), &bytes[1 + udh_len..]),
            None => (None, bytes),
        }
    } else {
        (None, bytes)
    };
    let text = match data_coding {
        DATA_CODING_GSM7 => decode_gsm7_unpacked(body),
        DATA_CODING_UCS2 => {
            let units: Vec<u16> = body.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        DATA_CODING_IA5 => body.iter().map(|&b| (b & 0x7F) as char).collect(),
        _ => body.iter().map(|&b| b as char).collect(),
    };
    Decoded { text, concat }
}

/// Unpacked GSM-7 (one septet per octet) to text. An escape before an unknown code reads as a
/// space, as TS 23.038 asks of receivers.
fn decode_gsm7_unpacked(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().map(|b| b & 0x7F);
    while let Some(s) = iter.next() {
        if s == GSM7_ESCAPE {
            let code = iter.next();
            let c = code.and_then(|code| GSM7_EXTENSION.iter().find(|&&(k, _)| k == code).map(|&(_, c)| c));
            out.push(c.unwrap_or(' '));
        } else {
            out.push(GSM7_BASIC[s as usize]);
        }
    }
    out
}

/// Encodes text as unpacked GSM-7 when it fits the alphabet (for tests and simple senders).
pub fn encode_gsm7_unpacked(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = gsm7_septets(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_160_is_one_part_161_is_two() {
        let p = plan(&"a".repeat(160));
        assert_eq!((p.encoding, p.units, p.parts), (Encoding::Gsm7, 160, 1));
        let p = plan(&"a".repeat(161));
        assert_eq!((p.encoding, p.units, p.parts), (Encoding::Gsm7, 161, 2));
        let s = segment(&"a".repeat(161), 7).unwrap();
        assert_eq!(s.parts[0].short_message.len(), 6 + 153);
        assert_eq!(s.parts[1].short_message.len(), 6 + 8);
    }

    #[test]
    fn euro_counts_two_septets_and_is_escaped() {
        let p = plan("€");
        assert_eq!((p.encoding, p.units, p.parts), (Encoding::Gsm7, 2, 1));
        assert_eq!(plan(&"€".repeat(80)).parts, 1);
        assert_eq!(plan(&format!("{}a", "€".repeat(80))).parts, 2);
        let s = segment("€[", 0).unwrap();
        assert_eq!(s.parts[0].short_message, vec![0x1B, 0x65, 0x1B, 0x3C]);
        assert_eq!(s.data_coding(), 0);
    }

    #[test]
    fn an_extension_char_is_never_split() {
        // 152 septets then '€' (2): it cannot fit in the first part's 153, so it moves whole.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let s = segment(&text, 1).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0].short_message.len(), 6 + 152);
        assert_eq!(&s.parts[1].short_message[6..8], &[0x1B, 0x65]);
    }

    #[test]
    fn one_emoji_forces_ucs2() {
        assert_eq!(detect("hello"), Encoding::Gsm7);
        let p = plan("hello 😀");
        // 6 BMP characters and one surrogate pair.
        assert_eq!((p.encoding, p.units, p.parts), (Encoding::Ucs2, 8, 1));
        let s = segment("h😀", 0).unwrap();
        assert_eq!(s.data_coding(), 8);
        assert_eq!(s.parts[0].short_message, vec![0x00, 0x68, 0xD8, 0x3D, 0xDE, 0x00]);
        // Characters outside both tables, but in the BMP, are UCS-2 too.
        assert_eq!(detect("Привет"), Encoding::Ucs2);
        assert_eq!(detect("`"), Encoding::Ucs2);
    }

    #[test]
    fn ucs2_70_is_one_part_71_is_two() {
        assert_eq!(plan(&"я".repeat(70)).parts, 1);
        let s = segment(&"я".repeat(71), 3).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0].short_message.len(), 6 + 67 * 2);
        assert_eq!(s.parts[1].short_message.len(), 6 + 4 * 2);
    }

    #[test]
    fn a_surrogate_pair_is_never_split() {
        // 66 units, then an emoji (2 units) that does not fit the 67-unit part.
        let text = format!("{}😀xxxxx", "я".repeat(66));
        let s = segment(&text, 3).unwrap();
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0].short_message.len(), 6 + 66 * 2);
        assert_eq!(&s.parts[1].short_message[6..10], &[0xD8, 0x3D, 0xDE, 0x00]);
        for part in &s.parts {
            let d = decode(8, part.esm_class, &part.short_message);
            assert!(!d.text.contains('\u{FFFD}'));
        }
    }

    #[test]
    fn the_longest_messages() {
        // 918 GSM characters are exactly 6 full parts; 918 UCS-2 characters need 14.
        let p = plan(&"a".repeat(MAX_MESSAGE_CHARS));
        assert_eq!((p.units, p.parts), (918, 6));
        assert_eq!(plan(&"a".repeat(919)).parts, 7);
        let p = plan(&"я".repeat(MAX_MESSAGE_CHARS));
        assert_eq!((p.encoding, p.parts), (Encoding::Ucs2, 14));
        assert!(check_length(&"я".repeat(918)).is_ok());
        assert_eq!(check_length(&"a".repeat(919)), Err(SegmentError::TooLong { chars: 919, max: 918 }));
        assert_eq!(check_length(""), Err(SegmentError::Empty));
    }

    #[test]
    fn udh_bytes() {
        let s = segment(&"a".repeat(400), 0x2A).unwrap();
        assert_eq!(s.parts.len(), 3);
        for (i, part) in s.parts.iter().enumerate() {
            assert_eq!(&part.short_message[..6], &[0x05, 0x00, 0x03, 0x2A, 0x03, (i + 1) as u8]);
            assert_eq!(part.esm_class, 0x40);
        }
        // A single part has no header.
        let s = segment("hi", 0x2A).unwrap();
        assert_eq!((s.parts[0].short_message.as_slice(), s.parts[0].esm_class), (&b"hi"[..], 0));
    }

    #[test]
    fn gsm7_maps_the_table_not_ascii() {
        assert_eq!(encode_gsm7_unpacked("@£$_"), Some(vec![0x00, 0x01, 0x02, 0x11]));
        assert_eq!(encode_gsm7_unpacked("a\u{1B}"), None);
    }

    #[test]
    fn decode_round_trips_and_reads_udh() {
        let text = format!("{}{{ü}}€ Ω", "x".repeat(200));
        let s = segment(&text, 9).unwrap();
        let mut joined = String::new();
        for (i, part) in s.parts.iter().enumerate() {
            let d = decode(0, part.esm_class, &part.short_message);
            assert_eq!(
                d.concat,
                Some(Concat { reference: 9, total: s.parts.len() as u8, seq: (i + 1) as u8 })
            );
            joined.push_str(&d.text);
        }
        assert_eq!(joined, text);
        let ucs = "Grüße 😀 from Zürich — ok";
        let s = segment(ucs, 0).unwrap();
        assert_eq!(decode(8, 0, &s.parts[0].short_message).text, ucs);
        // 16-bit reference header.
        let d = decode(0, 0x40, &[0x06, 0x08, 0x04, 0x01, 0x02, 0x02, 0x01, 0x41]);
        assert_eq!(d.concat, Some(Concat { reference: 0x0102, total: 2, seq: 1 }));
        assert_eq!(d.text, "A");
        assert_eq!(decode(3, 0, &[0x48, 0xE9]).text, "Hé");
    }
}
