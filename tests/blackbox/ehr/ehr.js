'use strict';
// A real test EHR for the SMART black-box tests, built on npm `oidc-provider` (a certified
// OpenID provider). CommonJS (oidc-provider is ESM: loaded with import()), node >= 18.19.
// oidc-provider is pinned at 8.8.1: 9.x calls URL.parse and crypto.hash, which node 18.19
// lacks (9.13.3 works on node 20 only).
//
// It offers, on one loopback port:
//   GET  /fhir/.well-known/smart-configuration   SMART discovery
//   GET  /auth, POST /token, POST /introspect, POST /token/revocation, GET /jwks  (oidc-provider)
//   GET  /interaction/:uid?login=PATIENT_ID       test login: logs in as that patient and consents
//   GET  /fhir/Patient/:id                        Patients with an MR identifier (needs a valid token)
//   POST /_test/tokens {patient, scope, expiresIn, sub?}  mints an app access token (test only)
//   POST /_test/revoke {token}                    revokes a token (test only)
//   POST /_test/delay {ms}                        delays every answer (to play a slow EHR)
//   GET  /_test/stats                             counts of token, introspection and Patient calls
//   ehr.backendToken({client_id, priv, alg, scope}) a real SMART Backend Services token: client_credentials
//                                                 with a private_key_jwt assertion, for opts.backendClients
//
// Pitfalls handled (see shared/PEERS.md): introspection takes client authentication, not a
// Bearer token, so a shim turns the facade's valid client_credentials Bearer token into the
// introspector client's authentication; ES384/RS384 are enabled for client assertions; every
// SMART scope is listed (unlisted scopes are dropped silently); `patient` is added to the token
// response and the token; access tokens stay opaque.

const http = require('node:http');
const crypto = require('node:crypto');

const FACADE_SCOPES = ['system/Patient.read', 'system/Patient.rs'];
const APP_SCOPES = [
  'launch/patient', 'patient/ImagingStudy.read', 'patient/ImagingStudy.rs', 'patient/ImagingStudy.r',
  'patient/ImagingStudy.s', 'patient/*.read', 'patient/*.rs', 'patient/*.*', 'patient/Patient.read',
  'patient/Observation.rs', 'patient/DiagnosticReport.read', 'user/ImagingStudy.read', 'system/ImagingStudy.rs',
  'patient/ImagingStudy.rs?category=x', 'fhirUser',
];
// SMART Backend Services clients (opts.backendClients) may ask for these; system tokens carry no patient.
const BACKEND_SCOPES = ['system/ImagingStudy.rs', 'system/ImagingStudy.read', 'system/Observation.rs'];
const APP_REDIRECT = 'http://127.0.0.1:9/callback';
const INTROSPECTOR = { client_id: 'ehr-introspector', client_secret: crypto.randomBytes(24).toString('hex') };

const MR_CODING = { system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical Record Number' };

function patientResource(id, mrn, extra = []) {
  return {
    resourceType: 'Patient',
    id,
    identifier: [
      { system: 'urn:oid:2.16.840.1.113883.4.1', value: `ssn-${id}` },
      { type: { coding: [MR_CODING], text: 'Medical Record Number' }, system: 'http://hospital.smarthealthit.org', value: mrn },
      ...extra,
    ],
    name: [{ family: `Family-${id}`, given: ['Test'] }],
  };
}

// startEhr({facadeClients: [{client_id, jwk (public), alg}], patients: {id: resource}}) -> ehr
async function startEhr(opts = {}) {
  const { default: Provider } = await import('oidc-provider');
  const server = http.createServer();
  await new Promise((resolve) => server.listen(opts.port || 0, '127.0.0.1', resolve));
  try {
    return await setUp(Provider, server, opts);
  } catch (e) {
    server.close();
    throw e;
  }
}

async function setUp(Provider, server, opts) {
  const port = server.address().port;
  const issuer = `http://127.0.0.1:${port}`;
  const fhirBase = `${issuer}/fhir`;
  const patients = new Map(Object.entries(opts.patients || {}));
  const stats = { token: 0, introspect: 0, patient: 0, discovery: 0 };
  let delayMs = 0;
  const facadeIds = new Set((opts.facadeClients || []).map((c) => c.client_id));

  const clients = [
    ...(opts.facadeClients || []).map((c) => ({
      client_id: c.client_id,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: c.alg,
      jwks: { keys: [c.jwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: FACADE_SCOPES.join(' '),
    })),
    ...(opts.backendClients || []).map((c) => ({
      client_id: c.client_id,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: c.alg,
      jwks: { keys: [c.jwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: BACKEND_SCOPES.join(' '),
    })),
    {
      client_id: 'viewer-app',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [APP_REDIRECT],
      scope: ['openid', ...APP_SCOPES].join(' '),
    },
    {
      client_id: INTROSPECTOR.client_id,
      client_secret: INTROSPECTOR.client_secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ];

  const provider = new Provider(issuer, {
    clients,
    scopes: ['openid', ...new Set([...FACADE_SCOPES, ...APP_SCOPES, ...BACKEND_SCOPES])],
    claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
    conformIdTokenClaims: false,
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES384', 'RS384', 'ES256', 'RS256', 'PS384'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Only the shim's introspector (standing in for a facade's Bearer token) may introspect.
        allowedPolicy: async (ctx, client) => client.clientId === INTROSPECTOR.client_id,
      },
      revocation: { enabled: true },
    },
    routes: { introspection: '/introspect' },
    pkce: { required: () => true },
    ttl: {
      AccessToken: 3600,
      ClientCredentials: (ctx, token) => opts.facadeTokenTtl || 600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      IdToken: 3600,
    },
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, fhirUser: `${fhirBase}/Patient/${id}` }),
    }),
    extraTokenClaims: async (ctx, token) => {
      if (token.kind === 'AccessToken' && token.accountId && patients.has(token.accountId)) {
        return { patient: token.accountId };
      }
      return undefined;
    },
    // SMART's aud (the FHIR base the app means to use) is ignored unless validated here.
    extraParams: ['aud'],
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    jwks: opts.providerJwks,
  });
  provider.on('server_error', (ctx, err) => { process.stderr.write(`ehr server_error: ${err.stack}\n`); });
  const callback = provider.callback();

  function send(res, status, body, type = 'application/json') {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  }
  function readBody(req) {
    return new Promise((resolve, reject) => {
      let b = '';
      req.setEncoding('utf8');
      req.on('data', (d) => { b += d; });
      req.on('end', () => resolve(b));
      req.on('error', reject);
    });
  }
  async function validAccessToken(value) {
    if (!value) return null;
    const t = (await provider.ClientCredentials.find(value)) || (await provider.AccessToken.find(value));
    return t && t.isValid ? t : null;
  }

  async function mint({ patient, scope, expiresIn = 300, sub, clientId = 'viewer-app' }) {
    const accountId = sub || patient || 'no-patient-user';
    const grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope('openid');
    await grant.save(Math.max(expiresIn, 60) + 60);
    const at = new provider.AccessToken({
      accountId, clientId, grantId: grant.jti, scope, expiresIn, gty: 'authorization_code',
    });
    if (patient) at.extra = { patient };
    return at.save();
  }

  async function handle(req, res) {
    const url = new URL(req.url, issuer);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    if (url.pathname === '/fhir/.well-known/smart-configuration' && req.method === 'GET') {
      stats.discovery++;
      return send(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        introspection_endpoint: `${issuer}/introspect`,
        revocation_endpoint: `${issuer}/token/revocation`,
        jwks_uri: `${issuer}/jwks`,
        grant_types_supported: ['authorization_code', 'client_credentials'],
        token_endpoint_auth_methods_supported: ['private_key_jwt', 'none', 'client_secret_basic'],
        token_endpoint_auth_signing_alg_values_supported: ['ES384', 'RS384'],
        scopes_supported: ['openid', 'fhirUser', ...APP_SCOPES, ...FACADE_SCOPES],
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
        capabilities: ['launch-standalone', 'client-public', 'context-standalone-patient', 'permission-v1', 'permission-v2'],
      });
    }
    if (url.pathname.startsWith('/fhir/Patient/') && req.method === 'GET') {
      stats.patient++;
      const auth = /^Bearer (.+)$/i.exec(req.headers.authorization || '');
      const token = await validAccessToken(auth && auth[1]);
      if (!token) return send(res, 401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] }, 'application/fhir+json');
      const id = decodeURIComponent(url.pathname.slice('/fhir/Patient/'.length));
      const p = patients.get(id);
      if (!p) return send(res, 404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }, 'application/fhir+json');
      return send(res, 200, typeof p === 'function' ? p() : p, 'application/fhir+json');
    }
    if (url.pathname === '/introspect' && req.method === 'POST') {
      stats.introspect++;
      // The shim: a facade's own valid client_credentials token stands for client authentication.
      const auth = /^Bearer (.+)$/i.exec(req.headers.authorization || '');
      if (auth) {
        const caller = await validAccessToken(auth[1]);
        if (!caller || caller.kind !== 'ClientCredentials' || !facadeIds.has(caller.clientId)) {
          res.setHeader('www-authenticate', 'Bearer error="invalid_token"');
          return send(res, 401, { error: 'invalid_token' });
        }
        req.headers.authorization = `Basic ${Buffer.from(`${INTROSPECTOR.client_id}:${INTROSPECTOR.client_secret}`).toString('base64')}`;
      }
      if (opts.introspectionOverride) {
        const o = opts.introspectionOverride();
        if (o !== undefined) return send(res, 200, o);
      }
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      stats.token++;
      // SMART: the launch context (patient) beside the access token in the token response.
      const end = res.end.bind(res);
      res.end = (chunk, ...rest) => {
        try {
          const body = JSON.parse(chunk.toString());
          if (body.access_token && !body.patient) {
            return provider.AccessToken.find(body.access_token).then((at) => {
              if (at && at.extra && at.extra.patient) body.patient = at.extra.patient;
              const text = JSON.stringify(body);
              res.setHeader('content-length', Buffer.byteLength(text));
              end(text, ...rest);
            }, () => end(chunk, ...rest));
          }
        } catch (_) { /* not JSON: as is */ }
        return end(chunk, ...rest);
      };
    }
    if (url.pathname.startsWith('/interaction/') && req.method === 'GET') {
      // Test login: the "user" is the patient named by ?login=, who consents to what was asked.
      const details = await provider.interactionDetails(req, res);
      const login = url.searchParams.get('login');
      if (!login || !patients.has(login)) return send(res, 400, { error: 'unknown login' });
      if (details.params.aud !== fhirBase) return send(res, 400, { error: 'invalid_request', error_description: 'aud must be this EHR\'s FHIR base' });
      const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
      grant.addOIDCScope(String(details.params.scope || 'openid'));
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { login: { accountId: login }, consent: { grantId } },
        { mergeWithLastSubmission: false });
    }
    if (url.pathname === '/_test/tokens' && req.method === 'POST') {
      const body = JSON.parse(await readBody(req) || '{}');
      return send(res, 200, { access_token: await mint(body) });
    }
    if (url.pathname === '/_test/revoke' && req.method === 'POST') {
      const { token } = JSON.parse(await readBody(req) || '{}');
      const t = await provider.AccessToken.find(token);
      if (t) await t.destroy();
      return send(res, 200, { revoked: !!t });
    }
    if (url.pathname === '/_test/delay' && req.method === 'POST') {
      delayMs = JSON.parse(await readBody(req) || '{}').ms || 0;
      return send(res, 200, { delayMs });
    }
    if (url.pathname === '/_test/stats') return send(res, 200, stats);
    if (url.pathname === '/healthz') return send(res, 200, { ok: true });
    return callback(req, res);
  }

  server.on('request', (req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write(`ehr error: ${e.stack}\n`);
      if (!res.headersSent) send(res, 500, { error: 'server_error' });
    });
  });

  const ehr = {
    introspector: INTROSPECTOR,
    port, issuer, fhirBase, provider, patients, stats, appRedirect: APP_REDIRECT,
    mint,
    // A Backend Services access token, obtained the way a real backend client does.
    async backendToken({ client_id, priv, alg, scope }) {
      const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const head = b64({ alg, typ: 'JWT', kid: priv.kid });
      const body = b64({ iss: client_id, sub: client_id, aud: `${issuer}/token`, iat: now, exp: now + 60,
        jti: crypto.randomBytes(12).toString('hex') });
      const key = crypto.createPrivateKey({ key: priv, format: 'jwk' });
      const sig = crypto.sign('sha384', Buffer.from(`${head}.${body}`), alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key);
      const r = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials', scope,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: `${head}.${body}.${sig.toString('base64url')}`,
        }),
      });
      const json = await r.json();
      if (!json.access_token) throw new Error(`backend token refused: HTTP ${r.status} ${JSON.stringify(json)}`);
      return json.access_token;
    },
    async revoke(token) { const t = await provider.AccessToken.find(token); if (t) await t.destroy(); return !!t; },
    setDelay(ms) { delayMs = ms; },
    setIntrospectionOverride(fn) { opts.introspectionOverride = fn; },
    resetStats() { for (const k of Object.keys(stats)) stats[k] = 0; },
    stop() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        if (server.closeAllConnections) server.closeAllConnections();
      });
    },
  };
  return ehr;
}

module.exports = { startEhr, patientResource, APP_SCOPES, FACADE_SCOPES, BACKEND_SCOPES };

// Stand-alone: node ehr/ehr.js [--port N] prints {"issuer": ...} once it listens.
if (require.main === module) {
  const i = process.argv.indexOf('--port');
  startEhr({ port: i > 0 ? Number(process.argv[i + 1]) : 0, patients: { p1: patientResource('p1', 'MRN-10001') } })
    .then((e) => { process.stdout.write(`${JSON.stringify({ issuer: e.issuer, fhirBase: e.fhirBase })}\n`); });
}
