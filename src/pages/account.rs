//! The account page (SPEC 15): where the user is signed in, each session described for a
//! person (the device from its user agent, when, from where, with what), and their second
//! factors.

use minijinja::{Value, context};

use super::Pages;

/// One session as the account page lists it.
pub(crate) struct ListedSession {
    pub id: String,
    pub user_agent: Option<String>,
    pub ip: String,
    /// `local` for a password login, else the provider's name.
    pub idp: String,
    pub created_at: u64,
    pub last_used_at: u64,
    pub current: bool,
}

pub(crate) struct AccountPage<'a> {
    pub sub: &'a str,
    pub sessions: &'a [ListedSession],
    /// `None` when TOTP is not configured; else whether one is set up.
    pub totp: Option<bool>,
    /// `None` when passkeys are not configured; else their names.
    pub passkeys: Option<&'a [String]>,
    /// What the last action did.
    pub notice: Option<&'a str>,
}

impl Pages {
    pub(crate) fn account(&self, page: &AccountPage<'_>) -> String {
        let sessions: Vec<Value> = page.sessions.iter().map(describe).collect();
        self.render(
            "account.html",
            context! {
                title => "Your account",
                sub => page.sub,
                sessions,
                notice => page.notice,
                totp_enabled => page.totp.is_some(),
                totp => page.totp.unwrap_or(false),
                passkeys_enabled => page.passkeys.is_some(),
                passkeys => page.passkeys.unwrap_or_default().to_vec(),
            },
        )
    }
}

fn describe(session: &ListedSession) -> Value {
    let provider = match session.idp.as_str() {
        crate::auth::tokens::LOCAL_IDP => "password".to_string(),
        idp => idp.to_string(),
    };
    context! {
        id => session.id.clone(),
        device => device(session.user_agent.as_deref()),
        ip => session.ip.clone(),
        provider,
        created => readable(session.created_at),
        created_iso => iso(session.created_at),
        last_used => readable(session.last_used_at),
        last_used_iso => iso(session.last_used_at),
        current => session.current,
    }
}

/// "Firefox on Linux", "Safari on iOS", "curl": the browser and system a person recognises,
/// from the user agent's well-known tokens (order matters: Edge and Chrome say "Safari" too).
pub(crate) fn device(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent.filter(|a| !a.trim().is_empty()) else {
        return "Unknown device".to_string();
    };
    let has = |token: &str| agent.contains(token);
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(token, _)| has(token))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(token, _)| has(token))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_string(),
        (None, Some(system)) => format!("A browser on {system}"),
        // Not recognised: the agent itself, cut short (it was bounded and printable when stored).
        (None, None) => agent.chars().take(40).collect(),
    }
}

/// `2026-12-05T19:42:30Z`.
fn iso(unix: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `2026-12-05 19:42 UTC`.
fn readable(unix: u64) -> String {
    let iso = iso(unix);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_named_by_its_browser_and_system() {
        for (agent, named) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0 Safari/537.36 Edg/126.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            ("curl/8.5.0", "curl"),
            ("SomeBot", "SomeBot"),
        ] {
            assert_eq!(device(Some(agent)), named, "{agent}");
        }
        assert_eq!(device(None), "Unknown device");
        assert_eq!(readable(1_796_500_000), "2026-12-05 19:46 UTC");
    }
}
