//! Recovery codes: ten one-time codes shown once at TOTP confirmation, for a user who lost the
//! authenticator. Only their SHA-256 is kept.

use aws_lc_rs::digest;

pub const COUNT: usize = 10;
/// Letters and digits that cannot be misread for each other (no 0, 1, i or l).
const ALPHABET: &[u8; 32] = b"abcdefghjkmnopqrstuvwxyz23456789";
/// Ten characters of a 32-letter alphabet: 50 bits, beyond guessing at login's rate limit.
const CHARS: usize = 10;

/// `COUNT` new codes like `k7pxe-q2mzt`; `None` only without an OS entropy source.
pub fn new_codes() -> Option<Vec<String>> {
    let mut codes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let mut random = [0u8; CHARS];
        aws_lc_rs::rand::fill(&mut random).ok()?;
        let mut code = String::with_capacity(CHARS + 1);
        for byte in random {
            // 32 letters divide 256: every letter equally likely.
            let letter = ALPHABET[usize::from(byte) % ALPHABET.len()];
            if code.len() == CHARS / 2 {
                code.push('-');
            }
            code.push(char::from(letter));
        }
        codes.push(code);
    }
    Some(codes)
}

/// Whether `text` has the shape of a recovery code (spaces, dashes and case aside).
pub fn looks_like(text: &str) -> bool {
    let letters: Vec<u8> = normalized(text);
    letters.len() == CHARS && letters.iter().all(|b| ALPHABET.contains(b))
}

/// The stored form of a code: hex SHA-256 of its letters, lower case.
pub fn hash(code: &str) -> String {
    crate::auth::tokens::hex(digest::digest(&digest::SHA256, &normalized(code)).as_ref())
}

fn normalized(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(|b| !matches!(b, b'-' | b' '))
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_well_formed_and_hashed_as_typed_loosely() {
        let codes = new_codes().expect("codes");
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            assert!(looks_like(code), "{code}");
            assert_eq!(code.len(), CHARS + 1, "{code}");
            let loosely = code.to_ascii_uppercase().replace('-', " ");
            assert_eq!(hash(&loosely), hash(code));
        }
        assert!(!looks_like("123456") && !looks_like("abcde-fghi1"));
    }
}
