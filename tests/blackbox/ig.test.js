'use strict';
// SMART Imaging Access IG conformance against the real binary and a real oidc-provider EHR
// (ehr/ehr.js): discovery, the IG's three search combinations with _include, meta.lastUpdated and
// _lastUpdated, the IG profiles' required and must-support elements (and the R4 validators),
// Backend Services (system/ImagingStudy.rs with a per-tenant policy), bearer capability URLs and
// patient-safe retrieval of a study that mixes two patients' instances.
//
// The IG's Backend Services example table was not available offline; the cases below are derived
// from its requirements as summarized in shared/SMART-IMAGING-IG.md ("Token checks" and
// "Backend Services"), one `it` per row.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/helpers');
const { assertValid } = require('./lib/fhir-validate');
const { startEhr, patientResource } = require('./ehr/ehr');

const P1 = 'p1';
const P2 = 'p2';
const P1_MRN = h.KSHLERIN_MRN;
const P2_MRN = 'MRN-10001';
const IG = 'http://fhir.org/argonaut/smart-imaging';
const REQUIRES_TOKEN = `${IG}/StructureDefinition/requires-access-token`;

function keyPair() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const kid = crypto.randomBytes(8).toString('hex');
  return {
    pub: { ...publicKey.export({ format: 'jwk' }), alg: 'ES384', kid },
    priv: { ...privateKey.export({ format: 'jwk' }), alg: 'ES384', kid },
  };
}

const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

// The SMART ImagingStudy profile (required and must-support) and the SMART WADO-RS Endpoint profile.
function assertSmartImagingStudy(study, bundle, { requiresToken }) {
  const uid = h.studyUidOf(study);
  const ids = study.identifier.filter((i) => i.system === 'urn:dicom:uid');
  assert.equal(ids.length, 1, 'identifier urn:dicom:uid 1..1');
  assert.match(ids[0].value, /^urn:oid:[0-9.]+$/);
  assert.ok(study.meta.profile.includes(`${IG}/StructureDefinition/smart-imaging-study`), 'meta.profile');
  assert.match(study.meta.lastUpdated, INSTANT, 'meta.lastUpdated');
  assert.equal(study.status, 'available');
  assert.ok(study.subject && (study.subject.reference || '').includes('Patient/'), 'subject is a Patient');
  assert.ok(study.modality.length >= 1, 'modality 1..*');
  assert.ok(study.endpoint.length >= 1, 'endpoint 1..*');
  assert.equal(typeof study.numberOfSeries, 'number');
  assert.equal(typeof study.numberOfInstances, 'number');
  if (study.started !== undefined) assert.match(study.started, /^\d{4}(-\d{2}(-\d{2}(T.*)?)?)?$/);
  assert.ok(study.series.length >= 1, `${uid}: series (must-support)`);
  for (const s of study.series) {
    assert.match(s.uid, /^[0-9.]+$/);
    assert.ok(s.modality && s.modality.code, 'series.modality');
    assert.equal(typeof s.numberOfInstances, 'number');
    for (const i of s.instance || []) {
      assert.match(i.uid, /^[0-9.]+$/);
      assert.match(i.sopClass.code, /^urn:oid:[0-9.]+$/);
    }
  }
  const ep = h.endpointOf(study, bundle);
  assert.ok(ep.meta.profile.includes(`${IG}/StructureDefinition/smart-wado-endpoint`));
  assert.equal(ep.status, 'active');
  assert.equal(ep.connectionType.system, 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type');
  assert.equal(ep.connectionType.code, 'dicom-wado-rs');
  assert.match(ep.address, /^https?:\/\//);
  const ext = (ep.extension || []).filter((e) => e.url === REQUIRES_TOKEN);
  assert.equal(ext.length, 1, 'requires-access-token 1..1');
  assert.equal(ext[0].valueBoolean, requiresToken, 'requires-access-token');
  return ep;
}

function dcmodify(file, edits) {
  const args = ['-nb', '-gin'];
  for (const [tag, value] of edits) args.push('-m', `${tag}=${value}`);
  const r = spawnSync('dcmodify', [...args, file]);
  assert.equal(r.status, 0, `dcmodify: ${r.stderr}`);
}

describe('SMART Imaging Access IG (real oidc-provider EHR, folder source)', { timeout: 180000 }, () => {
  let ehr;
  let fx;
  let srv;
  const facade = keyPair();
  const backendA = keyPair();
  const backendB = keyPair();
  const backendC = keyPair();
  let p1Studies;   // sorted UIDs of P1's studies
  let onlyStudyB;  // the one study backend-b may see

  const p1Token = (scope = 'launch/patient patient/ImagingStudy.rs', expiresIn = 300) =>
    ehr.mint({ patient: P1, scope, expiresIn });
  const systemToken = (client, key, scope = 'system/ImagingStudy.rs') =>
    ehr.backendToken({ client_id: client, priv: key.priv, alg: 'ES384', scope });
  const search = (tenant, query, token) => h.fhirGet(srv, tenant, `ImagingStudy?${query}`, token ? bearer(token) : {});
  const uidsOf = (r) => h.studiesOf(r.json).map(h.studyUidOf).sort();
  const wado = (address, rel, token, accept = 'application/dicom+json') =>
    h.request(`${h.localUrl(srv, address)}${rel}`, { headers: { accept, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

  before(async () => {
    ehr = await startEhr({
      facadeClients: [{ client_id: 'imaging-facade', jwk: facade.pub, alg: 'ES384' }],
      backendClients: [
        { client_id: 'backend-a', jwk: backendA.pub, alg: 'ES384' },
        { client_id: 'backend-b', jwk: backendB.pub, alg: 'ES384' },
        { client_id: 'backend-c', jwk: backendC.pub, alg: 'ES384' },
      ],
      patients: { [P1]: patientResource(P1, P1_MRN), [P2]: patientResource(P2, P2_MRN) },
    });
    const client = { client_id: 'imaging-facade', jwk: facade.pub, jwkPrivate: facade.priv };
    const smart = (dir, extra = {}, top = {}) => ({
      authorization: { type: 'smart-on-fhir', fhirBaseUrl: ehr.fhirBase, scope: 'system/Patient.read', client, ...extra },
      images: { type: 'folder', path: dir, lookup: 'studies-by-mrn' },
      ...top,
    });
    // backend-b's single study is known only after the samples exist: picked below, then restarted.
    fx = await h.folderFixture({
      name: 'ig',
      seed: 1,
      tenants: (dir) => ({
        ig: smart(dir, { backendServices: { 'backend-a': { patients: [P1] }, 'backend-b': { patients: [P1], studies: ['9.9.9'] } } }),
        'ig-nobackend': smart(dir),
        'ig-bearer': smart(dir, {}, { capability: 'bearer' }),
        'ig-open': h.openFolderTenant(dir),
        'ig-issuer': { ...smart(dir), images: { type: 'folder', path: dir, lookup: 'studies-by-mrn', issuerOfPatientId: 'HOSP_A' } },
      }),
    });
    p1Studies = [...fx.truth.values()].filter((s) => s.patientId === P1_MRN).map((s) => s.studyUid).sort();
    assert.ok(p1Studies.length >= 2, 'the samples hold at least two studies of P1');
    onlyStudyB = p1Studies[0];
    // Rewrite ig.json with backend-b's real study and restart on it.
    const file = path.join(fx.configDir, 'ig.json');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"9.9.9"', JSON.stringify(onlyStudyB)));
    await fx.server.stop();
    fx.servers = [];
    srv = await fx.start();
  });
  after(async () => {
    if (fx) await fx.cleanup();
    if (ehr) await ehr.stop();
  });

  describe('discovery and CapabilityStatement', () => {
    it('smart-configuration: the EHR metadata plus the IG capabilities of each mode the tenant supports', async () => {
      const r = await h.request(h.fhirUrl(srv, 'ig', '.well-known/smart-configuration'));
      h.assertStatus(r, 200);
      const c = r.json;
      assert.equal(c.token_endpoint, `${ehr.issuer}/token`);
      for (const cap of ['smart-imaging-access', `${IG}/capabilities/app-launch`, `${IG}/capabilities/backend-services`])
        assert.ok(c.capabilities.includes(cap), cap);
      assert.ok(c.grant_types_supported.includes('authorization_code'));
      assert.ok(c.grant_types_supported.includes('client_credentials'));
      assert.ok(c.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
      assert.ok(c.token_endpoint_auth_signing_alg_values_supported.some((a) => a === 'RS384' || a === 'ES384'));
      assert.ok(c.scopes_supported.includes('system/ImagingStudy.rs'));
      const n = await h.request(h.fhirUrl(srv, 'ig-nobackend', '.well-known/smart-configuration'));
      h.assertStatus(n, 200);
      assert.ok(n.json.capabilities.includes(`${IG}/capabilities/app-launch`));
      assert.ok(!n.json.capabilities.includes(`${IG}/capabilities/backend-services`), 'no Backend Services without a policy');
    });

    it('CapabilityStatement: supportedProfile, searchInclude and the IG search parameters; valid R4', async () => {
      const r = await h.fhirGet(srv, 'ig', 'metadata');
      h.assertStatus(r, 200);
      assertValid(r.json, 'CapabilityStatement');
      const res = r.json.rest[0].resource.find((x) => x.type === 'ImagingStudy');
      assert.ok(res.supportedProfile.includes(`${IG}/StructureDefinition/smart-imaging-study`));
      assert.ok(res.interaction.some((i) => i.code === 'search-type'));
      assert.ok(res.searchInclude.includes('ImagingStudy:endpoint'));
      const params = Object.fromEntries(res.searchParam.map((p) => [p.name, p.type]));
      assert.equal(params.patient, 'reference');
      assert.equal(params.identifier, 'token');
      assert.equal(params._lastUpdated, 'date');
    });
  });

  describe('App Launch', () => {
    it('patient alone: every study of the token\'s patient, each conforming to the IG profiles and R4', async () => {
      const r = await search('ig', `patient=${P1}`, await p1Token());
      h.assertStatus(r, 200);
      assertValid(r.json, 'searchset');
      assert.deepEqual(uidsOf(r), p1Studies);
      for (const s of h.studiesOf(r.json)) assertSmartImagingStudy(s, r.json, { requiresToken: true });
    });

    it('patient mismatch: 403, not an empty Bundle', async () => {
      const r = await search('ig', `patient=${P2}`, await p1Token());
      h.assertOperationOutcome(r, 403);
    });

    it('_include=ImagingStudy:endpoint gives separate Endpoint entries; without it they are contained', async () => {
      const t = await p1Token();
      const inc = await search('ig', `patient=${P1}&_include=ImagingStudy:endpoint`, t);
      h.assertStatus(inc, 200);
      assertValid(inc.json, 'searchset with _include');
      const eps = inc.json.entry.filter((e) => e.resource.resourceType === 'Endpoint');
      assert.equal(eps.length, p1Studies.length);
      for (const e of eps) assert.equal(e.search.mode, 'include');
      for (const s of h.studiesOf(inc.json)) {
        assert.ok(!s.contained, 'no contained Endpoint with _include');
        assertSmartImagingStudy(s, inc.json, { requiresToken: true });
      }
      const plain = await search('ig', `patient=${P1}`, t);
      for (const s of h.studiesOf(plain.json)) assert.equal(s.endpoint[0].reference[0], '#');
    });

    it('patient + identifier=urn:oid: finds that study only (and nothing for a study of another patient)', async () => {
      const t = await p1Token();
      const uid = p1Studies[1];
      const r = await search('ig', `patient=${P1}&identifier=${encodeURIComponent(`urn:oid:${uid}`)}`, t);
      h.assertStatus(r, 200);
      assert.deepEqual(uidsOf(r), [uid]);
      const sys = await search('ig', `patient=${P1}&identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}&_include=ImagingStudy:endpoint`, t);
      assert.deepEqual(uidsOf(sys), [uid]);
      const p2uid = [...fx.truth.values()].find((s) => s.patientId === P2_MRN).studyUid;
      const other = await search('ig', `patient=${P1}&identifier=urn:oid:${p2uid}`, t);
      h.assertStatus(other, 200);
      assert.equal(h.studiesOf(other.json).length, 0);
    });

    it('_lastUpdated filters on exactly what meta.lastUpdated says; a study added later is the only newer one', async () => {
      const t = await p1Token();
      const before1 = await search('ig', `patient=${P1}`, t);
      const times = h.studiesOf(before1.json).map((s) => Date.parse(s.meta.lastUpdated));
      const newest = new Date(Math.max(...times)).toISOString().replace(/\.\d+Z$/, 'Z');
      const all = await search('ig', `patient=${P1}&_lastUpdated=le${newest}`, t);
      assert.deepEqual(uidsOf(all), p1Studies);
      const none = await search('ig', `patient=${P1}&_lastUpdated=gt${newest}`, t);
      h.assertStatus(none, 200);
      assert.equal(h.studiesOf(none.json).length, 0);

      // A new study of P1 arrives in the folder (a copied file with new UIDs), a second later at least.
      await h.sleep(1100);
      const src = fx.truth.get(p1Studies[0]).series.values().next().value.instances[0].path;
      const fresh = path.join(fx.samplesDir, 'zz-new-study.dcm');
      const tmp = path.join(fx.root, 'zz-new-study.dcm');
      fs.copyFileSync(src, tmp);
      const newUid = `2.25.${BigInt(`0x${crypto.randomBytes(12).toString('hex')}`)}`;
      dcmodify(tmp, [['(0020,000D)', newUid], ['(0020,000E)', `${newUid}.1`], ['(0008,0018)', `${newUid}.1.1`]]);
      fs.renameSync(tmp, fresh);
      await h.waitFor(async () => uidsOf(await search('ig', `patient=${P1}`, t)).includes(newUid), { what: 'the new study indexed' });
      const newer = await search('ig', `patient=${P1}&_lastUpdated=gt${newest}&_include=ImagingStudy:endpoint`, t);
      h.assertStatus(newer, 200);
      assert.deepEqual(uidsOf(newer), [newUid]);
      assertValid(newer.json, 'incremental sync');
      const s = h.studiesOf(newer.json)[0];
      assert.ok(Date.parse(s.meta.lastUpdated) > Date.parse(newest));
      // All three: patient, _lastUpdated and identifier.
      const one = await search('ig', `patient=${P1}&_lastUpdated=gt${newest}&identifier=urn:oid:${p1Studies[0]}`, t);
      assert.equal(h.studiesOf(one.json).length, 0, 'an older study is not newer');
      const same = await search('ig', `patient=${P1}&_lastUpdated=gt${newest}&identifier=urn:oid:${newUid}`, t);
      assert.deepEqual(uidsOf(same), [newUid]);
      h.assertOperationOutcome(await search('ig', `patient=${P1}&_lastUpdated=notadate`, t), 400);
      fs.rmSync(fresh);
      await h.waitFor(async () => !uidsOf(await search('ig', `patient=${P1}`, t)).includes(newUid), { what: 'the new study removed' });
    });

    it('open mock tenant: requires-access-token false (it reads no Authorization), valid R4', async () => {
      const r = await search('ig-open', `patient=${P1}`);
      h.assertStatus(r, 200);
      assertValid(r.json, 'open searchset');
      assert.ok(h.studiesOf(r.json).length > 0);
      for (const s of h.studiesOf(r.json)) {
        const ep = h.endpointOf(s, r.json);
        assert.equal(ep.extension.find((e) => e.url === REQUIRES_TOKEN).valueBoolean, false);
      }
    });
  });

  describe('Backend Services (cases derived from the IG requirements)', () => {
    it('1. a policy client, an allowed patient: every study of that patient; retrieval with the same token', async () => {
      const t = await systemToken('backend-a', backendA);
      const r = await search('ig', `patient=${P1}`, t);
      h.assertStatus(r, 200);
      assertValid(r.json, 'backend searchset');
      assert.deepEqual(uidsOf(r), p1Studies);
      const s = h.studiesOf(r.json)[0];
      const ep = assertSmartImagingStudy(s, r.json, { requiresToken: true });
      h.assertStatus(await wado(ep.address, `/studies/${h.studyUidOf(s)}/metadata`, t), 200);
      h.assertStatus(await wado(ep.address, `/studies/${h.studyUidOf(s)}/metadata`), 401);
    });

    it('2. a patient outside the client\'s policy: 403', async () => {
      const t = await systemToken('backend-a', backendA);
      h.assertOperationOutcome(await search('ig', `patient=${P2}`, t), 403);
    });

    it('3. studies outside the policy are omitted from search and denied on retrieval', async () => {
      const tb = await systemToken('backend-b', backendB);
      const r = await search('ig', `patient=${P1}`, tb);
      h.assertStatus(r, 200);
      assert.deepEqual(uidsOf(r), [onlyStudyB]);
      // A study token for another P1 study (issued to backend-a) is refused with backend-b's token.
      const ta = await systemToken('backend-a', backendA);
      const ra = await search('ig', `patient=${P1}`, ta);
      const other = h.studiesOf(ra.json).find((s) => h.studyUidOf(s) !== onlyStudyB);
      const address = h.endpointOf(other, ra.json).address;
      const denied = await wado(address, `/studies/${h.studyUidOf(other)}`, tb, h.DICOM_ACCEPT);
      h.assertStatus(denied, 403);
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(other)}/metadata`, ta), 200);
    });

    it('4. a client not in the policy: 403', async () => {
      const t = await systemToken('backend-c', backendC);
      h.assertOperationOutcome(await search('ig', `patient=${P1}`, t), 403);
    });

    it('5. SMART v1 system/ImagingStudy.read is accepted like system/ImagingStudy.rs', async () => {
      const t = await systemToken('backend-a', backendA, 'system/ImagingStudy.read');
      const r = await search('ig', `patient=${P1}`, t);
      h.assertStatus(r, 200);
      assert.deepEqual(uidsOf(r), p1Studies);
    });

    it('6. a tenant without a Backend Services policy refuses system scopes', async () => {
      const t = await systemToken('backend-a', backendA);
      const r = await search('ig-nobackend', `patient=${P1}`, t);
      h.assertOperationOutcome(r, 403);
      assert.match(r.json.issue[0].diagnostics, /system scopes/);
    });

    it('7. a system token without a named patient (identifier only, or none): 403', async () => {
      const t = await systemToken('backend-a', backendA);
      h.assertOperationOutcome(await search('ig', `patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|${P1_MRN}`)}`, t), 403);
      h.assertOperationOutcome(await search('ig', 'modality=CT', t), 403);
    });

    it('8. missing patient context is never system access (a patient-level token without patient)', async () => {
      const t = await ehr.mint({ scope: 'patient/ImagingStudy.rs', expiresIn: 300 });
      const r = await search('ig', `patient=${P1}`, t);
      h.assertOperationOutcome(r, 403);
      assert.match(r.json.issue[0].diagnostics, /patient context/);
    });

    it('9. a system token without an imaging scope: 403', async () => {
      const t = await systemToken('backend-a', backendA, 'system/Observation.rs');
      h.assertOperationOutcome(await search('ig', `patient=${P1}`, t), 403);
    });

    it('10. grants are not combined: an app token of P1 cannot use a study token with a policy wider than its own', async () => {
      const ta = await systemToken('backend-a', backendA);
      const ra = await search('ig', `patient=${P1}`, ta);
      const s = h.studiesOf(ra.json)[0];
      const address = h.endpointOf(s, ra.json).address;
      // P1's own app token may read P1's study (same patient) ...
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`, await p1Token()), 200);
      // ... P2's may not.
      const t2 = await ehr.mint({ patient: P2, scope: 'patient/ImagingStudy.rs', expiresIn: 300 });
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`, t2), 403);
    });

    it('11. a token the EHR does not know as active: 401, also for a policy patient', async () => {
      h.assertOperationOutcome(await search('ig', `patient=${P1}`, 'not-a-token'), 401);
    });
  });

  describe('bearer capability URLs', () => {
    let found;
    let token;
    before(async () => {
      token = await p1Token();
      const r = await search('ig-bearer', `patient=${P1}`, token);
      h.assertStatus(r, 200);
      assertValid(r.json, 'bearer searchset');
      found = h.studiesOf(r.json).map((s) => ({ uid: h.studyUidOf(s), ep: assertSmartImagingStudy(s, r.json, { requiresToken: false }) }));
    });

    it('works without any Authorization header (metadata and the full study)', async () => {
      const { uid, ep } = found[0];
      const m = await wado(ep.address, `/studies/${uid}/metadata`);
      h.assertStatus(m, 200);
      const full = await wado(ep.address, `/studies/${uid}`, undefined, h.DICOM_ACCEPT);
      h.assertStatus(full, 200);
      assert.match(full.headers.get('content-type'), /^multipart\/related/);
    });

    it('cannot reach another study, whatever path is appended', async () => {
      const [a, b] = found;
      h.assertStatus(await wado(a.ep.address, `/studies/${b.uid}/metadata`), 403);
      h.assertStatus(await wado(a.ep.address, `/studies/${b.uid}`, undefined, h.DICOM_ACCEPT), 403);
      const series = fx.truth.get(b.uid).series.keys().next().value;
      h.assertStatus(await wado(a.ep.address, `/studies/${b.uid}/series/${series}/metadata`), 403);
      // Nor at another tenant, nor as a token-bound study token there.
      const elsewhere = a.ep.address.replace('/ig-bearer/wado/', '/ig/wado/');
      h.assertStatus(await wado(elsewhere, `/studies/${a.uid}/metadata`), 403);
    });

    it('a tampered capability gets 403', async () => {
      const { uid, ep } = found[0];
      const tok = h.tokenOf(ep.address);
      const i = Math.floor(tok.length / 2);
      const flipped = tok.slice(0, i) + (tok[i] === 'A' ? 'B' : 'A') + tok.slice(i + 1);
      h.assertStatus(await wado(ep.address.replace(tok, flipped), `/studies/${uid}/metadata`), 403);
    });

    it('expires with the SMART token that authorized it: afterwards 403', async () => {
      const short = await p1Token(undefined, 3);
      const r = await search('ig-bearer', `patient=${P1}`, short);
      h.assertStatus(r, 200);
      const s = h.studiesOf(r.json)[0];
      const address = h.endpointOf(s, r.json).address;
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`), 200);
      await h.sleep(3300);
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`), 403);
    });

    it('token-bound tenants still require the SMART token with the address', async () => {
      const r = await search('ig', `patient=${P1}`, token);
      const s = h.studiesOf(r.json)[0];
      const address = h.endpointOf(s, r.json).address;
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`), 401);
      h.assertStatus(await wado(address, `/studies/${h.studyUidOf(s)}/metadata`, token), 200);
    });
  });

  describe('patient-safe retrieval (last: it changes the folder)', () => {
    it('IssuerOfPatientID: the same PatientID from another issuer is another patient when the tenant names its issuer', async () => {
      const t = await p1Token();
      const uid = p1Studies[0];
      const addressAt = async (tenant) => {
        const r = await search(tenant, `patient=${P1}&identifier=urn:oid:${uid}`, t);
        h.assertStatus(r, 200);
        return h.endpointOf(h.studiesOf(r.json)[0], r.json).address;
      };
      const strict = await addressAt('ig-issuer');
      const plain = await addressAt('ig');
      h.assertStatus(await wado(strict, `/studies/${uid}`, t, h.DICOM_ACCEPT), 200);
      const src = fx.truth.get(uid).series.values().next().value.instances[0].path;
      const tmp = path.join(fx.root, 'other-issuer.dcm');
      fs.copyFileSync(src, tmp);
      const r = spawnSync('dcmodify', ['-nb', '-gin', '-i', '(0010,0021)=HOSP_B', '-m', `(0008,0018)=${uid}.888.1`, tmp]);
      assert.equal(r.status, 0, `dcmodify: ${r.stderr}`);
      const placed = path.join(fx.samplesDir, 'other-issuer.dcm');
      fs.renameSync(tmp, placed);
      await h.waitFor(async () => (await wado(strict, `/studies/${uid}`, t, h.DICOM_ACCEPT)).status === 403,
        { what: 'the other issuer\'s instance refused' });
      h.assertStatus(await wado(strict, `/studies/${uid}/metadata`, t), 403);
      // A tenant that names no issuer judges by PatientID alone: the same study is served.
      const whole = await wado(plain, `/studies/${uid}`, t, h.DICOM_ACCEPT);
      h.assertStatus(whole, 200);
      assert.ok(whole.body.includes(Buffer.from(`${uid}.888.1`)));
      fs.rmSync(placed);
      await h.waitFor(async () => (await wado(strict, `/studies/${uid}`, t, h.DICOM_ACCEPT)).status === 200,
        { what: 'the study served again' });
    });

    it('a study that mixes two patients\' instances is refused whole (403), logged without PHI', async () => {
      const t = await p1Token();
      const uid = p1Studies[1];
      const r = await search('ig', `patient=${P1}&identifier=urn:oid:${uid}`, t);
      const address = h.endpointOf(h.studiesOf(r.json)[0], r.json).address;
      h.assertStatus(await wado(address, `/studies/${uid}`, t, h.DICOM_ACCEPT), 200);
      // Another patient's instance joins the study (same Study UID, PatientID of P2).
      const src = fx.truth.get(uid).series.values().next().value.instances[0].path;
      const tmp = path.join(fx.root, 'intruder.dcm');
      fs.copyFileSync(src, tmp);
      dcmodify(tmp, [['(0010,0020)', P2_MRN], ['(0008,0018)', `${uid}.999.1`]]);
      fs.renameSync(tmp, path.join(fx.samplesDir, 'intruder.dcm'));
      await h.waitFor(async () => (await wado(address, `/studies/${uid}`, t, h.DICOM_ACCEPT)).status === 403,
        { what: 'the mixed study refused' });
      h.assertStatus(await wado(address, `/studies/${uid}/metadata`, t), 403);
      const logs = srv.logs();
      const hash = crypto.createHash('sha256').update(uid).digest('hex').slice(0, 16);
      assert.match(logs, new RegExp(`refused a retrieval: 1 of \\d+ instances .*sha256:${hash}`));
      assert.ok(!logs.includes(P2_MRN), 'the other patient\'s MRN is not logged');
      assert.ok(!logs.includes(P1_MRN), 'the token patient\'s MRN is not logged');
    });
  });
});
