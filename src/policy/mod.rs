//! Whether a caller may make a request on a route, by the route's rules (SPEC 13): the first
//! rule whose conditions all hold decides; with rules, a request none matches is refused. When
//! an `allow` rule fails only on how recently or how strongly the caller proved who they are
//! (`max_auth_age`, `mfa`) and the request would otherwise be refused, the answer is a step-up.
//!
//! The request path and `portcullis explain` call the same `decide`; the request path passes
//! an observer that does nothing, so a decision allocates nothing and costs a few comparisons
//! per rule.

use std::net::IpAddr;

use http::Method;

use crate::auth::{CredentialKind, Identity};
use crate::config::{Effect, RuleConfig};
use crate::path::prefix_matches;

mod unmet;

pub use unmet::Unmet;

/// What a rule may look at.
pub struct Facts<'a> {
    /// `None`: an anonymous caller (on a public route), for whom no identity condition holds.
    pub caller: Option<&'a Identity>,
    pub method: &'a Method,
    /// The normalised path.
    pub path: &'a str,
    /// SPEC 6's client address.
    pub client: IpAddr,
    /// Unix seconds, for `max_auth_age`.
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// By the rule at this index, or `None` when the route has no rules.
    Allow { rule: Option<usize> },
    /// By the `deny` rule at this index, or `None` when no rule matched.
    Deny { rule: Option<usize> },
    /// The caller must prove who they are again.
    StepUp(StepUp),
}

/// What a step-up must renew, from the first `allow` rule that failed only on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUp {
    pub rule: usize,
    /// The rule needs a second factor (`acr_values="mfa"`).
    pub mfa: bool,
    /// The rule's `max_auth_age` in seconds (`max_age=N`), when that is what failed.
    pub max_age: Option<u64>,
}

/// Decides `facts` by `rules`, telling `observe` each rule consulted and what it found unmet.
pub fn decide(rules: &[RuleConfig], facts: &Facts<'_>, mut observe: impl FnMut(usize, Unmet)) -> Decision {
    if rules.is_empty() {
        return Decision::Allow { rule: None };
    }
    let mut step_up = None;
    for (index, rule) in rules.iter().enumerate() {
        let unmet = unmet(rule, facts);
        observe(index, unmet);
        if unmet.is_empty() {
            return match (rule.effect, step_up) {
                (Effect::Allow, _) => Decision::Allow { rule: Some(index) },
                // Stepping up would let the earlier rule allow before this one denies.
                (Effect::Deny, Some(step_up)) => Decision::StepUp(step_up),
                (Effect::Deny, None) => Decision::Deny { rule: Some(index) },
            };
        }
        let renewable = rule.effect == Effect::Allow && unmet.only_freshness() && can_step_up(facts);
        if step_up.is_none() && renewable {
            step_up = Some(StepUp {
                rule: index,
                mfa: rule.mfa,
                max_age: rule.max_auth_age.map(|age| age.as_secs()),
            });
        }
    }
    match step_up {
        Some(step_up) => Decision::StepUp(step_up),
        None => Decision::Deny { rule: None },
    }
}

/// Only a session can be renewed: API keys and other issuers' tokens have no login to repeat.
fn can_step_up(facts: &Facts<'_>) -> bool {
    facts
        .caller
        .is_some_and(|caller| caller.kind == CredentialKind::Session)
}

/// The conditions of `rule` that `facts` fail.
pub fn unmet(rule: &RuleConfig, facts: &Facts<'_>) -> Unmet {
    let caller = facts.caller;
    let any_of = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|value| list.iter().any(|item| item == value))
    };
    let method = |m: &Method| m == facts.method || (facts.method == Method::HEAD && m == Method::GET);
    let second_factor = |c: &Identity| c.amr.iter().any(|a| a == "otp" || a == "hwk");
    let fresh = |max: u64| caller.is_some_and(|c| facts.now.saturating_sub(c.auth_time) <= max);
    let mut unmet = Unmet::NONE;
    unmet.set_if(
        Unmet::ROLES,
        !any_of(&rule.roles, caller.map(|c| c.role.as_str())),
    );
    unmet.set_if(
        Unmet::SUBJECTS,
        !any_of(&rule.subjects, caller.map(|c| c.sub.as_str())),
    );
    unmet.set_if(Unmet::IDP, !any_of(&rule.idp, caller.map(|c| c.idp.as_str())));
    unmet.set_if(
        Unmet::METHODS,
        !rule.methods.is_empty() && !rule.methods.iter().any(method),
    );
    let path = |prefix: &String| prefix_matches(prefix, facts.path);
    unmet.set_if(
        Unmet::PATHS,
        !rule.paths.is_empty() && !rule.paths.iter().any(path),
    );
    let from = |net: &ipnet::IpNet| net.contains(&facts.client);
    unmet.set_if(Unmet::FROM, !rule.from.is_empty() && !rule.from.iter().any(from));
    unmet.set_if(Unmet::MFA, rule.mfa && !caller.is_some_and(second_factor));
    let max_age = rule.max_auth_age.map(|age| age.as_secs());
    unmet.set_if(Unmet::AUTH_AGE, max_age.is_some_and(|max| !fresh(max)));
    unmet
}

#[cfg(test)]
mod tests;
