//! The gateway's own HTML pages (login, account, second factors, step-up, errors), rendered
//! from templates with HTML autoescaping, so no value a request carries can become markup. No
//! external assets. `[ui]` (SPEC 15) names the gateway on every page, adds a logo, and may
//! replace any template with a file of the same name.

mod account;

use std::path::Path;

use bytes::Bytes;
use minijinja::{Environment, Value, context};

use crate::config::values::logo_content_type;
use crate::config::{ProviderConfig, UiConfig};

pub(crate) use account::{AccountPage, ListedSession};

/// Every template, by the name a `template_dir` file replaces it under.
const BUILT_IN: [(&str, &str); 8] = [
    ("layout.html", include_str!("layout.html")),
    ("login.html", include_str!("login.html")),
    ("error.html", include_str!("error.html")),
    ("continue.html", include_str!("continue.html")),
    ("second_factor.html", include_str!("second_factor.html")),
    ("step_up.html", include_str!("step_up.html")),
    ("factors.html", include_str!("factors.html")),
    ("account.html", include_str!("account.html")),
];

/// A logo bigger than this is refused at load: it is sent with every page view.
const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// The pages as one `[ui]` section makes them.
pub struct Pages {
    templates: Environment<'static>,
    logo: Option<Logo>,
}

/// The image `/auth/logo` serves.
pub(crate) struct Logo {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

impl Pages {
    /// The built-in templates, those of `template_dir` in their place, the logo read: every
    /// error (a template that does not parse, an unknown template name, an unreadable logo)
    /// names its file.
    pub fn load(ui: &UiConfig) -> Result<Pages, String> {
        let mut templates = Environment::new();
        for (name, source) in BUILT_IN {
            templates
                .add_template(name, source)
                .map_err(|e| format!("the built-in {name} does not parse: {e}"))?;
        }
        if let Some(dir) = &ui.template_dir {
            for (name, source) in overrides(dir)? {
                let parsed = templates.add_template_owned(name.clone(), source);
                parsed.map_err(|e| format!("{}: {e}", dir.join(&name).display()))?;
            }
        }
        let logo = ui.logo_file.as_deref().map(Logo::load).transpose()?;
        templates.add_global("brand", ui.title.clone());
        templates.add_global("logo", logo.is_some());
        Ok(Pages { templates, logo })
    }

    pub(crate) fn logo(&self) -> Option<&Logo> {
        self.logo.as_ref()
    }

    fn render(&self, name: &str, context: Value) -> String {
        let rendered = self
            .templates
            .get_template(name)
            .and_then(|template| template.render(context));
        rendered.unwrap_or_else(|error| {
            tracing::error!(%error, name, "a page failed to render");
            String::from("<!doctype html><title>Error</title><p>This page cannot be shown.</p>")
        })
    }
}

/// The `.html` files of `dir`, each of which must name a built-in template.
fn overrides(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".html"))
        else {
            continue;
        };
        if !BUILT_IN.iter().any(|(known, _)| *known == name) {
            let known: Vec<&str> = BUILT_IN.iter().map(|(known, _)| *known).collect();
            return Err(format!(
                "{}: no page has this name ({})",
                path.display(),
                known.join(", ")
            ));
        }
        let source =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        found.push((name.to_string(), source));
    }
    Ok(found)
}

impl Logo {
    fn load(path: &Path) -> Result<Logo, String> {
        let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let size = std::fs::metadata(path).map_err(unreadable)?.len();
        if size > MAX_LOGO_BYTES {
            return Err(format!("{} is larger than 256 KiB", path.display()));
        }
        let content_type = logo_content_type(&path.to_string_lossy())
            .ok_or_else(|| format!("{} is not a .png, .svg, .jpg, .webp or .gif", path.display()))?;
        Ok(Logo {
            bytes: Bytes::from(std::fs::read(path).map_err(unreadable)?),
            content_type,
        })
    }
}

/// The script of the passkey buttons, served at `/auth/passkeys.js`.
pub(crate) const PASSKEYS_JS: &str = include_str!("passkeys.js");

impl Pages {
    /// The login page: the password form (with what was wrong with the last try), a passkey
    /// button when passkeys are on, and a button per provider (SPEC 10).
    pub(crate) fn login<'p>(
        &self,
        providers: impl Iterator<Item = &'p ProviderConfig>,
        return_to: &str,
        passkeys: bool,
        problem: Option<&str>,
    ) -> String {
        let providers: Vec<Value> = providers
            .map(|p| context! { name => p.name.clone(), display_name => p.display_name.clone() })
            .collect();
        self.render(
            "login.html",
            context! { title => "Sign in", providers, return_to, passkeys, problem },
        )
    }

    /// A page that sends the browser on to `to` (a same-origin path) by itself. After a login
    /// through a provider the browser arrives by a redirect chain that a cross-site page began, and
    /// browsers withhold `SameSite=Strict` cookies on every request of such a chain, a redirect to
    /// `to` included; a navigation this page starts is same-site, so the new session cookies go.
    pub(crate) fn continue_to(&self, to: &str) -> String {
        self.render("continue.html", context! { title => "Signed in", to })
    }
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

impl Pages {
    pub(crate) fn second_factor(&self, page: &SecondFactorPage<'_>) -> String {
        let SecondFactorPage {
            mfa_token,
            return_to,
            code,
            passkeys,
            problem,
        } = *page;
        self.render(
            "second_factor.html",
            context! { title => "Two-step verification", mfa_token, return_to, code, passkeys, problem },
        )
    }
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

impl Pages {
    /// The step-up page (RFC 9470 for browsers): prove who you are again, to the same session.
    pub(crate) fn step_up(&self, page: &StepUpPage<'_>) -> String {
        let StepUpPage {
            sub,
            return_to,
            code,
            passkeys,
            reason,
            blocked,
        } = *page;
        self.render(
            "step_up.html",
            context! { title => "Confirm it is you", sub, return_to, code, passkeys, reason, blocked },
        )
    }
}

/// A passkey as the second-factor page lists it.
pub(crate) struct ListedPasskey {
    pub id: String,
    pub name: String,
}

impl Pages {
    /// The second-factor page (`/auth/mfa`): the authenticator app and the passkeys of `sub`,
    /// for each kind that is configured.
    pub(crate) fn factors(
        &self,
        sub: &str,
        totp: Option<bool>,
        passkeys: Option<&[ListedPasskey]>,
    ) -> String {
        let listed: Vec<Value> = passkeys
            .unwrap_or_default()
            .iter()
            .map(|p| context! { id => p.id.clone(), name => p.name.clone() })
            .collect();
        self.render(
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
    pub(crate) fn error(&self, status: u16, code: &str, message: &str) -> String {
        self.render(
            "error.html",
            context! { title => "Something went wrong", status, code, message },
        )
    }
}

#[cfg(test)]
mod tests;
