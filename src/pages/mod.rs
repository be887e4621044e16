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
pub(crate) struct Pages {
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
    pub(crate) fn load(ui: &UiConfig) -> Result<Pages, String> {
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
mod tests {
    use super::*;

    fn ui(title: &str) -> UiConfig {
        UiConfig {
            title: title.into(),
            logo_file: None,
            template_dir: None,
        }
    }

    #[test]
    fn every_page_renders_and_escapes_what_it_is_given() {
        let pages = Pages::load(&ui("Acme <Corp>")).expect("the built-in pages load");
        let page = pages.login(std::iter::empty(), "/a?b=\"><script>", false, Some("<wrong>"));
        assert!(
            page.contains("name=\"username\"") && page.contains("name=\"password\""),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("&lt;wrong&gt;") && page.contains("Acme &lt;Corp&gt;"),
            "{page}"
        );
        let page = pages.continue_to("/app?a=1&b=\"");
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
        let page = pages.second_factor(&second);
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
        let page = pages.step_up(&step_up_page);
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
        let page = pages.factors("alice", Some(false), Some(&listed));
        assert!(
            page.contains("data-totp=\"enroll\"") && page.contains("&lt;my key&gt;"),
            "{page}"
        );
        assert!(!page.contains("<my key>"), "{page}");
        let page = pages.error(403, "oidc_failed", "<b>no</b>");
        assert!(
            page.contains("403") && page.contains("&lt;b&gt;no") && !page.contains("<b>"),
            "{page}"
        );
    }

    #[test]
    fn a_template_dir_replaces_pages_by_name_and_refuses_unknown_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let login =
            "{% extends \"layout.html\" %}{% block main %}<p>Welcome to {{ brand }}</p>{% endblock %}";
        std::fs::write(dir.path().join("login.html"), login).expect("write");
        let logo = dir.path().join("logo.svg");
        std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").expect("write");
        let config = UiConfig {
            template_dir: Some(dir.path().to_path_buf()),
            logo_file: Some(logo),
            ..ui("Acme")
        };
        let pages = Pages::load(&config).expect("loads");
        let page = pages.login(std::iter::empty(), "/", false, None);
        assert!(page.contains("<p>Welcome to Acme</p>"), "{page}");
        assert!(page.contains("<img src=\"/auth/logo\" alt=\"Acme\">"), "{page}");
        assert_eq!(pages.logo().map(|l| l.content_type), Some("image/svg+xml"));
        // The others stay built in.
        assert!(pages.error(404, "not_found", "x").contains("404"));
        std::fs::write(dir.path().join("logn.html"), "typo").expect("write");
        let error = Pages::load(&config).err().expect("an unknown name");
        assert!(error.contains("logn.html: no page has this name"), "{error}");
        std::fs::remove_file(dir.path().join("logn.html")).expect("remove");
        std::fs::write(dir.path().join("login.html"), "{% if %}").expect("write");
        let error = Pages::load(&config).err().expect("a syntax error");
        assert!(error.contains("login.html"), "{error}");
    }

    #[test]
    fn the_account_page_lists_sessions_and_marks_this_one() {
        let pages = Pages::load(&ui("Portcullis")).expect("loads");
        let session = |id: &str, current| ListedSession {
            id: id.into(),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into()),
            ip: "192.0.2.7".into(),
            idp: "local".into(),
            created_at: 1_796_500_000,
            last_used_at: 1_796_500_060,
            current,
        };
        let sessions = [session("s1", true), session("s<2>", false)];
        let names = ["key <1>".to_string()];
        let page = pages.account(&AccountPage {
            sub: "alice",
            sessions: &sessions,
            totp: Some(true),
            passkeys: Some(&names),
            notice: None,
        });
        assert_eq!(page.matches("Firefox on Linux").count(), 3, "{page}");
        assert!(
            page.contains("aria-current=\"true\"") && page.contains("(this device)"),
            "{page}"
        );
        assert!(
            page.contains("value=\"s&lt;2&gt;\"") && page.contains("key &lt;1&gt;"),
            "{page}"
        );
        assert!(
            page.contains("2026-12-05 19:46 UTC") && page.contains("password"),
            "{page}"
        );
    }
}
