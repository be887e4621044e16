//! Sessions as a client sees them: token pairs from logins and refreshes, the protected route,
//! the admin session list, and the refusals (SPEC 5.2, 5.3, 6).

use std::collections::BTreeSet;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use super::jwt::sid_of;
use super::{Client, DEADLINE, PROTECTED, Reply, RequestExt, eventually, request};

/// One access/refresh pair, as login and refresh return it.
#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

impl Pair {
    /// The pair of a 200 answer to a login or a refresh.
    pub fn from_reply(reply: &Reply, what: &str) -> Pair {
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer", "{what}: {body}");
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no {name} in {body}"))
                .to_string()
        };
        Pair {
            access: field("access_token"),
            refresh: field("refresh_token"),
        }
    }

    /// The session id the access token names.
    pub fn sid(&self) -> String {
        sid_of(&self.access)
    }
}

/// The JSON login of a test user (password `<name>-password`).
pub fn login_request(user: &str) -> Request<Full<Bytes>> {
    json_login(user, &format!("{user}-password"), &[])
}

/// The JSON text of a login with any credentials.
pub fn credentials(username: &str, password: &str) -> String {
    json!({ "username": username, "password": password }).to_string()
}

/// `POST /auth/login` with `body` sent as `content_type` (none if `None`) and extra `headers`.
pub fn raw_login(
    content_type: Option<&str>,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let content_type = content_type.map(|value| ("content-type", value));
    let request = request(Method::POST, "/auth/login").headers(content_type.as_slice());
    request.headers(headers).with_body(body)
}

/// A JSON login with any credentials and extra `headers`.
pub fn json_login(username: &str, password: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    raw_login(Some("application/json"), credentials(username, password), headers)
}

/// `POST /auth/refresh` with the token in a JSON body.
pub fn refresh_request(token: &str) -> Request<Full<Bytes>> {
    request(Method::POST, "/auth/refresh").json(&json!({ "refresh_token": token }))
}

pub fn logout_request(refresh_token: &str) -> Request<Full<Bytes>> {
    request(Method::POST, "/auth/logout").json(&json!({ "refresh_token": refresh_token }))
}

impl Client {
    /// Logs in as a test user and expects a pair.
    pub async fn pair(&self, user: &str) -> Pair {
        let reply = self.send(login_request(user)).await;
        Pair::from_reply(&reply, &format!("login {user} on {}", self.name))
    }

    pub async fn refresh(&self, token: &str) -> Reply {
        self.send(refresh_request(token)).await
    }

    /// Refreshes and expects a new pair.
    pub async fn refreshed(&self, token: &str, what: &str) -> Pair {
        let reply = self.refresh(token).await;
        Pair::from_reply(&reply, &format!("{what} on {}", self.name))
    }

    pub async fn logout(&self, refresh_token: &str) -> Reply {
        self.send(logout_request(refresh_token)).await
    }

    /// `GET PROTECTED` with the access token.
    pub async fn protected(&self, access: &str) -> Reply {
        self.get_with_token(PROTECTED, access).await
    }

    /// The access token works on the protected route, and the upstream is told its session.
    pub async fn assert_access_works(&self, access: &str, what: &str) {
        let reply = self.protected(access).await;
        assert_eq!(
            reply.status,
            200,
            "{what}: refused by {}: {}",
            self.name,
            reply.text()
        );
        let session = reply.upstream_header("x-auth-session");
        assert_eq!(session, [sid_of(access)], "{what} on {}", self.name);
    }

    /// The access token is refused at once on the protected route and on `/auth/me`.
    pub async fn assert_access_revoked(&self, access: &str, what: &str) {
        let reply = self.protected(access).await;
        assert_invalid_token(&reply, &format!("{what} (protected route)"));
        let reply = self.get_with_token("/auth/me", access).await;
        assert_invalid_token(&reply, &format!("{what} (/auth/me)"));
    }

    pub async fn assert_refresh_refused(&self, refresh_token: &str, what: &str) {
        assert_invalid_grant(&self.refresh(refresh_token).await, what);
    }

    /// Logs in until the answer is `expected` (users.toml is polled), failing after `DEADLINE`.
    pub async fn login_until(&self, user: &str, password: &str, expected: u16) {
        eventually(DEADLINE, async || match self.login(user, password).await.status {
            status if status == expected => Ok(()),
            status => Err(format!("{user}: still {status}, never {expected}")),
        })
        .await
    }

    /// The live session ids of `sub`, as the admin API lists them.
    pub async fn session_ids(&self, sub: &str) -> BTreeSet<String> {
        let reply = self
            .admin(Method::GET, &format!("/admin/sessions?sub={sub}"))
            .await;
        assert_eq!(
            reply.status,
            200,
            "admin list of {sub} on {}: {}",
            self.name,
            reply.text()
        );
        session_ids(&reply.json())
    }
}

/// The session ids in a session list, each listed once.
pub fn session_ids(list: &Value) -> BTreeSet<String> {
    let entries = list.as_array().unwrap_or_else(|| panic!("not a list: {list}"));
    let ids: BTreeSet<String> = entries
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), entries.len(), "a session listed twice: {list}");
    ids
}

/// A `Bearer` challenge naming `error`, and `error` in the JSON body.
pub fn assert_challenge(reply: &Reply, error: &str, what: &str) {
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(&format!("error=\"{error}\"")),
        "{what}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(reply.json()["error"], error, "{what}");
}

/// 401 with `error="invalid_token"` in both the challenge and the body.
pub fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    assert_challenge(reply, "invalid_token", what);
}

/// 401 `invalid_grant` from `/auth/refresh`, with no token in the body.
pub fn assert_invalid_grant(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "invalid_grant", "{what}");
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{what}: a failed refresh returned tokens: {body}"
    );
}
