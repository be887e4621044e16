//! From a verified id_token's claims to who logs in (SPEC 10): the subject (`subject_claim`
//! behind `subject_prefix`), the role (`role_claim` through `role_map`, else `default_role`),
//! the email rule, and how they authenticated (`auth_time`, `amr`, the provider's `sid`).

use serde_json::{Map, Value};

use super::OidcFailure;
use crate::config::ProviderConfig;
use crate::sessions::store::Origin;

/// The same bound as for our own tokens' `sub`: it becomes a header value.
const MAX_SUBJECT_BYTES: usize = 256;
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
    let subject = text(claims, &provider.subject_claim).ok_or(OidcFailure::NoSubject)?;
    let sub = format!("{}{subject}", provider.subject_prefix);
    if sub.len() > MAX_SUBJECT_BYTES || !sub.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OidcFailure::NoSubject);
    }
    check_email(provider, claims)?;
    let role = role(provider, claims).ok_or(OidcFailure::NoRole)?;
    let origin = Origin {
        idp: provider.name.clone(),
        auth_time: claims.get("auth_time").and_then(Value::as_u64).unwrap_or(now),
        amr: amr(claims),
        idp_sid: text(claims, "sid")
            .filter(|sid| sid.len() <= MAX_SID_BYTES)
            .map(str::to_owned),
        idp_sub: Some(provider_sub.to_owned()),
    };
    Ok(Mapped { sub, role, origin })
}

fn text<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The first `role_map` pair whose value the role claim holds, else `default_role`.
fn role(provider: &ProviderConfig, claims: &Map<String, Value>) -> Option<String> {
    let held: Vec<&str> = match provider.role_claim.as_ref().and_then(|name| claims.get(name)) {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mapped = provider
        .role_map
        .iter()
        .find(|(value, _)| held.contains(&value.as_str()));
    mapped
        .map(|(_, role)| role.clone())
        .or_else(|| provider.default_role.clone())
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
    use crate::config::{ClientAuth, SecretSource};

    fn corp() -> ProviderConfig {
        ProviderConfig {
            name: "corp".into(),
            display_name: "Corp".into(),
            issuer: "https://idp.example.com".into(),
            client_id: "portcullis".into(),
            client_secret: SecretSource::Env("X".into()),
            client_auth: ClientAuth::Basic,
            scopes: vec!["openid".into()],
            subject_claim: "sub".into(),
            subject_prefix: "corp:".into(),
            role_claim: Some("groups".into()),
            role_map: vec![("admins".into(), "admin".into()), ("staff".into(), "user".into())],
            default_role: None,
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
        with_default.default_role = Some("guest".into());
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
        by_email.subject_claim = "email".into();
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
