'use strict';
// Study tokens interoperate with npm jose: JWE compact, alg "dir", enc "A256GCM",
// key = SHA-256(PATH_KEY); payload {uid, query: {tenantKey, byPatientId | byPatientIdentifier}, iat, exp}.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const jose = require('jose');
const h = require('./lib/helpers');
const { TEST_PATH_KEY } = require('./lib/server');

const keyOf = (pathKey) => crypto.createHash('sha256').update(pathKey, 'utf8').digest();
const KEY = keyOf(TEST_PATH_KEY);
const now = () => Math.floor(Date.now() / 1000);

async function decrypt(token, key = KEY) {
  const { plaintext, protectedHeader } = await jose.compactDecrypt(token, key);
  return { header: protectedHeader, payload: JSON.parse(Buffer.from(plaintext).toString('utf8')) };
}

async function mint(payload, key = KEY) {
  return new jose.CompactEncrypt(Buffer.from(JSON.stringify(payload), 'utf8'))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(key);
}

describe('study tokens', { timeout: 180000 }, () => {
  let fx;
  let srv;
  let uidOfDanae;
  let otherUid;
  const PATIENT = 'any-patient-id';

  before(async () => {
    fx = await h.folderFixture({
      name: 'tokens',
      seed: 31,
      tenants: (dir) => ({ open: h.openFolderTenant(dir), hardcoded: h.hardcodedPatientFolderTenant(dir) }),
    });
    srv = fx.server;
    uidOfDanae = [...fx.truth.values()].find((s) => s.patientId === h.KSHLERIN_MRN).studyUid;
    otherUid = [...fx.truth.values()].find((s) => s.patientId !== h.KSHLERIN_MRN).studyUid;
  });
  after(async () => { if (fx) await fx.cleanup(); });

  const metadataUrl = (tenant, token, uid) => `${srv.baseUrl}/${tenant}/wado/${token}/studies/${uid}/metadata`;
  const getMetadata = (tenant, token, uid) => h.request(metadataUrl(tenant, token, uid),
    { headers: { accept: 'application/dicom+json' } });

  it('a server-issued token decrypts with jose and binds uid, tenant and patient', async () => {
    const { studies } = await h.searchStudies(srv, 'open', `patient=${PATIENT}`);
    assert.equal(studies.size, fx.truth.size);
    for (const [uid, { token }] of studies) {
      const { header, payload } = await decrypt(token);
      assert.equal(header.alg, 'dir');
      assert.equal(header.enc, 'A256GCM');
      assert.equal(payload.uid, uid);
      assert.equal(payload.query && payload.query.tenantKey, 'open');
      assert.equal(payload.query.byPatientId, PATIENT);
      assert.equal(typeof payload.iat, 'number');
      assert.equal(typeof payload.exp, 'number');
      assert.ok(payload.exp > payload.iat, `exp ${payload.exp} > iat ${payload.iat}`);
      assert.ok(Math.abs(payload.iat - now()) < 120, `iat ${payload.iat} is about now (${now()})`);
    }
  });

  it('patient.identifier search binds byPatientIdentifier', async () => {
    const { studies } = await h.searchStudies(srv, 'hardcoded',
      `patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|${h.KSHLERIN_MRN}`)}`);
    assert.ok(studies.size > 0);
    for (const [uid, { token }] of studies) {
      const { payload } = await decrypt(token);
      assert.equal(payload.uid, uid);
      assert.equal(payload.query.tenantKey, 'hardcoded');
      // An Identifier, as the reference server writes and reads it.
      assert.deepEqual(payload.query.byPatientIdentifier, { system: h.MRN_SYSTEM, value: h.KSHLERIN_MRN });
    }
    const { studies: byId } = await h.searchStudies(srv, 'hardcoded', `patient=${h.HARDCODED_PATIENT_ID}`);
    for (const { token } of byId.values()) {
      const { payload } = await decrypt(token);
      assert.equal(payload.query.byPatientId, h.HARDCODED_PATIENT_ID);
    }
  });

  it('a token minted with jose for a real study is accepted', async () => {
    const iat = now();
    const token = await mint({ uid: otherUid, query: { tenantKey: 'open', byPatientId: PATIENT }, iat, exp: iat + 300 });
    const r = await getMetadata('open', token, otherUid);
    h.assertStatus(r, 200);
    assert.ok(Array.isArray(r.json) && r.json.length === fx.truth.get(otherUid).instanceCount);
    const full = await h.request(`${srv.baseUrl}/open/wado/${token}/studies/${otherUid}`,
      { headers: { accept: h.DICOM_ACCEPT } });
    h.assertStatus(full, 200);

    const mine = await mint({ uid: uidOfDanae, query: { tenantKey: 'hardcoded', byPatientId: h.HARDCODED_PATIENT_ID },
      iat, exp: iat + 300 });
    h.assertStatus(await getMetadata('hardcoded', mine, uidOfDanae), 200);
  });

  it('minted tokens that are expired, mis-keyed, for another tenant or patient get 403', async () => {
    const iat = now();
    const good = { uid: otherUid, query: { tenantKey: 'open', byPatientId: PATIENT }, iat, exp: iat + 300 };
    const cases = [
      ['exp in the past', await mint({ ...good, iat: iat - 600, exp: iat - 60 }), 'open', otherUid],
      ['another key', await mint(good, crypto.randomBytes(32)), 'open', otherUid],
      ['key from another PATH_KEY', await mint(good, keyOf('some-other-path-key')), 'open', otherUid],
      ['uid of another study', await mint(good), 'open', uidOfDanae],
      ['tenantKey hardcoded used under open',
        await mint({ ...good, query: { tenantKey: 'hardcoded', byPatientId: h.HARDCODED_PATIENT_ID } }), 'open', otherUid],
      ['tenantKey open used under hardcoded', await mint({ ...good, uid: uidOfDanae }), 'hardcoded', uidOfDanae],
      ['another patient on the hardcoded-patient tenant',
        await mint({ ...good, uid: uidOfDanae, query: { tenantKey: 'hardcoded', byPatientId: 'someone-else' } }),
        'hardcoded', uidOfDanae],
      // The hardcoded patient asking for a study that is not theirs.
      ['a study of another patient on the hardcoded-patient tenant',
        await mint({ ...good, query: { tenantKey: 'hardcoded', byPatientId: h.HARDCODED_PATIENT_ID } }),
        'hardcoded', otherUid, [403, 404]],
    ];
    for (const [what, token, tenant, uid, allowed = [403]] of cases) {
      const r = await getMetadata(tenant, token, uid);
      assert.ok(allowed.includes(r.status), `${what}: expected ${allowed}, got\n${h.describeResponse(r)}`);
      const full = await h.request(`${srv.baseUrl}/${tenant}/wado/${token}/studies/${uid}`,
        { headers: { accept: h.DICOM_ACCEPT } });
      assert.ok(allowed.includes(full.status), `${what} (full study): expected ${allowed}, got\n${h.describeResponse(full)}`);
    }
  });

  it('--token-ttl 2: a token is refused once it expired', async () => {
    const short = await fx.start({ args: ['--token-ttl', '2'] });
    const r = await h.fhirGet(short, 'open', `ImagingStudy?patient=${PATIENT}&identifier=urn:oid:${otherUid}`);
    h.assertStatus(r, 200);
    const study = h.studiesOf(r.json)[0];
    const token = h.tokenOf(h.endpointOf(study, r.json).address);
    const { payload } = await decrypt(token);
    assert.ok(payload.exp - payload.iat <= 2, `exp - iat = ${payload.exp - payload.iat} with --token-ttl 2`);
    await h.sleep(3000);
    const late = await h.request(`${short.baseUrl}/open/wado/${token}/studies/${otherUid}`,
      { headers: { accept: h.DICOM_ACCEPT } });
    assert.equal(late.status, 403, `expired token: expected 403, got\n${h.describeResponse(late)}`);
    await short.stop();
  });
});
