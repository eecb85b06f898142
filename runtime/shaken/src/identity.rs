//! The SIP `Identity` header field (RFC 8224 §4.1):
//! `Identity: <jwt>;info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken`.

use crate::passport::{ALG_ES256, PPT_SHAKEN};

/// The header field's name.
pub const HEADER_NAME: &str = "Identity";

/// One Identity header field value taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// The PASSporT (a compact JWS).
    pub token: String,
    /// The `info` parameter: where the signer's certificate is (the x5u), without `<>`.
    pub info: Option<String>,
    /// The `alg` parameter, when given (default ES256).
    pub alg: Option<String>,
    /// The `ppt` parameter, unquoted, when given.
    pub ppt: Option<String>,
}

/// Why an Identity header field value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The value is empty.
    #[error("the Identity header is empty")]
    Empty,
    /// A parameter is not `name=value`, or `info` is not in angle brackets.
    #[error("the Identity header's parameters are malformed: {reason}")]
    Parameters {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Formats the header value for `token` whose certificate is at `x5u`.
pub fn format(token: &str, x5u: &str) -> String {
    format!("{token};info=<{x5u}>;alg={ALG_ES256};ppt={PPT_SHAKEN}")
}

/// Takes an Identity header value apart.
pub fn parse(value: &str) -> Result<IdentityHeader, ParseError> {
    let value = value.trim();
    let (token, mut rest) = match value.find(';') {
        Some(at) => (&value[..at], &value[at..]),
        None => (value, ""),
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut header = IdentityHeader { token: token.to_owned(), info: None, alg: None, ppt: None };
    while let Some(after) = rest.strip_prefix(';') {
        let after = after.trim_start();
        let Some(eq) = after.find('=') else {
            return Err(ParseError::Parameters { reason: "a parameter has no value" });
        };
        let name = after[..eq].trim().to_ascii_lowercase();
        let after = after[eq + 1..].trim_start();
        let (value, next) = if let Some(uri) = after.strip_prefix('<') {
            // The info URI may itself contain ';', so it runs to its closing bracket.
            let Some(close) = uri.find('>') else {
                return Err(ParseError::Parameters { reason: "the info URI has no closing '>'" });
            };
            (&uri[..close], &uri[close + 1..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().trim_matches('"'), &after[end..])
        };
        match name.as_str() {
            "info" => {
                if !after.starts_with('<') {
                    return Err(ParseError::Parameters { reason: "the info URI must be in angle brackets" });
                }
                header.info = Some(value.to_owned());
            }
            "alg" => header.alg = Some(value.to_owned()),
            "ppt" => header.ppt = Some(value.to_owned()),
            // Parameters of other extensions are ignored (RFC 8224 §4.1).
            _ => {}
        }
        rest = next.trim_start();
    }
    if !rest.is_empty() {
        return Err(ParseError::Parameters { reason: "text after the parameters" });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_shaken_form() {
        let value = format("aa.bb.cc", "https://cert.example/sp.pem;v=1");
        assert_eq!(value, "aa.bb.cc;info=<https://cert.example/sp.pem;v=1>;alg=ES256;ppt=shaken");
        let parsed = parse(&value).unwrap();
        assert_eq!(parsed.token, "aa.bb.cc");
        assert_eq!(parsed.info.as_deref(), Some("https://cert.example/sp.pem;v=1"));
        assert_eq!(parsed.alg.as_deref(), Some("ES256"));
        assert_eq!(parsed.ppt.as_deref(), Some("shaken"));
    }

    #[test]
    fn quoted_ppt_bare_tokens_and_unknown_parameters() {
        let parsed = parse(" aa.bb.cc ; info=<https://x/c.pem> ; ppt=\"shaken\";foo=bar").unwrap();
        assert_eq!(parsed.ppt.as_deref(), Some("shaken"));
        assert_eq!(parsed.alg, None);
        assert_eq!(parse("aa.bb.cc").unwrap().info, None);
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(parse("  "), Err(ParseError::Empty));
        assert!(matches!(parse("aa.bb.cc;info"), Err(ParseError::Parameters { .. })));
        assert!(matches!(parse("aa.bb.cc;info=<https://x"), Err(ParseError::Parameters { .. })));
        assert!(matches!(parse("aa.bb.cc;info=https://x"), Err(ParseError::Parameters { .. })));
    }
}
