use std::time::Duration;

use super::*;
use crate::auth::tokens::Claimed;

const NOW: u64 = 1_700_000_000;

fn rule(effect: Effect) -> RuleConfig {
    RuleConfig {
        effect,
        roles: vec![],
        subjects: vec![],
        idp: vec![],
        methods: vec![],
        paths: vec![],
        from: vec![],
        mfa: false,
        max_auth_age: None,
        line: 1,
    }
}

fn allow() -> RuleConfig {
    rule(Effect::Allow)
}

fn deny() -> RuleConfig {
    rule(Effect::Deny)
}

fn caller(kind: CredentialKind, role: &str, amr: &[&str], auth_age: u64) -> Identity {
    Identity::new(Claimed {
        kind,
        sub: "alice".into(),
        role: role.into(),
        sid: "s1".into(),
        jti: "j1".into(),
        iat: NOW,
        exp: NOW + 900,
        idp: "local".into(),
        auth_time: NOW - auth_age,
        amr: amr.iter().map(|a| a.to_string()).collect(),
        jkt: None,
    })
    .expect("valid identity")
}

fn user(role: &str) -> Identity {
    caller(CredentialKind::Session, role, &["pwd"], 0)
}

/// Decides a `method path` request from `client` by `caller`.
fn decide_for(
    rules: &[RuleConfig],
    caller: Option<&Identity>,
    method: Method,
    path: &str,
    client: &str,
) -> Decision {
    let facts = Facts {
        caller,
        method: &method,
        path,
        client: client.parse().expect("an address"),
        now: NOW,
    };
    decide(rules, &facts, |_, _| {})
}

fn get(rules: &[RuleConfig], caller: &Identity, path: &str) -> Decision {
    decide_for(rules, Some(caller), Method::GET, path, "192.0.2.1")
}

#[test]
fn the_first_matching_rule_decides_and_no_match_is_a_refusal() {
    let admins = RuleConfig {
        roles: vec!["admin".into()],
        ..allow()
    };
    let rules = [admins.clone(), deny(), allow()];
    assert_eq!(
        get(&rules, &user("admin"), "/a"),
        Decision::Allow { rule: Some(0) }
    );
    assert_eq!(get(&rules, &user("user"), "/a"), Decision::Deny { rule: Some(1) });
    assert_eq!(get(&[admins], &user("user"), "/a"), Decision::Deny { rule: None });
    assert_eq!(get(&[], &user("user"), "/a"), Decision::Allow { rule: None });
}

#[test]
fn a_deny_before_an_allow_wins_and_after_it_does_not() {
    let deny_alice = RuleConfig {
        subjects: vec!["alice".into()],
        ..deny()
    };
    let alice = user("admin");
    assert_eq!(
        get(&[deny_alice.clone(), allow()], &alice, "/"),
        Decision::Deny { rule: Some(0) }
    );
    assert_eq!(
        get(&[allow(), deny_alice], &alice, "/"),
        Decision::Allow { rule: Some(0) }
    );
}

#[test]
fn methods_paths_and_networks_narrow_a_rule() {
    let rule = RuleConfig {
        methods: vec![Method::GET],
        paths: vec!["/api/reports".into()],
        from: vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "2001:db8::/32".parse().expect("cidr"),
        ],
        ..allow()
    };
    let rules = [rule];
    let alice = user("user");
    let decision = |method, path, client| decide_for(&rules, Some(&alice), method, path, client);
    let allowed = Decision::Allow { rule: Some(0) };
    let refused = Decision::Deny { rule: None };
    assert_eq!(decision(Method::GET, "/api/reports/q1", "10.1.2.3"), allowed);
    assert_eq!(decision(Method::HEAD, "/api/reports", "2001:db8::7"), allowed);
    assert_eq!(decision(Method::POST, "/api/reports", "10.1.2.3"), refused);
    assert_eq!(decision(Method::GET, "/api/reportsx", "10.1.2.3"), refused);
    assert_eq!(decision(Method::GET, "/api/other", "10.1.2.3"), refused);
    assert_eq!(decision(Method::GET, "/api/reports", "192.0.2.1"), refused);
    // Servlet path parameters do not take a request out of a rule's prefix.
    assert_eq!(decision(Method::GET, "/api/reports;x=1/q1", "10.1.2.3"), allowed);
}

#[test]
fn an_anonymous_caller_meets_no_identity_condition() {
    let rules = [
        RuleConfig {
            roles: vec!["user".into()],
            ..allow()
        },
        RuleConfig {
            from: vec!["127.0.0.0/8".parse().expect("cidr")],
            ..allow()
        },
    ];
    let anonymous = |client| decide_for(&rules, None, Method::GET, "/", client);
    assert_eq!(anonymous("127.0.0.1"), Decision::Allow { rule: Some(1) });
    assert_eq!(anonymous("192.0.2.1"), Decision::Deny { rule: None });
}

#[test]
fn only_freshness_failing_on_an_allow_rule_asks_for_a_step_up() {
    let fresh_mfa = RuleConfig {
        roles: vec!["admin".into()],
        mfa: true,
        max_auth_age: Some(Duration::from_secs(600)),
        ..allow()
    };
    let rules = [fresh_mfa.clone()];
    let step_up = |mfa, max_age| {
        Decision::StepUp(StepUp {
            rule: 0,
            mfa,
            max_age,
        })
    };
    let session = CredentialKind::Session;
    let with_otp_long_ago = caller(session.clone(), "admin", &["pwd", "otp"], 3600);
    assert_eq!(get(&rules, &with_otp_long_ago, "/"), step_up(true, Some(600)));
    let password_only = caller(session.clone(), "admin", &["pwd"], 10);
    assert_eq!(get(&rules, &password_only, "/"), step_up(true, Some(600)));
    let passkey_now = caller(session.clone(), "admin", &["hwk"], 10);
    assert_eq!(get(&rules, &passkey_now, "/"), Decision::Allow { rule: Some(0) });
    // A role no step-up can give, or a credential that has no login to repeat: refused.
    let wrong_role = caller(session, "user", &["pwd"], 3600);
    assert_eq!(get(&rules, &wrong_role, "/"), Decision::Deny { rule: None });
    let api_key = caller(CredentialKind::ApiKey, "admin", &[], 3600);
    assert_eq!(get(&rules, &api_key, "/"), Decision::Deny { rule: None });
    // A later rule that allows wins (first match); a later deny would lose to the step-up.
    let alice = password_only;
    assert_eq!(
        get(&[fresh_mfa.clone(), allow()], &alice, "/"),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(get(&[fresh_mfa, deny()], &alice, "/"), step_up(true, Some(600)));
}

#[test]
fn the_observer_sees_each_rule_consulted_with_what_failed() {
    let rules = [
        RuleConfig {
            roles: vec!["admin".into()],
            methods: vec![Method::POST],
            ..allow()
        },
        allow(),
        deny(),
    ];
    let alice = user("user");
    let facts = Facts {
        caller: Some(&alice),
        method: &Method::GET,
        path: "/",
        client: "127.0.0.1".parse().expect("an address"),
        now: NOW,
    };
    let mut seen = Vec::new();
    let decision = decide(&rules, &facts, |index, unmet| {
        seen.push((index, unmet.names().collect::<Vec<_>>()))
    });
    assert_eq!(decision, Decision::Allow { rule: Some(1) });
    assert_eq!(seen, [(0, vec!["roles", "methods"]), (1, vec![])]);
}
