//! Where a request's credential comes from (SPEC 6).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::CookiesConfig;

/// The access token a request presents, and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Bearer(&'a str),
    /// `Authorization: DPoP <token>`: the request carries a proof of the token's key too.
    Dpop(&'a str),
    Cookie(&'a str),
}

impl<'a> Credential<'a> {
    /// The access token, however it came.
    pub fn token(self) -> &'a str {
        match self {
            Credential::Bearer(token) | Credential::Dpop(token) | Credential::Cookie(token) => token,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// An `Authorization` header that is not exactly `Bearer <token>` or `DPoP <token>`.
    MalformedAuthorization,
    /// Two cookies under the access cookie's name (cookie tossing).
    DuplicateCookie,
}

/// The bearer (or DPoP) token, else (with cookies enabled) the access cookie; never the
/// query string.
/// A present but malformed `Authorization` is an error, never a fall-back to the cookie.
pub fn credential<'h>(
    headers: &'h HeaderMap,
    cookies: &CookiesConfig,
) -> Result<Option<Credential<'h>>, CredentialError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        return authorization(value.as_bytes()).map(Some);
    }
    if !cookies.enabled {
        return Ok(None);
    }
    match super::cookies::find(headers, &cookies.access_name) {
        Ok(found) => Ok(found.map(Credential::Cookie)),
        Err(_) => Err(CredentialError::DuplicateCookie),
    }
}

/// `Bearer <token68>` or `DPoP <token68>`: scheme in any case, exactly one space, one token.
fn authorization(value: &[u8]) -> Result<Credential<'_>, CredentialError> {
    let malformed = CredentialError::MalformedAuthorization;
    let text = std::str::from_utf8(value).map_err(|_| malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(malformed)?;
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    if body.is_empty() || !body.bytes().all(token68) {
        return Err(malformed);
    }
    match scheme {
        _ if scheme.eq_ignore_ascii_case("bearer") => Ok(Credential::Bearer(token)),
        _ if scheme.eq_ignore_ascii_case("dpop") => Ok(Credential::Dpop(token)),
        _ => Err(malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies() -> CookiesConfig {
        CookiesConfig {
            enabled: true,
            access_name: "__Host-a".into(),
            refresh_name: "__Secure-r".into(),
            allowed_origins: vec![],
            transparent_refresh: false,
        }
    }

    fn found(pairs: &[(&str, &str)]) -> Result<Option<String>, CredentialError> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        credential(&headers, &cookies()).map(|c| {
            c.map(|c| match c {
                Credential::Bearer(t) => format!("bearer:{t}"),
                Credential::Dpop(t) => format!("dpop:{t}"),
                Credential::Cookie(t) => format!("cookie:{t}"),
            })
        })
    }

    #[test]
    fn bearer_tokens_parse_only_in_the_exact_form() {
        assert_eq!(
            found(&[("authorization", "Bearer abc.def")]),
            Ok(Some("bearer:abc.def".into()))
        );
        assert_eq!(
            found(&[("authorization", "bEaReR abc")]),
            Ok(Some("bearer:abc".into()))
        );
        assert_eq!(
            found(&[("authorization", "DPoP abc.def")]),
            Ok(Some("dpop:abc.def".into()))
        );
        for bad in [
            "Bearer  abc",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a,b",
            "Bearerabc",
            "DPoP  abc",
            "DPoP",
        ] {
            assert_eq!(
                found(&[("authorization", bad)]),
                Err(CredentialError::MalformedAuthorization),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_authorization_never_falls_back_to_the_cookie() {
        let result = found(&[("authorization", "Basic x"), ("cookie", "__Host-a=tok")]);
        assert_eq!(result, Err(CredentialError::MalformedAuthorization));
    }

    #[test]
    fn the_access_cookie_is_used_once_and_refused_twice() {
        assert_eq!(
            found(&[("cookie", "x=1; __Host-a=tok")]),
            Ok(Some("cookie:tok".into()))
        );
        let tossed = found(&[("cookie", "__Host-a=one"), ("cookie", "__Host-a=two")]);
        assert_eq!(tossed, Err(CredentialError::DuplicateCookie));
        assert_eq!(found(&[("cookie", "other=1")]), Ok(None));
    }
}
