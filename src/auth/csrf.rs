//! Same-origin rules for browsers: the `Origin`/`Referer` check that guards cookie-authenticated
//! unsafe requests (CSRF, login CSRF, forced logout), and the `return_to` of the form login.

use http::HeaderMap;
use http::header::{ORIGIN, REFERER};

/// Whether the request comes from the gateway's own origin (`https://<authority>`) or one of
/// `allowed`: `Origin` when present (one, not `null`), else the origin of `Referer`.
pub fn same_origin(headers: &HeaderMap, own_authority: &str, allowed: &[String]) -> bool {
    let origin = match single(headers, ORIGIN) {
        Some(origin) => origin.to_string(),
        None if headers.contains_key(ORIGIN) => return false,
        None => match single(headers, REFERER).and_then(origin_of) {
            Some(origin) => origin,
            None => return false,
        },
    };
    let origin = origin.to_ascii_lowercase();
    let own = format!("https://{}", own_authority.to_ascii_lowercase());
    origin == own || allowed.contains(&origin)
}

fn single(headers: &HeaderMap, name: http::HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().filter(|v| *v != "null"),
        _ => None,
    }
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.as_str()))
}

/// A `return_to` that stays on this origin: a path starting with one `/`, with no backslash,
/// control character, whitespace, non-ASCII or dot segment anywhere, however many times it is
/// percent-decoded (browsers strip tabs and newlines, read `\` as `/`, and resolve `%2e%2e`;
/// a server behind may decode again). Anything else becomes `/`.
pub fn safe_return_to(raw: Option<&str>) -> String {
    /// Decodings checked; what still decodes after them is refused rather than followed.
    const DECODINGS: usize = 4;
    let Some(raw) = raw else { return "/".into() };
    let suspicious = |bytes: &[u8]| {
        bytes.first() != Some(&b'/')
            || bytes.get(1).is_some_and(|b| *b == b'/' || *b == b'\\')
            || bytes.iter().any(|b| *b == b'\\' || !b.is_ascii_graphic())
            || bytes
                .split(|b| *b == b'/' || *b == b'?' || *b == b'#')
                .any(|segment| segment == b"." || segment == b"..")
    };
    if raw.len() > 2048 {
        return "/".into();
    }
    let mut bytes = raw.as_bytes().to_vec();
    for _ in 0..DECODINGS {
        if suspicious(&bytes) {
            return "/".into();
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == bytes {
            return raw.to_string();
        }
        bytes = decoded;
    }
    "/".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_the_own_or_an_allowed_origin_passes() {
        let allowed = vec!["https://app.example.com".to_string()];
        let check =
            |pairs: &[(&'static str, &'static str)]| same_origin(&headers(pairs), "gw.example.com", &allowed);
        assert!(check(&[("origin", "https://gw.example.com")]));
        assert!(check(&[("origin", "https://APP.example.com")]));
        assert!(check(&[("referer", "https://gw.example.com/page?x=1")]));
        assert!(!check(&[("origin", "null")]));
        assert!(!check(&[
            ("origin", "null"),
            ("referer", "https://gw.example.com/")
        ]));
        assert!(!check(&[("origin", "https://gw.example.com.evil.com")]));
        assert!(!check(&[("origin", "http://gw.example.com")]));
        assert!(!check(&[("origin", "https://gw.example.com:8443")]));
        assert!(!check(&[]));
    }

    #[test]
    fn every_open_redirect_trick_lands_on_the_root() {
        for evil in [
            "//evil.com",
            "/\\evil.com",
            "/%09/evil.com",
            "/%2f/evil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "/x\r\nSet-Cookie: a=b",
            "/%0d%0aLocation:x",
            "\\\\evil.com",
            "/%5cevil.com",
            "/\u{3002}evil.com",
            "",
            "evil.com",
            "/ /evil.com",
            "/%252f/evil.com",
            "/%25252f%25252fevil.com",
            "/%2e%2e//evil.com",
            "/a/../evil.com",
        ] {
            assert_eq!(safe_return_to(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_return_to(Some("/app/page?x=1#top")), "/app/page?x=1#top");
        assert_eq!(safe_return_to(None), "/");
    }
}
