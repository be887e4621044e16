//! Refuses HS256 secrets that are long enough but guessable: public wordlist entries, short
//! repeated patterns, runs like `0123…`, and text with too little variety. An offline attacker
//! with one token tries exactly these first (jwt_tool, hashcat mode 16500).

/// Publicly known secrets of 32 bytes or more; shorter ones already fail the length check.
const KNOWN_SECRETS: &str = include_str!("known_secrets.txt");

/// Below this many bits of estimated entropy a secret is refused, whatever its length.
/// A random 32-character hex string (128 bits) scores about 118, `keygen`'s output about 200.
const MIN_ESTIMATED_BITS: f64 = 100.0;

/// Why `secret` is guessable, or `None` when nothing simple gives it away.
pub(super) fn weakness(secret: &[u8]) -> Option<&'static str> {
    if is_known(secret) {
        return Some("is a publicly known secret");
    }
    if repeats_a_pattern(secret) {
        return Some("repeats a short pattern");
    }
    if is_a_run(secret) {
        return Some("is mostly a run of consecutive characters");
    }
    if estimated_bits(secret) < MIN_ESTIMATED_BITS {
        return Some("has too little variety");
    }
    None
}

fn is_known(secret: &[u8]) -> bool {
    KNOWN_SECRETS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line.trim().as_bytes() == secret)
}

/// `secret` is some shorter string written at least twice (`abcabcabc…`).
fn repeats_a_pattern(secret: &[u8]) -> bool {
    (1..=secret.len() / 2).any(|period| secret.iter().skip(period).zip(secret).all(|(a, b)| a == b))
}

/// Half or more of the neighbouring pairs step by one (`abcdef…`, `123456…`, `987…`).
fn is_a_run(secret: &[u8]) -> bool {
    let steps = secret.windows(2).filter(|w| w[0].abs_diff(w[1]) == 1).count();
    secret.len() > 1 && steps * 2 >= secret.len() - 1
}

/// Shannon entropy of the byte frequencies times the length: an upper bound on what the
/// text can hold, so a secret below the limit is certainly weak.
fn estimated_bits(secret: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in secret {
        counts[usize::from(b)] += 1;
    }
    let len = secret.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum();
    per_byte * len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_secrets_are_named() {
        for (secret, why) in [
            ("r9iMKoe5CRMgvJBBtp4HrqN7QiPpUToj", "is a publicly known secret"),
            ("passwordpasswordpasswordpassword", "repeats a short pattern"),
            (&"a".repeat(40), "repeats a short pattern"),
            (
                "abcdefghijklmnopqrstuvwxyz012345",
                "is mostly a run of consecutive characters",
            ),
            (
                "0123456789012345678901234567890x",
                "is mostly a run of consecutive characters",
            ),
            ("mississippimississippiXmississip", "has too little variety"),
        ] {
            assert_eq!(weakness(secret.as_bytes()), Some(why), "{secret}");
        }
    }

    #[test]
    fn random_secrets_pass() {
        for secret in [
            // `portcullis keygen --alg HS256` output, and `openssl rand -hex 16`.
            "kQ3v0u8Yp1xWm2Zr5Ht7Ls9Nc4Bd6Fg8Jh0Ke2Ma4Pb6Rc8Td0Vf2Xh4Zj6Al8Cn",
            "9f86d081884c7d659a2feaa0c55ad015",
        ] {
            assert_eq!(weakness(secret.as_bytes()), None, "{secret}");
        }
    }
}
