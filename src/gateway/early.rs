//! Phase 1: the checks every request passes before routing: framing verdict, header size,
//! `Authorization` count, Host, and path normalisation.

use std::str::FromStr;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::uri::Authority;
use http::{Method, Request, Version};
use hyper::body::Incoming;

use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::path::normalize_path;
use crate::server::framing::FramingViolation;

pub(super) fn early_checks(
    ctx: &RequestCtx<'_>,
    request: &Request<Incoming>,
) -> Result<Target, GatewayError> {
    // The framing verdict is taken first so that verdicts stay in step with requests.
    if let Some(framing) = &ctx.connection.framing {
        framing.next_request()?;
    }
    let headers = request.headers();
    if headers.get_all(CONTENT_LENGTH).iter().count() > 1 {
        return Err(GatewayError::AmbiguousFraming(
            FramingViolation::DuplicateContentLength,
        ));
    }
    let header_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > ctx.runtime.config.server.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    if headers.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err(GatewayError::DuplicateAuthorization);
    }
    if request.method() == Method::CONNECT {
        return Err(GatewayError::BadRequestTarget);
    }
    let authority = request_authority(request)?;
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let path = normalize_path(request.uri().path())?;
    Ok(Target {
        host,
        authority,
        path,
    })
}

/// The authority from the URI (HTTP/2, absolute-form) or the single `Host` header; they must agree.
fn request_authority(request: &Request<Incoming>) -> Result<Authority, GatewayError> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host_header = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(GatewayError::BadHost),
        (header, None) => header
            .map(|h| h.to_str().map_err(|_| GatewayError::BadHost))
            .transpose()?,
    };
    // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, even in absolute form.
    if request.version() == Version::HTTP_11 && host_header.is_none() {
        return Err(GatewayError::BadHost);
    }
    let authority = match (request.uri().authority(), host_header) {
        (Some(uri), Some(header)) if !uri.as_str().eq_ignore_ascii_case(header) => {
            return Err(GatewayError::BadHost);
        }
        (Some(uri), _) => uri.clone(),
        (None, Some(header)) => Authority::from_str(header).map_err(|_| GatewayError::BadHost)?,
        (None, None) => return Err(GatewayError::BadHost),
    };
    match authority.as_str().contains('@') || authority.host().is_empty() || !well_formed_port(&authority) {
        true => Err(GatewayError::BadHost),
        false => Ok(authority),
    }
}

/// `http` accepts any text after the host's `:`; the port must be digits that fit a u16.
fn well_formed_port(authority: &Authority) -> bool {
    match authority.as_str().get(authority.host().len()..) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix(':')
            .is_some_and(|port| port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()),
        None => false,
    }
}
