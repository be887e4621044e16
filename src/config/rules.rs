//! A route's rules (SPEC 13): who may do what, decided in file order after authentication.

use std::time::Duration;

use http::Method;
use ipnet::IpNet;

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn name(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// One `[[routes.rules]]` entry. Every condition is optional (an empty list or `None` holds
/// for every request) and a rule matches when all of its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    pub effect: Effect,
    /// Any of these roles.
    pub roles: Vec<String>,
    /// Any of these subjects.
    pub subjects: Vec<String>,
    /// Any of these identity providers (`local` for a password login).
    pub idp: Vec<String>,
    /// Any of these methods; `GET` takes `HEAD` too, as a route's `methods` does.
    pub methods: Vec<Method>,
    /// Any of these normalised path prefixes, each at or below the route's path, matched by
    /// whole segments like the route's own prefix.
    pub paths: Vec<String>,
    /// Any of these networks holds the client address (SPEC 6).
    pub from: Vec<IpNet>,
    /// A second factor in this session (`amr` holds `otp` or `hwk`).
    pub mfa: bool,
    /// At most this long since the caller last proved who they are.
    pub max_auth_age: Option<Duration>,
    /// Where the rule is written, for `portcullis explain`: the line of its `[[routes.rules]]`.
    pub line: usize,
}
