//! `portcullis explain`: which route a request would take and what each of its rules says
//! about a given caller, by the same routing and `policy::decide` the request path runs.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use http::{Method, Uri};

use crate::auth::tokens::{Claimed, LOCAL_AMR, LOCAL_IDP, unix_now};
use crate::auth::{CredentialKind, Identity};
use crate::config::{AuthPolicy, Config, RouteConfig};
use crate::policy::{self, Decision, Facts, Unmet};
use crate::routes::{Destination, Route, RouteTable};

/// The request and caller to explain. Without `sub` and `role` the caller is anonymous.
pub struct Question {
    pub method: Method,
    /// `https://host/path?query`, or just the path (then no route with a `host` matches).
    pub url: String,
    pub sub: Option<String>,
    pub role: Option<String>,
    /// Default `local` (a password login).
    pub idp: Option<String>,
    /// The session holds a second factor.
    pub mfa: bool,
    /// Time since the caller last proved who they are; default zero.
    pub auth_age: Option<Duration>,
    /// The client address; default 127.0.0.1.
    pub from: Option<IpAddr>,
}

/// The printed explanation, and whether the request would be let through.
pub struct Explanation {
    pub text: String,
    pub allowed: bool,
}

/// Explains `question` against `config`; `Err` for a question that cannot be asked.
pub fn explain(config: &Config, question: &Question) -> Result<Explanation, String> {
    let (host, path) = target(&question.url)?;
    let caller = caller(question)?;
    let client = question.from.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let path = match crate::path::normalize_path(&path) {
        Ok(path) => path,
        Err(rejection) => {
            return Ok(refused(
                String::new(),
                &format!("400: the path is refused ({rejection})"),
            ));
        }
    };
    let routes = RouteTable::new(
        config
            .routes
            .iter()
            .map(|c| Route::new(c.clone(), None))
            .collect(),
    );
    let route = match routes.find(&host, &path, &question.method) {
        Some(Destination::Upstream(route)) => route,
        Some(Destination::Gateway) => {
            let text = format!("{path} is answered by the gateway itself; routes and rules do not apply\n");
            return Ok(Explanation { text, allowed: true });
        }
        Some(Destination::WrongMethod { route, allow }) => {
            let allow = allow.to_str().unwrap_or("?");
            let what = format!("405: route {:?} takes only {allow}", route.name);
            return Ok(refused(String::new(), &what));
        }
        None => return Ok(refused(String::new(), "404: no route matches")),
    };
    let mut out = String::new();
    let file = config.source.display();
    let _ = writeln!(
        out,
        "route: {} ({file}:{}), auth {}",
        route.name,
        route.line,
        auth_name(route)
    );
    let _ = writeln!(out, "caller: {}, from {client}", describe(caller.as_ref()));
    if let Some(refusal) = before_rules(route, caller.as_ref()) {
        return Ok(refused(out, &refusal));
    }
    let facts = Facts {
        caller: caller.as_ref(),
        method: &question.method,
        path: &path,
        client,
        now: unix_now(),
    };
    Ok(rules_report(config, route, &facts, out))
}

/// Each rule's verdict on `facts`, then the decision, after what `out` already holds.
fn rules_report(config: &Config, route: &RouteConfig, facts: &Facts<'_>, mut out: String) -> Explanation {
    let mut verdicts = vec![None; route.rules.len()];
    let decision = policy::decide(&route.rules, facts, |index, unmet| verdicts[index] = Some(unmet));
    let file = config.source.display();
    for ((index, rule), verdict) in route.rules.iter().enumerate().zip(verdicts) {
        let (number, line, effect) = (index + 1, rule.line, rule.effect.name());
        let _ = writeln!(
            out,
            "rule {number}  {file}:{line}  {effect:<5}  {}",
            verdict_text(verdict)
        );
    }
    let has_caller = facts.caller.is_some();
    let _ = writeln!(
        out,
        "decision: {}",
        decision_text(config, route, decision, has_caller)
    );
    let allowed = matches!(decision, Decision::Allow { .. });
    Explanation { text: out, allowed }
}

fn refused(mut out: String, why: &str) -> Explanation {
    let _ = writeln!(out, "decision: deny ({why})");
    Explanation {
        text: out,
        allowed: false,
    }
}

/// Lower-case host without port (empty for a bare path) and the path without its query.
fn target(url: &str) -> Result<(String, String), String> {
    let absolute = url.starts_with("https://") || url.starts_with("http://");
    let uri: Uri = match absolute || url.starts_with('/') {
        true => url.parse().map_err(|e| format!("--url {url:?}: {e}"))?,
        false => return Err(format!("--url {url:?} must be https://host/path or a path")),
    };
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    Ok((host, uri.path().to_string()))
}

/// The caller as a verified session of `--sub`/`--role` would be.
fn caller(question: &Question) -> Result<Option<Identity>, String> {
    if question.sub.is_none() && question.role.is_none() {
        return Ok(None);
    }
    let idp = question.idp.clone().unwrap_or_else(|| LOCAL_IDP.to_string());
    let mut amr = vec![if idp == LOCAL_IDP { LOCAL_AMR } else { "fed" }.to_string()];
    if question.mfa {
        amr.push("otp".to_string());
    }
    let now = unix_now();
    let age = question.auth_age.unwrap_or_default().as_secs();
    let identity = Identity::new(Claimed {
        kind: CredentialKind::Session,
        sub: question.sub.clone().unwrap_or_else(|| "someone".to_string()),
        role: question.role.clone().unwrap_or_else(|| "none".to_string()),
        sid: "explain".to_string(),
        jti: "explain".to_string(),
        iat: now,
        exp: now + 60,
        idp,
        auth_time: now.saturating_sub(age),
        amr,
        jkt: None,
    });
    identity
        .map(Some)
        .map_err(|_| "--sub and --role must be non-empty visible ASCII".to_string())
}

fn describe(caller: Option<&Identity>) -> String {
    match caller {
        None => "anonymous".to_string(),
        Some(c) => format!(
            "sub {:?}, role {:?}, idp {:?}, amr [{}], last proved {}s ago",
            c.sub,
            c.role,
            c.idp,
            c.amr.join(" "),
            unix_now().saturating_sub(c.auth_time)
        ),
    }
}

fn auth_name(route: &RouteConfig) -> &'static str {
    match route.auth {
        AuthPolicy::Required => "required",
        AuthPolicy::Public => "public",
    }
}

/// What the request path refuses before the rules: no caller on a protected route, a role
/// outside the route's `roles`.
fn before_rules(route: &RouteConfig, caller: Option<&Identity>) -> Option<String> {
    match caller {
        None if route.auth == AuthPolicy::Required => Some("401: the route needs a caller".to_string()),
        Some(c) if !route.roles.is_empty() && !route.roles.contains(&c.role) => Some(format!(
            "403: role {:?} is not in the route's roles {:?}",
            c.role, route.roles
        )),
        _ => None,
    }
}

fn verdict_text(unmet: Option<Unmet>) -> String {
    match unmet {
        None => "not consulted (an earlier rule decided)".to_string(),
        Some(unmet) if unmet.is_empty() => "matches".to_string(),
        Some(unmet) => format!("no match: {}", unmet.names().collect::<Vec<_>>().join(", ")),
    }
}

fn decision_text(config: &Config, route: &RouteConfig, decision: Decision, has_caller: bool) -> String {
    let at = |index: usize| {
        format!(
            "rule {} at {}:{}",
            index + 1,
            config.source.display(),
            route.rules[index].line
        )
    };
    match decision {
        Decision::Allow { rule: None } => "allow (the route has no rules)".to_string(),
        Decision::Allow { rule: Some(index) } => format!("allow ({})", at(index)),
        Decision::Deny { rule: Some(index) } => format!("deny, 403 ({})", at(index)),
        Decision::Deny { rule: None } if !has_caller => {
            "deny, 401 (no rule matched an anonymous caller)".to_string()
        }
        Decision::Deny { rule: None } => "deny, 403 (no rule matched)".to_string(),
        Decision::StepUp(step_up) => {
            let mut needs = Vec::new();
            if step_up.mfa {
                needs.push("a second factor".to_string());
            }
            if let Some(max_age) = step_up.max_age {
                needs.push(format!("a login within {max_age}s"));
            }
            format!(
                "step-up, 401 insufficient_user_authentication ({} would allow with {})",
                at(step_up.rule),
                needs.join(" and ")
            )
        }
    }
}
