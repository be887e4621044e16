//! From a foreign token's claims to who the gateway says is calling (SPEC 10 and 11): the
//! subject (`subject_claim` behind `subject_prefix`) and the role (`role_claim` through
//! `role_map`, else `default_role`). Shared by provider logins and other issuers' tokens.

use serde_json::{Map, Value};

use super::tokens::fits_header;
use crate::config::ClaimMapping;

/// How a role claim that is a single string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringClaim {
    /// One value (an id_token's `groups: "admins"`).
    OneValue,
    /// Space-separated values (an access token's `scope: "read deploy"`, RFC 9068).
    SpaceSeparated,
}

/// `subject_prefix` + the subject claim, when it is a non-empty string that fits a header.
pub fn subject(mapping: &ClaimMapping, claims: &Map<String, Value>) -> Option<String> {
    let subject = text(claims, &mapping.subject_claim)?;
    let sub = format!("{}{subject}", mapping.subject_prefix);
    fits_header(&sub).then_some(sub)
}

/// The first `role_map` pair whose value the role claim holds, else `default_role`.
pub fn role(mapping: &ClaimMapping, claims: &Map<String, Value>, string: StringClaim) -> Option<String> {
    let held: Vec<&str> = match mapping.role_claim.as_ref().and_then(|name| claims.get(name)) {
        Some(Value::String(one)) if string == StringClaim::SpaceSeparated => one.split(' ').collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mapped = mapping
        .role_map
        .iter()
        .find(|(value, _)| held.contains(&value.as_str()));
    mapped
        .map(|(_, role)| role.clone())
        .or_else(|| mapping.default_role.clone())
}

/// A claim that is a non-empty string.
pub fn text<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c str> {
    claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(default_role: Option<&str>) -> ClaimMapping {
        ClaimMapping {
            subject_claim: "client_id".into(),
            subject_prefix: "ci:".into(),
            role_claim: Some("scope".into()),
            role_map: vec![
                ("deploy".into(), "deployer".into()),
                ("read".into(), "reader".into()),
            ],
            default_role: default_role.map(str::to_owned),
        }
    }

    fn claims(value: serde_json::Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn a_space_separated_scope_and_an_array_map_alike_but_one_value_stays_whole() {
        let spaced = claims(json!({ "scope": "read deploy" }));
        let array = claims(json!({ "scope": ["read", "deploy"] }));
        for held in [&spaced, &array] {
            let role = role(&mapping(None), held, StringClaim::SpaceSeparated);
            assert_eq!(role.as_deref(), Some("deployer"), "the first listed pair wins");
        }
        assert_eq!(role(&mapping(None), &spaced, StringClaim::OneValue), None);
    }

    #[test]
    fn nothing_held_falls_back_to_default_role_or_refuses() {
        let none = claims(json!({ "scope": "write" }));
        let role_of = |default| role(&mapping(default), &none, StringClaim::SpaceSeparated);
        assert_eq!(role_of(None), None);
        assert_eq!(role_of(Some("guest")).as_deref(), Some("guest"));
    }

    #[test]
    fn the_subject_is_the_configured_claim_behind_the_prefix_and_must_fit_a_header() {
        let map = mapping(None);
        let subject_of = |value| subject(&map, &claims(value));
        assert_eq!(
            subject_of(json!({ "client_id": "runner", "sub": "x" })).as_deref(),
            Some("ci:runner")
        );
        assert_eq!(subject_of(json!({ "sub": "x" })), None);
        assert_eq!(subject_of(json!({ "client_id": "" })), None);
        assert_eq!(subject_of(json!({ "client_id": 7 })), None);
        assert_eq!(subject_of(json!({ "client_id": "with space" })), None);
        assert_eq!(subject_of(json!({ "client_id": "x".repeat(300) })), None);
    }
}
