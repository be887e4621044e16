//! Header hygiene between client and upstream: hop-by-hop removal, strip-then-set of identity
//! and forwarding headers, the gateway's own cookies, and the request id.
//!
//! Order matters: hop-by-hop and `Connection`-named headers go first, so a client cannot use
//! `Connection: X-Auth-Sub` to make the gateway drop a header it set itself.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::auth::cookies;

/// Hop-by-hop headers (RFC 9110 7.6.1) plus the legacy ones proxies still meet.
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("http2-settings"),
];

/// Headers that make some backends route or act on something other than what we checked.
static REWRITE_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Removes hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Bytes, not text: one non-ASCII token must not hide the names beside it.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Headers the gateway owns or frames by, whose `_` spellings must not reach the upstream
/// either: CGI, WSGI, Rack and PHP read `X_Forwarded_For` as `HTTP_X_FORWARDED_FOR`.
static UNDERSCORE_GUARDED: [HeaderName; 7] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_REQUEST_ID,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::PROXY_AUTHORIZATION,
];

/// Removes every client copy of the identity headers, and the `_` spellings of those and of
/// the headers the gateway owns (`Forwarded`, with no `-`, needs no such care).
pub fn strip_identity<'n, I>(headers: &mut HeaderMap, identity: I)
where
    I: IntoIterator<Item = &'n HeaderName> + Clone,
{
    for name in identity.clone() {
        headers.remove(name);
    }
    // Some servers (CGI, WSGI, nginx's underscores_in_headers) read `X_Auth_Sub` as `X-Auth-Sub`.
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .filter(|k| {
            identity
                .clone()
                .into_iter()
                .chain(&UNDERSCORE_GUARDED)
                .chain(&REWRITE_HEADERS)
                .any(|id| same_with_underscores(k.as_str(), id.as_str()))
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

fn same_with_underscores(candidate: &str, identity: &str) -> bool {
    candidate.len() == identity.len()
        && candidate
            .bytes()
            .zip(identity.bytes())
            .all(|(c, i)| c == i || (c == b'_' && i == b'-'))
}

/// Drops the gateway's own cookies from `Cookie`, leaving the others in one `Cookie` header.
/// Works on bytes, so a header with non-ASCII cookies is rewritten too, never skipped.
pub fn strip_own_cookies(headers: &mut HeaderMap, own: &[&str]) {
    let is_own = |name: &[u8]| own.iter().any(|o| o.as_bytes() == name);
    let count = headers.get_all(header::COOKIE).iter().count();
    if count == 0 || (count == 1 && !cookies::pairs(headers).any(|(name, _)| is_own(name))) {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for (name, value) in cookies::pairs(headers).filter(|(name, _)| !is_own(name)) {
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(name);
        kept.push(b'=');
        kept.extend_from_slice(value);
    }
    match HeaderValue::from_bytes(&kept) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(header::COOKIE, value);
        }
        _ => {
            headers.remove(header::COOKIE);
        }
    }
}

/// Drops an upstream's `Set-Cookie` for the gateway's own cookies: only the gateway may set
/// them, or a backend could plant a session in the browser (session fixation).
pub fn strip_own_set_cookies(headers: &mut HeaderMap, own: &[&str]) {
    let is_own = |value: &HeaderValue| {
        let name = value.as_bytes().split(|b| *b == b'=').next().unwrap_or_default();
        own.iter().any(|o| o.as_bytes() == name.trim_ascii())
    };
    if !headers.get_all(header::SET_COOKIE).iter().any(is_own) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !is_own(v))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The address the request comes from: the peer, or for a trusted proxy the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    // Right to left across lines too: several lines are one comma-joined list (RFC 9110
    // 5.3), and the proxy's own line comes after any the client sent.
    let chain = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("garbled").rsplit(','))
        .map(|entry| entry.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()));
    let mut client = peer_ip;
    for entry in chain {
        match entry {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A garbled hop ends what we can believe; the last trusted hop is the answer.
            Err(_) => return client,
        }
    }
    client
}

/// The forwarding header values that depend only on the peer: rendered once per connection
/// rather than formatted for every request on it.
pub struct PeerHeaders {
    x_forwarded_for: HeaderValue,
    forwarded: HeaderValue,
}

impl PeerHeaders {
    pub fn new(peer_ip: IpAddr) -> PeerHeaders {
        let owned = |text: String| HeaderValue::from_maybe_shared(Bytes::from(text));
        PeerHeaders {
            x_forwarded_for: owned(peer_ip.to_string()).expect("an address is a valid header value"),
            forwarded: owned(forwarded_for(peer_ip)).expect("an address is a valid header value"),
        }
    }
}

fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("for={ip};proto=https"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto=https"),
    }
}

/// What the upstream is told about the original request.
pub struct Forwarding<'a> {
    pub client_ip: IpAddr,
    pub peer_ip: IpAddr,
    pub peer_trusted: bool,
    pub peer_headers: &'a PeerHeaders,
    /// The `Host` the client asked for, port included.
    pub host: &'a str,
}

/// Replaces the forwarding headers (appending to `X-Forwarded-For` only after a trusted proxy).
pub fn set_forwarding(headers: &mut HeaderMap, forwarding: &Forwarding<'_>) {
    for name in &REWRITE_HEADERS {
        headers.remove(name);
    }
    let earlier_hops = match forwarding.peer_trusted {
        true => joined(headers, &X_FORWARDED_FOR),
        false => None,
    };
    let peer = forwarding.peer_headers;
    match earlier_hops {
        Some(hops) => insert(
            headers,
            X_FORWARDED_FOR,
            format!("{hops}, {}", forwarding.peer_ip),
        ),
        None => {
            headers.insert(X_FORWARDED_FOR, peer.x_forwarded_for.clone());
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if forwarding.client_ip == forwarding.peer_ip {
        headers.insert(header::FORWARDED, peer.forwarded.clone());
    } else {
        insert(headers, header::FORWARDED, forwarded_for(forwarding.client_ip));
    }
    // HTTP/1.1 requests carry exactly this `Host` already: share its bytes rather than copy.
    let host = match headers.get(header::HOST) {
        Some(sent) if sent.as_bytes() == forwarding.host.as_bytes() => Ok(sent.clone()),
        _ => HeaderValue::from_str(forwarding.host),
    };
    match host {
        Ok(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
            headers.insert(header::HOST, host);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_HOST);
            headers.remove(header::HOST);
        }
    }
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Takes the `String` so that the header value owns its bytes without another copy.
fn insert(headers: &mut HeaderMap, name: HeaderName, value: String) {
    match HeaderValue::from_maybe_shared(Bytes::from(value)) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// The client's `X-Request-Id` when it is one short token, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    match (sent.next(), sent.next()) {
        (Some(id), None) if well_formed_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

fn well_formed_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// A process-unique id: a random per-process prefix and a counter; no syscall per request.
fn new_request_id() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:016x}-{n:08x}", *PREFIX);
    HeaderValue::from_maybe_shared(Bytes::from(id)).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn connection_named_headers_are_removed_with_the_hop_by_hop_ones() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let identity = [HeaderName::from_static("x-auth-sub")];
        let mut headers = map(&[
            ("X-Auth-Sub", "a"),
            ("x_auth_sub", "b"),
            ("X_Auth-Sub", "c"),
            ("x-auth-subx", "d"),
        ]);
        strip_identity(&mut headers, &identity);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-auth-subx"]);
    }

    #[test]
    fn own_cookies_are_removed_and_the_rest_joined() {
        let own = ["__Host-access", "__Secure-refresh"];
        let mut headers = map(&[
            ("cookie", "a=1; __Host-access=tok"),
            ("cookie", "__Secure-refresh=r; b=2"),
        ]);
        strip_own_cookies(&mut headers, &own);
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1; b=2");
        let mut only_own = map(&[("cookie", "__Host-access=tok")]);
        strip_own_cookies(&mut only_own, &own);
        assert!(!only_own.contains_key(header::COOKIE));
    }

    #[test]
    fn the_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = map(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        let untrusted_peer: SocketAddr = "9.9.9.9:1".parse().unwrap();
        let trusted_peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(
            client_ip(untrusted_peer, &headers, &trusted).to_string(),
            "9.9.9.9"
        );
        assert_eq!(client_ip(trusted_peer, &headers, &trusted).to_string(), "1.2.3.4");
        // The client's own line comes first; the proxy's line after it is read first.
        let two_lines = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(trusted_peer, &two_lines, &trusted).to_string(),
            "1.2.3.4"
        );
    }

    #[test]
    fn an_upstream_cannot_set_the_gateway_cookies() {
        let mut headers = map(&[
            ("set-cookie", "__Host-access=planted; Path=/"),
            ("set-cookie", "theirs=1; Path=/"),
            ("set-cookie", " __Host-access =x"),
        ]);
        strip_own_set_cookies(&mut headers, &["__Host-access", "__Secure-refresh"]);
        let left: Vec<&HeaderValue> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, ["theirs=1; Path=/"]);
    }

    #[test]
    fn underscore_spellings_of_owned_and_framing_headers_are_removed() {
        let identity = [HeaderName::from_static("x-auth-sub")];
        let mut headers = map(&[
            ("x_auth_sub", "admin"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_request-id", "spoof"),
            ("transfer_encoding", "chunked"),
            ("content_length", "5"),
            ("x_custom_header", "kept"),
        ]);
        strip_identity(&mut headers, &identity);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x_custom_header"]);
    }

    #[test]
    fn a_well_formed_request_id_is_kept_and_a_bad_one_replaced() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let replaced = request_id(&map(&[("x-request-id", "bad id!")]));
        assert_ne!(replaced, "bad id!");
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
