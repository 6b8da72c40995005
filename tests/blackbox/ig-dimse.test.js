'use strict';
// SMART Imaging Access IG over a real DIMSE PACS (dcmqrscp): images.slowSearch (503 + Retry-After,
// the C-FIND finishing in the background for the identical retry, never across patients),
// meta.lastUpdated / _lastUpdated from our persistent change log (first seen, counts changed), and
// patient-safe retrieval of a PACS study that mixes two patients' instances.
// The PACS is made slow by a TCP proxy in front of it that holds back the first answer on every
// association (the A-ASSOCIATE-AC), as a distant or busy PACS would.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/helpers');
const server = require('./lib/server');
const pacsLib = require('./lib/pacs');
const { assertValid } = require('./lib/fhir-validate');

const have = spawnSync('which', ['dcmqrscp']).status === 0;
const P1_MRN = h.KSHLERIN_MRN;
const P2_MRN = 'MRN-10001';

// A TCP proxy to the PACS; while delayMs > 0, the first chunk the PACS sends on each connection
// waits that long.
async function delayingProxy(targetPort) {
  const state = { delayMs: 0, sockets: new Set() };
  const srv = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      state.sockets.add(s);
      s.on('close', () => state.sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (d) => upstream.write(d));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    let first = true;
    upstream.on('data', (d) => {
      if (first && state.delayMs > 0) {
        first = false;
        upstream.pause();
        setTimeout(() => { if (!client.destroyed) client.write(d); upstream.resume(); }, state.delayMs);
        return;
      }
      first = false;
      client.write(d);
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  state.port = srv.address().port;
  state.close = () => new Promise((resolve) => {
    for (const s of state.sockets) s.destroy();
    srv.close(() => resolve());
  });
  return state;
}

// An instance of P2 filed under one of P1's studies at the PACS (same Study UID): never served
// under P1's token, the full study refused whole, the log without PHI.
async function mixedPatientCase(t, { pacs, srv, tenant, truth, root, load }) {
  const uid = [...truth.values()].filter((s) => s.patientId === P1_MRN).map((s) => s.studyUid).sort()[0];
  const series = truth.get(uid).series.values().next().value;
  const dir = path.join(root, `intruder-${tenant}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, 'intruder.dcm');
  fs.copyFileSync(series.instances[0].path, file);
  const mod = spawnSync('dcmodify', ['-nb', '-gin', '-m', `(0010,0020)=${P2_MRN}`, '-m', `(0008,0018)=${uid}.999.1`, file]);
  assert.equal(mod.status, 0, `dcmodify: ${mod.stderr}`);
  await load(dir, file);
  const q = spawnSync('findscu', ['-S', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${uid}`,
    '-k', `SeriesInstanceUID=${series.seriesUid}`, '-k', 'SOPInstanceUID', '-aec', pacs.aeTitle, '127.0.0.1', String(pacs.port)],
  { encoding: 'utf8' });
  if (!`${q.stdout}${q.stderr}`.includes(`${uid}.999.1`)) {
    t.skip(`${pacs.kind} did not file the intruder under the study (it keeps the other patient's instance apart)`);
    return;
  }
  const r = await h.fhirGet(srv, tenant, `ImagingStudy?patient=${P1_MRN}&identifier=urn:oid:${uid}`);
  h.assertStatus(r, 200);
  const address = h.endpointOf(h.studiesOf(r.json)[0], r.json).address;
  const fullUrl = `${h.localUrl(srv, address)}/studies/${uid}`;
  // Cold: the PACS tells each instance's PatientID only as it arrives. The intruder is never passed
  // on; the first response is refused or cut short (never a whole study), and once the retrieval is
  // complete in the cache every request is refused whole before the first byte.
  let first = null;
  try { first = await h.request(fullUrl, { headers: { accept: h.DICOM_ACCEPT } }); } catch (_) { /* cut */ }
  if (first && first.status === 200) {
    assert.ok(!first.body.includes(Buffer.from(`${uid}.999.1`)), 'the intruder\'s bytes went out');
    assert.ok(!first.body.toString('latin1').trimEnd().endsWith('--'), 'a cut response has no closing boundary');
  } else if (first) {
    h.assertStatus(first, 403);
  }
  await h.waitFor(async () => {
    try { return (await h.request(fullUrl, { headers: { accept: h.DICOM_ACCEPT } })).status === 403; } catch (_) { return false; }
  }, { what: 'the mixed study refused whole', timeoutMs: 30000 });
  h.assertStatus(await h.request(`${fullUrl}/metadata`, { headers: { accept: 'application/dicom+json' } }), 403);
  const hash = crypto.createHash('sha256').update(uid).digest('hex').slice(0, 16);
  const logs = srv.logs();
  assert.match(logs, new RegExp(`refused a retrieval: \\d+ of \\d+ instances .*sha256:${hash}`));
  assert.ok(!logs.includes(P2_MRN) && !logs.includes(P1_MRN), 'no MRN in the log');
}

describe('SMART Imaging IG over a DIMSE PACS (dcmqrscp)', { timeout: 240000, skip: have ? false : 'dcmqrscp is not installed' }, () => {
  let root;
  let pacs;
  let proxy;
  let srv;
  let truth;
  let configDir;
  let dimseDir;
  let dimsePort;
  const uidsOf = (r) => h.studiesOf(r.json).map(h.studyUidOf).sort();
  const studiesOfMrn = (mrn) => [...truth.values()].filter((s) => s.patientId === mrn).map((s) => s.studyUid).sort();
  const start = async () => {
    srv = await server.startServer({ configDir, dimseDir, dimsePort });
    return srv;
  };

  before(async () => {
    root = server.makeTempDir('ig-dimse');
    const samplesDir = path.join(root, 'samples');
    const files = await server.makeSamples(samplesDir, { seed: 1, scale: 0.1 });
    truth = h.truthOf(files);
    dimsePort = await server.freePort();
    pacs = await pacsLib.startDcmqrscp({ facades: [{ ae: 'IGFAST', port: dimsePort }, { ae: 'IGSLOW', port: dimsePort }, { ae: 'IGWAIT', port: dimsePort }] });
    await pacs.load(samplesDir);
    proxy = await delayingProxy(pacs.port);
    configDir = path.join(root, 'config');
    dimseDir = path.join(root, 'dimse');
    const tenant = (port, ae, extra) => pacsLib.dimseTenant({ port, calledAe: pacs.aeTitle, ae, retrieval: 'c-get', extra });
    server.writeTenant(configDir, 'fast', tenant(pacs.port, 'IGFAST'));
    server.writeTenant(configDir, 'slow', tenant(proxy.port, 'IGSLOW', { slowSearch: 100 }));
    server.writeTenant(configDir, 'waiting', tenant(proxy.port, 'IGWAIT'));
    await start();
  });
  after(async () => {
    if (srv) await srv.stop();
    if (proxy) await proxy.close();
    if (pacs) await pacs.cleanup();
    if (root) server.removeDir(root);
  });

  it('meta.lastUpdated is when we first saw the study; _lastUpdated agrees; it survives a restart', async () => {
    const r = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${P1_MRN}&_include=ImagingStudy:endpoint`);
    h.assertStatus(r, 200);
    assertValid(r.json, 'DIMSE searchset');
    assert.deepEqual(uidsOf(r), studiesOfMrn(P1_MRN));
    const seen = new Map(h.studiesOf(r.json).map((s) => [h.studyUidOf(s), s.meta.lastUpdated]));
    for (const v of seen.values()) assert.match(v, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const newest = [...seen.values()].sort().pop();
    await h.sleep(1100);  // a later search must not move the first-seen time
    const again = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${P1_MRN}`);
    for (const s of h.studiesOf(again.json)) assert.equal(s.meta.lastUpdated, seen.get(h.studyUidOf(s)));
    const none = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${P1_MRN}&_lastUpdated=gt${newest}`);
    h.assertStatus(none, 200);
    assert.equal(h.studiesOf(none.json).length, 0);
    const all = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${P1_MRN}&_lastUpdated=le${newest}`);
    assert.deepEqual(uidsOf(all), studiesOfMrn(P1_MRN));
    await srv.stop();
    await start();
    const after = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${P1_MRN}`);
    for (const s of h.studiesOf(after.json)) assert.equal(s.meta.lastUpdated, seen.get(h.studyUidOf(s)), 'kept across a restart');
  });

  it('slowSearch: 503 with an integer Retry-After, then the identical retry is served from the background C-FIND', async () => {
    // C-FINDs one search costs for each patient, measured directly at the PACS.
    const findsOf = async (mrn) => {
      const b = pacs.countFinds();
      const r = await h.fhirGet(srv, 'fast', `ImagingStudy?patient=${mrn}`);
      h.assertStatus(r, 200);
      await pacsLib.until(() => pacs.countFinds() > b, { what: 'the C-FINDs logged' });
      await h.sleep(300);
      return { r, n: pacs.countFinds() - b };
    };
    const { r: fast, n: findsP1 } = await findsOf(P1_MRN);
    const { n: findsP2 } = await findsOf(P2_MRN);

    proxy.delayMs = 1500;
    try {
      const base = pacs.countFinds();
      const first = await h.fhirGet(srv, 'slow', `ImagingStudy?patient=${P1_MRN}`);
      h.assertOperationOutcome(first, 503);
      const ra = first.headers.get('retry-after');
      assert.match(ra, /^[1-9]\d*$/, `Retry-After ${ra}`);
      // Another patient's identical-looking search is its own query, never P1's result.
      const other = h.fhirGet(srv, 'slow', `ImagingStudy?patient=${P2_MRN}`);
      let ok = null;
      let retries = 0;
      while (!ok) {
        const r = await h.fhirGet(srv, 'slow', `ImagingStudy?patient=${P1_MRN}`);
        if (r.status === 200) ok = r;
        else { h.assertOperationOutcome(r, 503); retries++; await h.sleep(200); }
        assert.ok(retries < 200, 'the background search finished');
      }
      assert.deepEqual(uidsOf(ok), uidsOf(fast));
      assertValid(ok.json, 'slow searchset');
      const o = await other;
      if (o.status === 503) {
        let r2;
        do { await h.sleep(200); r2 = await h.fhirGet(srv, 'slow', `ImagingStudy?patient=${P2_MRN}`); } while (r2.status === 503);
        h.assertStatus(r2, 200);
        assert.deepEqual(uidsOf(r2), studiesOfMrn(P2_MRN));
      } else {
        h.assertStatus(o, 200);
        assert.deepEqual(uidsOf(o), studiesOfMrn(P2_MRN));
      }
      await h.sleep(300);
      // One background query per patient, however many retries: P1's and P2's.
      assert.equal(pacs.countFinds() - base, findsP1 + findsP2, `C-FINDs for ${retries} retries`);
    } finally {
      proxy.delayMs = 0;
    }
  });

  it('without slowSearch a slow PACS is waited for (the default)', async () => {
    proxy.delayMs = 700;
    try {
      const r = await h.fhirGet(srv, 'waiting', `ImagingStudy?patient=${P1_MRN}`);
      h.assertStatus(r, 200);
      assert.deepEqual(uidsOf(r), studiesOfMrn(P1_MRN));
    } finally {
      proxy.delayMs = 0;
    }
  });

  it('a PACS study that mixes two patients\' instances is refused whole (403), logged without PHI', (t) =>
    mixedPatientCase(t, { pacs, srv, tenant: 'fast', truth, root, load: (dir) => pacs.load(dir) }));
});

const haveOrthanc = fs.existsSync(process.env.ORTHANC_BIN || '/usr/sbin/Orthanc');
describe('SMART Imaging IG over a DIMSE PACS (Orthanc)', { timeout: 240000, skip: haveOrthanc && have ? false : 'Orthanc is not installed' }, () => {
  let root;
  let pacs;
  let srv;
  let truth;
  before(async () => {
    root = server.makeTempDir('ig-orthanc');
    const files = await server.makeSamples(path.join(root, 'samples'), { seed: 1, scale: 0.1 });
    truth = h.truthOf(files);
    const dimsePort = await server.freePort();
    pacs = await pacsLib.startOrthanc({ facades: [{ ae: 'IGORTH', port: dimsePort }] });
    await pacs.load(files.filter((f) => f.patientId === P1_MRN).map((f) => f.path));
    const configDir = path.join(root, 'config');
    server.writeTenant(configDir, 'orthanc', pacsLib.dimseTenant({ port: pacs.port, calledAe: pacs.aeTitle, ae: 'IGORTH', retrieval: 'c-get' }));
    srv = await server.startServer({ configDir, dimseDir: path.join(root, 'dimse'), dimsePort });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (pacs) await pacs.cleanup();
    if (root) server.removeDir(root);
  });

  it('a PACS study that mixes two patients\' instances is refused whole (403), logged without PHI', (t) =>
    mixedPatientCase(t, { pacs, srv, tenant: 'orthanc', truth, root, load: (dir, file) => pacs.load([file]) }));
});
