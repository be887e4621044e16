//! The gateway's cookies: reading them (refusing duplicates) and writing `Set-Cookie`.
//!
//! The two session cookies are `HttpOnly; Secure; SameSite=Strict` with `Max-Age` and never
//! a `Domain`; the access cookie uses `Path=/` (required by its `__Host-` prefix), the refresh
//! cookie `Path=/auth` so that browsers send it only to the gateway's own endpoints. The
//! single sign-on login cookie is the same but `SameSite=Lax`: it must come back on the
//! provider's top-level redirect to the callback, which is a cross-site navigation.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Where the refresh cookie is sent. With transparent refresh it must reach proxied paths too.
pub const REFRESH_PATH: &str = "/auth";

/// Two cookies under one of the gateway's names: a sign of cookie tossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCookie;

/// The value of the cookie `name`, if the request carries exactly one.
///
/// Works on bytes: a `Cookie` header may hold other sites' non-ASCII cookies (`city=Zürich`),
/// and skipping such a header would hide a second copy of ours. A value of ours that is not
/// UTF-8 comes back empty, which no token check accepts.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, DuplicateCookie> {
    let mut found = None;
    for (key, value) in pairs(headers) {
        if key == name.as_bytes() {
            if found.is_some() {
                return Err(DuplicateCookie);
            }
            found = Some(std::str::from_utf8(value).unwrap_or(""));
        }
    }
    Ok(found)
}

/// Every `name=value` pair of every `Cookie` header, trimmed, as bytes.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(|pair| pair.trim_ascii())
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()),
            None => (pair, &b""[..]),
        })
}

/// Which cross-site requests a browser attaches a cookie to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
}

/// `Set-Cookie` for a token (tokens are base64url and dots, valid cookie values).
pub fn set(name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    set_same_site(name, value, path, max_age, SameSite::Strict)
}

/// `Set-Cookie` that removes a cookie: same name, path and attributes, `Max-Age=0`.
pub fn clear(name: &str, path: &str) -> HeaderValue {
    clear_same_site(name, path, SameSite::Strict)
}

pub fn set_same_site(name: &str, value: &str, path: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
    let cookie =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite={same_site:?}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| clear_same_site(name, path, same_site))
}

pub fn clear_same_site(name: &str, path: &str, same_site: SameSite) -> HeaderValue {
    let cookie = format!("{name}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite={same_site:?}");
    // Names are validated cookie tokens and paths are "/" or "/auth": always a valid value.
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_every_attribute_and_no_domain() {
        let cookie = set("__Host-a", "tok", "/", 900);
        assert_eq!(
            cookie,
            "__Host-a=tok; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            clear("__Secure-r", "/auth"),
            "__Secure-r=; Path=/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        );
    }

    #[test]
    fn a_duplicate_cookie_is_refused_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; __Host-a=x"));
        assert_eq!(find(&headers, "__Host-a"), Ok(Some("x")));
        headers.append(COOKIE, HeaderValue::from_static("__Host-a=y"));
        assert_eq!(find(&headers, "__Host-a"), Err(DuplicateCookie));
    }
}
