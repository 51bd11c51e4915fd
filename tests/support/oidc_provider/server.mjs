// oidc-provider (v9) as a real third-party OAuth 2.0 / OpenID Connect authorization server for
// mailgate's test suite. Test-only: dev signing keys, dev interactions (any login/password), an
// in-memory store. Started by tests/support/oidc.py; usable by hand too:
//
//   node server.mjs [--port N] [--config FILE]
//
// PORT (default 0 = pick a free port) comes from --port, the first bare argument, or $PORT.
// Once listening it prints exactly one line to stdout:
//
//   listening on http://127.0.0.1:PORT
//
// and nothing else goes to stdout (warnings and logs go to stderr). The issuer is that URL.
//
// Configuration: a JSON file (--config FILE or $OIDC_PROVIDER_CONFIG) with these optional keys:
//   clients                       oidc-provider client metadata objects (see oidc.py for the defaults)
//   resource                      the default resource indicator (RFC 8707) tokens are issued for
//   resourceScope                 space-separated scopes that resource accepts (default "mail")
//   useGrantedResource            true: access tokens from codes / refresh tokens are bound to the
//                                 granted resource (opaque, audience = resource) even with openid
//   accessTokenTtl                seconds (also $ACCESS_TOKEN_TTL, which wins)
//   refreshTokenTtl               seconds (also $REFRESH_TOKEN_TTL)
//   rotateRefreshToken            true/false (also $ROTATE_REFRESH_TOKEN = 1/0/true/false)
//   clientCredentialsUsernames    { client_id: username } for client-credentials tokens
//   introspectRefreshTokens       false (default): refresh tokens introspect as inactive for any
//                                 client other than the one they were issued to
//   strictClientAuthMethods       true (default): a client registered with client_secret_basic that
//                                 sends its secret in the form (or a client_secret_post client that
//                                 uses HTTP Basic) gets 401 invalid_client. oidc-provider itself
//                                 accepts either of the two methods for both.
//
// The process exits when its stdin closes (so a crashed test run leaves no server behind) or on
// SIGTERM / SIGINT.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// stdout carries exactly one line (the "listening on" line); oidc-provider prints its NOTICEs with
// console.info, so send console.log/info to stderr with everything else.
console.log = console.error;
console.info = console.error;

const { values: args, positionals } = parseArgs({
  options: {
    port: { type: 'string' },
    config: { type: 'string' },
  },
  allowPositionals: true,
});

const log = (...parts) => console.error('[oidc-provider]', ...parts);

function envBool(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new Error(`${name} must be a boolean (1/0/true/false), got ${JSON.stringify(raw)}`);
}

function envInt(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
  }
  return value;
}

const configPath = args.config ?? process.env.OIDC_PROVIDER_CONFIG;
const fileConfig = configPath ? JSON.parse(readFileSync(configPath, 'utf8')) : {};

const settings = {
  clients: fileConfig.clients ?? [],
  resource: fileConfig.resource ?? 'urn:mailgate:test:mail',
  resourceScope: fileConfig.resourceScope ?? 'mail',
  useGrantedResource: fileConfig.useGrantedResource ?? true,
  accessTokenTtl: envInt('ACCESS_TOKEN_TTL') ?? fileConfig.accessTokenTtl ?? 3600,
  refreshTokenTtl: envInt('REFRESH_TOKEN_TTL') ?? fileConfig.refreshTokenTtl ?? 14 * 24 * 3600,
  rotateRefreshToken: envBool('ROTATE_REFRESH_TOKEN') ?? fileConfig.rotateRefreshToken ?? true,
  clientCredentialsUsernames: fileConfig.clientCredentialsUsernames ?? {},
  introspectRefreshTokens: fileConfig.introspectRefreshTokens ?? false,
  strictClientAuthMethods: fileConfig.strictClientAuthMethods ?? true,
};
const registeredAuthMethod = new Map(
  settings.clients.map((c) => [c.client_id, c.token_endpoint_auth_method ?? 'client_secret_basic']),
);

const portArg = args.port ?? positionals[0] ?? process.env.PORT ?? '0';
const port = Number(portArg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  throw new Error(`invalid port ${JSON.stringify(portArg)}`);
}

// Accounts: whatever login is typed on the dev login form becomes the account id; sub and email
// are that login.
function account(id) {
  return {
    accountId: id,
    async claims(/* use, scope, claims, rejected */) {
      return {
        sub: id,
        email: id,
        email_verified: true,
        name: id,
        preferred_username: id,
      };
    },
  };
}

const configuration = {
  clients: settings.clients,
  findAccount: async (ctx, id) => account(id),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  scopes: ['openid', 'email', 'profile', 'offline_access', 'mail'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  pkce: {
    // Every authorization code request must carry an S256 code_challenge (v9 supports S256 only).
    required: () => true,
  },
  features: {
    devInteractions: { enabled: true },
    introspection: {
      enabled: true,
      // Refresh tokens are active at introspection by default; a resource server (Dovecot) must
      // never accept one as a login credential, so only the client a refresh token was issued to
      // may introspect it. Public clients may only introspect their own tokens (library default).
      async allowedPolicy(ctx, client, token) {
        if (client.clientAuthMethod === 'none' && token.clientId !== client.clientId) {
          return false;
        }
        if (
          token.kind === 'RefreshToken'
          && !settings.introspectRefreshTokens
          && token.clientId !== client.clientId
        ) {
          return false;
        }
        return true;
      },
    },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Requests that name no resource get the mail resource, so every access token is an opaque
      // token for it (introspectable, with `username`).
      defaultResource: async () => settings.resource,
      useGrantedResource: async () => settings.useGrantedResource,
      async getResourceServerInfo(ctx, resourceIndicator /* , client */) {
        if (resourceIndicator !== settings.resource) {
          throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
        }
        return {
          scope: settings.resourceScope,
          audience: settings.resource,
          accessTokenFormat: 'opaque',
          accessTokenTTL: settings.accessTokenTtl,
        };
      },
    },
  },
  // Added to every access token (also client-credentials tokens) and returned by introspection.
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'ClientCredentials') {
      const username = settings.clientCredentialsUsernames[token.clientId];
      return username ? { username } : undefined;
    }
    if (token.accountId) {
      const claims = await account(token.accountId).claims('userinfo', 'email');
      return { username: claims.email };
    }
    return undefined;
  },
  rotateRefreshToken: () => settings.rotateRefreshToken,
  ttl: {
    AccessToken: () => settings.accessTokenTtl,
    ClientCredentials: () => settings.accessTokenTtl,
    RefreshToken: () => settings.refreshTokenTtl,
    AuthorizationCode: 60,
    DeviceCode: 10 * 60,
    IdToken: 60 * 60,
    Interaction: 60 * 60,
    Session: 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
  },
  // Quiet, stable cookie signing keys for a throwaway test server.
  cookies: { keys: ['mailgate-test-cookie-key'] },
};

// Endpoints where clients authenticate with their secret.
const clientAuthPaths = new Set([
  '/token', '/token/introspection', '/token/revocation', '/device/auth', '/request',
]);
const BODY_LIMIT = 56 * 1024;

async function readRawBody(req) {
  const chunks = [];
  let received = 0;
  for await (const chunk of req) {
    received += chunk.length;
    if (received > BODY_LIMIT) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, received);
}

function basicClientId(header) {
  const [scheme, value] = (header ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i === -1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

// Pre-middleware: refuse a confidential client that authenticates with the other of the two
// secret methods than the one it is registered with. The body is read here and handed on as
// req.body, which oidc-provider then uses instead of the stream.
async function strictClientAuthMethods(ctx, next) {
  if (
    ctx.method !== 'POST'
    || !clientAuthPaths.has(ctx.path)
    || !ctx.is('application/x-www-form-urlencoded')
    || !ctx.req.readable
  ) {
    return next();
  }
  const raw = await readRawBody(ctx.req);
  ctx.req.body = raw.toString('utf8');
  const form = new URLSearchParams(ctx.req.body);
  const basicId = basicClientId(ctx.headers.authorization);
  const postSecret = form.get('client_secret');
  // Both at once is oidc-provider's own "only one mechanism" error; leave that to it.
  if (!(basicId && postSecret)) {
    const clientId = basicId ?? form.get('client_id');
    const registered = registeredAuthMethod.get(clientId);
    let used;
    if (basicId) used = 'client_secret_basic';
    else if (postSecret) used = 'client_secret_post';
    if (
      used && registered && registered !== used
      && ['client_secret_basic', 'client_secret_post'].includes(registered)
    ) {
      log('refused', ctx.path, `client ${clientId} used ${used}, registered ${registered}`);
      ctx.status = 401;
      if (registered === 'client_secret_basic') {
        ctx.set('WWW-Authenticate', `Basic realm="${ctx.host}"`);
      }
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        error: 'invalid_client',
        error_description: `client authentication failed (the client is registered for ${registered}, the request used ${used})`,
      };
      return undefined;
    }
  }
  return next();
}

let handler = null;
const server = http.createServer((req, res) => {
  if (handler) {
    handler(req, res);
  } else {
    res.statusCode = 503;
    res.end('starting');
  }
});

server.listen(port, '127.0.0.1', () => {
  const { port: actualPort } = server.address();
  const issuer = `http://127.0.0.1:${actualPort}`;
  const provider = new Provider(issuer, configuration);

  for (const event of [
    'server_error', 'authorization.error', 'grant.error', 'introspection.error',
    'revocation.error', 'userinfo.error', 'discovery.error', 'end_session.error',
    'backchannel.error', 'registration_create.error', 'code_verification.error',
  ]) {
    provider.on(event, (...eventArgs) => {
      const err = eventArgs.find((a) => a instanceof Error);
      log(event, err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}` : '');
    });
  }
  if (settings.strictClientAuthMethods) {
    provider.use(strictClientAuthMethods);
  }
  if (process.env.OIDC_PROVIDER_DEBUG) {
    provider.use(async (ctx, next) => {
      await next();
      log(ctx.method, ctx.path, ctx.status);
    });
  }

  handler = provider.callback();
  process.stdout.write(`listening on ${issuer}\n`);
});

function shutdown(code = 0) {
  server.close(() => process.exit(code));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(code), 1000).unref();
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
// The parent test process holds our stdin open; when it goes away (even killed), we go too.
if (!process.stdin.isTTY) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}
