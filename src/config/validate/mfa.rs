//! Checks of `[mfa]` and `[webauthn]` (SPEC 13): where the key for TOTP secrets at rest comes
//! from, the name authenticator apps show, and the domain passkeys are bound to; and of `[ui]`
//! (SPEC 15), what people see of the gateway.

use toml::Spanned;

use super::Checker;
use crate::config::file::{MfaFile, TelemetryFile, UiFile, WebauthnFile};
use crate::config::values::logo_content_type;
use crate::config::*;

/// Longer names are cut off by authenticator apps.
const MAX_ISSUER_CHARS: usize = 64;

impl Checker<'_> {
    pub(super) fn mfa(&mut self, mfa: Spanned<MfaFile>) -> MfaConfig {
        let span = mfa.span();
        let MfaFile {
            key_file,
            key_env,
            generate_if_missing,
            issuer,
        } = mfa.into_inner();
        let generate_if_missing = generate_if_missing.unwrap_or(false);
        let key = match (key_file, key_env) {
            (Some(file), None) => {
                let path = self.resolve(file.get_ref());
                if !generate_if_missing && !path.is_file() {
                    let message = format!(
                        "{} does not exist (create it with `portcullis keygen --alg HS256 --out {}`)",
                        path.display(),
                        file.get_ref()
                    );
                    self.error(file.span(), message);
                }
                SecretSource::File(path)
            }
            (None, Some(env)) if generate_if_missing => {
                self.error(
                    env.span(),
                    "generate_if_missing needs key_file: a variable cannot be written",
                );
                SecretSource::Env(env.into_inner())
            }
            (None, Some(env)) => SecretSource::Env(env.into_inner()),
            (Some(file), Some(_)) => {
                self.error(file.span(), "give key_file or key_env, not both");
                SecretSource::File(self.resolve(file.get_ref()))
            }
            (None, None) => {
                self.problems.missing(&span, "[mfa]", "key_file");
                SecretSource::Env(String::new())
            }
        };
        MfaConfig {
            key,
            generate_if_missing,
            issuer: self.value(issuer.as_ref(), "Portcullis", issuer_label),
        }
    }
}

impl Checker<'_> {
    pub(super) fn webauthn(&mut self, webauthn: Spanned<WebauthnFile>) -> WebauthnConfig {
        let span = webauthn.span();
        let WebauthnFile { rp_id, rp_name } = webauthn.into_inner();
        let rp_id = self.required(&rp_id, "rp_id", &span, "[webauthn]");
        WebauthnConfig {
            rp_id: self.value(rp_id, "localhost", relying_party_id),
            rp_name: self.value(rp_name.as_ref(), "Portcullis", issuer_label),
        }
    }
}

impl Checker<'_> {
    /// The logo must be an image a browser shows; the template folder must exist (the
    /// templates themselves are parsed when the pages load, which `check` does too).
    pub(super) fn ui(&mut self, ui: UiFile) -> UiConfig {
        let logo_file = ui.logo_file.and_then(|file| {
            let known = logo_content_type(file.get_ref()).is_some();
            if !known {
                self.error(
                    file.span(),
                    "logo_file must be .png, .svg, .jpg, .jpeg, .webp or .gif",
                );
            }
            self.existing_file(&file).filter(|_| known)
        });
        let template_dir = ui.template_dir.map(|dir| {
            let path = self.resolve(dir.get_ref());
            if !path.is_dir() {
                self.error(dir.span(), format!("{} is not a folder", path.display()));
            }
            path
        });
        UiConfig {
            title: self.value(ui.title.as_ref(), "Portcullis", page_title),
            logo_file,
            template_dir,
        }
    }
}

impl Checker<'_> {
    pub(super) fn telemetry(&mut self, file: TelemetryFile) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: file
                .otlp_endpoint
                .and_then(|url| self.optional(&url, collector_url)),
            service_name: self.value(file.service_name.as_ref(), "portcullis", page_title),
        }
    }
}

/// `http://host:port` of an OTLP/HTTP collector, without a path (`/v1/traces` is added).
fn collector_url(text: &str) -> Result<http::Uri, String> {
    let url: http::Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    let plain = url.scheme_str() == Some("http") && url.host().is_some();
    let bare = matches!(url.path(), "" | "/") && url.query().is_none();
    match plain && bare {
        true => Ok(url),
        false => Err(format!(
            "otlp_endpoint {text:?} must be http://host:port (an OTLP/HTTP collector, usually on \
             the same host; https is not supported yet)"
        )),
    }
}

/// A lower-case DNS name (no scheme, port or path), as WebAuthn's RP ID must be.
fn relying_party_id(text: &str) -> Result<String, String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    match text.len() <= 253 && text.split('.').all(label_ok) {
        true => Ok(text.to_string()),
        false => Err(format!(
            "rp_id {text:?} must be a lower-case domain name like \"example.com\" (no scheme or port)"
        )),
    }
}

fn page_title(text: &str) -> Result<String, String> {
    let printable = text.chars().all(|c| !c.is_control()) && !text.trim().is_empty();
    match printable && text.chars().count() <= MAX_ISSUER_CHARS {
        true => Ok(text.to_string()),
        false => Err(format!(
            "title {text:?} must be 1 to {MAX_ISSUER_CHARS} printable characters"
        )),
    }
}

fn issuer_label(text: &str) -> Result<String, String> {
    let printable = text.chars().all(|c| !c.is_control()) && !text.trim().is_empty();
    match printable && text.chars().count() <= MAX_ISSUER_CHARS && !text.contains(':') {
        true => Ok(text.to_string()),
        false => Err(format!(
            "{text:?} must be 1 to {MAX_ISSUER_CHARS} printable characters without ':'"
        )),
    }
}
