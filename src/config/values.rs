//! Parsers for the string-typed values of `gateway.toml`: durations, rates and byte sizes.

use std::time::Duration;

/// A count of events allowed per period, e.g. `"10/min"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// `"500ms"`, `"15m"`, `"14d"`; zero is refused because every duration here is a limit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. \"500ms\", \"15m\", \"14d\""))?;
    if duration.is_zero() {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(duration)
}

/// `"10/min"`, `"5/s"`, `"100/hour"`, `"1000/day"`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let invalid = || format!("invalid rate {text:?}; write e.g. \"10/min\" (units: s, min, hour, day)");
    let (count, unit) = text.trim().split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(invalid()),
    };
    if count == 0 {
        return Err(format!("rate {text:?} must allow at least one event"));
    }
    Ok(Rate { count, per })
}

/// `"10MiB"`, `"512KiB"`, `"1GB"`, `"4096"` (bytes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?}; write e.g. \"10MiB\", \"512KiB\" or \"4096\"");
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_units_the_spec_uses_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("15").is_err());
    }

    #[test]
    fn rates_parse_and_reject_nonsense() {
        assert_eq!(
            parse_rate("10/min"),
            Ok(Rate {
                count: 10,
                per: Duration::from_secs(60)
            })
        );
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("10/fortnight").is_err());
        assert!(parse_rate("ten/min").is_err());
    }

    #[test]
    fn byte_sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }
}
