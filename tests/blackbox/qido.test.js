'use strict';
// QIDO-RS, WADO-RS metadata with BulkDataURIs, and /bulk/{tag} under the study token,
// through dicomweb-client (the library OHIF uses) with the xhr2 polyfill, against a
// folder tenant and a DIMSE tenant over Orthanc. Content is checked against the sample
// files; queries never reach beyond the token's study.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
global.XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');
const h = require('./lib/helpers');
const server = require('./lib/server');
const pacsLib = require('./lib/pacs');
const { parseDicom } = require('./lib/dicom');

const HAVE_ORTHANC = fs.existsSync(process.env.ORTHANC_BIN || '/usr/sbin/Orthanc');

// ---- the truth about pixel data ----------------------------------------------------------

// The Pixel Data of a sample file as /bulk must give it: one part with the native value, or
// one part per frame (fragments concatenated) when encapsulated.
function pixelPartsOf(file) {
  const buf = fs.readFileSync(file.path);
  const d = parseDicom(buf);
  const px = d.dataset['7FE00010'];
  assert.ok(px, `${file.path} has Pixel Data`);
  if (px.length !== 0xffffffff) return [buf.subarray(px.offset, px.offset + px.length)];
  const frames = Number(d.get('00280008') || 1);
  const items = [];
  let pos = px.offset;
  while (pos + 8 <= buf.length) {
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const len = buf.readUInt32LE(pos + 4);
    pos += 8;
    assert.equal(group, 0xfffe, 'item tag in encapsulated pixel data');
    if (element === 0xe0dd) break;
    items.push(buf.subarray(pos, pos + len));
    pos += len;
  }
  const fragments = items.slice(1);
  if (frames === 1) return [Buffer.concat(fragments)];
  assert.equal(fragments.length, frames, 'samples hold one fragment per frame');
  return fragments;
}

const toBuf = (ab) => Buffer.from(ab instanceof ArrayBuffer ? new Uint8Array(ab) : ab);
const first = (attr) => (attr && attr.Value ? attr.Value[0] : undefined);
const uidsOf = (answer, tag) => answer.map((o) => first(o[tag]));

// ---- the checks, shared by every source ----------------------------------------------------

// ctx: {address (the Endpoint address), root (the same on this test's loopback URL), study (truth), other (another
// study's truth, or undefined), bySop, srv}
function qidoSuite(ctx) {
  const client = () => new api.DICOMwebClient({ url: ctx().root });

  it('searchForStudies finds exactly the bound study, with its attributes and counts', async () => {
    const { study } = ctx();
    const studies = await client().searchForStudies();
    assert.equal(studies.length, 1, 'one study under a study token');
    const s = studies[0];
    assert.equal(first(s['0020000D']), study.studyUid);
    assert.equal(first(s['00100020']), study.patientId);
    assert.equal(first(s['00080020']), study.studyDate);
    assert.equal(first(s['00201208']), study.instanceCount, 'NumberOfStudyRelatedInstances');
    assert.equal(first(s['00201206']), study.series.size, 'NumberOfStudyRelatedSeries');
    assert.deepEqual(s['00080061'].Value, study.modalities, 'ModalitiesInStudy');
    assert.equal(first(s['00081190']), `${ctx().address}/studies/${study.studyUid}`, 'RetrieveURL');
    const byUid = await client().searchForStudies({ queryParams: { StudyInstanceUID: study.studyUid } });
    assert.equal(byUid.length, 1, 'StudyInstanceUID of the bound study');
    const byPatient = await client().searchForStudies({ queryParams: { PatientID: study.patientId, fuzzymatching: 'true' } });
    assert.equal(byPatient.length, 1, 'PatientID of the bound study');
  });

  it('a query for another study, or another patient, returns nothing', async () => {
    const { other, study } = ctx();
    const otherUid = other ? other.studyUid : '1.2.826.0.1.3680043.10.1.999999';
    assert.deepEqual(await client().searchForStudies({ queryParams: { StudyInstanceUID: otherUid } }), []);
    assert.deepEqual(await client().searchForStudies({ queryParams: { PatientID: `${study.patientId}x` } }), []);
    // A path naming another study is refused as WADO refuses it.
    const r = await h.request(`${ctx().root}/studies/${otherUid}/series`, { headers: { accept: 'application/dicom+json' } });
    h.assertStatus(r, [403, 404]);
    // A token that does not verify gets nothing at the WADO root either.
    const bad = ctx().root.replace(/\/wado\/[^/]+/, '/wado/not-a-token');
    h.assertStatus(await h.request(`${bad}/studies`), 403);
  });

  it('searchForSeries gives every series in number order, with modality and instance count', async () => {
    const { study } = ctx();
    const series = await client().searchForSeries({ studyInstanceUID: study.studyUid });
    const expected = [...study.series.values()].sort((a, b) => a.number - b.number);
    assert.deepEqual(uidsOf(series, '0020000E'), expected.map((s) => s.seriesUid));
    for (const [i, s] of series.entries()) {
      assert.equal(first(s['00080060']), expected[i].modality);
      assert.equal(first(s['00200011']), expected[i].number);
      assert.equal(first(s['00201209']), expected[i].instances.length, 'NumberOfSeriesRelatedInstances');
      assert.equal(first(s['0020000D']), study.studyUid);
    }
    const mod = expected[0].modality;
    const only = await client().searchForSeries({ studyInstanceUID: study.studyUid, queryParams: { Modality: mod } });
    assert.deepEqual(uidsOf(only, '0020000E').sort(), expected.filter((s) => s.modality === mod).map((s) => s.seriesUid).sort());
  });

  it('searchForInstances at study and series level, with matching keys and wildcards', async () => {
    const { study } = ctx();
    const all = await client().searchForInstances({ studyInstanceUID: study.studyUid });
    const expectedAll = [...study.series.values()].flatMap((s) => s.instances.map((i) => i.sopUid)).sort();
    assert.deepEqual(uidsOf(all, '00080018').sort(), expectedAll);
    const se = [...study.series.values()].sort((a, b) => b.instances.length - a.instances.length)[0];
    const inSeries = await client().searchForInstances({ studyInstanceUID: study.studyUid, seriesInstanceUID: se.seriesUid });
    const expected = [...se.instances].sort((a, b) => a.number - b.number);
    assert.deepEqual(uidsOf(inSeries, '00080018'), expected.map((i) => i.sopUid), 'ordered by InstanceNumber');
    for (const [k, o] of inSeries.entries()) {
      assert.equal(first(o['00080016']), expected[k].sopClass);
      assert.equal(first(o['00200013']), expected[k].number);
    }
    const one = expected[0];
    const byNumber = await client().searchForInstances({
      studyInstanceUID: study.studyUid, queryParams: { SeriesInstanceUID: se.seriesUid, InstanceNumber: String(one.number) },
    });
    assert.deepEqual(uidsOf(byNumber, '00080018'), expected.filter((i) => i.number === one.number).map((i) => i.sopUid));
    const prefix = one.sopUid.slice(0, one.sopUid.length - 3);
    const wild = await client().searchForInstances({ studyInstanceUID: study.studyUid, queryParams: { SOPInstanceUID: `${prefix}*` } });
    assert.ok(uidsOf(wild, '00080018').includes(one.sopUid), 'wildcard on a UID');
    assert.ok(wild.every((o) => first(o['00080018']).startsWith(prefix)));
    const none = await client().searchForInstances({ studyInstanceUID: study.studyUid, queryParams: { SOPClassUID: '1.2.3.4.5' } });
    assert.deepEqual(none, []);
  });

  it('includefield, limit and offset', async () => {
    const { study } = ctx();
    const all = await client().searchForInstances({ studyInstanceUID: study.studyUid });
    const page = await client().searchForInstances({ studyInstanceUID: study.studyUid, queryParams: { limit: '2', offset: '1' } });
    assert.deepEqual(uidsOf(page, '00080018'), uidsOf(all, '00080018').slice(1, 3));
    const beyond = await client().searchForInstances({ studyInstanceUID: study.studyUid, queryParams: { offset: String(all.length) } });
    assert.deepEqual(beyond, []);
    const series = await client().searchForSeries({ studyInstanceUID: study.studyUid });
    assert.ok(!series[0]['00280010'], 'Rows is no series default');
    const withRows = await client().searchForSeries({ studyInstanceUID: study.studyUid, queryParams: { includefield: 'Rows,00280011' } });
    assert.ok(withRows[0]['00280010'] && withRows[0]['00280011'], 'includefield by keyword and tag');
    const allFields = await client().searchForSeries({ studyInstanceUID: study.studyUid, queryParams: { includefield: 'all' } });
    assert.ok(allFields[0]['00280010'] && allFields[0]['00100010'], 'includefield=all');
    assert.ok(!allFields[0]['7FE00010'], 'no bulk data in QIDO answers');
  });

  it('answers DICOM JSON also to Accept: application/json; refuses bad queries with 400, others with 406', async () => {
    const { study } = ctx();
    const url = `${ctx().root}/studies/${study.studyUid}/series`;
    const r = await h.request(url, { headers: { accept: 'application/json' } });
    h.assertStatus(r, 200);
    assert.match(r.headers.get('content-type'), /^application\/dicom\+json/);
    assert.equal(JSON.parse(r.body.toString()).length, study.series.size);
    h.assertStatus(await h.request(`${url}?limit=many`), 400);
    h.assertStatus(await h.request(`${url}?NoSuchKeyword=1`), 400);
    h.assertStatus(await h.request(url, { headers: { accept: 'image/png' } }), 406);
  });

  it('CORS: preflight and headers on QIDO, metadata and bulk', async () => {
    const { study } = ctx();
    const se = [...study.series.values()][0];
    const inst = se.instances[0];
    const urls = [
      `${ctx().root}/studies`,
      `${ctx().root}/studies/${study.studyUid}/series/${se.seriesUid}/metadata`,
      `${ctx().root}/studies/${study.studyUid}/series/${se.seriesUid}/instances/${inst.sopUid}/bulk/7fe00010`,
    ];
    for (const url of urls) {
      const pre = await h.request(url, {
        method: 'OPTIONS',
        headers: { origin: 'http://viewer.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'accept' },
      });
      h.assertStatus(pre, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'http://viewer.example');
      assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
      const r = await h.request(url, { headers: { origin: 'http://viewer.example' } });
      h.assertStatus(r, 200);
      assert.equal(r.headers.get('access-control-allow-origin'), 'http://viewer.example', url);
    }
  });

  it('retrieveStudyMetadata and retrieveSeriesMetadata carry BulkDataURIs to our /bulk endpoint', async () => {
    const { study } = ctx();
    const meta = await client().retrieveStudyMetadata({ studyInstanceUID: study.studyUid });
    assert.equal(meta.length, study.instanceCount);
    for (const o of meta) {
      const se = first(o['0020000E']);
      const sop = first(o['00080018']);
      assert.equal(first(o['0020000D']), study.studyUid);
      assert.ok(o['7FE00010'], `${sop} lists Pixel Data`);
      assert.equal(o['7FE00010'].BulkDataURI,
        `${ctx().address}/studies/${study.studyUid}/series/${se}/instances/${sop}/bulk/7fe00010`);
      assert.ok(!o['7FE00010'].InlineBinary, 'pixel data never inline');
    }
    const se = [...study.series.values()][0];
    const seriesMeta = await client().retrieveSeriesMetadata({ studyInstanceUID: study.studyUid, seriesInstanceUID: se.seriesUid });
    assert.deepEqual(uidsOf(seriesMeta, '00080018').sort(), se.instances.map((i) => i.sopUid).sort());
  });

  it('retrieveInstance gives the stored file', async () => {
    const { study, bySop } = ctx();
    const se = [...study.series.values()][0];
    const inst = se.instances[0];
    const got = await client().retrieveInstance({
      studyInstanceUID: study.studyUid, seriesInstanceUID: se.seriesUid, sopInstanceUID: inst.sopUid,
    });
    assert.ok(toBuf(got).equals(fs.readFileSync(bySop.get(inst.sopUid).path)), 'byte-identical');
  });

  it('retrieveBulkData on every instance\'s BulkDataURI gives its Pixel Data as stored', async () => {
    const { study, bySop } = ctx();
    const meta = await client().retrieveStudyMetadata({ studyInstanceUID: study.studyUid });
    let encapsulated = 0;
    for (const o of meta) {
      const sop = first(o['00080018']);
      const expected = pixelPartsOf(bySop.get(sop));
      const parts = await client().retrieveBulkData({ BulkDataURI: o['7FE00010'].BulkDataURI });
      assert.equal(parts.length, expected.length, `${sop}: parts`);
      for (const [k, p] of parts.entries()) assert.ok(toBuf(p).equals(expected[k]), `${sop}: part ${k} differs`);
      if (parseDicom(fs.readFileSync(bySop.get(sop).path)).dataset['7FE00010'].length === 0xffffffff) encapsulated++;
    }
    ctx().encapsulatedSeen = (ctx().encapsulatedSeen || 0) + encapsulated;
  });

  it('bulk: 404 for a tag the instance lacks, 400 for a malformed one, values of other attributes', async () => {
    const { study, bySop } = ctx();
    const se = [...study.series.values()][0];
    const inst = se.instances[0];
    const base = `${ctx().root}/studies/${study.studyUid}/series/${se.seriesUid}/instances/${inst.sopUid}/bulk`;
    h.assertStatus(await h.request(`${base}/00091010`), 404);
    h.assertStatus(await h.request(`${base}/7fe0001`), 400);
    h.assertStatus(await h.request(`${base}/zzzzzzzz`), 400);
    h.assertStatus(await h.request(`${base}/7fe00010`, { headers: { accept: 'multipart/related; type="image/png"' } }), 406);
    if (!ctx().passThrough) {
      // Native values are Explicit VR Little Endian already; other syntaxes would need transcoding.
      const ele = await h.request(`${base}/7fe00010`, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1' } });
      h.assertStatus(ele, 200);
      h.assertStatus(await h.request(`${base}/7fe00010`, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50' } }), 406);
    }
    // Unquoted type, as OHIF sends it; any attribute can be asked for: SOP Instance UID here.
    const parts = await client().retrieveBulkData({ BulkDataURI: `${base}/00080018` });
    assert.equal(parts.length, 1);
    assert.equal(toBuf(parts[0]).toString('latin1').replace(/\0$/, ''), inst.sopUid);
    const r = await h.request(`${base}/00080018`, { headers: { accept: 'multipart/related; type=application/octet-stream' } });
    h.assertStatus(r, 200);
    assert.match(r.headers.get('content-type'), /^multipart\/related/);
    void bySop;
  });
}

// ---- folder source ---------------------------------------------------------------------

describe('QIDO-RS, metadata and bulk data over a folder source', { timeout: 180000 }, () => {
  let fx;
  const c = {};
  before(async () => {
    fx = await h.folderFixture({ name: 'qido', seed: 31 });
    const { studies } = await h.searchStudies(fx.server, 'open', `patient=${h.KSHLERIN_MRN}`);
    assert.ok(studies.size >= 2, 'the samples give the patient two studies or more');
    // The study with most instances, another one for the negative cases.
    const ranked = [...studies.keys()].sort((a, b) => fx.truth.get(b).instanceCount - fx.truth.get(a).instanceCount);
    c.study = fx.truth.get(ranked[0]);
    c.other = fx.truth.get(ranked[1]);
    c.address = studies.get(ranked[0]).address; // the server's public root (its base URL)
    c.root = h.localUrl(fx.server, c.address);
    c.bySop = h.filesBySop(fx.files);
    c.srv = fx.server;
    c.all = studies;
  });
  after(async () => { if (fx) await fx.cleanup(); });
  qidoSuite(() => c);

  it('every study of the samples, encapsulated ones included, serves its Pixel Data as stored', async () => {
    for (const [uid, { address }] of c.all) {
      const sub = { ...c, study: fx.truth.get(uid), root: h.localUrl(fx.server, address) };
      const client = new api.DICOMwebClient({ url: sub.root });
      const meta = await client.retrieveStudyMetadata({ studyInstanceUID: uid });
      for (const o of meta) {
        const sop = first(o['00080018']);
        const parts = await client.retrieveBulkData({ BulkDataURI: o['7FE00010'].BulkDataURI });
        const expected = pixelPartsOf(c.bySop.get(sop));
        assert.equal(parts.length, expected.length, `${sop}: parts`);
        for (const [k, p] of parts.entries()) assert.ok(toBuf(p).equals(expected[k]), `${sop}: part ${k}`);
      }
    }
  });
});

// ---- DIMSE source over Orthanc -----------------------------------------------------------

describe('QIDO-RS, metadata and bulk data over a DIMSE source (Orthanc)', { timeout: 240000, skip: HAVE_ORTHANC ? false : 'Orthanc is not installed' }, () => {
  let root;
  let pacs;
  let srv;
  const c = {};
  before(async () => {
    root = server.makeTempDir('qido-dimse');
    const samplesDir = path.join(root, 'samples');
    const files = await server.makeSamples(samplesDir, { seed: 32, scale: 0.1 });
    const truth = h.truthOf(files);
    const dimsePort = await server.freePort();
    pacs = await pacsLib.startOrthanc({ facades: [{ ae: 'FACADEGET', port: dimsePort }] });
    await pacs.load(files.map((f) => f.path));
    const configDir = path.join(root, 'config');
    server.writeTenant(configDir, 'get', pacsLib.dimseTenant({ port: pacs.port, calledAe: pacs.aeTitle, ae: 'FACADEGET', retrieval: 'c-get' }));
    srv = await server.startServer({ configDir, dimsePort, dimseDir: path.join(root, 'dimse') });
    // The patient with most studies; their largest study, another for the negative cases.
    const byPatient = new Map();
    for (const st of truth.values()) byPatient.set(st.patientId, [...(byPatient.get(st.patientId) || []), st]);
    const [pid] = [...byPatient.entries()].sort((a, b) => b[1].length - a[1].length)[0];
    const { studies } = await h.searchStudies(srv, 'get', `patient=${encodeURIComponent(pid)}`);
    const ranked = [...studies.keys()].sort((a, b) => truth.get(b).instanceCount - truth.get(a).instanceCount);
    c.study = truth.get(ranked[0]);
    c.other = ranked[1] ? truth.get(ranked[1]) : [...truth.values()].find((s) => s.studyUid !== ranked[0]);
    c.address = studies.get(ranked[0]).address;
    c.root = h.localUrl(srv, c.address);
    c.bySop = h.filesBySop(files);
    c.srv = srv;
  });
  after(async () => {
    if (srv) await srv.stop();
    if (pacs) await pacs.cleanup();
    server.removeDir(root);
  });
  qidoSuite(() => c);
});

// ---- DICOMweb source (Orthanc with its DICOMweb plugin), passed through ------------------

const ow = require('./lib/orthanc-web');

describe('QIDO-RS, metadata and bulk data over a DICOMweb source (Orthanc)', { timeout: 240000, skip: ow.available() || false }, () => {
  let root;
  let orthanc;
  let srv;
  const c = { passThrough: true };
  before(async () => {
    root = server.makeTempDir('qido-dicomweb');
    const files = await server.makeSamples(path.join(root, 'samples'), { seed: 33, scale: 0.1 });
    const truth = h.truthOf(files);
    orthanc = await ow.startOrthancWeb();
    await orthanc.load(files.map((f) => f.path));
    const configDir = path.join(root, 'config');
    server.writeTenant(configDir, 'web', ow.dicomWebTenant(orthanc));
    srv = await server.startServer({ configDir });
    const { studies } = await h.searchStudies(srv, 'web', `patient=${h.KSHLERIN_MRN}`);
    const ranked = [...studies.keys()].sort((a, b) => truth.get(b).instanceCount - truth.get(a).instanceCount);
    c.study = truth.get(ranked[0]);
    c.other = truth.get(ranked[1]);
    c.address = studies.get(ranked[0]).address;
    c.root = h.localUrl(srv, c.address);
    c.bySop = h.filesBySop(files);
    c.srv = srv;
  });
  after(async () => {
    if (srv) await srv.stop();
    if (orthanc) await orthanc.stop();
    server.removeDir(root);
  });
  qidoSuite(() => c);
});
