'use strict';
// SMART on FHIR authorization against a real OAuth 2 server (ehr/ehr.js on npm oidc-provider):
// discovery, our client_credentials token (ES384 and RS384 private_key_jwt), introspection with
// our token as Bearer, scopes (v1, v2), the Patient read for the MRN, the decision cache, EHR
// profiles, failures, and a real authorization-code + PKCE login.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const h = require('./lib/helpers');
const S = require('./lib/server');
const { startEhr, patientResource } = require('./ehr/ehr');

const P1 = 'p1';  // MRN KSHLERIN_MRN (the sandbox patient's studies)
const P2 = 'p2';  // MRN-10001
const P1_MRN = h.KSHLERIN_MRN;
const P2_MRN = 'MRN-10001';

function keyPair(kind) {
  const { publicKey, privateKey } = kind === 'EC'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alg = kind === 'EC' ? 'ES384' : 'RS384';
  const kid = crypto.randomBytes(8).toString('hex');
  return {
    alg,
    pub: { ...publicKey.export({ format: 'jwk' }), alg, kid },
    priv: { ...privateKey.export({ format: 'jwk' }), alg, kid },
  };
}

function smartTenant(type, ehr, folder, client, extra = {}) {
  return {
    authorization: { type, fhirBaseUrl: ehr.fhirBase, scope: 'system/Patient.read', client, ...extra },
    images: { type: 'folder', path: folder, lookup: 'studies-by-mrn' },
  };
}

const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });

// Follows redirects by hand, carrying cookies, until `stop(url)` is true.
async function browse(startUrl, stop, rewrite = (u) => u) {
  const jar = new Map();
  let url = startUrl;
  for (let i = 0; i < 20; i++) {
    if (stop(url)) return url;
    url = rewrite(url);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    const setCookies = typeof res.headers.getSetCookie === 'function' ? res.headers.getSetCookie()
      : (res.headers.get('set-cookie') || '').split(/,(?=\s*[^;,=\s]+=)/);
    for (const c of setCookies) {
      const m = /^\s*([^=;\s]+)=([^;]*)/.exec(c);
      if (m) jar.set(m[1], m[2]);
    }
    await res.arrayBuffer();
    const loc = res.headers.get('location');
    if (!loc) throw new Error(`login flow stopped at ${url} with HTTP ${res.status}`);
    url = new URL(loc, url).toString();
  }
  throw new Error('too many redirects');
}

describe('SMART on FHIR authorization (real oidc-provider EHR)', { timeout: 120000 }, () => {
  let ehr;
  let fx;
  let srv;
  const ec = keyPair('EC');
  const rsa = keyPair('RSA');
  let deadPort;

  const studiesOfMrn = (mrn) => [...fx.truth.values()].filter((s) => s.patientId === mrn).map((s) => s.studyUid).sort();
  const token = (patient, scope = 'launch/patient patient/ImagingStudy.rs', expiresIn = 300, more = {}) =>
    ehr.mint({ patient, scope, expiresIn, ...more });

  before(async () => {
    ehr = await startEhr({
      facadeClients: [
        { client_id: 'imaging-facade', jwk: ec.pub, alg: 'ES384' },
        { client_id: 'imaging-facade-rsa', jwk: rsa.pub, alg: 'RS384' },
      ],
      patients: {
        [P1]: patientResource(P1, P1_MRN),
        [P2]: patientResource(P2, P2_MRN, [{ type: { text: 'EPIC' }, value: P2_MRN }]),
        broken: { resourceType: 'Observation', id: 'broken' },
      },
    });
    deadPort = await S.freePort();
    const ecClient = { client_id: 'imaging-facade', jwk: ec.pub, jwkPrivate: ec.priv };
    fx = await h.folderFixture({
      name: 'smart',
      seed: 1,
      tenants: (dir) => ({
        smart: smartTenant('smart-on-fhir', ehr, dir, ecClient),
        'smart-nocache': smartTenant('smart-on-fhir', ehr, dir, ecClient, { decisionCacheSeconds: 0 }),
        'smart-short': smartTenant('smart-on-fhir', ehr, dir, ecClient, { decisionCacheSeconds: 1 }),
        'smart-rsa': smartTenant('smart-on-fhir-independent', ehr, dir,
          { client_id: 'imaging-facade-rsa', jwkPrivate: rsa.priv }, { decisionCacheSeconds: 0 }),
        'smart-slow': smartTenant('smart-on-fhir', ehr, dir, ecClient, { timeoutSeconds: 0.5, decisionCacheSeconds: 0 }),
        'smart-down': { ...smartTenant('smart-on-fhir', ehr, dir, ecClient, { timeoutSeconds: 1 }),
          authorization: { type: 'smart-on-fhir', fhirBaseUrl: `http://127.0.0.1:${deadPort}/fhir`, scope: 'system/Patient.read', client: ecClient, timeoutSeconds: 1 } },
        epic: smartTenant('smart-on-fhir-with-epic-bugfixes', ehr, dir, ecClient),
        meditech: {
          authorization: { type: 'smart-on-fhir-with-meditech-bugfixes', fhirBaseUrl: ehr.fhirBase, scope: null,
            client: { client_id: ehr.introspector.client_id, client_secret: ehr.introspector.client_secret } },
          images: { type: 'folder', path: dir, lookup: 'studies-by-mrn', mrn: ["identifier.where(type.text = 'EPIC').value"] },
        },
      }),
    });
    srv = fx.server;
  });
  after(async () => {
    if (fx) await fx.cleanup();
    if (ehr) await ehr.stop();
  });

  it('serves the EHR\'s SMART configuration with the imaging capability', async () => {
    const r = await h.request(h.fhirUrl(srv, 'smart', '.well-known/smart-configuration'));
    h.assertStatus(r, 200);
    assert.equal(r.json.token_endpoint, `${ehr.issuer}/token`);
    assert.equal(r.json.authorization_endpoint, `${ehr.issuer}/auth`);
    assert.ok(r.json.capabilities.includes('smart-imaging-access'));
    assert.ok(r.json.capabilities.includes('http://fhir.org/argonaut/smart-imaging/capabilities/app-launch'));
    assert.ok(r.json.capabilities.includes('permission-v2'), 'the EHR\'s own capabilities stay');
    h.assertStatus(await h.request(h.fhirUrl(srv, 'smart-down', '.well-known/smart-configuration')), 503);
  });

  it('no bearer token: 401 with WWW-Authenticate: Bearer (FHIR and WADO)', async () => {
    const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`);
    h.assertOperationOutcome(r, 401);
    assert.match(r.headers.get('www-authenticate') || '', /^Bearer/);
    const w = await h.request(`${srv.baseUrl}/smart/wado/x/studies/1.2.3`);
    h.assertStatus(w, 401);
    assert.match(w.headers.get('www-authenticate') || '', /^Bearer/);
  });

  it('P1\'s token sees P1\'s studies (by id and by identifier) and gets 403 for P2', async () => {
    const t1 = await token(P1);
    const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(t1));
    h.assertStatus(r, 200);
    const uids = h.studiesOf(r.json).map(h.studyUidOf).sort();
    assert.deepEqual(uids, studiesOfMrn(P1_MRN));
    assert.ok(uids.length > 0);
    for (const s of h.studiesOf(r.json)) assert.equal(s.subject.reference, `${ehr.fhirBase}/Patient/${P1}`);
    const byId = await h.fhirGet(srv, 'smart', `ImagingStudy?patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|${P1_MRN}`)}`, bearer(t1));
    h.assertStatus(byId, 200);
    assert.equal(h.studiesOf(byId.json).length, uids.length);
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P2}`, bearer(t1)), 403);
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart', `ImagingStudy?patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|${P2_MRN}`)}`, bearer(t1)), 403);
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart', `ImagingStudy?patient.identifier=${encodeURIComponent(`urn:other|${P1_MRN}`)}`, bearer(t1)), 403);
  });

  it('a study token issued to P1, used with P2\'s bearer token: 403; with P1\'s: served', async () => {
    const t1 = await token(P1);
    const t2 = await token(P2);
    const { studies } = await h.searchStudies({ baseUrl: srv.baseUrl }, 'smart', `patient=${P1}`).catch(() => ({ studies: new Map() }));
    assert.equal(studies.size, 0, 'searchStudies without a token must not succeed');
    const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(t1));
    const study = h.studiesOf(r.json)[0];
    const address = h.endpointOf(study, r.json).address;
    const uid = h.studyUidOf(study);
    const url = `${h.localUrl(srv, address)}/studies/${uid}/metadata`;
    const ok = await h.request(url, { headers: { authorization: `Bearer ${t1}`, accept: 'application/dicom+json' } });
    h.assertStatus(ok, 200);
    const cross = await h.request(url, { headers: { authorization: `Bearer ${t2}`, accept: 'application/dicom+json' } });
    h.assertStatus(cross, 403);
    const full = await h.request(`${h.localUrl(srv, address)}/studies/${uid}`, { headers: { authorization: `Bearer ${t2}`, accept: h.DICOM_ACCEPT } });
    h.assertStatus(full, 403);
    // A token from tenant "smart" is refused at tenant "epic".
    const other = address.replace('/smart/wado/', '/epic/wado/');
    h.assertStatus(await h.request(`${h.localUrl(srv, other)}/studies/${uid}/metadata`, { headers: { authorization: `Bearer ${t1}` } }), 403);
  });

  it('SMART v1 and v2 imaging scopes are accepted; others get 403 naming the scope needed', async () => {
    for (const scope of ['patient/ImagingStudy.read', 'patient/*.read', 'patient/*.*', 'patient/ImagingStudy.rs',
      'patient/ImagingStudy.r', 'patient/ImagingStudy.s', 'patient/*.rs', 'patient/ImagingStudy.rs?category=x']) {
      const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(await token(P1, scope)));
      h.assertStatus(r, 200);
    }
    for (const scope of ['patient/Observation.rs', 'user/ImagingStudy.read', 'system/ImagingStudy.rs', 'launch/patient']) {
      const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(await token(P1, scope)));
      h.assertOperationOutcome(r, 403);
      assert.match(r.json.issue[0].diagnostics, /patient\/ImagingStudy\.rs/, `${scope}: names the scope needed`);
    }
    const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(await token(undefined)));
    h.assertOperationOutcome(r, 403);
    assert.match(r.json.issue[0].diagnostics, /patient context/);
  });

  it('unknown, expired and revoked tokens get 401; the decision cache respects expiry and its maximum', async () => {
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer('no-such-token')), 401);
    const short = await token(P1, undefined, 2);
    h.assertStatus(await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(short)), 200);
    await h.sleep(2300);
    // The tenant caches for up to 60 s, but never past the token's exp.
    const late = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(short));
    h.assertOperationOutcome(late, 401);
    assert.match(late.headers.get('www-authenticate') || '', /^Bearer/);

    const revocable = await token(P1);
    h.assertStatus(await h.fhirGet(srv, 'smart-short', `ImagingStudy?patient=${P1}`, bearer(revocable)), 200);
    assert.equal(await ehr.revoke(revocable), true);
    // Within the tenant's 1 s cache the decision stands; after it, the revocation is seen.
    await h.sleep(1200);
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart-short', `ImagingStudy?patient=${P1}`, bearer(revocable)), 401);
  });

  it('a real login: authorization code + PKCE, then the token at the facade', async () => {
    const verifier = crypto.randomBytes(48).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const state = crypto.randomBytes(8).toString('hex');
    const q = new URLSearchParams({
      response_type: 'code', client_id: 'viewer-app', redirect_uri: ehr.appRedirect,
      scope: 'openid fhirUser launch/patient patient/ImagingStudy.rs', state,
      code_challenge: challenge, code_challenge_method: 'S256', aud: ehr.fhirBase,
    });
    // The EHR's login: the interaction page logs the user in as P1, who consents.
    const final = await browse(`${ehr.issuer}/auth?${q}`, (u) => u.startsWith(ehr.appRedirect),
      (u) => (new URL(u).pathname.startsWith('/interaction/') ? `${u}?login=${P1}` : u));
    const back = new URL(final).searchParams;
    assert.equal(back.get('state'), state);
    assert.ok(back.get('code'), `no code in ${final}`);
    const tr = await h.request(`${ehr.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: back.get('code'), redirect_uri: ehr.appRedirect,
        client_id: 'viewer-app', code_verifier: verifier }).toString(),
    });
    h.assertStatus(tr, 200);
    assert.equal(tr.json.patient, P1, 'patient in the token response');
    assert.match(tr.json.scope, /patient\/ImagingStudy\.rs/);
    const r = await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${tr.json.patient}`, bearer(tr.json.access_token));
    h.assertStatus(r, 200);
    assert.deepEqual(h.studiesOf(r.json).map(h.studyUidOf).sort(), studiesOfMrn(P1_MRN));
    h.assertOperationOutcome(await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P2}`, bearer(tr.json.access_token)), 403);

    // PKCE is enforced: a second login's code with the wrong verifier gets no token.
    const again = new URL(await browse(`${ehr.issuer}/auth?${q}`, (u) => u.startsWith(ehr.appRedirect),
      (u) => (new URL(u).pathname.startsWith('/interaction/') ? `${u}?login=${P1}` : u))).searchParams;
    const wrong = await h.request(`${ehr.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: again.get('code'), redirect_uri: ehr.appRedirect,
        client_id: 'viewer-app', code_verifier: crypto.randomBytes(48).toString('base64url') }).toString(),
    });
    h.assertStatus(wrong, 400);
    // The SMART aud must name this EHR.
    const elsewhere = new URLSearchParams(q);
    elsewhere.set('aud', 'https://elsewhere.example/fhir');
    await assert.rejects(browse(`${ehr.issuer}/auth?${elsewhere}`, (u) => u.startsWith(ehr.appRedirect),
      (u) => (new URL(u).pathname.startsWith('/interaction/') ? `${u}?login=${P1}` : u)), /HTTP 400/);
  });

  it('RS384 client assertions work too (smart-on-fhir-independent)', async () => {
    const r = await h.fhirGet(srv, 'smart-rsa', `ImagingStudy?patient=${P2}`, bearer(await token(P2)));
    h.assertStatus(r, 200);
    assert.deepEqual(h.studiesOf(r.json).map(h.studyUidOf).sort(), studiesOfMrn(P2_MRN));
  });

  it('Epic profile: the patient comes from the sub URL', async () => {
    const t = await ehr.mint({ sub: `${ehr.fhirBase}/Patient/${P2}`, scope: 'patient/ImagingStudy.read', expiresIn: 300 });
    const r = await h.fhirGet(srv, 'epic', `ImagingStudy?patient=${P2}`, bearer(t));
    h.assertStatus(r, 200);
    assert.deepEqual(h.studiesOf(r.json).map(h.studyUidOf).sort(), studiesOfMrn(P2_MRN));
    h.assertOperationOutcome(await h.fhirGet(srv, 'epic', `ImagingStudy?patient=${P1}`, bearer(t)), 403);
    const dr = await ehr.mint({ sub: `${ehr.fhirBase}/Patient/${P2}`, scope: 'patient/DiagnosticReport.read', expiresIn: 300 });
    h.assertStatus(await h.fhirGet(srv, 'epic', `ImagingStudy?patient=${P2}`, bearer(dr)), 200);
  });

  it('Meditech profile (insecure by design): client_secret at introspection, patient from the request, warned at start-up', async () => {
    assert.match(srv.logs(), /meditech[^\n]*INSECURE/);
    const t = await token(P1, 'patient/ImagingStudy.read');
    const r = await h.fhirGet(srv, 'meditech', `ImagingStudy?patient=${P2}`, bearer(t));
    h.assertStatus(r, 200);
    assert.deepEqual(h.studiesOf(r.json).map(h.studyUidOf).sort(), studiesOfMrn(P2_MRN), 'MRN from images.mrn');
    const study = h.studiesOf(r.json)[0];
    const address = h.endpointOf(study, r.json).address;
    const w = await h.request(`${h.localUrl(srv, address)}/studies/${h.studyUidOf(study)}/metadata`, bearer(t));
    h.assertStatus(w, 200);
  });

  it('EHR down or slow: 503 within the timeout; malformed answers: 502', async () => {
    let t0 = Date.now();
    const down = await h.fhirGet(srv, 'smart-down', `ImagingStudy?patient=${P1}`, bearer('some-token'));
    h.assertOperationOutcome(down, 503);
    assert.ok(down.headers.get('retry-after'));
    assert.ok(Date.now() - t0 < 3000);
    const t = await token(P1);
    ehr.setDelay(1500);
    try {
      t0 = Date.now();
      const slow = await h.fhirGet(srv, 'smart-slow', `ImagingStudy?patient=${P1}`, bearer(t));
      const took = Date.now() - t0;
      h.assertOperationOutcome(slow, 503);
      assert.ok(took < 1400, `answered after ${took} ms with a 500 ms timeout`);
    } finally {
      ehr.setDelay(0);
    }
    ehr.setIntrospectionOverride(() => ({ activ: 'yes' }));
    try {
      const bad = await h.fhirGet(srv, 'smart-nocache', `ImagingStudy?patient=${P1}`, bearer(t));
      h.assertOperationOutcome(bad, 502);
      assert.match(bad.json.issue[0].diagnostics, /malformed introspection/);
    } finally {
      ehr.setIntrospectionOverride(null);
    }
    const broken = await h.fhirGet(srv, 'smart-nocache', 'ImagingStudy?patient=broken', bearer(await token('broken')));
    h.assertOperationOutcome(broken, 502);
    assert.match(broken.json.issue[0].diagnostics, /Patient/);
  });

  it('nothing secret in logs or error bodies', async () => {
    const t = await token(P1);
    await h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(t));
    const logs = srv.logs();
    assert.ok(!logs.includes(t), 'app token in the log');
    assert.ok(!logs.includes(ec.priv.d), 'private key in the log');
    assert.ok(!logs.includes(ehr.introspector.client_secret), 'client secret in the log');
  });

  it('concurrent requests with one new token make one introspection', async () => {
    const tok = await token(P1);
    ehr.resetStats();
    const rs = await Promise.all(Array.from({ length: 16 }, () =>
      h.fhirGet(srv, 'smart', `ImagingStudy?patient=${P1}`, bearer(tok))));
    for (const r of rs) h.assertStatus(r, 200);
    assert.equal(ehr.stats.introspect, 1);
    assert.equal(ehr.stats.token, 0, 'our own token is reused');
  });

  it('decision cache: 200 sequential searches, cache on vs off (measured)', async (t) => {
    const n = 200;
    const tok = await token(P1);
    const run = async (tenant) => {
      await h.fhirGet(srv, tenant, `ImagingStudy?patient=${P1}`, bearer(tok));  // warm: discovery, our token
      ehr.resetStats();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const r = await h.fhirGet(srv, tenant, `ImagingStudy?patient=${P1}`, bearer(tok));
        assert.equal(r.status, 200);
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      return { perRequestMs: ms / n, introspections: ehr.stats.introspect, patientReads: ehr.stats.patient };
    };
    const on = await run('smart');
    const off = await run('smart-nocache');
    const line = `decision cache over ${n} sequential FHIR searches: on ${on.perRequestMs.toFixed(2)} ms/request ` +
      `(${on.introspections} introspections, ${on.patientReads} Patient reads), off ${off.perRequestMs.toFixed(2)} ms/request ` +
      `(${off.introspections} introspections, ${off.patientReads} Patient reads)`;
    t.diagnostic(line);
    console.log(line);
    assert.equal(on.introspections, 0);
    assert.equal(off.introspections, n);
    assert.ok(on.perRequestMs < off.perRequestMs);
  });

  it('a bad JWK stops start-up naming the tenant file and the field', async () => {
    const dir = path.join(fx.root, 'bad-jwk');
    const broken = { ...ec.priv, d: rsa.priv.d.slice(0, 64) };
    S.writeTenant(dir, 'badkey', smartTenant('smart-on-fhir', ehr, fx.samplesDir, { client_id: 'x', jwkPrivate: broken }));
    const r = await S.runCli(['check-config', '--config-dir', dir], { timeoutMs: 20000 });
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /badkey\.json/);
    assert.match(r.output, /\/authorization\/client\/jwkPrivate/);
    assert.ok(!r.output.includes(broken.d), 'the key is not quoted');
    const dir2 = path.join(fx.root, 'bad-fhirpath');
    S.writeTenant(dir2, 'badpath', { ...smartTenant('smart-on-fhir', ehr, fx.samplesDir, { client_id: 'x', jwkPrivate: ec.priv }),
      images: { type: 'folder', path: fx.samplesDir, mrn: ['identifier.select(value)'] } });
    const r2 = await S.runCli(['check-config', '--config-dir', dir2], { timeoutMs: 20000 });
    assert.notEqual(r2.code, 0, r2.output);
    assert.match(r2.output, /badpath\.json.*\/images\/mrn\/0.*select\(\)/);
  });
});
