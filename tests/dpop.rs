//! DPoP (SPEC 14, RFC 9449) on the real request path: a login with a proof binds the session
//! to the key, its tokens work only with proofs by that key (proxied, the gateway's own
//! endpoints, forward-auth, WebSocket upgrades), each way a proof can be wrong is refused
//! with its reason, `require_dpop`, server nonces, and replay across two replicas.

mod support;

use http::Method;
use serde_json::{Value, json};
use support::binary::plain_get;
use support::config::{position, refused_by_check};
use support::dpop::{DpopKey, bound_key};
use support::upstreams::Upstream;
use support::{
    Client, GENEROUS_LIMITS, Gateway, PROTECTED, Reply, RequestExt, Setup, config::route, request,
    tokens_with,
};

/// `Host: localhost` is what the kit's requests send: the `htu` a client names.
const ORIGIN: &str = "https://localhost";

fn htu(path: &str) -> String {
    format!("{ORIGIN}{path}")
}

/// `method path` with `Authorization: DPoP <token>` and the proof `proof`.
fn dpop_request(
    method: Method,
    path: &str,
    token: &str,
    proof: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let authorization = format!("DPoP {token}");
    request(method, path)
        .headers(&[("authorization", &authorization), ("dpop", proof)])
        .empty()
}

async fn get_protected(client: &Client, key: &DpopKey, token: &str) -> Reply {
    let proof = key.proof("GET", &htu(PROTECTED), Some(token));
    client
        .send(dpop_request(Method::GET, PROTECTED, token, &proof))
        .await
}

/// 401 with a `DPoP` challenge naming `error` (and the algorithms), `error` in the body.
fn assert_dpop_challenge(reply: &Reply, error: &str, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("DPoP realm=\"portcullis\", algs=\"ES256 EdDSA Ed25519 RS256\"")
            && challenge.contains(&format!("error=\"{error}\"")),
        "{what}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(reply.json()["error"], error, "{what}");
}

/// The `portcullis_auth_failures_total` count for `reason`.
async fn failures(client: &Client, reason: &str) -> u64 {
    let metrics = plain_get(client.admin, "/metrics").await.expect("metrics");
    let series = format!("portcullis_auth_failures_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

async fn api_gateway(extra: &str) -> (Gateway, Upstream) {
    support::api_gateway(&tokens_with(""), extra).await
}

#[tokio::test]
async fn a_dpop_login_binds_every_token_of_the_session_to_its_key() {
    let (gateway, _echo) = api_gateway("").await;
    let key = DpopKey::es256();
    let pair = gateway.dpop_pair(&key, "bob").await;
    let access = pair.access.as_str();
    assert_eq!(bound_key(access), Some(key.thumbprint()), "cnf.jkt");

    let reply = get_protected(&gateway, &key, access).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    // Like the token, the proof stays at the gateway (without forward_authorization).
    assert!(
        reply.upstream_header("dpop").is_empty(),
        "the proof reached the upstream"
    );
    // The gateway's own endpoints want the proof too.
    let me = dpop_request(
        Method::GET,
        "/auth/me",
        access,
        &key.proof("GET", &htu("/auth/me"), Some(access)),
    );
    assert_eq!(gateway.send(me).await.json()["sub"], "bob");

    // Stolen without the key, the token is useless: as Bearer, bare, or with another's proof.
    let as_bearer = gateway.get_with_token(PROTECTED, access).await;
    assert_dpop_challenge(&as_bearer, "invalid_token", "a bound token as Bearer");
    let no_proof = request(Method::GET, PROTECTED).headers(&[("authorization", &format!("DPoP {access}"))]);
    assert_dpop_challenge(
        &gateway.send(no_proof.empty()).await,
        "invalid_dpop_proof",
        "no proof",
    );
    let thief = DpopKey::es256();
    assert_dpop_challenge(
        &get_protected(&gateway, &thief, access).await,
        "invalid_dpop_proof",
        "another key",
    );

    // The refresh token needs the key too; a refusal rotates nothing.
    let refresh_token = pair.refresh.as_str();
    let bare = gateway.refresh(refresh_token).await;
    assert_eq!(
        (bare.status.as_u16(), &bare.json()["error"]),
        (400, &json!("invalid_dpop_proof"))
    );
    let refresh = |key: &DpopKey| {
        let proof = key.proof("POST", &htu("/auth/refresh"), None);
        request(Method::POST, "/auth/refresh")
            .header("dpop", proof)
            .json(&json!({ "refresh_token": refresh_token }))
    };
    assert_eq!(gateway.send(refresh(&thief)).await.status, 400, "a thief's key");
    let next = gateway.send(refresh(&key)).await;
    assert_eq!(next.status, 200, "{}", next.text());
    let next = next.json();
    assert_eq!(next["token_type"], "DPoP");
    let access = next["access_token"].as_str().expect("access token");
    assert_eq!(
        bound_key(access),
        Some(key.thumbprint()),
        "the refreshed token stays bound"
    );
    assert_eq!(get_protected(&gateway, &key, access).await.status, 200);
    assert_eq!(failures(&gateway, "dpop_bound_as_bearer").await, 1);
}

#[tokio::test]
async fn each_way_a_proof_can_be_wrong_is_refused_with_its_reason() {
    let (gateway, _echo) = api_gateway("").await;
    let key = DpopKey::ed25519();
    let pair = gateway.dpop_pair(&key, "bob").await;
    let token = pair.access.as_str();
    let other = DpopKey::es256();
    let set = |member: &'static str, value: Value| {
        move |_: &mut Value, claims: &mut Value| claims[member] = value.clone()
    };
    let url = htu(PROTECTED);
    let proof = |edit: &dyn Fn(&mut Value, &mut Value)| key.proof_with("GET", &url, Some(token), edit);
    let replayed = key.proof("GET", &url, Some(token));
    assert_eq!(
        gateway
            .send(dpop_request(Method::GET, PROTECTED, token, &replayed))
            .await
            .status,
        200
    );
    let now = portcullis::auth::tokens::unix_now();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong htm",
            proof(&set("htm", json!("POST"))),
            "dpop_wrong_method",
        ),
        (
            "wrong htu",
            proof(&set("htu", json!(htu("/api/other")))),
            "dpop_wrong_uri",
        ),
        ("stale iat", proof(&set("iat", json!(now - 120))), "dpop_stale"),
        ("replayed jti", replayed, "dpop_replayed"),
        ("wrong ath", proof(&set("ath", json!("AAAA"))), "dpop_wrong_ath"),
        (
            "another key",
            other.proof("GET", &url, Some(token)),
            "dpop_wrong_key",
        ),
        (
            "alg none",
            proof(&|h, _| h["alg"] = json!("none")),
            "dpop_bad_algorithm",
        ),
        (
            "typ JWT",
            proof(&|h, _| h["typ"] = json!("JWT")),
            "dpop_wrong_type",
        ),
        (
            "private key in jwk",
            proof(&|h, _| h["jwk"]["d"] = json!("c2VjcmV0")),
            "dpop_private_key",
        ),
        ("not a JWS", "abc".to_string(), "dpop_malformed"),
    ];
    for (what, proof, reason) in cases {
        let before = failures(&gateway, reason).await;
        let reply = gateway
            .send(dpop_request(Method::GET, PROTECTED, token, &proof))
            .await;
        assert_dpop_challenge(&reply, "invalid_dpop_proof", what);
        assert_eq!(
            failures(&gateway, reason).await,
            before + 1,
            "{what}: counted as {reason}"
        );
    }
    // Two DPoP headers: which one the client meant is unknowable.
    let two = request(Method::GET, PROTECTED).headers(&[
        ("authorization", &format!("DPoP {token}")),
        ("dpop", &key.proof("GET", &url, Some(token))),
        ("dpop", &key.proof("GET", &url, Some(token))),
    ]);
    assert_dpop_challenge(
        &gateway.send(two.empty()).await,
        "invalid_dpop_proof",
        "two proofs",
    );
    // A bad proof at login is a 400 (RFC 9449 §5), and begins no session.
    let bad = other.proof_with("POST", &htu("/auth/login"), None, set("htm", json!("GET")));
    let login = request(Method::POST, "/auth/login").header("dpop", bad);
    let reply = gateway
        .send(login.json(&json!({ "username": "bob", "password": "bob-password" })))
        .await;
    assert_eq!(
        (reply.status.as_u16(), &reply.json()["error"]),
        (400, &json!("invalid_dpop_proof"))
    );
    assert!(reply.json().get("access_token").is_none());
}

#[tokio::test]
async fn a_require_dpop_route_takes_only_bound_tokens_with_their_proof() {
    let echo = Upstream::echo().await;
    let routes = format!(
        "{}{}{GENEROUS_LIMITS}",
        route("api", "/api/", echo.addr, "auth = \"required\""),
        route(
            "strict",
            "/strict/",
            echo.addr,
            "auth = \"required\"\nrequire_dpop = true"
        ),
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    let bearer = gateway.pair("bob").await.access;
    let reply = gateway.get_with_token("/strict/x", &bearer).await;
    assert_dpop_challenge(&reply, "invalid_token", "a bearer token on a require_dpop route");
    assert_eq!(
        gateway.get_with_token("/api/x", &bearer).await.status,
        200,
        "elsewhere it works"
    );
    // No credential: the challenge names the scheme and algorithms, no error (RFC 6750 §3.1).
    let anonymous = gateway.send(request(Method::GET, "/strict/x").empty()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("DPoP realm=\"portcullis\", algs=\"ES256 EdDSA Ed25519 RS256\"")
    );
    // An unbound token is not made DPoP by its scheme.
    let key = DpopKey::es256();
    let proof = key.proof("GET", &htu("/strict/x"), Some(&bearer));
    let reply = gateway
        .send(dpop_request(Method::GET, "/strict/x", &bearer, &proof))
        .await;
    assert_dpop_challenge(&reply, "invalid_token", "an unbound token sent as DPoP");
    let pair = gateway.dpop_pair(&key, "bob").await;
    let token = pair.access.as_str();
    let proof = key.proof("GET", &htu("/strict/x"), Some(token));
    let reply = gateway
        .send(dpop_request(Method::GET, "/strict/x", token, &proof))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(failures(&gateway, "dpop_required").await, 1);
    assert_eq!(failures(&gateway, "dpop_not_bound").await, 1);
}

#[tokio::test]
async fn with_nonces_required_a_client_gets_one_and_then_succeeds() {
    let (gateway, _echo) = api_gateway("[dpop]\nrequire_nonce = true\n").await;
    let key = DpopKey::es256();
    let login = |nonce: Option<&str>| {
        let proof = key.proof_with("POST", &htu("/auth/login"), None, |_, claims| {
            if let Some(nonce) = nonce {
                claims["nonce"] = json!(nonce);
            }
        });
        request(Method::POST, "/auth/login")
            .header("dpop", proof)
            .json(&json!({ "username": "bob", "password": "bob-password" }))
    };
    let first = gateway.send(login(None)).await;
    assert_eq!(
        (first.status.as_u16(), &first.json()["error"]),
        (400, &json!("use_dpop_nonce"))
    );
    let nonce = first.header("dpop-nonce").expect("a DPoP-Nonce");
    let second = gateway.send(login(Some(nonce))).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(
        second.header("dpop-nonce").is_some(),
        "a nonce for the next proofs"
    );
    let token = second.json()["access_token"].as_str().expect("token").to_string();

    let without = get_protected(&gateway, &key, &token).await;
    assert_dpop_challenge(&without, "use_dpop_nonce", "a proof without the nonce");
    let nonce = without.header("dpop-nonce").expect("a DPoP-Nonce");
    let proof = key.proof_with("GET", &htu(PROTECTED), Some(&token), |_, claims| {
        claims["nonce"] = json!(nonce)
    });
    let with = gateway
        .send(dpop_request(Method::GET, PROTECTED, &token, &proof))
        .await;
    assert_eq!(with.status, 200, "{}", with.text());
    let forged = key.proof_with("GET", &htu(PROTECTED), Some(&token), |_, claims| {
        claims["nonce"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    });
    let reply = gateway
        .send(dpop_request(Method::GET, PROTECTED, &token, &forged))
        .await;
    assert_dpop_challenge(&reply, "use_dpop_nonce", "a nonce the gateway never issued");
}

/// SPEC 14: replay state is per replica. A proof is accepted once by each replica within
/// its window (what this test pins down, and the README documents), never twice by one,
/// and by none once the window is over.
#[tokio::test]
async fn a_proof_is_used_once_per_replica_and_only_within_its_window() {
    let keys = tempfile::tempdir().expect("temp dir");
    let pem = keys.path().join("k1.pem");
    portcullis::auth::keys::generate(portcullis::config::KeyAlgorithm::Es256, &pem).expect("key");
    let tokens = format!(
        "[tokens]\nleeway = \"1s\"\n[[tokens.keys]]\nkid = \"k1\"\nalg = \"ES256\"\nprivate_key_file = {pem:?}\n"
    );
    let replica = || support::api_gateway(&tokens, "[dpop]\nmax_age = \"1s\"\n");
    let ((a, _echo_a), (b, _echo_b)) = (replica().await, replica().await);
    let key = DpopKey::es256();
    let token = a.dpop_pair(&key, "bob").await.access;
    let proof = key.proof("GET", &htu(PROTECTED), Some(&token));
    let send = async |client: &Client| {
        client
            .send(dpop_request(Method::GET, PROTECTED, &token, &proof))
            .await
    };
    assert_eq!(send(&a).await.status, 200);
    assert_dpop_challenge(
        &send(&a).await,
        "invalid_dpop_proof",
        "replayed to the same replica",
    );
    assert_eq!(send(&b).await.status, 200, "another replica has not seen it");
    assert_dpop_challenge(
        &send(&b).await,
        "invalid_dpop_proof",
        "replayed to the second replica",
    );
    // max_age 1 s plus 1 s leeway: 3 s later the proof is stale everywhere, even on a
    // replica that never saw it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (c, _echo_c) = replica().await;
    assert_dpop_challenge(
        &send(&c).await,
        "invalid_dpop_proof",
        "a stale proof on a fresh replica",
    );
    assert_eq!(failures(&c, "dpop_stale").await, 1);
}

#[test]
fn check_refuses_dpop_settings_that_cannot_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rest, key, message) in [
        (
            "[dpop]\nmax_age = \"0s\"\n",
            "max_age",
            "duration \"0s\" must be greater than zero",
        ),
        (
            "[dpop]\nmax_age = \"2h\"\n",
            "max_age",
            "max_age must be between 1s and 1h",
        ),
        (
            "[[routes]]\nname = \"k\"\npath = \"/k/\"\nupstream = \"http://127.0.0.1:9\"\naccept = [\"api_key\"]\nrequire_dpop = true\n",
            "require_dpop",
            "require_dpop = true refuses API keys",
        ),
    ] {
        let (text, stderr) = refused_by_check(dir.path(), rest);
        // Reported where the value is.
        let key_at = position(&text, &format!("\n{key} = "));
        let (line, _) = key_at.split_once(':').expect("line:col");
        let at = format!("{}:{}", line.parse::<usize>().expect("line") + 1, key.len() + 4);
        assert!(stderr.contains(&format!("{at}: {message}")), "{rest}\n{stderr}");
    }
}

#[tokio::test]
async fn a_step_up_of_a_bound_session_needs_the_key_and_keeps_the_binding() {
    let (gateway, _echo) = api_gateway("").await;
    let key = DpopKey::es256();
    let pair = gateway.dpop_pair(&key, "bob").await;
    let step_up = |proof: Option<String>| {
        let authorization = format!("DPoP {}", pair.access);
        let mut headers = vec![("authorization", authorization)];
        headers.extend(proof.map(|proof| ("dpop", proof)));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request(Method::POST, "/auth/step-up")
            .headers(&headers)
            .json(&json!({ "password": "bob-password" }))
    };
    let without = gateway.send(step_up(None)).await;
    assert_dpop_challenge(&without, "invalid_dpop_proof", "a step-up without the proof");
    let proof = key.proof("POST", &htu("/auth/step-up"), Some(&pair.access));
    let stepped = gateway.send(step_up(Some(proof))).await;
    assert_eq!(stepped.status, 200, "{}", stepped.text());
    assert_eq!(stepped.json()["token_type"], "DPoP");
    let access = stepped.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(bound_key(&access), Some(key.thumbprint()));
    assert_eq!(get_protected(&gateway, &key, &access).await.status, 200);
}
