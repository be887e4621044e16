//! Checks of the `[tokens]` keys, the `[users]` source and `[dpop]`.

use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::file::{DpopFile, KeyFile, StoreFile, TokensFile, UsersFile};
use crate::config::values::*;
use crate::config::*;

impl Checker<'_> {
    pub(super) fn tokens(&mut self, file: Option<TokensFile>) -> TokensConfig {
        let Some(file) = file else {
            if !self.problems.dropped().at_top("tokens") {
                self.error(0..0, "[tokens] with at least one [[tokens.keys]] is required");
            }
            return self.tokens(Some(TokensFile {
                keys: Vec::new(),
                ..TokensFile::default()
            }));
        };
        let TokensFile {
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            refresh_idle_ttl,
            refresh_grace,
            leeway,
            keys,
        } = file;
        let keys = self.keys(keys);
        TokensConfig {
            issuer: self.value(issuer.as_ref(), "portcullis", claim_text),
            audience: self.value(audience.as_ref(), "default", claim_text),
            access_ttl: self.value(access_ttl.as_ref(), "15m", parse_duration),
            refresh_ttl: self.value(refresh_ttl.as_ref(), "14d", parse_duration),
            refresh_idle_ttl: self.value(refresh_idle_ttl.as_ref(), "7d", parse_duration),
            refresh_grace: self.value(refresh_grace.as_ref(), "30s", parse_duration),
            leeway: self.value(leeway.as_ref(), "5s", |text| match parse_duration(text)? {
                leeway if leeway.as_secs() > 60 => Err("leeway may be at most 60s".to_string()),
                leeway => Ok(leeway),
            }),
            keys,
        }
    }

    /// A window longer than an hour lets a captured proof be replayed to another replica for
    /// that long, and keeps that much in every replica's replay cache.
    pub(super) fn dpop(&mut self, file: DpopFile) -> DpopConfig {
        let max_age = self.value(file.max_age.as_ref(), "60s", |text| match parse_duration(text)? {
            age if age.is_zero() || age.as_secs() > 3600 => {
                Err("max_age must be between 1s and 1h".to_string())
            }
            age => Ok(age),
        });
        DpopConfig {
            max_age,
            require_nonce: file.require_nonce.unwrap_or(false),
        }
    }

    fn keys(&mut self, keys: Vec<Spanned<KeyFile>>) -> Vec<KeyConfig> {
        let mut checked: Vec<KeyConfig> = Vec::with_capacity(keys.len());
        for (index, spanned) in keys.into_iter().enumerate() {
            let span = spanned.span();
            let Some(key) = self.key(spanned.into_inner(), span.clone()) else {
                continue;
            };
            if checked.iter().any(|other| other.kid == key.kid) {
                self.error(span, format!("kid {:?} is used twice", key.kid));
            } else if index == 0 && matches!(key.source, KeySource::PublicKeyFile(_)) {
                self.error(
                    span,
                    "the first key signs, so it needs private_key_file, secret_file or secret_env",
                );
            }
            checked.push(key);
        }
        if checked.is_empty() && self.problems.is_empty() {
            self.error(0..0, "[[tokens.keys]] needs at least one key");
        }
        checked
    }

    fn key(&mut self, file: KeyFile, span: Range<usize>) -> Option<KeyConfig> {
        let KeyFile {
            kid,
            alg,
            private_key_file,
            public_key_file,
            secret_file,
            secret_env,
            generate_if_missing,
        } = file;
        let kid = self.required(&kid, "kid", &span, "[[tokens.keys]]");
        let kid = kid.and_then(|kid| self.optional(kid, key_id));
        let alg = self.required(&alg, "alg", &span, "[[tokens.keys]]");
        let alg = alg.and_then(|alg| self.optional(alg, key_algorithm));
        let (kid, alg) = (kid?, alg?);
        let given = [&private_key_file, &public_key_file, &secret_file, &secret_env];
        if given.iter().filter(|g| g.is_some()).count() != 1 {
            let message =
                "a key needs exactly one of private_key_file, public_key_file, secret_file, secret_env";
            self.error(span, message);
            return None;
        }
        let hmac = alg == KeyAlgorithm::Hs256;
        let source = match (private_key_file, public_key_file, secret_file, secret_env) {
            (Some(path), ..) if !hmac => KeySource::PrivateKeyFile(self.resolve(path.get_ref())),
            (_, Some(path), ..) if !hmac => KeySource::PublicKeyFile(self.resolve(path.get_ref())),
            (_, _, Some(path), _) if hmac => KeySource::SecretFile(self.resolve(path.get_ref())),
            (.., Some(name)) if hmac => KeySource::SecretEnv(name.into_inner()),
            _ => {
                let message = match hmac {
                    true => "HS256 keys take secret_file or secret_env (never an inline secret)",
                    false => "asymmetric keys take private_key_file or public_key_file",
                };
                self.error(span, message);
                return None;
            }
        };
        let generate_if_missing = generate_if_missing.unwrap_or(false);
        if let KeySource::PrivateKeyFile(path) | KeySource::PublicKeyFile(path) | KeySource::SecretFile(path) =
            &source
            && !generate_if_missing
            && !path.is_file()
        {
            self.error(
                span,
                format!("{} does not exist (portcullis keygen writes one)", path.display()),
            );
        }
        Some(KeyConfig {
            kid,
            alg,
            source,
            generate_if_missing,
        })
    }

    pub(super) fn store(&mut self, file: StoreFile) -> StoreConfig {
        let StoreFile {
            backend,
            path,
            url,
            password_env,
            password_file,
        } = file;
        let default_path = self.resolve("data/portcullis.db");
        let backend_span = backend.as_ref().map_or(0..0, |b| b.span());
        match backend.as_ref().map(|b| b.get_ref().as_str()) {
            None | Some("sqlite") => {
                for (key, given) in [
                    ("url", &url),
                    ("password_env", &password_env),
                    ("password_file", &password_file),
                ] {
                    if let Some(given) = given {
                        self.error(
                            given.span(),
                            format!("{key} is for backend = \"redis\"; SQLite takes path"),
                        );
                    }
                }
                StoreConfig::Sqlite {
                    path: path.map_or(default_path, |p| self.resolve(p.get_ref())),
                }
            }
            Some("redis") => {
                if let Some(path) = &path {
                    self.error(path.span(), "path is for backend = \"sqlite\"; Redis takes url");
                }
                let password = match (password_env, password_file) {
                    (Some(env), None) => Some(SecretSource::Env(env.into_inner())),
                    (None, Some(file)) => Some(SecretSource::File(self.resolve(file.get_ref()))),
                    (None, None) => None,
                    (Some(env), Some(_)) => {
                        self.error(env.span(), "give password_env or password_file, not both");
                        None
                    }
                };
                let url = self.value(url.as_ref(), "redis://127.0.0.1:6379/0", redis_url);
                if url.contains('@') {
                    self.error(
                        backend_span,
                        "put the Redis password in password_env or password_file, not in url",
                    );
                }
                StoreConfig::Redis { url, password }
            }
            Some(other) => {
                let message = format!("store backend must be \"sqlite\" or \"redis\", not {other:?}");
                self.error(backend_span, message);
                StoreConfig::Sqlite { path: default_path }
            }
        }
    }

    pub(super) fn users(&mut self, file: UsersFile) -> UsersConfig {
        let UsersFile { file, check_url } = file;
        match (file, check_url) {
            (Some(file), Some(_)) => {
                self.error(file.span(), "[users] takes file or check_url, not both");
                UsersConfig::File(self.resolve(file.get_ref()))
            }
            (None, Some(url)) => {
                UsersConfig::CheckUrl(self.value(Some(&url), "http://127.0.0.1:1/", parse_check_url))
            }
            (file, None) => {
                let path = self.resolve(file.as_ref().map_or("users.toml", |f| f.get_ref()));
                if !path.is_file() {
                    let span = file.map_or(0..0, |f| f.span());
                    self.error(span, format!("{} does not exist", path.display()));
                }
                UsersConfig::File(path)
            }
        }
    }
}
