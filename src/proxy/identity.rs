//! The identity headers a backend trusts (SPEC 6): every client copy is removed, in any
//! spelling, then the verified caller's values are set, exactly one of each. Part two's
//! headers (`amr`, an assertion) join as new `IdentityField`s.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers;
use crate::auth::Identity;
use crate::auth::assertion::ASSERTION_HEADER;
use crate::config::HeadersConfig;

/// Which of the caller's values a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    Subject,
    Role,
    Session,
    /// How the caller proved who they are (SPEC 13), only with `[headers] amr`.
    Amr,
}

impl IdentityField {
    fn value(self, identity: &Identity) -> Option<&HeaderValue> {
        match self {
            IdentityField::Subject => Some(&identity.sub_header),
            IdentityField::Role => Some(&identity.role_header),
            IdentityField::Session => Some(&identity.sid_header),
            IdentityField::Amr => identity.amr_header.as_ref(),
        }
    }
}

/// The configured identity header names, each with the value it carries.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    fields: Vec<(HeaderName, IdentityField)>,
}

impl IdentityHeaders {
    pub fn new(config: &HeadersConfig) -> IdentityHeaders {
        let mut fields = vec![
            (config.subject.clone(), IdentityField::Subject),
            (config.role.clone(), IdentityField::Role),
            (config.session.clone(), IdentityField::Session),
        ];
        fields.extend(config.amr.clone().map(|name| (name, IdentityField::Amr)));
        IdentityHeaders { fields }
    }

    /// Removes every client copy (also `_` spellings, and of `X-Auth-Assertion`), then sets
    /// the caller's values when there is a caller. Runs on every proxied request, public routes included.
    pub fn strip_then_set(&self, headers: &mut HeaderMap, caller: Option<&Identity>) {
        let names = self.fields.iter().map(|(name, _)| name);
        headers::strip_identity(headers, names.chain([&ASSERTION_HEADER]));
        if let Some(identity) = caller {
            for (name, field) in &self.fields {
                if let Some(value) = field.value(identity) {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tokens::{Claimed, CredentialKind};

    fn headers() -> IdentityHeaders {
        IdentityHeaders {
            fields: vec![
                (HeaderName::from_static("x-auth-sub"), IdentityField::Subject),
                (HeaderName::from_static("x-auth-role"), IdentityField::Role),
                (HeaderName::from_static("x-auth-session"), IdentityField::Session),
            ],
        }
    }

    fn spoofed() -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("x-auth-sub", "admin"),
            ("x_auth_role", "admin"),
            ("x-auth-session", "s"),
            ("x-auth-assertion", "forged"),
        ] {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map.append("x-auth-sub", HeaderValue::from_static("root"));
        map
    }

    #[test]
    fn without_a_caller_every_client_copy_is_gone() {
        let mut map = spoofed();
        headers().strip_then_set(&mut map, None);
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn with_a_caller_exactly_its_values_are_set() {
        let identity = Identity::new(Claimed {
            kind: CredentialKind::Session,
            sub: "alice".into(),
            role: "user".into(),
            sid: "sid1".into(),
            jti: "j".into(),
            iat: 0,
            exp: 0,
            idp: "local".into(),
            auth_time: 0,
            amr: vec!["pwd".into()],
            jkt: None,
        })
        .expect("valid values");
        let mut map = spoofed();
        headers().strip_then_set(&mut map, Some(&identity));
        let set: Vec<(&str, &str)> = map
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            set,
            [
                ("x-auth-sub", "alice"),
                ("x-auth-role", "user"),
                ("x-auth-session", "sid1")
            ]
        );
    }
}
