// A real OpenID provider (oidc-provider 9) for the end-to-end tests and the
// local demo. Loopback only, plain HTTP, in-memory storage.
//
//   node tests/idp/server.mjs CONFIG.json      (or IDP_CONFIG=CONFIG.json)
//
// IDP_PORT in the environment overrides the file's port (`make idp-run`).
//
// Prints "ready <issuer>" on stdout once it accepts connections and exits 0
// on SIGTERM/SIGINT. Every config field is optional (see DEFAULTS below):
//
//   port                 listening port on 127.0.0.1 (0: any free one)
//   host                 host name in the issuer (127.0.0.1, or localhost to
//                        keep the IdP's cookies apart from an app on 127.0.0.1)
//   clients              oidc-provider client metadata; every field is passed
//                        through, the defaults below fill in what is missing
//   ttl                  seconds, by oidc-provider artifact name: AccessToken,
//                        IdToken, RefreshToken, Session, Grant,
//                        AuthorizationCode, Interaction
//   auto_consent         true: no consent screen (a grant covering the
//                        requested scopes is made on the fly); false: the dev
//                        consent form is shown once per session and client
//   refresh_token_requires_offline_access
//                        false (default): every code grant of a client
//                        allowed the refresh_token grant gets a refresh token;
//                        true: only with scope offline_access and prompt=consent
//   rotate_refresh_token false (default: never; the refresh response repeats
//                        the same refresh token), true (a new one on every
//                        use; reusing an old one revokes the whole grant), or
//                        "default" (oidc-provider's policy: rotate once 70% of
//                        its lifetime has passed: timing-dependent)
//   pkce_required        true (default): S256 PKCE on every authorization
//   conform_id_token_claims
//                        false (default): every claim of the granted scopes
//                        goes into the ID token too, not only into userinfo
//   extra_id_token_claims {count, size}: claims x_extra_00.. of `size`
//                        random characters each, in the ID token (scope openid)
//   users                {username: {claim: value}} overrides per user
//   default_groups       groups of every user without an override
//   jwks                 {"keys": [private JWKs]}; default: a fresh RS256 and
//                        a fresh ES256 key
//   clock_tolerance      seconds the OP tolerates in what it validates
//   strict_client_auth   true (default): a client must authenticate at the
//                        token, introspection and revocation endpoints with
//                        its registered token_endpoint_auth_method
//                        (oidc-provider itself takes client_secret_basic and
//                        client_secret_post interchangeably)
//   admin                true (default): the /__test/* endpoints below
//   extra_scopes         scopes besides the OIDC ones (e.g. "api:read"), which a
//                        client may ask for with the client_credentials grant
//                        (its tokens are opaque, as every access token here)
//
// Test endpoints (same server, admin: true):
//   POST /__test/rotate  body {} or {"keep_old": false} or {"jwks": {...}}:
//                        new signing keys (a fresh RS256 + ES256 pair unless
//                        given) sign from now on; the old ones stay published
//                        after them unless keep_old is false. Sessions, grants
//                        and tokens survive. Answers the new public JWKS.
//   GET  /__test/events  what the OP did: [{event, client_id, grant_type, ...}]
//   POST /__test/events/clear
//   GET  /__test/assertions  the client_assertion of each token, introspection
//                        or revocation request, oldest first (cleared with the events)
//   GET  /__test/counts  {introspection: n}: introspection requests received
//                        (cleared with the events)
//   POST /__test/introspection_fault  body {"delay_ms": n, "status": s}: delay
//                        every introspection reply, or answer it with status s
//                        (a 5xx) instead; {} ends the fault

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const DEFAULTS = {
  port: 0,
  host: '127.0.0.1',
  clients: [
    {
      client_id: 'test-client',
      client_secret: 'test-client-secret-0123456789abcdef',
      redirect_uris: ['http://127.0.0.1/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1/'],
    },
  ],
  ttl: {
    AccessToken: 300,
    IdToken: 300,
    RefreshToken: 3600,
    Session: 3600,
    Grant: 3600,
    AuthorizationCode: 60,
    Interaction: 600,
  },
  auto_consent: true,
  refresh_token_requires_offline_access: false,
  rotate_refresh_token: false,
  pkce_required: true,
  conform_id_token_claims: false,
  extra_id_token_claims: { count: 0, size: 0 },
  users: {},
  default_groups: ['users'],
  jwks: null,
  clock_tolerance: 0,
  strict_client_auth: true,
  admin: true,
  extra_scopes: [],
};

const CLIENT_DEFAULTS = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
};

const MAX_EVENTS = 1000;

function log(...args) {
  process.stderr.write(`[idp] ${args.join(' ')}\n`);
}

function loadConfig() {
  const path = process.argv[2] || process.env.IDP_CONFIG;
  const given = path ? JSON.parse(fs.readFileSync(path, 'utf8')) : {};
  const config = { ...DEFAULTS, ...given };
  // `make idp-run IDP_PORT=...`: another port for the same file.
  if (process.env.IDP_PORT) config.port = Number(process.env.IDP_PORT);
  config.ttl = { ...DEFAULTS.ttl, ...(given.ttl || {}) };
  config.extra_id_token_claims = { ...DEFAULTS.extra_id_token_claims, ...(given.extra_id_token_claims || {}) };
  config.clients = config.clients.map((client) => ({ ...CLIENT_DEFAULTS, ...client }));
  return config;
}

// ----- keys -----
function generateSigningKeys() {
  const stamp = Date.now().toString(36);
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, alg: 'RS256', use: 'sig', kid: `rs256-${stamp}-${crypto.randomBytes(3).toString('hex')}` },
    { ...ec, alg: 'ES256', use: 'sig', kid: `es256-${stamp}-${crypto.randomBytes(3).toString('hex')}` },
  ];
}

function publicJwks(keys) {
  return {
    keys: keys.map((key) => {
      const pub = crypto.createPublicKey({ key, format: 'jwk' }).export({ format: 'jwk' });
      return { ...pub, alg: key.alg, use: key.use || 'sig', kid: key.kid };
    }),
  };
}

// ----- storage -----
// One in-memory store for every provider instance of this process, so that a
// key rotation (which builds a new instance) keeps sessions, grants and tokens.
// oidc-provider's own memory adapter is per instance.
const STORE = new Map(); // key -> { value, expiresAt (ms) }
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
let writes = 0;

function storeGet(key) {
  const entry = STORE.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    STORE.delete(key);
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresAt) {
  STORE.set(key, { value, expiresAt });
  writes += 1;
  if (writes % 500 === 0) {
    const now = Date.now();
    for (const [k, e] of STORE) if (e.expiresAt !== undefined && e.expiresAt <= now) STORE.delete(k);
  }
}

function sharedMemoryAdapter(clockTolerance) {
  return class SharedMemoryAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt = expiresIn ? Date.now() + (expiresIn + clockTolerance) * 1000 : undefined;
      const key = this.key(id);
      storeSet(key, payload, expiresAt);
      if (this.model === 'Session' && payload.uid) storeSet(`sessionUid:${payload.uid}`, id, expiresAt);
      if (payload.userCode) storeSet(`userCode:${payload.userCode}`, id, expiresAt);
      if (GRANTABLE.has(this.model) && payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        storeSet(grantKey, [...(storeGet(grantKey) || []), key]);
      }
    }

    async find(id) {
      return storeGet(this.key(id));
    }

    async findByUid(uid) {
      const id = storeGet(`sessionUid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = storeGet(`userCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const payload = storeGet(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      STORE.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      const grantKey = `grant:${grantId}`;
      for (const key of storeGet(grantKey) || []) STORE.delete(key);
      STORE.delete(grantKey);
    }
  };
}

// ----- accounts -----
function extraClaims(spec) {
  const claims = {};
  for (let i = 0; i < spec.count; i += 1) {
    // Random text: a compressing cookie codec cannot shrink it much.
    claims[`x_extra_${String(i).padStart(2, '0')}`] = crypto.randomBytes(spec.size).toString('base64url').slice(0, spec.size);
  }
  return claims;
}

function accountClaims(config, extra, username) {
  const name = username.charAt(0).toUpperCase() + username.slice(1);
  return {
    sub: username,
    email: `${username}@example.test`,
    email_verified: true,
    name,
    preferred_username: username,
    groups: [...config.default_groups],
    ...extra,
    ...(config.users[username] || {}),
  };
}

// ----- the provider -----
function providerConfiguration(config, state) {
  const extraNames = Object.keys(state.extraClaims);
  const rotate = config.rotate_refresh_token;
  const configuration = {
    adapter: state.adapter,
    clients: config.clients,
    jwks: { keys: state.signingKeys },
    cookies: { keys: state.cookieKeys },
    claims: {
      openid: ['sub', ...extraNames],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', ...config.extra_scopes],
    conformIdTokenClaims: config.conform_id_token_claims,
    clockTolerance: config.clock_tolerance,
    ttl: config.ttl,
    pkce: { required: () => config.pkce_required },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
    },
    findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return accountClaims(config, state.extraClaims, sub);
        },
      };
    },
    async issueRefreshToken(ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) {
        return false;
      }
      return !config.refresh_token_requires_offline_access || code.scopes.has('offline_access');
    },
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!config.auto_consent) {
        return grant;
      }
      // Consent given on the spot for whatever this request asks for.
      grant ||= new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      if (oidc.requestParamClaims.size) {
        grant.addOIDCClaims([...oidc.requestParamClaims]);
      }
      await grant.save();
      return grant;
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>oidc error</title></head>
<body><h1>oops! something went wrong</h1><pre id="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre></body></html>`;
    },
  };
  if (rotate === true || rotate === false) {
    configuration.rotateRefreshToken = rotate;
  }
  return configuration;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// oidc-provider's built-in pages @import a web font from the internet; a test
// browser must not reach out, so that line is cut from every HTML answer.
async function noExternalFonts(ctx, next) {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https?:[^)]*\);?/g, '');
  }
}

// oidc-provider accepts client_secret_basic and client_secret_post whichever
// was registered; a strict IdP catches a relying party using the wrong one.
const CLIENT_AUTH_PATHS = new Set(['/token', '/token/introspection', '/token/revocation']);

function strictClientAuth(config, state) {
  const registered = new Map(config.clients.map((c) => [c.client_id, c.token_endpoint_auth_method]));
  return async function strictClientAuthMiddleware(ctx, next) {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path) || !ctx.is('application/x-www-form-urlencoded')) {
      return next();
    }
    const raw = await readBody(ctx.req, 56 * 1024);
    ctx.req.body = raw; // oidc-provider parses this instead of the consumed stream
    const form = querystring.parse(raw);
    if (typeof form.client_assertion === 'string') state.assertions.push(form.client_assertion);
    const authorization = ctx.get('authorization');
    let used;
    let clientId = typeof form.client_id === 'string' ? form.client_id : undefined;
    if (/^basic /i.test(authorization)) {
      used = 'client_secret_basic';
      const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      try {
        clientId = decodeURIComponent(decoded.split(':', 1)[0].replace(/\+/g, ' '));
      } catch {
        clientId = undefined;
      }
    } else if (form.client_secret !== undefined) {
      used = 'client_secret_post';
    }
    const expected = registered.get(clientId);
    if (used && expected && expected !== used) {
      const description = `client ${clientId} is registered for ${expected}, not ${used}`;
      state.events.push({
        event: 'grant.error', time: Date.now() / 1000, client_id: clientId, grant_type: form.grant_type,
        error: 'invalid_client', error_description: description,
      });
      ctx.status = 401;
      if (used === 'client_secret_basic') ctx.set('www-authenticate', `Basic realm="${state.issuer}"`);
      ctx.body = { error: 'invalid_client', error_description: description };
      return undefined;
    }
    return next();
  };
}

const RECORDED_EVENTS = [
  'authorization.success',
  'authorization.error',
  'grant.success',
  'grant.error',
  'grant.revoked',
  'end_session.success',
  'end_session.error',
  'interaction.ended',
  'server_error',
  'userinfo.error',
];

function buildProvider(config, state) {
  const provider = new Provider(state.issuer, providerConfiguration(config, state));
  provider.use(noExternalFonts);
  if (config.strict_client_auth) {
    provider.use(strictClientAuth(config, state));
  }
  for (const name of RECORDED_EVENTS) {
    provider.on(name, (ctx, err) => {
      const event = {
        event: name,
        time: Date.now() / 1000,
        client_id: ctx?.oidc?.client?.clientId,
        grant_type: ctx?.oidc?.params?.grant_type,
      };
      if (err && name.endsWith('error')) {
        event.error = err.error || err.message;
        event.error_description = err.error_description;
      }
      if (name === 'server_error') {
        log('server_error', err?.stack || err);
      }
      state.events.push(event);
      if (state.events.length > MAX_EVENTS) state.events.shift();
    });
  }
  return provider;
}

// ----- the HTTP server -----
function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handleAdmin(req, res, config, state) {
  const path = new URL(req.url, state.issuer).pathname;
  if (req.method === 'POST' && path === '/__test/rotate') {
    const text = await readBody(req);
    const body = text ? JSON.parse(text) : {};
    const fresh = body.jwks ? body.jwks.keys : generateSigningKeys();
    const keepOld = body.keep_old !== false;
    state.signingKeys = keepOld ? [...fresh, ...state.signingKeys] : fresh;
    state.provider = buildProvider(config, state);
    state.handler = state.provider.callback();
    log('rotated keys, now', state.signingKeys.map((k) => k.kid).join(','));
    return sendJson(res, 200, publicJwks(state.signingKeys));
  }
  if (req.method === 'GET' && path === '/__test/events') {
    return sendJson(res, 200, state.events);
  }
  if (req.method === 'GET' && path === '/__test/assertions') {
    return sendJson(res, 200, state.assertions);
  }
  if (req.method === 'GET' && path === '/__test/counts') {
    return sendJson(res, 200, state.counts);
  }
  if (req.method === 'POST' && path === '/__test/introspection_fault') {
    const text = await readBody(req);
    state.introspectionFault = text ? JSON.parse(text) : {};
    return sendJson(res, 200, state.introspectionFault);
  }
  if (req.method === 'POST' && path === '/__test/events/clear') {
    state.events.length = 0;
    state.assertions.length = 0;
    state.counts.introspection = 0;
    return sendJson(res, 200, {});
  }
  return sendJson(res, 404, { error: 'no such test endpoint' });
}

async function main() {
  const config = loadConfig();
  const state = {
    issuer: null,
    signingKeys: config.jwks ? config.jwks.keys : generateSigningKeys(),
    // Shared by every provider instance, so a key rotation keeps sessions.
    cookieKeys: [crypto.randomBytes(32).toString('base64url')],
    extraClaims: extraClaims(config.extra_id_token_claims),
    adapter: sharedMemoryAdapter(config.clock_tolerance),
    events: [],
    assertions: [],
    counts: { introspection: 0 },
    introspectionFault: {},
    provider: null,
    handler: null,
  };

  const server = http.createServer((req, res) => {
    if (config.admin && req.url.startsWith('/__test/')) {
      handleAdmin(req, res, config, state).catch((err) => {
        log('admin error', err.stack || err);
        if (!res.headersSent) sendJson(res, 500, { error: String(err.message || err) });
      });
      return;
    }
    if (req.method === 'POST' && req.url.split('?')[0] === '/token/introspection') {
      state.counts.introspection += 1;
      const fault = state.introspectionFault;
      if (fault.status) {
        sendJson(res, fault.status, { error: 'server_error' });
        return;
      }
      if (fault.delay_ms) {
        setTimeout(() => state.handler(req, res), fault.delay_ms);
        return;
      }
    }
    state.handler(req, res);
  });
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  state.issuer = `http://${config.host}:${port}`;
  state.provider = buildProvider(config, state);
  state.handler = state.provider.callback();

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  process.stdout.write(`ready ${state.issuer}\n`);
}

main().catch((err) => {
  log('failed to start:', err.stack || err);
  process.exit(1);
});
