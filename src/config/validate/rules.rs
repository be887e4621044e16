//! Checks of `[[routes.rules]]` (SPEC 13): each condition's values, and rules that can never
//! apply because an earlier rule matches every request.

use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::file::RuleFile;
use crate::config::values::*;
use crate::config::*;

/// More rules than anyone writes by hand; a list this long is generated, and a mistake.
const MAX_RULES: usize = 100;

/// What a rule's `idp` may name besides providers: password logins, API keys, and
/// `issuer:<name>` for other issuers' tokens.
const BUILT_IN_IDPS: [&str; 2] = ["local", "api_key"];

/// What the rules of one route may refer to.
pub(super) struct RuleScope<'a> {
    pub route_path: &'a str,
    pub providers: &'a [String],
    pub issuers: &'a [IssuerConfig],
}

impl<'a> RuleScope<'a> {
    pub(super) fn new(route_path: &'a str, providers: &'a [String], issuers: &'a [IssuerConfig]) -> Self {
        RuleScope {
            route_path,
            providers,
            issuers,
        }
    }
}

impl Checker<'_> {
    pub(super) fn rules(&mut self, rules: Vec<Spanned<RuleFile>>, scope: &RuleScope<'_>) -> Vec<RuleConfig> {
        if rules.len() > MAX_RULES {
            let message = format!("a route takes at most {MAX_RULES} rules, not {}", rules.len());
            self.error(rules[MAX_RULES].span(), message);
        }
        let mut checked: Vec<RuleConfig> = Vec::with_capacity(rules.len());
        // The first rule that holds for every request; a rule with errors lost its refused
        // conditions, so it does not count.
        let mut catch_all: Option<usize> = None;
        for spanned in rules {
            let span = spanned.span();
            let errors_before = self.problems.len();
            let rule = self.rule(spanned.into_inner(), &span, scope);
            if let Some(line) = catch_all {
                let message =
                    format!("this rule can never apply: the rule at line {line} matches every request first");
                self.error(span, message);
            } else if self.problems.len() == errors_before && matches_everything(&rule) {
                catch_all = Some(rule.line);
            }
            checked.push(rule);
        }
        checked
    }

    fn rule(&mut self, file: RuleFile, span: &Range<usize>, scope: &RuleScope<'_>) -> RuleConfig {
        let RuleFile {
            effect,
            roles,
            subjects,
            idp,
            methods,
            paths,
            from,
            mfa,
            max_auth_age,
        } = file;
        let effect = self.required(&effect, "effect", span, "[[routes.rules]]");
        let effect = self.value(effect, "allow", |text| match text {
            "allow" => Ok(Effect::Allow),
            "deny" => Ok(Effect::Deny),
            other => Err(format!("effect must be \"allow\" or \"deny\", not {other:?}")),
        });
        if let Some(mfa) = mfa.as_ref().filter(|mfa| !mfa.get_ref()) {
            let message = "mfa = false would match only sessions without a second factor; \
                           omit mfa when none is needed";
            self.error(mfa.span(), message);
        }
        RuleConfig {
            effect,
            roles: self.each(&roles, role_name),
            subjects: self.each(&subjects, claim_text),
            idp: self.each(&idp, |name| idp_name(name, scope)),
            methods: self.each(&methods, method),
            paths: self.each(&paths, |path| rule_path(path, scope.route_path)),
            from: self.each(&from, parse_cidr),
            mfa: mfa.is_some_and(|mfa| *mfa.get_ref()),
            max_auth_age: max_auth_age.and_then(|age| self.optional(&age, parse_duration)),
            line: self.problems.line_of(span.start),
        }
    }
}

fn matches_everything(rule: &RuleConfig) -> bool {
    let RuleConfig {
        effect: _,
        roles,
        subjects,
        idp,
        methods,
        paths,
        from,
        mfa,
        max_auth_age,
        line: _,
    } = rule;
    [
        roles.is_empty(),
        subjects.is_empty(),
        idp.is_empty(),
        methods.is_empty(),
    ]
    .into_iter()
    .chain([paths.is_empty(), from.is_empty(), !mfa, max_auth_age.is_none()])
    .all(|unconditional| unconditional)
}

fn idp_name(name: &str, scope: &RuleScope<'_>) -> Result<String, String> {
    let known = BUILT_IN_IDPS.contains(&name)
        || scope.providers.iter().any(|p| p == name)
        || name
            .strip_prefix("issuer:")
            .is_some_and(|issuer| scope.issuers.iter().any(|i| i.name == issuer));
    match known {
        true => Ok(name.to_string()),
        false => Err(format!(
            "idp {name:?} is not \"local\", \"api_key\", a [[providers]] name or \"issuer:<name>\" \
             of an [[issuers]] entry"
        )),
    }
}

/// A normalised prefix at or below the route's own path.
fn rule_path(path: &str, route_path: &str) -> Result<String, String> {
    let normalized = crate::path::normalize_path(path).map_err(|e| format!("path {path:?}: {e}"))?;
    if normalized != path {
        return Err(format!("path {path:?} is not normalised; write {normalized:?}"));
    }
    match crate::path::prefix_matches(route_path, path) {
        true => Ok(normalized),
        false => Err(format!(
            "path {path:?} is not below the route's path {route_path:?}: the rule could never see it"
        )),
    }
}
