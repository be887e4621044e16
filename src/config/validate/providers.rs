//! Checks of `[[providers]]` (SPEC 10): each provider's values, and names used twice.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::file::ProviderFile;
use crate::config::values::*;
use crate::config::*;

const TABLE: &str = "[[providers]]";

/// The claim-mapping keys of `[[providers]]` and `[[issuers]]`, as the file gives them.
pub(super) struct MappingFile {
    pub subject_claim: Option<Spanned<String>>,
    pub subject_prefix: Option<Spanned<String>>,
    pub role_claim: Option<Spanned<String>>,
    pub role_map: Vec<Spanned<Vec<Spanned<String>>>>,
    pub default_role: Option<Spanned<String>>,
}

impl Checker<'_> {
    pub(super) fn providers(&mut self, providers: Vec<Spanned<ProviderFile>>) -> Vec<ProviderConfig> {
        let name_of = |p: &ProviderFile| p.name.as_ref().map(|n| n.get_ref().clone());
        self.named_tables(providers, "provider", name_of, provider_name, Self::provider)
    }

    /// Checks each table of a `[[...]]` list whose entries have unique names. A name is
    /// claimed on its own: an entry with other errors still makes a second use an error.
    pub(super) fn named_tables<F, T>(
        &mut self,
        tables: Vec<Spanned<F>>,
        what: &str,
        name_of: impl Fn(&F) -> Option<String>,
        valid_name: fn(&str) -> Result<String, String>,
        check: fn(&mut Self, F, &Range<usize>) -> Option<T>,
    ) -> Vec<T> {
        let mut names = HashSet::new();
        let mut checked = Vec::with_capacity(tables.len());
        for spanned in tables {
            let span = spanned.span();
            if let Some(name) = name_of(spanned.get_ref()).filter(|n| valid_name(n).is_ok())
                && !names.insert(name.clone())
            {
                self.error(span.clone(), format!("{what} name {name:?} is used twice"));
            }
            checked.extend(check(self, spanned.into_inner(), &span));
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
        let mapping = self.mapping(MappingFile {
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
        });
        let ca_file = ca_file.and_then(|file| self.existing_file(&file));
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
            mapping,
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

    /// The claim-mapping keys that providers and issuers share.
    pub(super) fn mapping(&mut self, file: MappingFile) -> ClaimMapping {
        let MappingFile {
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
        } = file;
        ClaimMapping {
            subject_claim: self.value(subject_claim.as_ref(), "sub", claim_text),
            subject_prefix: self.optional_text(subject_prefix, claim_text).unwrap_or_default(),
            role_claim: role_claim.and_then(|c| self.optional(&c, claim_text)),
            role_map: role_map.iter().filter_map(|pair| self.role_pair(pair)).collect(),
            default_role: self.optional_text(default_role, role_name),
        }
    }

    /// A value where `""` means none.
    pub(super) fn optional_text<T>(
        &mut self,
        given: Option<Spanned<String>>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        given
            .filter(|g| !g.get_ref().is_empty())
            .and_then(|g| self.optional(&g, parse))
    }

    /// The valid values of a list; each invalid one is reported.
    pub(super) fn each<T>(
        &mut self,
        given: &[Spanned<String>],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        given.iter().filter_map(|g| self.optional(g, &parse)).collect()
    }

    /// A path from the file, resolved, that must name an existing file.
    pub(super) fn existing_file(&mut self, given: &Spanned<String>) -> Option<PathBuf> {
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
