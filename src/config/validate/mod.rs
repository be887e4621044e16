//! Turns the TOML mirror into a typed `Config`, collecting every error with its position.
//!
//! Each section check returns a usable value even after an error (the default stands in), so
//! one pass reports everything that is wrong instead of stopping at the first problem.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

mod auth;
mod issuers;
mod mfa;
mod providers;
mod routes;
mod rules;
mod upstreams;

use super::file::*;
use super::problems::Problems;
use super::values::*;
use super::*;

pub(super) fn validate(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(path, text);
    let Some(file) = checker.problems.read::<FileConfig>() else {
        return Err(checker.problems.into_errors());
    };
    let FileConfig {
        server,
        tls,
        tokens,
        users,
        store,
        cookies,
        headers,
        limits,
        log,
        demo,
        routes,
        providers,
        issuers,
        mfa,
        webauthn,
        dpop,
        admin,
        ui,
        telemetry,
    } = file;
    // Before the routes: their `accept` names issuers, their rules providers.
    let issuers = checker.issuers(issuers);
    let providers = checker.providers(providers);
    let config = Config {
        source: path.to_path_buf(),
        server: checker.server(server),
        tls: checker.tls(tls),
        tokens: checker.tokens(tokens),
        users: checker.users(users),
        store: checker.store(store),
        cookies: checker.cookies(cookies),
        headers: checker.headers(headers),
        limits: checker.limits(limits),
        log: checker.log(log),
        demo: demo.map(|demo| checker.demo(demo)),
        routes: checker.routes(routes, &issuers, &providers),
        providers,
        issuers,
        mfa: mfa.map(|mfa| checker.mfa(mfa)),
        webauthn: webauthn.map(|webauthn| checker.webauthn(webauthn)),
        dpop: checker.dpop(dpop),
        admin: checker.admin(admin),
        ui: checker.ui(ui),
        telemetry: checker.telemetry(telemetry),
    };
    checker.cross_checks(&config);
    checker.problems.finish(config)
}

struct Checker<'a> {
    file: &'a Path,
    problems: Problems<'a>,
}

// === impl Checker: plumbing ===

impl<'a> Checker<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Checker {
            file,
            problems: Problems::new(file, text),
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(span, message);
    }

    /// Parses an optional value, or `default` when absent; on error records it and uses `default`.
    /// `default` must parse even where the key is required: it stands in for a value already
    /// reported as wrong (the fuzz target `config` found two that did not).
    fn value<T>(
        &mut self,
        given: Option<&Spanned<String>>,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        if let Some(given) = given {
            match parse(given.get_ref()) {
                Ok(value) => return value,
                Err(message) => self.error(given.span(), message),
            }
        }
        parse(default).expect("built-in defaults are valid")
    }

    /// The value of a key the table at `table` (named `name`) cannot do without, or `None`
    /// with the key reported missing.
    fn required<'v>(
        &mut self,
        given: &'v Option<Spanned<String>>,
        key: &str,
        table: &Range<usize>,
        name: &str,
    ) -> Option<&'v Spanned<String>> {
        if given.is_none() {
            self.problems.missing(table, name, key);
        }
        given.as_ref()
    }

    fn optional<T>(
        &mut self,
        given: &Spanned<String>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(given.get_ref()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(given.span(), message);
                None
            }
        }
    }

    /// Resolves a path from the file against the config file's folder.
    fn resolve(&self, path: &str) -> PathBuf {
        let base = self.file.parent().unwrap_or(Path::new("."));
        base.join(path)
    }
}

// === impl Checker: sections ===

impl Checker<'_> {
    fn server(&mut self, file: ServerFile) -> ServerConfig {
        let ServerFile {
            listen,
            redirect_listen,
            public_host,
            admin_listen,
            trusted_proxies,
            max_header_bytes,
            header_read_timeout,
            idle_timeout,
            shutdown_grace,
        } = file;
        let redirect_listen = redirect_listen.map(|r| self.value(Some(&r), "127.0.0.1:0", socket_addr));
        let trusted_proxies = trusted_proxies
            .iter()
            .filter_map(|cidr| match parse_cidr(cidr.get_ref()) {
                Ok(net) => Some(net),
                Err(message) => {
                    self.error(cidr.span(), message);
                    None
                }
            })
            .collect();
        let max_header_bytes = match max_header_bytes {
            Some(bytes) if !(1024..=1 << 20).contains(bytes.get_ref()) => {
                self.error(bytes.span(), "max_header_bytes must be between 1024 and 1048576");
                16_384
            }
            Some(bytes) => *bytes.get_ref() as usize,
            None => 16_384,
        };
        ServerConfig {
            listen: self.value(listen.as_ref(), "0.0.0.0:8443", socket_addr),
            redirect_listen,
            public_host: public_host.and_then(|h| self.optional(&h, public_authority)),
            admin_listen: self.value(admin_listen.as_ref(), "127.0.0.1:9901", socket_addr),
            trusted_proxies,
            max_header_bytes,
            header_read_timeout: self.value(header_read_timeout.as_ref(), "10s", parse_duration),
            idle_timeout: self.value(idle_timeout.as_ref(), "60s", parse_duration),
            shutdown_grace: self.value(shutdown_grace.as_ref(), "20s", parse_duration),
        }
    }

    fn tls(&mut self, file: TlsFile) -> TlsConfig {
        let TlsFile {
            cert,
            key,
            self_signed_if_missing,
        } = file;
        let self_signed_if_missing = self_signed_if_missing.unwrap_or(false);
        let mut file_path = |given: Option<Spanned<String>>, default: &str| {
            let path = self.resolve(given.as_ref().map_or(default, |g| g.get_ref()));
            if !self_signed_if_missing && !path.is_file() {
                let span = given.map_or(0..0, |g| g.span());
                let message = format!(
                    "{} does not exist (set self_signed_if_missing = true for a dev certificate)",
                    path.display()
                );
                self.error(span, message);
            }
            path
        };
        TlsConfig {
            cert: file_path(cert, "certs/gateway.crt"),
            key: file_path(key, "certs/gateway.key"),
            self_signed_if_missing,
        }
    }

    fn cookies(&mut self, file: CookiesFile) -> CookiesConfig {
        let CookiesFile {
            enabled,
            access_name,
            refresh_name,
            allowed_origins,
            transparent_refresh,
        } = file;
        let allowed_origins = allowed_origins
            .iter()
            .filter_map(|origin| match parse_origin(origin.get_ref()) {
                Ok(origin) => Some(origin),
                Err(message) => {
                    self.error(origin.span(), message);
                    None
                }
            })
            .collect();
        CookiesConfig {
            enabled: enabled.unwrap_or(true),
            access_name: self.value(access_name.as_ref(), "__Host-portcullis-access", cookie_name),
            refresh_name: self.value(refresh_name.as_ref(), "__Secure-portcullis-refresh", cookie_name),
            allowed_origins,
            transparent_refresh: transparent_refresh.unwrap_or(false),
        }
    }

    fn headers(&mut self, file: HeadersFile) -> HeadersConfig {
        let HeadersFile {
            subject,
            role,
            session,
            amr,
            forward_authorization,
        } = file;
        HeadersConfig {
            subject: self.value(subject.as_ref(), "X-Auth-Sub", identity_header),
            role: self.value(role.as_ref(), "X-Auth-Role", identity_header),
            session: self.value(session.as_ref(), "X-Auth-Session", identity_header),
            amr: amr.and_then(|name| self.optional(&name, identity_header)),
            forward_authorization: forward_authorization.unwrap_or(false),
        }
    }

    fn limits(&mut self, file: LimitsFile) -> LimitsConfig {
        let LimitsFile {
            login_per_ip,
            login_per_user,
            refresh_per_session,
            max_body_bytes,
        } = file;
        LimitsConfig {
            login_per_ip: self.value(login_per_ip.as_ref(), "10/min", parse_rate),
            login_per_user: self.value(login_per_user.as_ref(), "5/min", parse_rate),
            refresh_per_session: self.value(refresh_per_session.as_ref(), "30/min", parse_rate),
            max_body_bytes: self.value(max_body_bytes.as_ref(), "10MiB", parse_bytes),
        }
    }

    fn log(&mut self, file: LogFile) -> LogConfig {
        let LogFile { format, level } = file;
        let format = self.value(format.as_ref(), "text", |f| match f {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format must be \"text\" or \"json\", not {other:?}")),
        });
        let level = self.value(level.as_ref(), "info", |l| match l.trim() {
            "" => Err("log level must not be empty".to_string()),
            l => Ok(l.to_string()),
        });
        LogConfig { format, level }
    }

    fn demo(&mut self, file: Spanned<DemoFile>) -> DemoConfig {
        let span = file.span();
        let DemoFile { echo_listen } = file.into_inner();
        let echo_listen = self.required(&echo_listen, "echo_listen", &span, "[demo]");
        let loopback = |text: &str| {
            let addr = socket_addr(text)?;
            match addr.ip().is_loopback() {
                true => Ok(addr),
                false => Err("the demo echo upstream may only listen on a loopback address".into()),
            }
        };
        DemoConfig {
            echo_listen: self.value(echo_listen, "127.0.0.1:0", loopback),
        }
    }

    /// Problems that need more than one section to see.
    fn cross_checks(&mut self, config: &Config) {
        let server = &config.server;
        if config.admin.token.is_none() && !server.admin_listen.ip().is_loopback() {
            let message = format!(
                "admin_listen {} is not a loopback address: set [admin] token_file (or token_env) \
                 so that /admin/* needs a token",
                server.admin_listen
            );
            self.error(0..0, message);
        }
        let mut listeners = vec![server.listen, server.admin_listen];
        listeners.extend(server.redirect_listen);
        listeners.extend(config.demo.as_ref().map(|d| d.echo_listen));
        for (i, a) in listeners.iter().enumerate() {
            if a.port() != 0 && listeners[..i].contains(a) {
                self.error(0..0, format!("two listeners share the address {a}"));
            }
        }
        if !config.providers.is_empty() && !config.cookies.enabled {
            self.error(
                0..0,
                "[[providers]] log browsers in with cookies: they need [cookies] enabled = true",
            );
        }
        if let Some(ours) = config.issuers.iter().find(|i| i.issuer == config.tokens.issuer) {
            let message = format!(
                "[[issuers]] {:?} has the gateway's own issuer {:?}; the two must differ",
                ours.name, ours.issuer
            );
            self.error(0..0, message);
        }
        let headers = &config.headers;
        let names = [
            Some(&headers.subject),
            Some(&headers.role),
            Some(&headers.session),
            headers.amr.as_ref(),
        ];
        let names: Vec<_> = names.into_iter().flatten().collect();
        if names
            .iter()
            .enumerate()
            .any(|(i, name)| names[..i].contains(name))
        {
            self.error(
                0..0,
                "[headers] subject, role, session (and amr) must be different headers",
            );
        }
    }
}
