//! G.711: PCMU (µ-law, payload type 0) and PCMA (A-law, payload type 8), computed by the
//! segment algorithm of the recommendation (no hand-typed tables).

/// µ-law bias added before finding the segment.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law encodes.
const ULAW_CLIP: i32 = 32_635;

/// Encode one 16-bit sample to µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    let value = value.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (0..8).rev().find(|e| value & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    // Both operands fit in a byte: sign ≤ 0x80, exponent ≤ 7, mantissa ≤ 15.
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decode one µ-law byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    // |magnitude| ≤ 32124, within i16.
    let magnitude = magnitude as i16;
    if sign != 0 { -magnitude } else { magnitude }
}

/// Encode one 16-bit sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3; // A-law works on 13-bit magnitudes.
    let (sign, magnitude) = if value >= 0 { (0x80u8, value) } else { (0x00u8, -value - 1) };
    let magnitude = magnitude.min(0x0fff);
    let byte = if magnitude < 0x20 {
        (magnitude >> 1) as u8
    } else {
        let exponent = (1..8).rev().find(|e| magnitude >= (0x10 << e)).unwrap_or(1);
        let mantissa = (magnitude >> exponent) & 0x0f;
        ((exponent << 4) as u8) | mantissa as u8
    };
    (sign | byte) ^ 0x55
}

/// Decode one A-law byte.
pub fn alaw_decode(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0f);
    let magnitude =
        if exponent == 0 { (mantissa << 4) + 8 } else { ((mantissa << 4) + 0x108) << (exponent - 1) };
    // |magnitude| ≤ 32256, within i16.
    let magnitude = magnitude as i16;
    if byte & 0x80 != 0 { magnitude } else { -magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A G.711 round trip keeps the sign and errs by at most one quantisation step, which grows
    /// with the segment: about 1/16 of the magnitude.
    fn check_round_trip(encode: fn(i16) -> u8, decode: fn(u8) -> i16) {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode(encode(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            assert!(error <= i32::from(sample).abs() / 16 + 16, "{sample} → {back} (error {error})");
            if i32::from(sample).abs() > 64 {
                assert_eq!(back.signum(), sample.signum(), "{sample} → {back}");
            }
        }
    }

    #[test]
    fn ulaw_round_trips_within_companding_error() {
        check_round_trip(ulaw_encode, ulaw_decode);
    }

    #[test]
    fn alaw_round_trips_within_companding_error() {
        check_round_trip(alaw_encode, alaw_decode);
    }

    #[test]
    fn known_code_points() {
        // Silence and full scale, from G.711's tables.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0xaa), 32_256);
        assert_eq!(alaw_decode(0x2a), -32_256);
    }

    #[test]
    fn every_code_point_decodes_and_re_encodes_to_itself() {
        for byte in 0..=255u8 {
            // µ-law has two zeros (0x7f and 0xff); both decode to 0, which encodes as 0xff.
            if byte != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(byte)), byte, "µ-law {byte:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(byte)), byte, "A-law {byte:#04x}");
        }
    }
}
