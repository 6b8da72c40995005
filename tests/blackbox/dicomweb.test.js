'use strict';
// dicom-web tenants against real Debian Orthanc + DICOMweb plugin (HTTP basic auth on),
// loaded with generated studies: FHIR search (validated), WADO-RS study/series/instance/
// metadata passed through byte for byte, upstream errors, the delay mode, and the
// reference tenant files open.json, hardcoded-patient.json, delayed.json (../shared).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/helpers');
const server = require('./lib/server');
const { parseContentType, parseMultipartResponse } = require('./lib/multipart');
const { parseDicom } = require('./lib/dicom');
const ow = require('./lib/orthanc-web');

const SEEDS = path.resolve(__dirname, '../../../shared/seed-configs');
const unavailable = ow.available();

function hardcodedPatient() {
  return h.hardcodedPatientFolderTenant('/unused').authorization;
}

// A study as the FHIR mapping of a DICOMweb source gives it: series level (no instance lists).
function assertSeriesLevelTruth(study, truth) {
  const uid = truth.studyUid;
  assert.deepEqual((study.identifier || []).filter((i) => i.system === 'urn:dicom:uid').map((i) => i.value),
    [`urn:oid:${uid}`]);
  assert.equal(study.numberOfSeries, truth.series.size, `numberOfSeries of ${uid}`);
  assert.equal(study.numberOfInstances, truth.instanceCount, `numberOfInstances of ${uid}`);
  assert.deepEqual([...new Set((study.modality || []).map((m) => m.code))].sort(), truth.modalities, `modality of ${uid}`);
  assert.deepEqual(study.series.map((s) => s.uid).sort(), [...truth.series.keys()].sort(), `series of ${uid}`);
  for (const s of study.series) {
    const ts = truth.series.get(s.uid);
    assert.equal(s.modality.code, ts.modality);
    assert.equal(s.numberOfInstances, ts.instances.length, `series ${s.uid} numberOfInstances`);
    if (ts.number !== undefined) assert.equal(s.number, ts.number);
  }
  if (truth.studyDate) assert.equal(study.started.slice(0, 10).replace(/-/g, ''), truth.studyDate);
}

describe('dicom-web tenants over real Orthanc', { timeout: 120000, skip: unavailable || false }, () => {
  let root;
  let orthanc;
  let srv;
  let files;
  let truth;
  let bySop;
  let silent;       // a TCP server that accepts and never answers
  let broken;       // an HTTP server whose WADO-RS breaks
  const BROKEN_STUDY = '1.2.826.0.1.999.1';
  let seedNames = [];
  const PATIENT = h.KSHLERIN_MRN;
  let t0;                  // when the delayed tenant was written (Unix seconds)
  const LOOKUP_AFTER = 3;  // its lookupUntil and retrieveUntil, seconds after t0
  const RETRIEVE_AFTER = 5;

  before(async () => {
    root = server.makeTempDir('dicomweb');
    files = await server.makeSamples(path.join(root, 'samples'), { seed: 31, scale: 0.1 });
    truth = h.truthOf(files);
    bySop = h.filesBySop(files);
    orthanc = await ow.startOrthancWeb();
    await orthanc.load(files.map((f) => f.path));

    // A DICOMweb server that answers QIDO-RS, then breaks WADO-RS: 500 for metadata, and a
    // study response cut after its head and a few bytes.
    broken = http.createServer((req, res) => {
      const u = new URL(req.url, 'http://x');
      const uid = BROKEN_STUDY;
      if (u.pathname === '/dicom-web/studies') {
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end(JSON.stringify([{ '0020000D': { vr: 'UI', Value: [uid] }, '00100020': { vr: 'LO', Value: [PATIENT] } }]));
      } else if (u.pathname === `/dicom-web/studies/${uid}/series`) {
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end(JSON.stringify([{ '0020000E': { vr: 'UI', Value: [`${uid}.1`] }, '00080060': { vr: 'CS', Value: ['CT'] } }]));
      } else if (u.pathname === `/dicom-web/studies/${uid}/metadata`) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error, password=${ow.PASSWORD}`);
      } else if (u.pathname === `/dicom-web/studies/${uid}`) {
        res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=b0', 'content-length': '100000' });
        res.write('--b0\r\nContent-Type: application/dicom\r\n\r\n' + 'x'.repeat(1000));
        setTimeout(() => res.destroy(), 50);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise((r) => broken.listen(0, '127.0.0.1', r));
    silent = net.createServer(() => { /* accept, never answer */ });
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const deadPort = await server.freePort();

    const configDir = path.join(root, 'config');
    t0 = Math.floor(Date.now() / 1000);
    const tenants = {
      open: ow.dicomWebTenant(orthanc),
      mrn: ow.dicomWebTenant(orthanc, { lookup: 'studies-by-mrn', authorization: hardcodedPatient() }),
      soon: ow.dicomWebTenant(orthanc, { extra: { delay: { lookupUntil: t0 + LOOKUP_AFTER, retrieveUntil: t0 + RETRIEVE_AFTER } } }),
      // Fixed windows, so the 503s are seen however slow the machine is.
      closed: ow.dicomWebTenant(orthanc, { extra: { delay: { lookupUntil: t0 + 3600, retrieveUntil: t0 + 3600 } } }),
      searchable: ow.dicomWebTenant(orthanc, { extra: { delay: { lookupUntil: t0 - 60, retrieveUntil: t0 + 3600 } } }),
      wrongpw: { ...ow.dicomWebTenant(orthanc), images: { ...ow.dicomWebTenant(orthanc).images,
        authentication: { type: 'http-basic', username: ow.USER, password: 'not-the-password' } } },
      down: { ...ow.dicomWebTenant(orthanc), images: { ...ow.dicomWebTenant(orthanc).images, endpoint: `http://127.0.0.1:${deadPort}/dicom-web` } },
      broken: { ...ow.dicomWebTenant(orthanc), images: { ...ow.dicomWebTenant(orthanc).images,
        endpoint: `http://127.0.0.1:${broken.address().port}/dicom-web` } },
      stalled: { ...ow.dicomWebTenant(orthanc), images: { ...ow.dicomWebTenant(orthanc).images,
        endpoint: `http://127.0.0.1:${silent.address().port}/dicom-web`, timeoutSeconds: 1 } },
    };
    for (const [name, cfg] of Object.entries(tenants)) server.writeTenant(configDir, name, cfg);
    if (fs.existsSync(SEEDS)) {
      // The reference files with only the endpoint rewritten and our test user's credentials.
      for (const name of ['open', 'hardcoded-patient', 'delayed']) {
        const cfg = JSON.parse(fs.readFileSync(path.join(SEEDS, `${name}.json`), 'utf8'));
        cfg.images.endpoint = orthanc.root;
        cfg.images.authentication.username = ow.USER;
        cfg.images.authentication.password = ow.PASSWORD;
        server.writeTenant(configDir, `seed-${name}`, cfg);
        seedNames.push(name);
      }
    }
    srv = await server.startServer({ configDir });
  });

  after(async () => {
    if (srv) await srv.stop();
    if (orthanc) await orthanc.stop();
    if (silent) silent.close();
    if (broken) broken.close();
    server.removeDir(root);
  });

  const wado = (address, rel) => h.localUrl(srv, `${address}${rel}`);

  function checkParts(parts) {
    const sops = [];
    for (const [i, p] of parts.entries()) {
      assert.equal(parseContentType(p.headers['content-type']).type, 'application/dicom', `part ${i} content-type`);
      const sop = parseDicom(p.body).get('00080018');
      const file = bySop.get(sop);
      assert.ok(file, `part ${i} is SOP ${sop}, which is no loaded file`);
      assert.ok(p.body.equals(fs.readFileSync(file.path)), `part ${i} (${sop}) differs from ${file.path}`);
      sops.push(sop);
    }
    return sops.sort();
  }

  async function retrieve(url, accept = h.DICOM_ACCEPT) {
    const r = await h.request(url, { headers: accept ? { accept } : {} });
    h.assertStatus(r, 200);
    const parsed = parseMultipartResponse(r.headers.get('content-type'), r.body);
    return { r, parts: parsed.parts, boundary: parsed.contentType.params.boundary };
  }

  async function searchAll(tenant, query) {
    const { bundle, studies } = await h.searchStudies(srv, tenant, query);
    h.assertValidFhir(bundle, `${tenant} searchset`);
    for (const e of bundle.entry || []) h.assertValidFhir(e.resource, `${tenant} entry`);
    return studies;
  }

  it('the delay mode: FHIR search and WADO answer 503 with an integer Retry-After until their moments', async () => {
    const now = () => Date.now() / 1000;
    {
      const r = await h.fhirGet(srv, 'closed', `ImagingStudy?patient=${PATIENT}`);
      h.assertOperationOutcome(r, 503);
      const ra = r.headers.get('retry-after');
      assert.match(ra, /^[1-9]\d*$/, `Retry-After ${ra}`);
      assert.ok(Number(ra) <= 3601 && Number(ra) >= 3500, `Retry-After ${ra} counts down to lookupUntil`);
    }
    {
      // Lookup open, retrieval not yet: the search answers, the Endpoint says 503.
      const found = (await h.searchStudies(srv, 'searchable', `patient=${PATIENT}`)).studies;
      const [uid, { address }] = [...found][0];
      for (const rel of [`/studies/${uid}`, `/studies/${uid}/metadata`]) {
        const r = await h.request(wado(address, rel), { headers: { accept: rel.endsWith('metadata') ? 'application/dicom+json' : h.DICOM_ACCEPT } });
        h.assertStatus(r, 503);
        assert.match(r.headers.get('retry-after'), /^[1-9]\d*$/);
      }
    }
    // And the moments pass: both open without a restart.
    if (now() < t0 + LOOKUP_AFTER - 0.5) {
      const r = await h.fhirGet(srv, 'soon', `ImagingStudy?patient=${PATIENT}`);
      h.assertOperationOutcome(r, 503);
    }
    await h.waitFor(async () => (await h.fhirGet(srv, 'soon', `ImagingStudy?patient=${PATIENT}`)).status === 200,
      { timeoutMs: 15000, intervalMs: 250, what: 'lookup open after lookupUntil' });
    const found = (await h.searchStudies(srv, 'soon', `patient=${PATIENT}`)).studies;
    const [uid, { address }] = [...found][0];
    await h.waitFor(async () => (await h.request(wado(address, `/studies/${uid}`), { headers: { accept: h.DICOM_ACCEPT } })).status === 200,
      { timeoutMs: 15000, intervalMs: 250, what: 'retrieval open after retrieveUntil' });
    checkParts((await retrieve(wado(address, `/studies/${uid}`))).parts);
  });

  it('FHIR search: every study on the server, valid R4, series level matching the files', async () => {
    const found = await searchAll('open', `patient=${PATIENT}`);
    assert.equal(found.size, truth.size, 'all-studies-on-server finds every study');
    for (const [uid, { study }] of found) assertSeriesLevelTruth(study, truth.get(uid));
    const mod = await searchAll('open', `patient=${PATIENT}&modality=MR`);
    assert.deepEqual([...mod.keys()].sort(), [...truth.values()].filter((t) => t.modalities.includes('MR')).map((t) => t.studyUid).sort());
  });

  it('studies-by-mrn asks Orthanc by PatientID and finds only that patient\'s studies', async () => {
    const found = await searchAll('mrn', `patient=${h.HARDCODED_PATIENT_ID}`);
    const mine = [...truth.values()].filter((t) => t.patientId === PATIENT).map((t) => t.studyUid).sort();
    assert.ok(mine.length > 0);
    assert.deepEqual([...found.keys()].sort(), mine);
    // Retrieval under it: every instance's PatientID is checked first (instance-level QIDO-RS).
    for (const [uid, { address }] of found) {
      const { parts } = await retrieve(wado(address, `/studies/${uid}`));
      assert.equal(checkParts(parts).length, truth.get(uid).instanceCount);
      const meta = await h.request(wado(address, `/studies/${uid}/metadata`));
      h.assertStatus(meta, 200);
      assert.ok(meta.json.every((o) => o['00100020'].Value[0] === PATIENT));
    }
  });

  it('WADO-RS study, series and instance: Orthanc\'s response passed through, parts byte for byte', async () => {
    const found = await searchAll('open', `patient=${PATIENT}`);
    for (const [uid, { address }] of found) {
      const { r, parts, boundary } = await retrieve(wado(address, `/studies/${uid}`));
      assert.equal((r.headers.get('transfer-encoding') || '').toLowerCase(), 'chunked');
      const expected = [...truth.get(uid).series.values()].flatMap((s) => s.instances.map((i) => i.sopUid)).sort();
      assert.deepEqual(checkParts(parts), expected, `instances of ${uid}`);
      assert.ok(!boundary.startsWith('si-'), 'the upstream boundary is passed back, not ours');
    }
    const [uid, { address }] = [...found][0];
    const se = truth.get(uid).series.values().next().value;
    const series = await retrieve(wado(address, `/studies/${uid}/series/${se.seriesUid}`), null);
    assert.deepEqual(checkParts(series.parts), se.instances.map((i) => i.sopUid).sort(), 'no Accept: the stored files');
    const inst = se.instances[0];
    const one = await retrieve(wado(address, `/studies/${uid}/series/${se.seriesUid}/instances/${inst.sopUid}`));
    assert.deepEqual(checkParts(one.parts), [inst.sopUid]);
    // Frames pass through too (Orthanc decodes them), with its Content-Type.
    const frames = await h.request(wado(address, `/studies/${uid}/series/${se.seriesUid}/instances/${inst.sopUid}/frames/1`),
      { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    h.assertStatus(frames, 200);
    const fparsed = parseMultipartResponse(frames.headers.get('content-type'), frames.body);
    assert.match(fparsed.contentType.params.type, /^application\/octet-stream/);
    assert.equal(fparsed.parts.length, 1);
    assert.ok(fparsed.parts[0].body.length > 0);
    // Rendered and thumbnails pass through as well: Orthanc renders, we forward its picture.
    const instUrl = wado(address, `/studies/${uid}/series/${se.seriesUid}/instances/${inst.sopUid}`);
    const rendered = await h.request(`${instUrl}/rendered`);
    h.assertStatus(rendered, 200);
    assert.match(rendered.headers.get('content-type'), /^image\/jpeg/);
    assert.equal(rendered.body.subarray(0, 2).toString('hex'), 'ffd8', 'a JPEG from the upstream');
    const png = await h.request(`${instUrl}/rendered`, { headers: { accept: 'image/png' } });
    h.assertStatus(png, 200);
    assert.equal(png.body.subarray(1, 4).toString('latin1'), 'PNG', 'the Accept is forwarded');

    // The same bytes as from Orthanc directly (same study, same run).
    const direct = await orthanc.get(`/dicom-web/studies/${uid}`, { accept: h.DICOM_ACCEPT });
    const directParts = parseMultipartResponse(direct.headers.get('content-type'), direct.body).parts;
    const ours = (await retrieve(wado(address, `/studies/${uid}`))).parts;
    assert.equal(ours.length, directParts.length);
    const key = (p) => parseDicom(p.body).get('00080018');
    const directBySop = new Map(directParts.map((p) => [key(p), p.body]));
    for (const p of ours) assert.ok(p.body.equals(directBySop.get(key(p))), 'part identical to Orthanc\'s');
  });

  it('metadata at each level: DICOM JSON, upstream URLs rewritten to our WADO root, bulk data reachable', async () => {
    const found = await searchAll('open', `patient=${PATIENT}`);
    const [uid, { address }] = [...found][0];
    const t = truth.get(uid);
    const all = [...t.series.values()].flatMap((s) => s.instances);
    const se = t.series.values().next().value;
    for (const [rel, expected] of [[`/studies/${uid}/metadata`, all],
      [`/studies/${uid}/series/${se.seriesUid}/metadata`, se.instances],
      [`/studies/${uid}/series/${se.seriesUid}/instances/${se.instances[0].sopUid}/metadata`, [se.instances[0]]]]) {
      const r = await h.request(wado(address, rel), { headers: { accept: 'application/dicom+json' } });
      h.assertStatus(r, 200);
      assert.match(r.headers.get('content-type'), /^application\/dicom\+json/);
      assert.deepEqual(r.json.map((o) => o['00080018'].Value[0]).sort(), expected.map((i) => i.sopUid).sort(), rel);
      assert.ok(!r.text.includes(`:${orthanc.httpPort}`), 'no upstream address in metadata');
      for (const o of r.json) {
        const px = o['7FE00010'];
        if (px && px.BulkDataURI) assert.ok(px.BulkDataURI.startsWith(address), `BulkDataURI ${px.BulkDataURI}`);
      }
    }
    const r = await h.request(wado(address, `/studies/${uid}/metadata`));
    const uri = r.json.map((o) => o['7FE00010'] && o['7FE00010'].BulkDataURI).find(Boolean);
    if (uri) {
      const bulk = await h.request(h.localUrl(srv, uri));
      h.assertStatus(bulk, 200);
      assert.match(bulk.headers.get('content-type'), /^multipart\/related/);
    }
  });

  it('upstream 404 is 404; a refused Accept is 406; broken, unreachable, stalled upstreams 502/503/504', async () => {
    const found = await searchAll('open', `patient=${PATIENT}`);
    const [uid, { address }] = [...found][0];
    const se = truth.get(uid).series.values().next().value;
    const missing = await h.request(wado(address, `/studies/${uid}/series/1.2.3.999`), { headers: { accept: h.DICOM_ACCEPT } });
    h.assertStatus(missing, 404);
    const missingInst = await h.request(wado(address, `/studies/${uid}/series/${se.seriesUid}/instances/1.2.3.999`));
    h.assertStatus(missingInst, 404);
    // Orthanc's plugin 1.7 has no single-part application/dicom: its refusal is passed on as 406.
    const single = await h.request(wado(address, `/studies/${uid}/series/${se.seriesUid}/instances/${se.instances[0].sopUid}`),
      { headers: { accept: 'application/dicom' } });
    h.assertStatus(single, [200, 406]);

    const wrong = await h.fhirGet(srv, 'wrongpw', `ImagingStudy?patient=${PATIENT}`);
    h.assertOperationOutcome(wrong, 502);
    const down = await h.fhirGet(srv, 'down', `ImagingStudy?patient=${PATIENT}`);
    h.assertStatus(down, 503);
    assert.match(down.headers.get('retry-after') || '', /^\d+$/);
    const t1 = Date.now();
    const stalled = await h.fhirGet(srv, 'stalled', `ImagingStudy?patient=${PATIENT}`);
    h.assertStatus(stalled, 504);
    assert.ok(Date.now() - t1 < 5000, 'the stall limit (timeoutSeconds: 1) ended it');
    for (const r of [wrong, down, stalled]) {
      assert.ok(!r.text.includes(ow.PASSWORD) && !r.text.includes(orthanc.auth.slice(6)), 'no credentials in error bodies');
    }
  });

  it('a broken upstream: 502 before the head (its body never passed on), a cut response after it', async () => {
    const found = (await h.searchStudies(srv, 'broken', `patient=${PATIENT}`)).studies;
    const { address } = found.get(BROKEN_STUDY);
    const meta = await h.request(wado(address, `/studies/${BROKEN_STUDY}/metadata`));
    h.assertStatus(meta, 502);
    assert.ok(!meta.text.includes(ow.PASSWORD) && !meta.text.includes('internal error'), meta.text);
    let complete = false;
    try {
      const r = await fetch(wado(address, `/studies/${BROKEN_STUDY}`), { headers: { accept: h.DICOM_ACCEPT } });
      assert.equal(r.status, 200, 'the head went out before the break');
      const body = Buffer.from(await r.arrayBuffer());
      complete = body.includes('--b0--');
    } catch (_) { /* the connection was dropped: what a cut response looks like */ }
    assert.ok(!complete, 'a cut upstream response never looks complete');
  });

  it('reference tenant files open.json and hardcoded-patient.json pass the same checks', async (t) => {
    if (!seedNames.length) { t.skip(`../shared/seed-configs is absent (${SEEDS}): reference tenant files not checked`); return; }
    const open = await searchAll('seed-open', `patient=${PATIENT}`);
    assert.equal(open.size, truth.size);
    const hard = await searchAll('seed-hardcoded-patient', `patient=${h.HARDCODED_PATIENT_ID}`);
    assert.equal(hard.size, truth.size, 'hardcoded-patient.json looks up all studies on the server');
    for (const found of [open, hard]) {
      for (const [uid, { study, address }] of found) {
        assertSeriesLevelTruth(study, truth.get(uid));
        const { parts } = await retrieve(wado(address, `/studies/${uid}`));
        assert.equal(checkParts(parts).length, truth.get(uid).instanceCount);
      }
    }
    const forbidden = await h.fhirGet(srv, 'seed-hardcoded-patient', 'ImagingStudy?patient=someone-else');
    h.assertOperationOutcome(forbidden, 403);
  });

  it('reference tenant file delayed.json answers 503 with an integer Retry-After', async (t) => {
    if (!seedNames.length) { t.skip(`../shared/seed-configs is absent (${SEEDS}): reference tenant files not checked`); return; }
    const r = await h.fhirGet(srv, 'seed-delayed', `ImagingStudy?patient=${PATIENT}`);
    h.assertOperationOutcome(r, 503);
    const ra = r.headers.get('retry-after');
    assert.match(ra, /^[1-9]\d*$/, `Retry-After ${ra}`);
    assert.ok(Math.abs(Number(ra) - (4833623642 - Date.now() / 1000)) < 60, 'seconds until lookupUntil');
  });

  it('credentials never reach the log', () => {
    const logs = srv.logs();
    assert.ok(!logs.includes(ow.PASSWORD), 'password in the log');
    assert.ok(!logs.includes(orthanc.auth.slice(6)), 'basic credentials in the log');
    assert.match(logs, /dicom-web images/, 'tenants announced');
  });

  it('studies-by-mrn: an instance of another patient in the scope refuses the whole study (last: it changes Orthanc)', async (t) => {
    const found = await searchAll('mrn', `patient=${h.HARDCODED_PATIENT_ID}`);
    const [uid, { address }] = [...found][0];
    const src = truth.get(uid).series.values().next().value.instances[0].path;
    const copy = path.join(root, 'intruder.dcm');
    fs.copyFileSync(src, copy);
    const mod = spawnSync('dcmodify', ['-nb', '-gin', '-m', '(0010,0020)=INTRUDER', copy]);
    if (mod.status !== 0) { t.skip(`dcmodify failed: ${mod.stderr}`); return; }
    await orthanc.load([copy]);
    const q = await orthanc.get(`/dicom-web/studies/${uid}/instances?includefield=00100020`);
    const ids = JSON.parse(q.body.toString('utf8')).map((o) => o['00100020'] && o['00100020'].Value && o['00100020'].Value[0]);
    if (!ids.includes('INTRUDER')) { t.skip('Orthanc keeps the intruder in a study of its own (same UID, other patient)'); return; }
    const r = await h.request(wado(address, `/studies/${uid}`), { headers: { accept: h.DICOM_ACCEPT } });
    h.assertStatus(r, 403);
    const m = await h.request(wado(address, `/studies/${uid}/metadata`));
    h.assertStatus(m, 403);
  });
});

if (unavailable) {
  describe('dicom-web tenants over real Orthanc', () => {
    it('is skipped', (t) => t.skip(unavailable));
  });
}
