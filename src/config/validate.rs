//! Turns the TOML mirror into a typed `Config`, collecting every error with its position.
//!
//! Each section check returns a usable value even after an error (the default stands in), so
//! one pass reports everything that is wrong instead of stopping at the first problem.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use http::{HeaderName, Method};
use ipnet::IpNet;
use toml::Spanned;

use super::file::*;
use super::values::{parse_bytes, parse_duration, parse_rate};
use super::*;
use crate::routes::normalize_path;

/// Headers a route or the gateway itself owns; an identity header may not reuse them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-request-id",
];

pub fn validate(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(path, text);
    let file: FileConfig = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            checker.error(e.span().unwrap_or(0..0), e.message().to_string());
            return Err(ConfigErrors(checker.errors));
        }
    };
    let FileConfig {
        server,
        tls,
        tokens,
        users,
        cookies,
        headers,
        limits,
        log,
        demo,
        routes,
    } = file;
    let config = Config {
        source: path.to_path_buf(),
        server: checker.server(server),
        tls: checker.tls(tls),
        tokens: checker.tokens(tokens),
        users: checker.users(users),
        cookies: checker.cookies(cookies),
        headers: checker.headers(headers),
        limits: checker.limits(limits),
        log: checker.log(log),
        demo: demo.map(|demo| checker.demo(demo)),
        routes: checker.routes(routes),
    };
    checker.cross_checks(&config);
    if checker.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(checker.errors))
    }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

// === impl Checker: plumbing ===

impl<'a> Checker<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Checker {
            file,
            text,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Parses an optional value, or `default` when absent; on error records it and uses `default`.
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
            admin_listen,
            trusted_proxies,
            max_header_bytes,
            header_read_timeout,
            idle_timeout,
            shutdown_grace,
        } = file;
        let redirect_listen = redirect_listen.map(|r| self.value(Some(&r), "", socket_addr));
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

    fn tokens(&mut self, file: Option<TokensFile>) -> TokensConfig {
        let Some(file) = file else {
            self.error(0..0, "[tokens] with at least one [[tokens.keys]] is required");
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
        if checked.is_empty() && self.errors.is_empty() {
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
        let kid = self.optional(&kid, key_id)?;
        let alg = self.optional(&alg, key_algorithm)?;
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

    fn users(&mut self, file: UsersFile) -> UsersConfig {
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
            forward_authorization,
        } = file;
        HeadersConfig {
            subject: self.value(subject.as_ref(), "X-Auth-Sub", identity_header),
            role: self.value(role.as_ref(), "X-Auth-Role", identity_header),
            session: self.value(session.as_ref(), "X-Auth-Session", identity_header),
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

    fn demo(&mut self, file: DemoFile) -> DemoConfig {
        let DemoFile { echo_listen } = file;
        let loopback = |text: &str| {
            let addr = socket_addr(text)?;
            match addr.ip().is_loopback() {
                true => Ok(addr),
                false => Err("the demo echo upstream may only listen on a loopback address".into()),
            }
        };
        DemoConfig {
            echo_listen: self.value(Some(&echo_listen), "127.0.0.1:0", loopback),
        }
    }

    fn routes(&mut self, routes: Vec<Spanned<RouteFile>>) -> Vec<RouteConfig> {
        let mut checked: Vec<RouteConfig> = Vec::with_capacity(routes.len());
        for spanned in routes {
            let span = spanned.span();
            let errors_before = self.errors.len();
            let route = self.route(spanned.into_inner());
            // A route with its own errors holds stand-in values that would collide spuriously.
            let route_is_valid = self.errors.len() == errors_before;
            if let Some(other) = checked.iter().find(|o| o.name == route.name) {
                let message = format!("route name {:?} is used twice", other.name);
                self.error(span, message);
            } else if let Some(other) = checked.iter().find(|o| route_is_valid && same_match(o, &route)) {
                let message = format!(
                    "route {:?} matches exactly what route {:?} matches",
                    route.name, other.name
                );
                self.error(span, message);
            }
            checked.push(route);
        }
        checked
    }

    /// Problems that need more than one section to see.
    fn cross_checks(&mut self, config: &Config) {
        let server = &config.server;
        let mut listeners = vec![server.listen, server.admin_listen];
        listeners.extend(server.redirect_listen);
        listeners.extend(config.demo.as_ref().map(|d| d.echo_listen));
        for (i, a) in listeners.iter().enumerate() {
            if a.port() != 0 && listeners[..i].contains(a) {
                self.error(0..0, format!("two listeners share the address {a}"));
            }
        }
        let headers = &config.headers;
        if headers.subject == headers.role
            || headers.subject == headers.session
            || headers.role == headers.session
        {
            self.error(
                0..0,
                "[headers] subject, role and session must be three different headers",
            );
        }
    }
}

// === impl Checker: one route ===

impl Checker<'_> {
    fn route(&mut self, file: RouteFile) -> RouteConfig {
        let RouteFile {
            name,
            host,
            path,
            methods,
            upstream,
            auth,
            roles,
            strip_prefix,
            timeout,
            websocket,
        } = file;
        let auth = self.value(auth.as_ref(), "required", |a| match a {
            "required" => Ok(AuthPolicy::Required),
            "public" => Ok(AuthPolicy::Public),
            other => Err(format!("auth must be \"required\" or \"public\", not {other:?}")),
        });
        if auth == AuthPolicy::Public && !roles.is_empty() {
            self.error(
                roles[0].span(),
                "roles need auth = \"required\"; a public route has no caller to check",
            );
        }
        let methods = methods.map(|list| {
            list.iter()
                .filter_map(|m| self.optional(m, method))
                .collect::<Vec<_>>()
        });
        RouteConfig {
            name: self.value(Some(&name), "", route_name),
            host: host.and_then(|h| self.optional(&h, host_pattern)),
            path: self.value(Some(&path), "/", route_path),
            methods,
            upstream: self.value(Some(&upstream), "http://127.0.0.1:1", upstream_authority),
            auth,
            roles: roles.iter().filter_map(|r| self.optional(r, role_name)).collect(),
            strip_prefix: strip_prefix.unwrap_or(false),
            timeout: self.value(timeout.as_ref(), "30s", parse_duration),
            websocket: websocket.unwrap_or(false),
        }
    }

    fn optional<T>(&mut self, given: &Spanned<String>, parse: fn(&str) -> Result<T, String>) -> Option<T> {
        match parse(given.get_ref()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(given.span(), message);
                None
            }
        }
    }
}

fn same_match(a: &RouteConfig, b: &RouteConfig) -> bool {
    a.host == b.host && a.path == b.path && a.methods == b.methods
}

// === value parsers ===

fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(text.trim())
        .map_err(|_| format!("{text:?} is not an address like \"0.0.0.0:8443\" or \"[::1]:8443\""))
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| std::net::IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR like \"10.0.0.0/8\" or an IP address"))
}

fn parse_origin(text: &str) -> Result<String, String> {
    let invalid = || {
        format!(
            "{text:?} is not an origin like \"https://app.example.com\" (scheme, host, optional port; no path)"
        )
    };
    let uri = http::Uri::from_str(text).map_err(|_| invalid())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
    // `http::Uri` reports "/" for a bare authority, so the text itself must not end in '/'.
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/") && !text.ends_with('/');
    match (scheme_ok, uri.authority(), bare) {
        (true, Some(authority), true) if !authority.as_str().contains('@') => Ok(text.to_ascii_lowercase()),
        _ => Err(invalid()),
    }
}

fn claim_text(text: &str) -> Result<String, String> {
    match !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?} must be non-empty visible ASCII")),
    }
}

fn key_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "kid {text:?} must be 1-64 letters, digits, '-', '_' or '.'"
        )),
    }
}

fn key_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    match text {
        "ES256" => Ok(KeyAlgorithm::Es256),
        "EdDSA" => Ok(KeyAlgorithm::EdDsa),
        "RS256" => Ok(KeyAlgorithm::Rs256),
        "HS256" => Ok(KeyAlgorithm::Hs256),
        other => Err(format!("alg must be ES256, EdDSA, RS256 or HS256, not {other:?}")),
    }
}

fn parse_check_url(text: &str) -> Result<http::Uri, String> {
    let uri = http::Uri::from_str(text).map_err(|_| format!("check_url {text:?} is not a URL"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) if !authority.as_str().contains('@') => Ok(uri),
        _ => Err(format!("check_url {text:?} must be an http:// URL")),
    }
}

fn cookie_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?} is not a valid cookie name")),
    }
}

fn identity_header(text: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_str(text).map_err(|_| format!("{text:?} is not a valid header name"))?;
    if name.as_str().contains('_') {
        return Err(format!(
            "{text:?}: use '-' rather than '_' in identity header names"
        ));
    }
    match RESERVED_HEADERS.contains(&name.as_str()) {
        true => Err(format!("{text:?} is a standard header and cannot carry identity")),
        false => Ok(name),
    }
}

fn route_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!(
            "route name {text:?} must be 1-64 letters, digits, '-' or '_'"
        )),
    }
}

fn host_pattern(text: &str) -> Result<HostPattern, String> {
    let lower = text.to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok =
        |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "host {text:?} must be a host name like \"api.example.com\" or \"*.example.com\" (no port)"
        ));
    }
    Ok(match wildcard {
        true => HostPattern::Wildcard(format!(".{name}")),
        false => HostPattern::Exact(name.to_string()),
    })
}

fn route_path(text: &str) -> Result<String, String> {
    let normalized = normalize_path(text).map_err(|e| format!("route path {text:?}: {e}"))?;
    if normalized != text {
        return Err(format!(
            "route path {text:?} is not normalised; write {normalized:?}"
        ));
    }
    let reserved =
        text == "/auth" || text.starts_with("/auth/") || text.starts_with("/.well-known/jwks.json");
    match reserved {
        true => Err(format!(
            "route path {text:?} is reserved for the gateway's own endpoints"
        )),
        false => Ok(normalized),
    }
}

fn method(text: &str) -> Result<Method, String> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase());
    match valid {
        true => Method::from_str(text).map_err(|_| format!("{text:?} is not an HTTP method")),
        false => Err(format!(
            "method {text:?} must be an upper-case HTTP method like \"GET\""
        )),
    }
}

fn role_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
    match valid {
        true => Ok(text.to_string()),
        false => Err(format!("role {text:?} must be non-empty visible ASCII")),
    }
}

fn upstream_authority(text: &str) -> Result<http::uri::Authority, String> {
    let invalid =
        || format!("upstream {text:?} must be like \"http://127.0.0.1:9000\" (scheme, host, port; no path)");
    let uri = http::Uri::from_str(text).map_err(|_| invalid())?;
    if uri.scheme_str() == Some("https") {
        return Err(format!(
            "upstream {text:?}: https upstreams are not supported yet; use http:// on a private network"
        ));
    }
    let bare = uri
        .path_and_query()
        .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) if bare && !authority.as_str().contains('@') => Ok(authority.clone()),
        _ => Err(invalid()),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
