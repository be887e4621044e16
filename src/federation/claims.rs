//! From a verified id_token's claims to who logs in (SPEC 10): the subject (`subject_claim`
//! behind `subject_prefix`), the role (`role_claim` through `role_map`, else `default_role`),
//! the email rule, and how they authenticated (`auth_time`, `amr`, the provider's `sid`).

use serde_json::{Map, Value};

use super::OidcFailure;
use crate::auth::mapping::{self, StringClaim, text};
use crate::config::ProviderConfig;
use crate::sessions::store::Origin;
/// `amr` values kept from the provider, and their length: enough for any real login.
const MAX_AMR_VALUES: usize = 8;
const MAX_AMR_BYTES: usize = 32;
/// Longest provider `sid` remembered for back-channel logout.
const MAX_SID_BYTES: usize = 256;
/// RFC 8176: authenticated through a federated identity provider.
pub(crate) const FEDERATED_AMR: &str = "fed";

/// Who logs in, as the gateway will know them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub sub: String,
    pub role: String,
    pub origin: Origin,
}

pub(crate) fn map(
    provider: &ProviderConfig,
    claims: &Map<String, Value>,
    now: u64,
) -> Result<Mapped, OidcFailure> {
    let provider_sub = text(claims, "sub").ok_or(OidcFailure::NoSubject)?;
    let sub = mapping::subject(&provider.mapping, claims).ok_or(OidcFailure::NoSubject)?;
    check_email(provider, claims)?;
    let role = mapping::role(&provider.mapping, claims, StringClaim::OneValue).ok_or(OidcFailure::NoRole)?;
    let origin = Origin {
        idp: provider.name.clone(),
        auth_time: claims.get("auth_time").and_then(Value::as_u64).unwrap_or(now),
        amr: amr(claims),
        idp_sid: text(claims, "sid")
            .filter(|sid| sid.len() <= MAX_SID_BYTES)
            .map(str::to_owned),
        idp_sub: Some(provider_sub.to_owned()),
        jkt: None,
    };
    Ok(Mapped { sub, role, origin })
}

/// With `allowed_email_domains`: a verified email in one of them. `email_verified` is a JSON
/// boolean in the standard; the string "true" some providers send is accepted as well.
fn check_email(provider: &ProviderConfig, claims: &Map<String, Value>) -> Result<(), OidcFailure> {
    if provider.allowed_email_domains.is_empty() {
        return Ok(());
    }
    let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "true");
    if !verified {
        return Err(OidcFailure::EmailNotVerified);
    }
    let email = text(claims, "email").ok_or(OidcFailure::EmailNotVerified)?;
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
    match domain.is_some_and(|d| provider.allowed_email_domains.contains(&d)) {
        true => Ok(()),
        false => Err(OidcFailure::EmailDomain),
    }
}

/// `fed`, then the provider's own values that fit (visible ASCII, short, a few).
fn amr(claims: &Map<String, Value>) -> Vec<String> {
    let mut amr = vec![FEDERATED_AMR.to_owned()];
    let given = claims.get("amr").and_then(Value::as_array).into_iter().flatten();
    for value in given.filter_map(Value::as_str) {
        let fits =
            !value.is_empty() && value.len() <= MAX_AMR_BYTES && value.bytes().all(|b| b.is_ascii_graphic());
        if fits && !amr.iter().any(|a| a == value) && amr.len() <= MAX_AMR_VALUES {
            amr.push(value.to_owned());
        }
    }
    amr
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{ClaimMapping, ClientAuth, SecretSource};

    fn corp() -> ProviderConfig {
        ProviderConfig {
            name: "corp".into(),
            display_name: "Corp".into(),
            issuer: "https://idp.example.com".into(),
            client_id: "portcullis".into(),
            client_secret: SecretSource::Env("X".into()),
            client_auth: ClientAuth::Basic,
            scopes: vec!["openid".into()],
            mapping: ClaimMapping {
                subject_claim: "sub".into(),
                subject_prefix: "corp:".into(),
                role_claim: Some("groups".into()),
                role_map: vec![("admins".into(), "admin".into()), ("staff".into(), "user".into())],
                default_role: None,
            },
            allowed_email_domains: Vec::new(),
            ca_file: None,
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn the_first_listed_role_pair_that_is_held_wins_and_nothing_held_refuses() {
        let mapped = map(
            &corp(),
            &claims(json!({"sub": "alice", "groups": ["staff", "admins"], "sid": "s1", "auth_time": 5})),
            9,
        )
        .expect("mapped");
        assert_eq!(
            (mapped.sub.as_str(), mapped.role.as_str()),
            ("corp:alice", "admin")
        );
        assert_eq!(mapped.origin.idp_sid.as_deref(), Some("s1"));
        assert_eq!(
            (mapped.origin.auth_time, mapped.origin.amr.clone()),
            (5, vec!["fed".to_string()])
        );
        let one = map(&corp(), &claims(json!({"sub": "bob", "groups": "staff"})), 9).expect("a string claim");
        assert_eq!((one.role.as_str(), one.origin.auth_time), ("user", 9));
        assert_eq!(
            map(&corp(), &claims(json!({"sub": "carol", "groups": []})), 9),
            Err(OidcFailure::NoRole)
        );
        let mut with_default = corp();
        with_default.mapping.default_role = Some("guest".into());
        assert_eq!(
            map(&with_default, &claims(json!({"sub": "carol"})), 9)
                .expect("mapped")
                .role,
            "guest"
        );
    }

    #[test]
    fn a_subject_that_cannot_be_a_header_value_is_refused() {
        for bad in [
            json!({"groups": "staff"}),
            json!({"sub": "a b", "groups": "staff"}),
            json!({"sub": "", "groups": "staff"}),
        ] {
            assert_eq!(
                map(&corp(), &claims(bad.clone()), 0),
                Err(OidcFailure::NoSubject),
                "{bad}"
            );
        }
        let mut by_email = corp();
        by_email.mapping.subject_claim = "email".into();
        let mapped = map(
            &by_email,
            &claims(json!({"sub": "123", "email": "a@x.org", "groups": "staff"})),
            0,
        )
        .expect("mapped");
        assert_eq!(
            (mapped.sub.as_str(), mapped.origin.idp_sub.as_deref()),
            ("corp:a@x.org", Some("123"))
        );
    }

    #[test]
    fn allowed_domains_need_a_verified_email_in_one_of_them() {
        let mut provider = corp();
        provider.allowed_email_domains = vec!["example.com".into()];
        let login = |email: &str, verified: Value| {
            map(
                &provider,
                &claims(json!({"sub": "a", "groups": "staff", "email": email, "email_verified": verified})),
                0,
            )
            .map(|m| m.role)
        };
        assert_eq!(login("a@Example.COM", json!(true)), Ok("user".into()));
        assert_eq!(login("a@example.com", json!("true")), Ok("user".into()));
        assert_eq!(
            login("a@example.com", json!(false)),
            Err(OidcFailure::EmailNotVerified)
        );
        assert_eq!(
            login("a@example.com.evil.org", json!(true)),
            Err(OidcFailure::EmailDomain)
        );
        assert_eq!(login("example.com", json!(true)), Err(OidcFailure::EmailDomain));
    }

    #[test]
    fn amr_keeps_fed_first_and_only_sane_provider_values() {
        let long = "x".repeat(40);
        let given = json!({"sub": "a", "groups": "staff", "amr": ["mfa", "fed", "a b", long, 7, "otp"]});
        assert_eq!(
            map(&corp(), &claims(given), 0).expect("mapped").origin.amr,
            ["fed", "mfa", "otp"]
        );
    }
}
