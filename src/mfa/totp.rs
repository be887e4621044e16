//! RFC 6238 time-based one-time passwords as authenticator apps make them: HMAC-SHA-1, 30 s
//! steps, 6 digits; a code of the step before or after is accepted too (clock drift). The HMAC
//! is aws-lc-rs's, the crypto provider of the whole gateway.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;

/// RFC 4226 recommends at least 128 bits; 160 is what authenticator apps expect.
pub const SECRET_BYTES: usize = 20;
pub const STEP_SECS: u64 = 30;
const DIGITS: u32 = 6;

/// A new random secret; `None` only without an OS entropy source.
pub fn new_secret() -> Option<[u8; SECRET_BYTES]> {
    let mut secret = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut secret).ok()?;
    Some(secret)
}

/// The secret as authenticator apps take it: RFC 4648 base32, no padding.
pub fn encode_secret(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// `otpauth://totp/Issuer:account?secret=...&issuer=Issuer&algorithm=SHA1&digits=6&period=30`,
/// the URI a QR code carries (Google Authenticator's key URI format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let escape = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        escape(issuer),
        escape(account),
        encode_secret(secret),
        escape(issuer)
    )
}

/// The code for time step `step`.
pub fn code_at(secret: &[u8], step: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    // RFC 4226 5.3: dynamic truncation.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!(
        "{:0width$}",
        (word & 0x7fff_ffff) % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The time step `code` belongs to at `now` (the current one, or one either side), or
/// `None`. Every candidate is compared, in constant time, so timing tells nothing.
pub fn verify(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / STEP_SECS;
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let matches = verify_slices_are_equal(code_at(secret, step).as_bytes(), code.as_bytes()).is_ok();
        if matches && found.is_none() {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last 6 are ours).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, time / STEP_SECS), eight_digits[2..], "T = {time}");
        }
    }

    #[test]
    fn a_code_is_good_for_its_step_and_one_either_side_only() {
        let secret = [7u8; SECRET_BYTES];
        let now = 1_700_000_000;
        let step = now / STEP_SECS;
        for (offset, accepted) in [(0i64, true), (-1, true), (1, true), (-2, false), (2, false)] {
            let at = step.checked_add_signed(offset).expect("step");
            let code = code_at(&secret, at);
            assert_eq!(
                verify(&secret, &code, now),
                accepted.then_some(at),
                "offset {offset}"
            );
        }
        for junk in ["", "12345", "1234567", "12345a", " 12345"] {
            assert_eq!(verify(&secret, junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_base32_secret() {
        let uri = otpauth_uri("Acme Corp", "alice@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp:alice%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }
}
