//! Checks of `[[routes]]`: each route's values, then names and matches that collide.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::Checker;
use super::rules::RuleScope;
use super::upstreams::UpstreamKeys;
use crate::config::file::RouteFile;
use crate::config::values::*;
use crate::config::*;

impl Checker<'_> {
    pub(super) fn routes(
        &mut self,
        routes: Vec<Spanned<RouteFile>>,
        issuers: &[IssuerConfig],
        providers: &[ProviderConfig],
    ) -> Vec<RouteConfig> {
        let providers: Vec<String> = providers.iter().map(|p| p.name.clone()).collect();
        let mut checked: Vec<RouteConfig> = Vec::with_capacity(routes.len());
        // Only names the file gave: a missing or refused name leaves a stand-in shared by all.
        let mut names: HashSet<String> = HashSet::with_capacity(routes.len());
        // Valid routes by place (host pattern and prefix): only routes of one place can clash.
        let mut places: HashMap<(Option<HostPattern>, String), Vec<usize>> = HashMap::new();
        for spanned in routes {
            let span = spanned.span();
            let named = spanned
                .get_ref()
                .name
                .as_ref()
                .is_some_and(|n| route_name(n.get_ref()).is_ok());
            let errors_before = self.problems.len();
            let route = self.route(spanned.into_inner(), &span, issuers, &providers);
            // A route with its own errors holds stand-in values that would collide spuriously.
            let route_is_valid = self.problems.len() == errors_before;
            if named && names.contains(&route.name) {
                let message = format!("route name {:?} is used twice", route.name);
                self.error(span, message);
            } else if let Some(message) = places
                .get(&route.place())
                .filter(|_| route_is_valid)
                .and_then(|same| same.iter().find_map(|&other| clash(&checked[other], &route)))
            {
                self.error(span, message);
            }
            if named {
                names.insert(route.name.clone());
            }
            if route_is_valid {
                places.entry(route.place()).or_default().push(checked.len());
            }
            checked.push(route);
        }
        checked
    }

    fn route(
        &mut self,
        file: RouteFile,
        span: &Range<usize>,
        issuers: &[IssuerConfig],
        providers: &[String],
    ) -> RouteConfig {
        let RouteFile {
            name,
            host,
            path,
            methods,
            upstream,
            auth,
            roles,
            strip_prefix,
            timeout,
            websocket,
            login_page,
            accept,
            upstreams,
            balance,
            retries,
            upstream_tls,
            health_check,
            assertion,
            require_dpop,
            rules,
        } = file;
        let name = self.required(&name, "name", span, "[[routes]]");
        let path = self.required(&path, "path", span, "[[routes]]");
        let keys = UpstreamKeys {
            upstream,
            upstreams,
            balance,
            retries,
            tls: upstream_tls,
            health_check,
        };
        let upstream = self.upstream(keys, span);
        if upstream.is_none() && websocket == Some(true) {
            self.error(span.clone(), "websocket = true needs an upstream to tunnel to");
        }
        let auth = self.auth(auth, &roles);
        let methods = methods.map(|list| self.methods(list));
        let path = self.value(path, "/", route_path);
        let rules = self.rules(rules, &RuleScope::new(&path, providers, issuers));
        let accept = self.accept(accept, issuers);
        let require_dpop = require_dpop.is_some_and(|require| self.require_dpop(require, &accept));
        RouteConfig {
            name: self.value(name, "invalid-route", route_name),
            host: host.and_then(|h| self.optional(&h, host_pattern)),
            path,
            methods,
            upstream,
            auth,
            roles: roles.iter().filter_map(|r| self.optional(r, role_name)).collect(),
            strip_prefix: strip_prefix.unwrap_or(false),
            timeout: self.value(timeout.as_ref(), "30s", parse_duration),
            websocket: websocket.unwrap_or(false),
            login_page: login_page.and_then(|page| self.optional(&page, login_page_path)),
            accept,
            assertion: assertion.unwrap_or(false),
            require_dpop,
            rules,
            line: self.problems.line_of(span.start),
        }
    }

    /// DPoP-bound tokens are session tokens (or another issuer's with `cnf.jkt`): a route
    /// that takes only API keys could then take nothing.
    fn require_dpop(&mut self, require: Spanned<bool>, accept: &[Acceptable]) -> bool {
        let only_api_keys = accept.iter().all(|a| *a == Acceptable::ApiKey);
        if *require.get_ref() && only_api_keys {
            self.error(
                require.span(),
                "require_dpop = true refuses API keys, the only credential this route accepts",
            );
        }
        *require.get_ref()
    }

    fn auth(&mut self, auth: Option<Spanned<String>>, roles: &[Spanned<String>]) -> AuthPolicy {
        let auth = self.value(auth.as_ref(), "required", |a| match a {
            "required" => Ok(AuthPolicy::Required),
            "public" => Ok(AuthPolicy::Public),
            other => Err(format!("auth must be \"required\" or \"public\", not {other:?}")),
        });
        if auth == AuthPolicy::Public && !roles.is_empty() {
            let message = "roles need auth = \"required\"; a public route has no caller to check";
            self.error(roles[0].span(), message);
        }
        auth
    }

    fn methods(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Vec<Method> {
        if list.get_ref().is_empty() {
            let message = "methods = [] takes no request; omit it to take every method";
            self.error(list.span(), message);
        }
        self.each(list.get_ref(), method)
    }

    /// `accept = ["session", "api_key", "issuer:<name>"]`, each at most once; `["session"]`
    /// when not given.
    fn accept(
        &mut self,
        given: Option<Spanned<Vec<Spanned<String>>>>,
        issuers: &[IssuerConfig],
    ) -> Vec<Acceptable> {
        let Some(given) = given else {
            return vec![Acceptable::Session];
        };
        if given.get_ref().is_empty() {
            self.error(
                given.span(),
                "accept = [] takes no credential; omit it to accept [\"session\"]",
            );
        }
        let mut accepted = Vec::new();
        for kind in given.get_ref() {
            let parsed = match kind.get_ref().as_str() {
                "session" => Ok(Acceptable::Session),
                "api_key" => Ok(Acceptable::ApiKey),
                other => match other.strip_prefix("issuer:") {
                    Some(name) if issuers.iter().any(|i| i.name == name) => {
                        Ok(Acceptable::Issuer(name.into()))
                    }
                    Some(name) => Err(format!(
                        "accept names issuer {name:?}, but no [[issuers]] entry has that name"
                    )),
                    None => Err(format!(
                        "accept takes \"session\", \"api_key\" or \"issuer:<name>\", not {other:?}"
                    )),
                },
            };
            match parsed {
                Ok(kind_ok) if accepted.contains(&kind_ok) => {
                    self.error(kind.span(), format!("accept lists {:?} twice", kind.get_ref()));
                }
                Ok(kind_ok) => accepted.push(kind_ok),
                Err(message) => self.error(kind.span(), message),
            }
        }
        if accepted.is_empty() {
            accepted.push(Acceptable::Session);
        }
        accepted
    }
}

/// Two routes of one place (one group, see `routes`) must not both take a method:
/// the method is all that picks between them.
fn clash(earlier: &RouteConfig, route: &RouteConfig) -> Option<String> {
    let (a, b) = (&earlier.name, &route.name);
    match (&earlier.methods, &route.methods) {
        (None, None) => Some(format!("route {b:?} matches exactly what route {a:?} matches")),
        (Some(mine), Some(theirs)) => mine.iter().find(|m| theirs.contains(m)).map(|method| {
            format!("routes {a:?} and {b:?} both take {method} on the same host and path prefix")
        }),
        _ => None,
    }
}
