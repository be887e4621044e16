//! Decoding what Redis returns: every value is checked, nothing panics, and a record that does
//! not decode is `StoreError::Corrupt` (messages name fields, never values).

use redis::Value;

use super::*;
use crate::auth::tokens::{LOCAL_AMR, LOCAL_IDP};
use crate::sessions::store::Origin;

pub(super) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::Int(n) => Ok(n.to_string()),
        _ => {
            let raw = bytes(value).ok_or_else(|| corrupt("expected a string"))?;
            utf8(raw, "a reply")
        }
    }
}

pub(super) fn utf8(raw: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(raw.to_vec()).map_err(|_| corrupt(&format!("{what} is not UTF-8")))
}

pub(super) fn integer(value: &Value) -> Result<u64, StoreError> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| corrupt("a count is negative")),
        _ => number(&text(value)?, "a count"),
    }
}

pub(super) fn number(raw: &str, what: &str) -> Result<u64, StoreError> {
    raw.parse()
        .map_err(|_| corrupt(&format!("{what} is not a number")))
}

pub(super) fn array(value: &Value) -> Result<&[Value], StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        _ => Err(corrupt("expected a list")),
    }
}

/// A hash field and its value, as Redis sent them.
type Field<'a> = (&'a [u8], &'a [u8]);

/// Field/value pairs from a flat list (RESP2, and whatever a script returns) or a map (RESP3).
pub(super) fn pairs(value: &Value) -> Result<Vec<Field<'_>>, StoreError> {
    let not_a_string = || corrupt("a hash field is not a string");
    match value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| {
                Ok((
                    bytes(k).ok_or_else(not_a_string)?,
                    bytes(v).ok_or_else(not_a_string)?,
                ))
            })
            .collect(),
        _ => {
            let items = array(value)?;
            if items.len() % 2 != 0 {
                return Err(corrupt("a hash came back with an odd number of items"));
            }
            items
                .chunks_exact(2)
                .map(|pair| {
                    Ok((
                        bytes(&pair[0]).ok_or_else(not_a_string)?,
                        bytes(&pair[1]).ok_or_else(not_a_string)?,
                    ))
                })
                .collect()
        }
    }
}

/// The cursor and the items of an `SSCAN` or `HSCAN` reply.
pub(super) fn scan_reply(value: &Value) -> Result<(String, &Value), StoreError> {
    match array(value)? {
        [cursor, items] => Ok((text(cursor)?, items)),
        _ => Err(corrupt("a scan reply has the wrong shape")),
    }
}

/// Decodes a session hash. Messages name fields, never values, so no seed leaks.
pub(super) fn record_from_fields(sid: &str, fields: &[Field<'_>]) -> Result<SessionRecord, StoreError> {
    let find = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| *field == name.as_bytes())
            .map(|(_, value)| *value)
    };
    let required = |name: &str| find(name).ok_or_else(|| corrupt(&format!("a session has no {name}")));
    let string = |name: &str| utf8(required(name)?, name);
    let optional_string = |name: &str| find(name).map(|v| utf8(v, name)).transpose();
    let parse = |name: &str, raw: &[u8]| {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| corrupt(&format!("the {name} of a session is not a number")))
    };
    let time = |name: &str| parse(name, required(name)?);
    let created_at = time("created_at")?;
    // Sessions written before single sign-on were password logins.
    let origin = Origin {
        idp: optional_string("idp")?.unwrap_or_else(|| LOCAL_IDP.to_owned()),
        auth_time: find("auth_time").map_or(Ok(created_at), |v| parse("auth_time", v))?,
        amr: optional_string("amr")?.map_or_else(
            || vec![LOCAL_AMR.to_owned()],
            |amr| amr.split_whitespace().map(str::to_owned).collect(),
        ),
        idp_sid: optional_string("idp_sid")?,
        idp_sub: optional_string("idp_sub")?,
        jkt: optional_string("jkt")?,
    };
    let seed: [u8; SEED_BYTES] = required("seed")?
        .try_into()
        .map_err(|_| corrupt(&format!("a session seed is not {SEED_BYTES} bytes long")))?;
    Ok(SessionRecord {
        sid: sid.to_owned(),
        sub: string("sub")?,
        role: string("role")?,
        seed: Secret::new(seed),
        generation: time("generation")?,
        rotated_at_ms: time("rotated_at_ms")?,
        created_at,
        last_used_at: time("last_used_at")?,
        expires_at: time("expires_at")?,
        user_agent: optional_string("user_agent")?,
        ip: string("ip")?,
        revoked_at: find("revoked_at").map(|v| parse("revoked_at", v)).transpose()?,
        origin,
    })
}

pub(super) fn kind_name(kind: RevocationKind) -> &'static str {
    match kind {
        RevocationKind::Session => "session",
        RevocationKind::User => "user",
    }
}

pub(super) fn parse_kind(name: &str) -> Result<RevocationKind, StoreError> {
    match name {
        "session" => Ok(RevocationKind::Session),
        "user" => Ok(RevocationKind::User),
        _ => Err(corrupt(&format!("unknown revocation kind {name:?}"))),
    }
}

/// A `kind:key` field and its `not_before:keep_until` value.
pub(super) fn parse_revocation(field: &str, value: &str) -> Result<Revocation, StoreError> {
    let (kind, key) = field
        .split_once(':')
        .ok_or_else(|| corrupt("a revocation field has no kind"))?;
    let (not_before, keep_until) = value
        .split_once(':')
        .ok_or_else(|| corrupt("a revocation value is not not_before:keep_until"))?;
    Ok(Revocation {
        kind: parse_kind(kind)?,
        key: key.to_owned(),
        not_before: number(not_before, "not_before")?,
        keep_until: number(keep_until, "keep_until")?,
    })
}

/// A stream id `ms-seq` as Redis writes them (the scripts compare ids as canonical
/// decimal strings, so anything else, such as `+1-0` or `01-0`, is refused).
pub(super) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let canonical = |part: &str| {
        let valid = !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        valid.then(|| part.parse::<u64>().ok()).flatten()
    };
    Some((canonical(ms)?, canonical(seq)?))
}

/// The entries of an `XREAD` reply for our one stream, and the id of the last one.
pub(super) fn parse_feed(reply: &Value) -> Result<(FeedNews, Option<String>), StoreError> {
    let streams: Vec<&Value> = match reply {
        Value::Map(entries) => entries.iter().map(|(_, v)| v).collect(),
        _ => array(reply)?
            .iter()
            .map(|stream| match array(stream)? {
                [_, entries] => Ok(entries),
                _ => Err(corrupt("a feed reply has the wrong shape")),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut news = FeedNews::default();
    let mut last = None;
    for entries in streams {
        for entry in array(entries)? {
            let [id, fields] = array(entry)? else {
                return Err(corrupt("a feed entry has the wrong shape"));
            };
            let id = text(id)?;
            let fields = pairs(fields)?;
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(f, _)| *f == name.as_bytes())
                    .ok_or_else(|| corrupt(&format!("a feed entry has no {name}")))
                    .and_then(|(_, v)| utf8(v, name))
            };
            last = Some(id);
            let kind = field("kind")?;
            if kind == "api_key" {
                news.api_keys.push(field("key")?);
                continue;
            }
            news.revocations.push(Revocation {
                kind: parse_kind(&kind)?,
                key: field("key")?,
                not_before: number(&field("not_before")?, "not_before")?,
                keep_until: number(&field("keep_until")?, "keep_until")?,
            });
        }
    }
    Ok((news, last))
}
