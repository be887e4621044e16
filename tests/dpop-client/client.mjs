// A DPoP client written with panva's `dpop` package (RFC 9449), not by Portcullis's authors:
// it logs in, calls a protected route, refreshes and calls the route again, each request with a
// fresh proof, and answers a nonce challenge the way RFC 9449 section 8 tells a client to
// (retry once with the nonce from `DPoP-Nonce`). It prints one JSON summary on stdout.
//
//   node client.mjs <gateway origin> <username> <password> <protected path> [alg]
//
// alg is the proof key's JWS algorithm as `dpop` names it (ES256, Ed25519, RS256, PS256),
// ES256 if not given.
//
// The gateway's certificate is trusted through NODE_EXTRA_CA_CERTS.
import { calculateThumbprint, generateKeyPair, generateProof } from 'dpop';

const [origin, username, password, path, alg = 'ES256'] = process.argv.slice(2);
const keypair = await generateKeyPair(alg);
const summary = { jkt: await calculateThumbprint(keypair.publicKey), steps: [] };
// The latest nonce the server gave; RFC 9449 lets any answer carry a new one.
let nonce;

// One request with a proof for it; a nonce challenge is answered by one retry.
async function send(step, method, target, { json, accessToken } = {}) {
  const url = new URL(target, origin);
  const htu = url.origin + url.pathname;
  for (let attempt = 1; ; attempt++) {
    const headers = { dpop: await generateProof(keypair, htu, method, nonce, accessToken) };
    if (accessToken) headers.authorization = `DPoP ${accessToken}`;
    if (json) headers['content-type'] = 'application/json';
    const response = await fetch(url, {
      method,
      headers,
      body: json && JSON.stringify(json),
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const challenge = response.headers.get('www-authenticate');
    const fresh = response.headers.get('dpop-nonce');
    summary.steps.push({ step, attempt, status: response.status, body, www_authenticate: challenge, dpop_nonce: fresh });
    if (fresh) nonce = fresh;
    const askedForNonce =
      (response.status === 400 && body?.error === 'use_dpop_nonce') ||
      (response.status === 401 && /error="use_dpop_nonce"/.test(challenge ?? ''));
    if (!askedForNonce || !fresh || attempt === 2) return { status: response.status, body };
  }
}

// Prints what happened so far and ends; a step that went wrong ends the flow there.
function done(error) {
  if (error) summary.error = error;
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(0);
}

const login = await send('login', 'POST', '/auth/login', { json: { username, password } });
if (login.status !== 200) done('login failed');
if (login.body.token_type !== 'DPoP') done(`login token_type ${login.body.token_type}`);
summary.access_token = login.body.access_token;
await send('call', 'GET', path, { accessToken: login.body.access_token });

const refresh = await send('refresh', 'POST', '/auth/refresh', { json: { refresh_token: login.body.refresh_token } });
if (refresh.status !== 200) done('refresh failed');
if (refresh.body.token_type !== 'DPoP') done(`refresh token_type ${refresh.body.token_type}`);
summary.refreshed_access_token = refresh.body.access_token;
await send('call after refresh', 'GET', path, { accessToken: refresh.body.access_token });
done();
