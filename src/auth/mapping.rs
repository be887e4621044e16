//! From a foreign token's claims to who the gateway says is calling (SPEC 10 and 11): the
//! subject (`subject_claim` behind `subject_prefix`) and the role (`role_claim` through
//! `role_map`, else `default_role`). Shared by provider logins and other issuers' tokens.

use serde_json::{Map, Value};

use crate::config::ClaimMapping;

/// The same bound as for our own tokens' `sub`: it becomes a header value.
const MAX_SUBJECT_BYTES: usize = 256;

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
    let fits = sub.len() <= MAX_SUBJECT_BYTES && sub.bytes().all(|b| b.is_ascii_graphic());
    fits.then_some(sub)
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
