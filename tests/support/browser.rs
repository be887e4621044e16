//! Browsers as the gateway sees them (SPEC 4 cookie mode): where a request says it comes from,
//! the cookie login, and the two session cookies read exactly off `Set-Cookie`.

use http::Method;
use serde_json::json;

use super::jwt::sid_of;
use super::{ACCESS_COOKIE as ACCESS, ES256_TOKENS, Gateway, REFRESH_COOKIE as REFRESH, Reply};
use super::{RequestExt, request};

/// The harness sends `Host: localhost`, so this is the gateway's own origin.
pub const OWN_ORIGIN: &str = "https://localhost";

/// Where a request says it comes from: its `Origin` and `Referer` headers, if any.
pub type Site = &'static [(&'static str, &'static str)];
pub const OWN: Site = &[("origin", OWN_ORIGIN)];
/// Neither `Origin` nor `Referer`.
pub const NOWHERE: Site = &[];

/// `method path` with `Host: localhost`, the headers of `site` and the cookies of `jar`.
pub fn browser(method: Method, path: &str, site: Site, jar: &[(&str, &str)]) -> http::request::Builder {
    request(method, path).headers(site).cookies(jar)
}

/// Sends `browser(..)` with no body.
pub async fn browse(
    gateway: &Gateway,
    method: Method,
    path: &str,
    site: Site,
    jar: &[(&str, &str)],
) -> Reply {
    gateway.send(browser(method, path, site, jar).empty()).await
}

/// The JSON login of a test user in cookie mode.
pub async fn cookie_login(gateway: &Gateway, user: &str, site: Site) -> Reply {
    let body = json!({ "username": user, "password": format!("{user}-password"), "mode": "cookie" });
    gateway
        .send(browser(Method::POST, "/auth/login", site, &[]).json(&body))
        .await
}

/// A browser logged in from the own origin, with the cookies checked.
pub async fn logged_in(gateway: &Gateway, user: &str) -> Cookies {
    let reply = cookie_login(gateway, user, OWN).await;
    assert_eq!(reply.status, 200, "cookie login: {}", reply.text());
    issued_cookies(&reply, DEFAULTS, "cookie login")
}

/// `ES256_TOKENS` whose access tokens live `access_ttl`, with 1 s of leeway.
pub fn short_lived_tokens(access_ttl: &str) -> String {
    let short = format!("leeway = \"1s\"\naccess_ttl = \"{access_ttl}\"");
    let tokens = ES256_TOKENS.replace("leeway = \"5s\"", &short);
    assert_ne!(tokens, ES256_TOKENS, "ES256_TOKENS changed shape");
    tokens
}

/// Every `Set-Cookie` of `reply` as its name, its value, and its attributes but `Expires`
/// in a canonical form: `key=value` (just `key` for a flag), keys in lower case, sorted,
/// joined by `; `.
fn set_cookies(reply: &Reply) -> Vec<(String, String, String)> {
    let parse = |raw: &str| {
        let mut parts = raw.split(';').map(str::trim);
        let first = parts.next().unwrap_or_default().split_once('=');
        let (name, value) = first.unwrap_or_else(|| panic!("Set-Cookie without name=value: {raw:?}"));
        let attribute = |part: &str| match part.split_once('=') {
            Some((key, value)) => format!("{}={}", key.trim().to_ascii_lowercase(), value.trim()),
            None => part.to_ascii_lowercase(),
        };
        let mut attributes: Vec<_> = parts.filter(|part| !part.is_empty()).map(attribute).collect();
        attributes.retain(|attribute| !attribute.starts_with("expires="));
        attributes.sort();
        (
            name.trim().to_string(),
            value.trim().to_string(),
            attributes.join("; "),
        )
    };
    let values = reply.headers.get_all("set-cookie").iter();
    values
        .map(|v| parse(v.to_str().expect("Set-Cookie is ASCII")))
        .collect()
}

pub fn assert_no_set_cookie(reply: &Reply, what: &str) {
    let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
    assert!(cookies.is_empty(), "{what}: cookies were set: {cookies:?}");
}

/// The two session cookies a browser was handed.
#[derive(Debug, Clone)]
pub struct Cookies {
    pub access: String,
    pub refresh: String,
}

impl Cookies {
    pub fn both(&self) -> [(&'static str, &str); 2] {
        [(ACCESS, &self.access), (REFRESH, &self.refresh)]
    }

    pub fn sid(&self) -> String {
        sid_of(&self.access)
    }
}

/// The cookies' lifetimes (0 clears a cookie) and the refresh cookie's path.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub refresh_path: &'static str,
}

/// The shipped defaults: `access_ttl = "15m"`, `refresh_ttl = "14d"`.
pub const DEFAULTS: Expect = Expect {
    access_ttl: 15 * 60,
    refresh_ttl: 14 * 24 * 60 * 60,
    refresh_path: "/auth",
};

impl Expect {
    /// The same cookies cleared: empty, `Max-Age=0`, at the same paths.
    pub const fn cleared(self) -> Expect {
        Expect {
            access_ttl: 0,
            refresh_ttl: 0,
            ..self
        }
    }
}

/// Exactly two `Set-Cookie`, the access and the refresh cookie, each exactly
/// `<value>; Path=<path>; Max-Age=<ttl>; HttpOnly; Secure; SameSite=Strict` in any order, each
/// attribute once, with no `Domain` and nothing else (`Expires` tolerated). A ttl of 0 means a
/// clearing cookie, with an empty value.
pub fn issued_cookies(reply: &Reply, expect: Expect, what: &str) -> Cookies {
    let cookies = set_cookies(reply);
    assert_eq!(cookies.len(), 2, "{what}: Set-Cookie {cookies:?}");
    let cookie = |name: &str, path: &str, max_age: u64| {
        let found = cookies.iter().find(|(n, _, _)| n == name);
        let (_, value, attributes) =
            found.unwrap_or_else(|| panic!("{what}: no {name} cookie in {cookies:?}"));
        let what = format!("{what}: {name}={value}; {attributes}");
        match max_age {
            0 => assert_eq!(value, "", "{what}: a clearing cookie keeps a value"),
            _ => assert!(
                !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b';'),
                "{what}: not a usable cookie value"
            ),
        }
        let expected = format!("httponly; max-age={max_age}; path={path}; samesite=Strict; secure");
        assert_eq!(
            attributes, &expected,
            "{what}: attributes (each exactly once, no Domain)"
        );
        value.clone()
    };
    Cookies {
        access: cookie(ACCESS, "/", expect.access_ttl),
        refresh: cookie(REFRESH, expect.refresh_path, expect.refresh_ttl),
    }
}
