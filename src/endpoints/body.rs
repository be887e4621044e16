//! Reading the small bodies the gateway's endpoints accept: JSON, or an HTML form.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::error::GatewayError;

/// Login and refresh bodies are tiny; anything bigger is refused before it is read in full.
const MAX_BODY: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    Json,
    Form,
    /// No `Content-Type`: no body is expected (cookie refresh and logout).
    Absent,
    Other,
}

pub(super) fn kind<B>(request: &Request<B>) -> BodyKind {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return BodyKind::Absent;
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => BodyKind::Json,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        _ => BodyKind::Other,
    }
}

/// Reads a JSON body of type `T` (unknown or duplicate members are refused by `T`).
pub(super) async fn json<T: for<'de> Deserialize<'de>>(
    request: Request<Incoming>,
    deadline: Duration,
) -> Result<T, GatewayError> {
    if kind(&request) != BodyKind::Json {
        return Err(GatewayError::UnsupportedMediaType);
    }
    let body = read(request, deadline).await?;
    serde_json::from_slice(&body)
        .map_err(|_| GatewayError::BadRequest("the body is not the JSON this endpoint takes"))
}

/// Reads an HTML form as name/value pairs; a name given twice is refused.
pub(super) async fn form(
    request: Request<Incoming>,
    deadline: Duration,
) -> Result<Vec<(String, String)>, GatewayError> {
    let body = read(request, deadline).await?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let repeated = pairs
        .iter()
        .enumerate()
        .any(|(i, (name, _))| pairs[..i].iter().any(|(n, _)| n == name));
    match repeated {
        true => Err(GatewayError::BadRequest("a form field is repeated")),
        false => Ok(pairs),
    }
}

/// The string fields of a JSON object or an HTML form, for endpoints that take both (a
/// script's JSON, a page's form); any name outside `allowed`, a repeated one, or a JSON value
/// that is not a string is refused.
pub(super) struct Fields {
    pub kind: BodyKind,
    pairs: Vec<(String, String)>,
}

impl Fields {
    pub(super) async fn read(
        request: Request<Incoming>,
        deadline: Duration,
        allowed: &[&str],
    ) -> Result<Fields, GatewayError> {
        let kind = kind(&request);
        let pairs = match kind {
            BodyKind::Form => form(request, deadline).await?,
            BodyKind::Json => {
                let object: std::collections::BTreeMap<String, String> = json(request, deadline).await?;
                object.into_iter().collect()
            }
            BodyKind::Absent | BodyKind::Other => return Err(GatewayError::UnsupportedMediaType),
        };
        match pairs.iter().find(|(name, _)| !allowed.contains(&name.as_str())) {
            Some(_) => Err(GatewayError::BadRequest(
                "the body has a field this endpoint does not take",
            )),
            None => Ok(Fields { kind, pairs }),
        }
    }

    /// The field `name`, taken out.
    pub(super) fn take(&mut self, name: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.swap_remove(index).1)
    }

    pub(super) fn require(
        &mut self,
        name: &'static str,
        missing: &'static str,
    ) -> Result<String, GatewayError> {
        self.take(name).ok_or(GatewayError::BadRequest(missing))
    }
}

/// The whole (small) body within `deadline`: a client trickling it (R.U.D.Y.) gets 408
/// instead of holding the connection; no route timeout covers the gateway's own endpoints.
async fn read(request: Request<Incoming>, deadline: Duration) -> Result<Bytes, GatewayError> {
    let collect = Limited::new(request.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(GatewayError::BodyTooLarge),
        Ok(Err(_)) => Err(GatewayError::BadRequest("the request body was cut short")),
        Err(_) => Err(GatewayError::RequestTimeout),
    }
}
