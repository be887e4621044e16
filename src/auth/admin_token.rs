//! The admin listener's bearer token (SPEC 15, `[admin] token_file`). Only its SHA-256 is
//! kept, and a presented token is hashed and compared in constant time: a wrong token costs
//! what a right one does, whatever its length or how many bytes it gets right.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::SecretSource;

/// Shorter tokens are refused at load: the token is the admin API's only lock.
const MIN_TOKEN_BYTES: usize = 32;

pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// The token from its file or variable; the error names the source, never the token.
    pub fn load(source: &SecretSource) -> Result<AdminToken, String> {
        let token = source.read()?;
        let token = token.expose();
        if token.len() < MIN_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "the admin token must be at least {MIN_TOKEN_BYTES} visible ASCII characters \
                 (make one with `openssl rand -hex 32`)"
            ));
        }
        Ok(AdminToken {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Whether the request carries `Authorization: Bearer <this token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token);
        // Hashed first: equal-length digests, compared without an early exit.
        verify_slices_are_equal(&sha256(presented.as_bytes()), &self.digest).is_ok()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().expect("header value"));
        headers
    }

    #[test]
    fn only_the_exact_token_as_a_bearer_token_is_admitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("admin.token");
        let token = "0123456789abcdef0123456789abcdef";
        std::fs::write(&path, format!("{token}\n")).expect("write");
        let admin = AdminToken::load(&SecretSource::File(path.clone())).expect("loads");
        assert!(admin.admits(&headers(&format!("Bearer {token}"))));
        assert!(admin.admits(&headers(&format!("bearer {token}"))));
        for wrong in [
            format!("Bearer {token}x"),
            format!("Bearer {}", &token[1..]),
            format!("Basic {token}"),
            token.to_string(),
            "Bearer ".to_string(),
        ] {
            assert!(!admin.admits(&headers(&wrong)), "{wrong}");
        }
        assert!(!admin.admits(&HeaderMap::new()));
        std::fs::write(&path, "short").expect("write");
        let refused = AdminToken::load(&SecretSource::File(path))
            .err()
            .expect("too short");
        assert!(refused.contains("at least 32"), "{refused}");
        assert!(!refused.contains("short"), "the error shows the token: {refused}");
    }
}
