//! The gateway's own HTML pages (the login page, error pages), rendered from templates with
//! HTML autoescaping, so no value a request carries can become markup. No external assets.

use std::sync::LazyLock;

use minijinja::{Environment, Value, context};

use crate::config::ProviderConfig;

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut pages = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("layout.html")),
        ("login.html", include_str!("login.html")),
        ("error.html", include_str!("error.html")),
        ("continue.html", include_str!("continue.html")),
        ("second_factor.html", include_str!("second_factor.html")),
        ("step_up.html", include_str!("step_up.html")),
        ("factors.html", include_str!("factors.html")),
    ] {
        // Checked by this module's tests: a template that does not parse never ships.
        if let Err(error) = pages.add_template(name, source) {
            tracing::error!(%error, name, "a built-in page template does not parse");
        }
    }
    pages
});

/// The script of the passkey buttons, served at `/auth/passkeys.js`.
pub(crate) const PASSKEYS_JS: &str = include_str!("passkeys.js");

/// The login page: the password form, a passkey button when passkeys are on, and a button per
/// provider (SPEC 10).
pub(crate) fn login<'p>(
    providers: impl Iterator<Item = &'p ProviderConfig>,
    return_to: &str,
    passkeys: bool,
) -> String {
    let providers: Vec<Value> = providers
        .map(|p| context! { name => p.name.clone(), display_name => p.display_name.clone() })
        .collect();
    render(
        "login.html",
        context! { title => "Sign in", providers, return_to, passkeys },
    )
}

/// A page that sends the browser on to `to` (a same-origin path) by itself. After a login
/// through a provider the browser arrives by a redirect chain that a cross-site page began, and
/// browsers withhold `SameSite=Strict` cookies on every request of such a chain, a redirect to
/// `to` included; a navigation this page starts is same-site, so the new session cookies go.
pub(crate) fn continue_to(to: &str) -> String {
    render("continue.html", context! { title => "Signed in", to })
}

/// The second step of a password login: a TOTP or recovery code for `mfa_token` (or a
/// passkey, when the user has one), with what was wrong with the last attempt.
pub(crate) struct SecondFactorPage<'a> {
    pub mfa_token: &'a str,
    pub return_to: &'a str,
    /// A TOTP is enrolled: the code form shows.
    pub code: bool,
    pub passkeys: bool,
    pub problem: Option<&'a str>,
}

pub(crate) fn second_factor(page: &SecondFactorPage<'_>) -> String {
    let SecondFactorPage {
        mfa_token,
        return_to,
        code,
        passkeys,
        problem,
    } = *page;
    render(
        "second_factor.html",
        context! { title => "Two-step verification", mfa_token, return_to, code, passkeys, problem },
    )
}

/// What the step-up page shows: whose session it renews, whether a code is asked too, and
/// why it cannot go on when it cannot.
pub(crate) struct StepUpPage<'a> {
    pub sub: &'a str,
    pub return_to: &'a str,
    pub code: bool,
    pub passkeys: bool,
    pub reason: &'a str,
    pub blocked: Option<&'a str>,
}

/// The step-up page (RFC 9470 for browsers): prove who you are again, to the same session.
pub(crate) fn step_up(page: &StepUpPage<'_>) -> String {
    let StepUpPage {
        sub,
        return_to,
        code,
        passkeys,
        reason,
        blocked,
    } = *page;
    render(
        "step_up.html",
        context! { title => "Confirm it is you", sub, return_to, code, passkeys, reason, blocked },
    )
}

/// A passkey as the second-factor page lists it.
pub(crate) struct ListedPasskey {
    pub id: String,
    pub name: String,
}

/// The second-factor page (`/auth/mfa`): the authenticator app and the passkeys of `sub`,
/// for each kind that is configured.
pub(crate) fn factors(sub: &str, totp: Option<bool>, passkeys: Option<&[ListedPasskey]>) -> String {
    let listed: Vec<Value> = passkeys
        .unwrap_or_default()
        .iter()
        .map(|p| context! { id => p.id.clone(), name => p.name.clone() })
        .collect();
    render(
        "factors.html",
        context! {
            title => "Second factors",
            sub,
            totp_enabled => totp.is_some(),
            totp => totp.unwrap_or(false),
            passkeys_enabled => passkeys.is_some(),
            passkeys => listed,
        },
    )
}

/// A failure a browser navigated into, with the same status and words as the JSON answer.
pub(crate) fn error(status: u16, code: &str, message: &str) -> String {
    render(
        "error.html",
        context! { title => "Something went wrong", status, code, message },
    )
}

fn render(name: &str, context: Value) -> String {
    let rendered = PAGES
        .get_template(name)
        .and_then(|template| template.render(context));
    rendered.unwrap_or_else(|error| {
        tracing::error!(%error, name, "a built-in page failed to render");
        String::from("<!doctype html><title>Error</title><p>This page cannot be shown.</p>")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_what_it_is_given() {
        let page = login(std::iter::empty(), "/a?b=\"><script>", false);
        assert!(
            page.contains("name=\"username\"") && page.contains("name=\"password\""),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        let page = continue_to("/app?a=1&b=\"");
        assert!(
            page.contains("content=\"0;url=") && !page.contains("b=\""),
            "{page}"
        );
        let second = SecondFactorPage {
            mfa_token: "tok\"en",
            return_to: "/",
            code: true,
            passkeys: true,
            problem: Some("wrong <code>"),
        };
        let page = second_factor(&second);
        assert!(page.contains("data-passkey=\"second-factor\""), "{page}");
        assert!(page.contains("wrong &lt;code&gt;"), "{page}");
        assert!(
            page.contains("name=\"code\"") && page.contains("tok&quot;en"),
            "{page}"
        );
        let step_up_page = StepUpPage {
            sub: "<alice>",
            return_to: "/x",
            code: true,
            passkeys: false,
            reason: "why",
            blocked: None,
        };
        let page = step_up(&step_up_page);
        assert!(
            page.contains("name=\"password\"") && page.contains("name=\"code\""),
            "{page}"
        );
        assert!(
            page.contains("&lt;alice&gt;") && !page.contains("<alice>"),
            "{page}"
        );
        let listed = [ListedPasskey {
            id: "a\"b".into(),
            name: "<my key>".into(),
        }];
        let page = factors("alice", Some(false), Some(&listed));
        assert!(
            page.contains("data-totp=\"enroll\"") && page.contains("&lt;my key&gt;"),
            "{page}"
        );
        assert!(!page.contains("<my key>"), "{page}");
        let page = error(403, "oidc_failed", "<b>no</b>");
        assert!(
            page.contains("403") && page.contains("&lt;b&gt;no") && !page.contains("<b>"),
            "{page}"
        );
    }
}
