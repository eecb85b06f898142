//! How the platform reads the user and host of a SIP URI: an account's SIP domain, or a
//! telephone number. Shared by call routing and MESSAGE routing.

/// The account domain label of a SIP host: `acme` for `acme.sip.opentact.local` when the
/// platform's domain is `sip.opentact.local`.
pub fn domain_label<'a>(host: &'a str, platform_domain: &str) -> Option<&'a str> {
    let label = host.strip_suffix(platform_domain)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// The digits of a Request-URI user as a TN: `+12025550100`, `12025550100` and the ten-digit
/// NANP form `2025550100` all give 12025550100.
pub fn tn_of(user: &str) -> Option<i64> {
    let digits = user.strip_prefix('+').unwrap_or(user);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = if digits.len() == 10 { format!("1{digits}") } else { digits.to_owned() };
    digits.parse().ok()
}
