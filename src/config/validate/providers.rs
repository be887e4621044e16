//! Checks of `[[providers]]` (SPEC 10): each provider's values, and names used twice.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::file::ProviderFile;
use crate::config::values::*;
use crate::config::*;

const TABLE: &str = "[[providers]]";

impl Checker<'_> {
    pub(super) fn providers(&mut self, providers: Vec<Spanned<ProviderFile>>) -> Vec<ProviderConfig> {
        let mut names = HashSet::new();
        let mut checked = Vec::with_capacity(providers.len());
        for spanned in providers {
            let span = spanned.span();
            // Checked on the name alone: a provider with other errors still claims its name.
            let name = spanned.get_ref().name.as_ref().map(|n| n.get_ref().clone());
            if let Some(name) = name.filter(|n| provider_name(n).is_ok())
                && !names.insert(name.clone())
            {
                self.error(span.clone(), format!("provider name {name:?} is used twice"));
            }
            checked.extend(self.provider(spanned.into_inner(), &span));
        }
        checked
    }

    /// `None` when a value without a usable stand-in (name, issuer, client, secret) is wrong;
    /// everything else is still checked, so one pass reports it all.
    fn provider(&mut self, file: ProviderFile, span: &Range<usize>) -> Option<ProviderConfig> {
        let ProviderFile {
            name,
            display_name,
            issuer,
            client_id,
            client_secret_file,
            client_secret_env,
            client_auth,
            scopes,
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
            allowed_email_domains,
            ca_file,
        } = file;
        let name = self.required(&name, "name", span, TABLE);
        let name = name.and_then(|n| self.optional(n, provider_name));
        let issuer = self.required(&issuer, "issuer", span, TABLE);
        let issuer = issuer.and_then(|i| self.optional(i, issuer_url));
        let client_id = self.required(&client_id, "client_id", span, TABLE);
        let client_id = client_id.and_then(|c| self.optional(c, claim_text));
        let client_secret = self.client_secret(client_secret_file, client_secret_env, span);
        let client_auth = self.value(client_auth.as_ref(), "client_secret_basic", |a| match a {
            "client_secret_basic" => Ok(ClientAuth::Basic),
            "client_secret_post" => Ok(ClientAuth::Post),
            other => Err(format!(
                "client_auth must be \"client_secret_basic\" or \"client_secret_post\", not {other:?}"
            )),
        });
        let scopes = self.scopes(scopes);
        let role_map = role_map.iter().filter_map(|pair| self.role_pair(pair)).collect();
        let default_role = self.optional_text(default_role, role_name);
        let ca_file = ca_file.and_then(|file| self.existing_file(&file));
        let subject_claim = self.value(subject_claim.as_ref(), "sub", claim_text);
        let subject_prefix = self.optional_text(subject_prefix, claim_text).unwrap_or_default();
        let role_claim = role_claim.and_then(|c| self.optional(&c, claim_text));
        let allowed_email_domains = self.each(&allowed_email_domains, email_domain);
        let (name, issuer, client_id, client_secret) = (name?, issuer?, client_id?, client_secret?);
        Some(ProviderConfig {
            display_name: display_name.map_or_else(|| name.clone(), Spanned::into_inner),
            name,
            issuer,
            client_id,
            client_secret,
            client_auth,
            scopes,
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
            allowed_email_domains,
            ca_file,
        })
    }

    fn client_secret(
        &mut self,
        file: Option<Spanned<String>>,
        env: Option<Spanned<String>>,
        span: &Range<usize>,
    ) -> Option<SecretSource> {
        match (file, env) {
            (Some(file), None) => self.existing_file(&file).map(SecretSource::File),
            (None, Some(env)) => Some(SecretSource::Env(env.into_inner())),
            (Some(file), Some(_)) => {
                let message = "give client_secret_file or client_secret_env, not both";
                self.error(file.span(), message);
                None
            }
            (None, None) => {
                let message = "[[providers]] is missing `client_secret_file` (or `client_secret_env`)";
                self.error(span.clone(), message);
                None
            }
        }
    }

    /// A value where `""` means none.
    fn optional_text<T>(
        &mut self,
        given: Option<Spanned<String>>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        given
            .filter(|g| !g.get_ref().is_empty())
            .and_then(|g| self.optional(&g, parse))
    }

    /// The valid values of a list; each invalid one is reported.
    fn each<T>(&mut self, given: &[Spanned<String>], parse: fn(&str) -> Result<T, String>) -> Vec<T> {
        given.iter().filter_map(|g| self.optional(g, parse)).collect()
    }

    /// A path from the file, resolved, that must name an existing file.
    fn existing_file(&mut self, given: &Spanned<String>) -> Option<PathBuf> {
        let path = self.resolve(given.get_ref());
        if path.is_file() {
            return Some(path);
        }
        self.error(given.span(), format!("{} does not exist", path.display()));
        None
    }

    fn scopes(&mut self, scopes: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let Some(scopes) = scopes else {
            return ["openid", "email", "profile"].map(String::from).to_vec();
        };
        let span = scopes.span();
        let checked = self.each(scopes.get_ref(), claim_text);
        if !checked.iter().any(|s| s == "openid") {
            self.error(span, "scopes must include \"openid\"");
        }
        checked
    }

    /// `["claim value", "role"]`: exactly two strings, the second a valid role.
    fn role_pair(&mut self, pair: &Spanned<Vec<Spanned<String>>>) -> Option<(String, String)> {
        match pair.get_ref().as_slice() {
            [value, role] if !value.get_ref().is_empty() => {
                let role = self.optional(role, role_name)?;
                Some((value.get_ref().clone(), role))
            }
            _ => {
                let message = "each role_map entry is [\"claim value\", \"role\"], the value non-empty";
                self.error(pair.span(), message);
                None
            }
        }
    }
}
