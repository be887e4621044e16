//! Checks of `[[issuers]]` (SPEC 11): each issuer's values, and names used twice.

use std::ops::Range;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::Checker;
use super::providers::MappingFile;
use crate::config::file::IssuerFile;
use crate::config::values::*;
use crate::config::*;

const TABLE: &str = "[[issuers]]";
/// What a token may be signed with when `algorithms` is not given.
const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

impl Checker<'_> {
    pub(super) fn issuers(&mut self, issuers: Vec<Spanned<IssuerFile>>) -> Vec<IssuerConfig> {
        let name_of = |i: &IssuerFile| i.name.as_ref().map(|n| n.get_ref().clone());
        self.named_tables(issuers, "issuer", name_of, issuer_name, Self::issuer)
    }

    /// `None` when the name, issuer or audience is wrong; everything else is still checked.
    fn issuer(&mut self, file: IssuerFile, span: &Range<usize>) -> Option<IssuerConfig> {
        let IssuerFile {
            name,
            issuer,
            jwks_uri,
            ca_file,
            audience,
            algorithms,
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
        } = file;
        let name = self.required(&name, "name", span, TABLE);
        let name = name.and_then(|n| self.optional(n, issuer_name));
        let jwks_uri = self.optional_text(jwks_uri, jwks_url);
        let issuer = self.required(&issuer, "issuer", span, TABLE);
        // Without a `jwks_uri` the keys are found by discovery, which needs a URL to start from.
        let issuer = match jwks_uri {
            Some(_) => issuer.and_then(|i| self.optional(i, claim_text)),
            None => issuer.and_then(|i| self.optional(i, discoverable_issuer)),
        };
        let audience = self.required(&audience, "audience", span, TABLE);
        let audience = audience.and_then(|a| self.optional(a, claim_text));
        let algorithms = self.algorithms(algorithms);
        let ca_file = ca_file.and_then(|file| self.existing_file(&file));
        let mapping = self.mapping(MappingFile {
            subject_claim,
            subject_prefix,
            role_claim,
            role_map,
            default_role,
        });
        Some(IssuerConfig {
            name: name?,
            issuer: issuer?,
            jwks_uri,
            ca_file,
            audience: audience?,
            algorithms,
            mapping,
        })
    }

    fn algorithms(&mut self, given: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<Algorithm> {
        let Some(given) = given else {
            return DEFAULT_ALGORITHMS.to_vec();
        };
        if given.get_ref().is_empty() {
            self.error(
                given.span(),
                "algorithms = [] accepts no token; omit it for RS256 and ES256",
            );
        }
        let mut algorithms = self.each(given.get_ref(), asymmetric_algorithm);
        algorithms.dedup();
        algorithms
    }
}

/// One of the asymmetric JOSE algorithms: `none` signs nothing, and an HMAC key would be the
/// issuer's public key, which anyone holds (the algorithm-confusion attack).
fn asymmetric_algorithm(text: &str) -> Result<Algorithm, String> {
    let refused = || {
        format!(
            "algorithm {text:?} is not accepted: use RS256, RS384, RS512, PS256, PS384, PS512, \
             ES256, ES384 or EdDSA (never none or HMAC)"
        )
    };
    let alg = Algorithm::from_str(text).map_err(|_| refused())?;
    match ASYMMETRIC.contains(&alg) {
        true => Ok(alg),
        false => Err(refused()),
    }
}

/// An issuer found by discovery: `https://`, or `http://` on a loopback address.
fn discoverable_issuer(text: &str) -> Result<String, String> {
    fetchable_url(text).map_err(|_| {
        format!(
            "issuer {text:?} must be an https:// URL (http:// only on loopback) for discovery, \
             or give jwks_uri"
        )
    })
}

fn jwks_url(text: &str) -> Result<String, String> {
    fetchable_url(text)
        .map_err(|_| format!("jwks_uri {text:?} must be an https:// URL (http:// only on loopback)"))
}

/// A URL the gateway may fetch keys from: TLS, except on the machine itself.
fn fetchable_url(text: &str) -> Result<String, ()> {
    let uri = http::Uri::from_str(text).map_err(|_| ())?;
    let authority = uri.authority().ok_or(())?;
    if authority.as_str().contains('@') || text.contains('#') {
        return Err(());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(text.to_string()),
        Some("http") if loopback => Ok(text.to_string()),
        _ => Err(()),
    }
}
