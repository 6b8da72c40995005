'use strict';
// HTTP behaviour: keep-alive, request-target limits, CORS, /dyn/ tenants, encode-dyn,
// and what the request log may and may not contain.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const h = require('./lib/helpers');
const S = require('./lib/server');

const ORIGIN = 'http://viewer.example.test';
const ALLOWED_HOST = 'pacs.allowed.example.test';

// node:http, so that Origin, Connection and the like go out exactly as written.
function raw(url, { method = 'GET', headers = {}, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body, text: body.toString('utf8'),
          reusedSocket: req.reusedSocket });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const b64url = (obj) => Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj), 'utf8').toString('base64url');

function dicomWebTenant(endpoint, extraAuth = {}) {
  return {
    authorization: { type: 'mock', disableAuthzChecks: true, ...extraAuth },
    images: { type: 'dicom-web', lookup: 'all-studies-on-server', endpoint, authentication: { type: 'open' } },
  };
}

describe('HTTP behaviour', { timeout: 180000 }, () => {
  let fx;
  let srv; // default settings: /dyn/ disabled
  let dyn; // --dyn-config --dyn-allow-hosts ALLOWED_HOST

  before(async () => {
    fx = await h.folderFixture({ name: 'http', seed: 41, tenants: (dir) => ({ open: h.openFolderTenant(dir) }) });
    srv = fx.server;
    dyn = await fx.start({ args: ['--dyn-config', '--dyn-allow-hosts', `${ALLOWED_HOST},other.allowed.example.test`] });
  });
  after(async () => { if (fx) await fx.cleanup(); });

  it('HTTP/1.1 keep-alive: Connection: keep-alive and the socket is reused', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await raw(`${srv.baseUrl}/open/fhir/metadata`, { agent });
      assert.equal(a.status, 200);
      assert.equal((a.headers.connection || '').toLowerCase(), 'keep-alive', `Connection: ${a.headers.connection}`);
      const b = await raw(`${srv.baseUrl}/open/fhir/metadata`, { agent });
      assert.equal(b.status, 200);
      assert.equal(b.reusedSocket, true, 'second request went over the same connection');
    } finally {
      agent.destroy();
    }
  });

  it('a 6 KB /dyn/ URL is served; a request target over 16 KB gets 414', async () => {
    const cfg = dicomWebTenant(`http://${ALLOWED_HOST}/dicom-web`, {
      patient: { resourceType: 'Patient', id: 'p1', identifier: [] },
    });
    while (b64url(cfg).length < 6000) {
      cfg.authorization.patient.identifier.push({ system: 'urn:example:padding', value: 'x'.repeat(60) });
    }
    const url = `${dyn.baseUrl}/dyn/${b64url(cfg)}/fhir/metadata`;
    assert.ok(url.length > 6000 && url.length < 7000, `URL length ${url.length}`);
    const r = await h.request(url, { headers: { accept: 'application/fhir+json' } });
    h.assertStatus(r, 200);
    assert.equal(r.json.resourceType, 'CapabilityStatement');

    const long = await raw(`${srv.baseUrl}/open/fhir/ImagingStudy?patient=${'p'.repeat(17 * 1024)}`);
    assert.equal(long.status, 414, `17 KB target: ${long.status} ${long.text.slice(0, 300)}`);
    // Still serving afterwards.
    h.assertStatus(await h.fhirGet(srv, 'open', 'metadata'), 200);
  });

  it('CORS preflight on FHIR and WADO paths, and Access-Control-Allow-Origin on responses', async () => {
    const { studies } = await h.searchStudies(srv, 'open', 'patient=x');
    const [uid, { address }] = [...studies][0];
    const wadoPath = `${new URL(address).pathname}/studies/${uid}`;
    for (const p of ['/open/fhir/ImagingStudy', wadoPath]) {
      const r = await raw(`${srv.baseUrl}${p}`, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
      assert.equal(r.status, 204, `preflight ${p}: ${r.status} ${JSON.stringify(r.headers)}`);
      const acao = r.headers['access-control-allow-origin'];
      assert.ok(acao === '*' || acao === ORIGIN, `Access-Control-Allow-Origin: ${acao}`);
      assert.match(r.headers['access-control-allow-methods'] || '', /\bGET\b|\*/, 'Allow-Methods has GET');
      assert.match(r.headers['access-control-allow-headers'] || '', /\bauthorization\b|\*/i, 'Allow-Headers has authorization');
    }
    const fhirGet = await raw(`${srv.baseUrl}/open/fhir/ImagingStudy?patient=x`, { headers: { origin: ORIGIN } });
    assert.equal(fhirGet.status, 200);
    assert.ok(['*', ORIGIN].includes(fhirGet.headers['access-control-allow-origin']), 'ACAO on a FHIR response');
    const wadoGet = await raw(`${srv.baseUrl}${wadoPath}/metadata`, { headers: { origin: ORIGIN } });
    assert.equal(wadoGet.status, 200);
    assert.ok(['*', ORIGIN].includes(wadoGet.headers['access-control-allow-origin']), 'ACAO on a WADO response');
    const err = await raw(`${srv.baseUrl}/open/fhir/ImagingStudy`, { headers: { origin: ORIGIN } });
    assert.equal(err.status, 403);
    assert.ok(['*', ORIGIN].includes(err.headers['access-control-allow-origin']), 'ACAO on an error response');
  });

  it('/dyn/ is disabled by default: 404 OperationOutcome', async () => {
    const cfg = dicomWebTenant(`http://${ALLOWED_HOST}/dicom-web`);
    h.assertOperationOutcome(await h.request(`${srv.baseUrl}/dyn/${b64url(cfg)}/fhir/metadata`,
      { headers: { accept: 'application/fhir+json' } }), 404);
  });

  it('/dyn/ with --dyn-config: valid config works, invalid 400, host not allowed 403, folder 403', async () => {
    const get = (seg) => h.request(`${dyn.baseUrl}/dyn/${seg}/fhir/metadata`, { headers: { accept: 'application/fhir+json' } });
    const ok = await get(b64url(dicomWebTenant(`http://${ALLOWED_HOST}/dicom-web`)));
    h.assertStatus(ok, 200);
    h.assertFhirJson(ok);
    assert.equal(ok.json.resourceType, 'CapabilityStatement');
    h.assertValidFhir(ok.json, '/dyn/ CapabilityStatement');
    h.assertStatus(await get(b64url(dicomWebTenant(`https://other.allowed.example.test:8443/dicom-web`))), 200);

    h.assertOperationOutcome(await get(b64url({ images: 5 })), 400);
    h.assertOperationOutcome(await get(b64url('this is not JSON')), 400);
    h.assertOperationOutcome(await get('!!!not-base64url!!!'), 400);
    h.assertOperationOutcome(await get(b64url({ authorization: { type: 'mock', disableAuthzChecks: true },
      images: { type: 'dicom-web', lookup: 'sometimes', endpoint: `http://${ALLOWED_HOST}/dicom-web` } })), 400);

    h.assertOperationOutcome(await get(b64url(dicomWebTenant('http://pacs.not-allowed.example.test/dicom-web'))), 403);
    h.assertOperationOutcome(await get(b64url(dicomWebTenant('http://127.0.0.1:8042/dicom-web'))), 403);
    h.assertOperationOutcome(await get(b64url(h.openFolderTenant(fx.samplesDir))), 403);
    // Also on search, not only metadata.
    h.assertOperationOutcome(await h.request(
      `${dyn.baseUrl}/dyn/${b64url(h.openFolderTenant(fx.samplesDir))}/fhir/ImagingStudy?patient=x`,
      { headers: { accept: 'application/fhir+json' } }), 403);
  });

  it('encode-dyn FILE prints /dyn/<base64url of the JSON>, which the server accepts', async () => {
    const cfg = dicomWebTenant(`http://${ALLOWED_HOST}/dicom-web`);
    const file = path.join(fx.root, 'dyn-tenant.json');
    fs.writeFileSync(file, JSON.stringify(cfg, null, 2));
    const r = await S.runCli(['encode-dyn', file], { timeoutMs: 10000 });
    assert.equal(r.code, 0, r.output);
    const out = r.stdout.trim();
    const m = /^\/dyn\/([A-Za-z0-9_-]+)$/.exec(out);
    assert.ok(m, `encode-dyn output: ${JSON.stringify(r.stdout)}`);
    assert.deepEqual(JSON.parse(Buffer.from(m[1], 'base64url').toString('utf8')), cfg);
    const ok = await h.request(`${dyn.baseUrl}${out}/fhir/metadata`, { headers: { accept: 'application/fhir+json' } });
    h.assertStatus(ok, 200);
  });

  it('the log has one line per request and never a token or a patient name', async () => {
    const { studies } = await h.searchStudies(srv, 'open', `patient=${h.KSHLERIN_MRN}`);
    const danae = [...fx.truth.values()].find((s) => s.patientId === h.KSHLERIN_MRN);
    const { address, token } = studies.get(danae.studyUid);
    const study = await h.request(h.localUrl(srv, `${address}/studies/${danae.studyUid}`),
      { headers: { accept: h.DICOM_ACCEPT } });
    h.assertStatus(study, 200);
    const meta = await h.request(h.localUrl(srv, `${address}/studies/${danae.studyUid}/metadata`));
    h.assertStatus(meta, 200);
    assert.ok(meta.text.includes('Kshlerin'), 'the metadata does carry the name (so the log check means something)');
    const refused = await h.request(`${srv.baseUrl}/open/wado/${token}/studies/1.2.3.4`);
    h.assertStatus(refused, 403);
    const probe = `/open/fhir/NoSuchType${Date.now()}`;
    h.assertStatus(await h.request(`${srv.baseUrl}${probe}`), 404);

    const lineFor = (pred) => srv.logs().split('\n').find(pred);
    const logged = await h.waitFor(() => lineFor((l) => l.includes(probe)), { timeoutMs: 3000, what: 'the probe request logged' });
    assert.match(logged, /\bGET\b/, `method in ${logged}`);
    assert.match(logged, /\b404\b/, `status in ${logged}`);
    const wadoLine = await h.waitFor(() => lineFor((l) => /\bGET\b/.test(l) && l.includes('/open/wado/') &&
      l.includes('/metadata') && /\b200\b/.test(l)), { timeoutMs: 3000, what: 'the metadata request logged' });
    assert.ok(!wadoLine.includes(token));
    const searchLines = srv.logs().split('\n').filter((l) => l.includes('/open/fhir/ImagingStudy') && /\b200\b/.test(l));
    assert.ok(searchLines.length >= 1, 'search request logged');

    const logs = srv.logs();
    assert.ok(!logs.includes(token), 'the log contains a study token');
    // The ciphertext and tag; the protected header is the same in every token and not secret.
    for (const seg of token.split('.').slice(3).filter((s) => s.length >= 16)) {
      assert.ok(!logs.includes(seg), `the log contains a piece of a study token: ${seg}`);
    }
    assert.ok(!/Kshlerin/i.test(logs), 'the log contains the patient name Kshlerin');
    assert.ok(!/Danae/i.test(logs), 'the log contains the patient name Danae');
  });
});
