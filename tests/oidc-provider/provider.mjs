// Test OpenID provider for Portcullis (oidc-provider 8.8.1, Node >= 18.12 LTS).
// Usage: node provider.mjs config.json   -> prints "OIDC_PROVIDER_LISTENING <port>" once ready.
// config.json: { cert, key, ca_file?, port?, client_id, client_secret, redirect_uris[],
//   backchannel_logout_uri?, id_token_alg?, token_endpoint_auth_method?, client_auth_methods?,
//   signing_keys?[{pem,kid,alg}], users: { "<login>": { email, email_verified, name, groups[] } },
//   machine_client?: { client_id, client_secret }, resource_audience?, access_token_alg? }
// A machine client gets JWT access tokens (RFC 9068) for the resource urn:portcullis:api, whose
// audience is resource_audience, by the client-credentials grant (client_secret_post).
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const server = https.createServer({ cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) });
await new Promise((ok) => server.listen(cfg.port ?? 0, '127.0.0.1', ok));
const { port } = server.address(); const issuer = `https://127.0.0.1:${port}`;
// Signing keys: PKCS#8 PEMs written by the harness (rcgen), so Rust can also sign "valid" tokens;
// else a fresh RS256 + ES256 pair.
const jwk = (key, kid, alg) => ({ ...key.export({ format: 'jwk' }), kid, alg, use: 'sig' });
const jwks = { keys: cfg.signing_keys
  ? cfg.signing_keys.map((k) => jwk(createPrivateKey(readFileSync(k.pem)), k.kid, k.alg))
  : [jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'rs-1', 'RS256'),
    jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'es-1', 'ES256')] };
const lastSid = new Map(); // accountId -> sid of the latest authorization (for /__test/backchannel)
let lastTokenAuth = 'none'; // GET /__test/last_token_auth: how the gateway authenticated at /token
let jwksFetches = 0; // GET /__test/jwks_fetches: how often the key set was fetched
let nextIdToken; // POST /__test/next_id_token: replaces id_token in the next /token response
const extraCa = cfg.ca_file ? readFileSync(cfg.ca_file) : undefined;

const RESOURCE = 'urn:portcullis:api';
const machineClients = cfg.machine_client ? [{
  client_id: cfg.machine_client.client_id, client_secret: cfg.machine_client.client_secret,
  grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_post',
}] : [];
const provider = new Provider(issuer, {
  clients: [...machineClients, {
    client_id: cfg.client_id, client_secret: cfg.client_secret,
    redirect_uris: cfg.redirect_uris,
    post_logout_redirect_uris: cfg.post_logout_redirect_uris ?? [],
    response_types: ['code'], grant_types: ['authorization_code'],
    token_endpoint_auth_method: cfg.token_endpoint_auth_method ?? 'client_secret_basic',
    id_token_signed_response_alg: cfg.id_token_alg ?? 'RS256',
    require_auth_time: true,          // auth_time always in the id_token (SPEC 10 records it)
    ...(cfg.backchannel_logout_uri ? {
      backchannel_logout_uri: cfg.backchannel_logout_uri,
      backchannel_logout_session_required: true,
    } : {}),
  }],
  jwks,
  // Advertised in discovery; the OP itself accepts basic and post interchangeably.
  clientAuthMethods: cfg.client_auth_methods ?? ['client_secret_basic', 'client_secret_post'],
  cookies: { keys: ['portcullis-test-cookie-key-0123456789'] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: { // SPEC default scopes are openid email profile, so groups rides on profile too
    openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'], groups: ['groups'] },
  conformIdTokenClaims: false,     // scope claims go into the id_token, not only /me
  pkce: { methods: ['S256'], required: () => true },
  features: {
    devInteractions: { enabled: true },   // built-in login + consent pages
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true }, // default; GET/POST /session/end
    clientCredentials: { enabled: true },
    resourceIndicators: { // only the machine client asks for the API; logins stay as they were
      enabled: true,
      defaultResource: (ctx, client) => (client?.grantTypes?.includes('client_credentials') ? RESOURCE : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: 'deploy read', audience: cfg.resource_audience ?? 'portcullis-api', accessTokenTTL: 600,
        accessTokenFormat: 'jwt', jwt: { sign: { alg: cfg.access_token_alg ?? 'RS256' } },
      }),
    },
  },
  // Outgoing back-channel POSTs must trust the gateway's test CA.
  httpOptions: () => (extraCa ? { agent: new https.Agent({ ca: extraCa }) } : {}),
  async findAccount(ctx, id) {
    const u = cfg.users[id];
    return u && { accountId: id, async claims() { return { sub: id, ...u }; } };
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;
provider.on('authorization.success', (ctx) => {
  const s = ctx.oidc.session;
  if (s?.accountId) lastSid.set(s.accountId, s.sidFor(cfg.client_id));
});
provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message));
provider.use(async (ctx, next) => {
  if (ctx.path === '/token') lastTokenAuth = ctx.get('authorization') ? 'basic' : 'post';
  if (ctx.path === '/jwks') jwksFetches += 1;
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && nextIdToken) {
    ctx.body = { ...ctx.body, id_token: nextIdToken };
    nextIdToken = undefined;
  }
});
// Test-only hooks, answered before the provider sees the request.
const oidc = provider.callback();
server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/__test/jwks_fetches') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(String(jwksFetches)); return;
  }
  if (url.pathname === '/__test/last_token_auth') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lastTokenAuth); return;
  }
  if (req.method === 'POST' && url.pathname === '/__test/next_id_token') {
    let body = '';
    for await (const chunk of req) body += chunk;
    nextIdToken = body.trim(); res.writeHead(204).end(); return;
  }
  if (req.method === 'POST' && url.pathname === '/__test/backchannel') { // ?account=alice[&sid=..]
    const account = url.searchParams.get('account');
    const sid = url.searchParams.get('sid') ?? lastSid.get(account);
    try {
      const client = await provider.Client.find(cfg.client_id);
      await client.backchannelLogout(account, sid);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ account, sid }));
    } catch (e) {
      res.writeHead(502).end(String(e.message));
    }
    return;
  }
  oidc(req, res);
});
process.stdin.on('end', () => process.exit(0)).resume(); // harness keeps stdin piped; EOF = stop
console.log(`OIDC_PROVIDER_LISTENING ${port}`);
