//! Parsers for the string-typed values of `gateway.toml`: durations, rates and byte sizes.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;

use super::{HostPattern, KeyAlgorithm};
use crate::path::normalize_path;

/// Headers a route or the gateway itself owns; an identity header may not reuse them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-request-id",
];

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

// === names, addresses and URLs ===

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(text.trim())
        .map_err(|_| format!("{text:?} is not an address like \"0.0.0.0:8443\" or \"[::1]:8443\""))
}

pub(super) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| std::net::IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR like \"10.0.0.0/8\" or an IP address"))
}

pub(super) fn parse_origin(text: &str) -> Result<String, String> {
    let invalid = || {
        format!(
            "{text:?} is not an origin like \"https://app.example.com\" (scheme, host, optional port; no path)"
        )
    };
    let uri = http::Uri::from_str(text).map_err(|_| invalid())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
    // `http::Uri` reports "/" for a bare authority, so the text itself must not end in '/'.
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/") && !text.ends_with('/');
    match (scheme_ok, uri.authority(), bare) {
        (true, Some(authority), true) if !authority.as_str().contains('@') => Ok(text.to_ascii_lowercase()),
        _ => Err(invalid()),
    }
}

pub(super) fn claim_text(text: &str) -> Result<String, String> {
    match !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?} must be non-empty visible ASCII")),
    }
}

pub(super) fn key_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "kid {text:?} must be 1-64 letters, digits, '-', '_' or '.'"
        )),
    }
}

pub(super) fn key_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    match text {
        "ES256" => Ok(KeyAlgorithm::Es256),
        "EdDSA" => Ok(KeyAlgorithm::EdDsa),
        "RS256" => Ok(KeyAlgorithm::Rs256),
        "HS256" => Ok(KeyAlgorithm::Hs256),
        other => Err(format!("alg must be ES256, EdDSA, RS256 or HS256, not {other:?}")),
    }
}

pub(super) fn parse_check_url(text: &str) -> Result<http::Uri, String> {
    let uri = http::Uri::from_str(text).map_err(|_| format!("check_url {text:?} is not a URL"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) if !authority.as_str().contains('@') => Ok(uri),
        _ => Err(format!("check_url {text:?} must be an http:// URL")),
    }
}

pub(super) fn cookie_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?} is not a valid cookie name")),
    }
}

pub(super) fn identity_header(text: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_str(text).map_err(|_| format!("{text:?} is not a valid header name"))?;
    if name.as_str().contains('_') {
        return Err(format!(
            "{text:?}: use '-' rather than '_' in identity header names"
        ));
    }
    match RESERVED_HEADERS.contains(&name.as_str()) {
        true => Err(format!("{text:?} is a standard header and cannot carry identity")),
        false => Ok(name),
    }
}

pub(super) fn route_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "route name {text:?} must be 1-64 letters, digits, '-' or '_'"
        )),
    }
}

pub(super) fn provider_name(text: &str) -> Result<String, String> {
    lower_name("provider", text)
}

pub(super) fn issuer_name(text: &str) -> Result<String, String> {
    lower_name("issuer", text)
}

/// A name that appears in URLs and header values: `[a-z0-9-]{1,32}`.
fn lower_name(what: &str, text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "{what} name {text:?} must be 1-32 lower-case letters, digits or '-'"
        )),
    }
}

/// An `https://` URL without credentials, query or fragment, kept exactly as written: the
/// provider's `iss` must equal it character for character.
pub(super) fn issuer_url(text: &str) -> Result<String, String> {
    let invalid = || format!("issuer {text:?} must be an https:// URL without user, query or fragment");
    let uri = http::Uri::from_str(text).map_err(|_| invalid())?;
    let bare = uri.query().is_none() && !text.contains('#');
    match (uri.scheme_str(), uri.authority()) {
        (Some("https"), Some(authority)) if bare && !authority.as_str().contains('@') => Ok(text.to_string()),
        _ => Err(invalid()),
    }
}

/// A domain for `allowed_email_domains`, compared lower-case.
pub(super) fn email_domain(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let valid = !lower.is_empty()
        && !lower.starts_with('.')
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    match valid {
        true => Ok(lower),
        false => Err(format!("{text:?} is not a domain name (like \"example.com\")")),
    }
}

pub(super) fn host_pattern(text: &str) -> Result<HostPattern, String> {
    let lower = text.to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok =
        |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "host {text:?} must be a host name like \"api.example.com\" or \"*.example.com\" (no port)"
        ));
    }
    Ok(match wildcard {
        true => HostPattern::Wildcard(format!(".{name}")),
        false => HostPattern::Exact(name.to_string()),
    })
}

/// `[server] public_host`: a host name or IP address, with a port only when it is not 443.
pub(super) fn public_authority(text: &str) -> Result<http::uri::Authority, String> {
    let invalid = || {
        format!(
            "public_host {text:?} must be a host name like \"gateway.example.com\", optionally with \":port\""
        )
    };
    let authority = http::uri::Authority::from_str(text).map_err(|_| invalid())?;
    let host = authority.host();
    // `Authority` keeps any text after the host's `:`; the port must be a number 1..=65535.
    let port_ok = match &authority.as_str()[host.len()..] {
        "" => true,
        rest => rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p != 0)),
    };
    let name_ok = host.parse::<std::net::IpAddr>().is_ok()
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
        || matches!(host_pattern(host), Ok(HostPattern::Exact(_)));
    match name_ok && port_ok && !text.contains('@') {
        true => Ok(authority),
        false => Err(invalid()),
    }
}

pub(super) fn route_path(text: &str) -> Result<String, String> {
    let normalized = normalize_path(text).map_err(|e| format!("route path {text:?}: {e}"))?;
    if normalized != text {
        return Err(format!(
            "route path {text:?} is not normalised; write {normalized:?}"
        ));
    }
    let reserved =
        text == "/auth" || text.starts_with("/auth/") || text.starts_with("/.well-known/jwks.json");
    match reserved {
        true => Err(format!(
            "route path {text:?} is reserved for the gateway's own endpoints"
        )),
        false => Ok(normalized),
    }
}

pub(super) fn redis_url(text: &str) -> Result<String, String> {
    let valid =
        (text.starts_with("redis://") || text.starts_with("rediss://")) && text.len() > "redis://".len();
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "url {text:?} must be like \"redis://127.0.0.1:6379/0\" (or rediss:// for TLS)"
        )),
    }
}

pub(super) fn login_page_path(text: &str) -> Result<String, String> {
    let valid = text.starts_with('/')
        && !text.starts_with("//")
        && !text.contains('?')
        && text.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "login_page {text:?} must be a path on this gateway, like \"/login\""
        )),
    }
}

pub(super) fn method(text: &str) -> Result<Method, String> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase());
    match valid {
        true => Method::from_str(text).map_err(|_| format!("{text:?} is not an HTTP method")),
        false => Err(format!(
            "method {text:?} must be an upper-case HTTP method like \"GET\""
        )),
    }
}

pub(super) fn role_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!("role {text:?} must be non-empty visible ASCII")),
    }
}

/// `http://host:port` or `https://host:port` (the port may be left to the scheme's default),
/// with no path, query or user info.
pub(super) fn endpoint(text: &str) -> Result<super::Endpoint, String> {
    let invalid = || {
        format!(
            "upstream {text:?} must be like \"http://127.0.0.1:9000\" or \"https://backend:8443\" \
             (scheme, host, port; no path)"
        )
    };
    let uri = http::Uri::from_str(text).map_err(|_| invalid())?;
    let bare = uri
        .path_and_query()
        .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
    let scheme = uri.scheme().filter(|s| matches!(s.as_str(), "http" | "https"));
    match (scheme, uri.authority()) {
        (Some(scheme), Some(authority)) if bare && !authority.as_str().contains('@') => Ok(super::Endpoint {
            scheme: scheme.clone(),
            authority: authority.clone(),
        }),
        _ => Err(invalid()),
    }
}

/// The `Content-Type` of a logo file, by its extension; `None` for anything else.
pub fn logo_content_type(file: &str) -> Option<&'static str> {
    let extension = std::path::Path::new(file)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_host_is_a_bare_name_or_address_with_an_optional_port() {
        for good in [
            "gateway.example.com",
            "gateway.example.com:8443",
            "127.0.0.1:8443",
            "[::1]:8443",
        ] {
            assert!(public_authority(good).is_ok(), "{good}");
        }
        for bad in [
            "https://gateway.example.com",
            "gateway.example.com/",
            "*.example.com",
            "user@gateway.example.com",
            "gateway.example.com:",
            "gateway.example.com:0",
            "gateway.example.com:99999",
            "bad host",
            "",
        ] {
            assert!(public_authority(bad).is_err(), "{bad}");
        }
    }

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
