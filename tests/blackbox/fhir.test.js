'use strict';
// FHIR facade: CapabilityStatement, ImagingStudy search (parameters, paging, _include,
// POST _search), the resources' content against the sample files, and error responses.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/helpers');

describe('FHIR facade over a folder source', { timeout: 180000 }, () => {
  let fx;
  let srv;
  const PATIENT = h.KSHLERIN_MRN; // any id works for the all-studies-on-server tenant
  const q = (extra) => `patient=${encodeURIComponent(PATIENT)}${extra ? `&${extra}` : ''}`;

  before(async () => {
    fx = await h.folderFixture({
      name: 'fhir',
      seed: 11,
      tenants: (dir) => ({ open: h.openFolderTenant(dir), hardcoded: h.hardcodedPatientFolderTenant(dir) }),
    });
    srv = fx.server;
  });
  after(async () => { if (fx) await fx.cleanup(); });

  it('the sample set has what the other tests rely on', () => {
    const patients = new Set([...fx.truth.values()].map((s) => s.patientId));
    assert.ok(patients.size >= 3, `>= 3 patients, got ${[...patients]}`);
    assert.ok(patients.has(h.KSHLERIN_MRN), 'the Kshlerin^Danae patient is in the samples');
    const danae = [...fx.truth.values()].find((s) => s.patientId === h.KSHLERIN_MRN);
    assert.match(danae.patientName || '', /^Kshlerin\^Danae/);
    const mods = new Set([...fx.truth.values()].flatMap((s) => s.modalities));
    assert.ok(mods.has('CT') && mods.has('MR'), `CT and MR studies, got ${[...mods]}`);
  });

  it('GET metadata returns a valid CapabilityStatement', async () => {
    const r = await h.fhirGet(srv, 'open', 'metadata');
    h.assertStatus(r, 200);
    h.assertFhirJson(r);
    const cs = r.json;
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    h.assertValidFhir(cs, 'CapabilityStatement');
    const rest = (cs.rest || []).find((x) => x.mode === 'server');
    assert.ok(rest, 'rest[mode=server]');
    const is = (rest.resource || []).find((x) => x.type === 'ImagingStudy');
    assert.ok(is, 'ImagingStudy in rest.resource');
    assert.ok((is.interaction || []).some((i) => i.code === 'search-type'), 'search-type interaction');
    assert.ok((is.searchInclude || []).includes('ImagingStudy:endpoint'), 'searchInclude ImagingStudy:endpoint');
    const params = (is.searchParam || []).map((p) => p.name);
    for (const p of ['patient', 'identifier']) assert.ok(params.includes(p), `searchParam ${p} in ${params}`);
  });

  it('search by patient returns a valid searchset of every study, matching the files', async () => {
    const r = await h.fhirGet(srv, 'open', `ImagingStudy?${q()}`);
    h.assertStatus(r, 200);
    h.assertFhirJson(r);
    const b = r.json;
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    h.assertValidFhir(b, 'searchset Bundle');
    assert.equal(b.total, fx.truth.size, 'total = number of studies on the server');
    assert.ok((b.link || []).some((l) => l.relation === 'self' && typeof l.url === 'string'), 'link self');
    const studies = h.studiesOf(b);
    assert.equal(studies.length, fx.truth.size);
    for (const e of b.entry) {
      assert.equal(typeof e.fullUrl, 'string', 'entry.fullUrl');
      assert.match(e.fullUrl, /^https?:\/\//, 'fullUrl is absolute');
      assert.equal(e.search && e.search.mode, 'match', 'entry.search.mode');
      assert.ok(e.fullUrl.endsWith(`ImagingStudy/${e.resource.id}`), `fullUrl ${e.fullUrl} names the resource`);
    }
    const seen = new Set();
    for (const s of studies) {
      const uid = h.studyUidOf(s);
      assert.ok(fx.truth.has(uid), `unknown study ${uid}`);
      assert.ok(!seen.has(uid), `study ${uid} listed twice`);
      seen.add(uid);
      h.assertStudyMatchesTruth(s, fx.truth.get(uid));
    }
  });

  it('each study references a contained dicom-wado-rs Endpoint at {BASE_URL}/{tenant}/wado/{token}', async () => {
    const { bundle, studies } = await h.searchStudies(srv, 'open', q());
    assert.equal(studies.size, fx.truth.size);
    for (const s of h.studiesOf(bundle)) {
      const ref = s.endpoint[0].reference;
      assert.match(ref, /^#./, 'endpoint is a contained reference by default');
      const ep = h.endpointOf(s, bundle);
      assert.equal(ep.resourceType, 'Endpoint');
      assert.equal(ep.connectionType.code, 'dicom-wado-rs');
      assert.equal(ep.connectionType.system, 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type');
      const u = new URL(ep.address);
      assert.ok(['127.0.0.1', 'localhost'].includes(u.hostname) && Number(u.port) === srv.port,
        `default BASE_URL is this server: ${ep.address}`);
      assert.match(u.pathname, /^\/open\/wado\/[^/]+$/, `address path ${u.pathname}`);
    }
    // The token of each study is different.
    const tokens = [...studies.values()].map((x) => x.token);
    assert.equal(new Set(tokens).size, tokens.length, 'one token per study');
  });

  it('--base-url sets the Endpoint address and fullUrl origin', async () => {
    const other = await fx.start({ args: ['--base-url', 'https://imaging.example.test'] });
    const { bundle, studies } = await h.searchStudies(other, 'open', q());
    assert.equal(studies.size, fx.truth.size);
    for (const { address } of studies.values()) {
      assert.match(address, /^https:\/\/imaging\.example\.test\/open\/wado\/[^/]+$/);
    }
    for (const e of bundle.entry) assert.match(e.fullUrl, /^https:\/\/imaging\.example\.test\/open\/fhir\//);
    await other.stop();
  });

  it('subject=, patient=Patient/ID and POST _search give the same studies as patient=', async () => {
    const base = await h.searchStudies(srv, 'open', q());
    const uids = [...base.studies.keys()].sort();
    for (const query of [`subject=${PATIENT}`, `patient=Patient/${PATIENT}`, `subject=Patient/${PATIENT}`]) {
      const r = await h.searchStudies(srv, 'open', query);
      assert.deepEqual([...r.studies.keys()].sort(), uids, query);
      h.assertValidFhir(r.bundle, query);
    }
    const post = await h.request(h.fhirUrl(srv, 'open', 'ImagingStudy/_search'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/fhir+json' },
      body: new URLSearchParams({ patient: PATIENT }).toString(),
    });
    h.assertStatus(post, 200);
    h.assertFhirJson(post);
    assert.equal(post.json.type, 'searchset');
    assert.deepEqual(h.studiesOf(post.json).map(h.studyUidOf).sort(), uids, 'POST _search');
    h.assertValidFhir(post.json, 'POST _search Bundle');
  });

  it('identifier=urn:oid:UID finds exactly that study; an unknown UID finds none', async () => {
    const uid = [...fx.truth.keys()][1];
    const r = await h.searchStudies(srv, 'open', q(`identifier=urn:oid:${uid}`));
    assert.deepEqual([...r.studies.keys()], [uid]);
    assert.equal(r.bundle.total, 1);
    h.assertStudyMatchesTruth(r.studies.get(uid).study, fx.truth.get(uid));
    const none = await h.searchStudies(srv, 'open', q('identifier=urn:oid:1.2.3.999999.1'));
    assert.equal(none.bundle.total, 0);
    assert.equal(none.studies.size, 0);
    h.assertValidFhir(none.bundle, 'empty searchset');
  });

  it('modality=CT and modality=MR filter by series modality', async () => {
    for (const mod of ['CT', 'MR']) {
      const expected = [...fx.truth.values()].filter((s) => s.modalities.includes(mod)).map((s) => s.studyUid).sort();
      assert.ok(expected.length > 0);
      const r = await h.searchStudies(srv, 'open', q(`modality=${mod}`));
      assert.deepEqual([...r.studies.keys()].sort(), expected, `modality=${mod}`);
      assert.equal(r.bundle.total, expected.length);
    }
  });

  it('started=ge/gt/le/lt filter by study date', async () => {
    const dates = [...new Set([...fx.truth.values()].map((s) => s.studyDate).filter(Boolean))].sort();
    assert.ok(dates.length > 0, 'sample studies have StudyDate');
    const all = [...fx.truth.keys()].sort();
    const check = async (param, expected) => {
      const r = await h.searchStudies(srv, 'open', q(`started=${param}`));
      assert.deepEqual([...r.studies.keys()].sort(), expected.sort(), `started=${param}`);
    };
    await check('ge1900-01-01', all);
    await check('lt1900-01-01', []);
    await check('gt2999-12-31', []);
    await check('le2999-12-31', all);
    // A cut two days after one study date and two before the next, so neither date
    // precision nor the UTC offset the server states times in can matter.
    const toDate = (da) => new Date(`${h.dicomDateToFhir(da)}T00:00:00Z`);
    const DAY = 86400000;
    for (let i = 0; i + 1 < dates.length; i++) {
      const a = toDate(dates[i]);
      const b = toDate(dates[i + 1]);
      if (b - a < 4 * DAY) continue;
      const cut = new Date(a.getTime() + 2 * DAY).toISOString().slice(0, 10);
      const after = [...fx.truth.values()].filter((s) => s.studyDate && toDate(s.studyDate) > a).map((s) => s.studyUid);
      const before = [...fx.truth.values()].filter((s) => s.studyDate && toDate(s.studyDate) <= a).map((s) => s.studyUid);
      await check(`ge${cut}`, after);
      await check(`gt${cut}`, after);
      await check(`lt${cut}`, before);
      await check(`le${cut}`, before);
      break;
    }
  });

  it('_count pages with link next until every study was seen once', async () => {
    const seen = [];
    let url = h.fhirUrl(srv, 'open', `ImagingStudy?${q('_count=1')}`);
    for (let page = 0; url && page < fx.truth.size + 2; page++) {
      const r = await h.request(url, { headers: { accept: 'application/fhir+json' } });
      h.assertStatus(r, 200);
      h.assertValidFhir(r.json, `page ${page}`);
      assert.equal(r.json.total, fx.truth.size, 'total counts all matches, not the page');
      const studies = h.studiesOf(r.json);
      assert.ok(studies.length <= 1, `_count=1 page has ${studies.length} studies`);
      seen.push(...studies.map(h.studyUidOf));
      const next = (r.json.link || []).find((l) => l.relation === 'next');
      url = next ? h.localUrl(srv, next.url) : null;
    }
    assert.equal(url, null, 'paging ends');
    assert.deepEqual([...seen].sort(), [...fx.truth.keys()].sort(), 'pages cover every study once');
  });

  it('_include=ImagingStudy:endpoint returns the Endpoints as include entries', async () => {
    const r = await h.fhirGet(srv, 'open', `ImagingStudy?${q('_include=ImagingStudy:endpoint')}`);
    h.assertStatus(r, 200);
    h.assertValidFhir(r.json, '_include Bundle');
    const b = r.json;
    const included = b.entry.filter((e) => e.resource.resourceType === 'Endpoint');
    assert.ok(included.length >= fx.truth.size, 'one Endpoint entry per study at least');
    for (const e of included) {
      assert.equal(e.search && e.search.mode, 'include', 'Endpoint entry search.mode');
      assert.equal(typeof e.fullUrl, 'string');
    }
    for (const e of b.entry.filter((x) => x.resource.resourceType === 'ImagingStudy')) {
      assert.equal(e.search.mode, 'match');
      const ref = e.resource.endpoint[0].reference;
      assert.ok(!ref.startsWith('#'), `with _include the endpoint reference is not contained: ${ref}`);
      const ep = h.endpointOf(e.resource, b);
      assert.equal(ep.connectionType.code, 'dicom-wado-rs');
      assert.match(new URL(ep.address).pathname, /^\/open\/wado\/[^/]+$/);
    }
    assert.equal(b.total, fx.truth.size, 'total counts matches only');
  });

  it('hardcoded-patient tenant: only that MRN\'s studies, by id or by identifier', async () => {
    const expected = [...fx.truth.values()].filter((s) => s.patientId === h.KSHLERIN_MRN).map((s) => s.studyUid).sort();
    assert.ok(expected.length > 0);
    const r = await h.searchStudies(srv, 'hardcoded', `patient=${h.HARDCODED_PATIENT_ID}`);
    assert.deepEqual([...r.studies.keys()].sort(), expected);
    h.assertValidFhir(r.bundle, 'hardcoded tenant Bundle');
    for (const { study, address } of r.studies.values()) {
      assert.ok(study.subject.reference && study.subject.reference.endsWith(`Patient/${h.HARDCODED_PATIENT_ID}`),
        `subject ${JSON.stringify(study.subject)}`);
      assert.match(new URL(address).pathname, /^\/hardcoded\/wado\/[^/]+$/);
      h.assertStudyMatchesTruth(study, fx.truth.get(h.studyUidOf(study)));
    }
    const byId = await h.searchStudies(srv, 'hardcoded',
      `patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|${h.KSHLERIN_MRN}`)}`);
    assert.deepEqual([...byId.studies.keys()].sort(), expected, 'patient.identifier=system|value');
  });

  it('hardcoded-patient tenant: another patient gets 403', async () => {
    h.assertOperationOutcome(await h.fhirGet(srv, 'hardcoded', 'ImagingStudy?patient=someone-else'), 403);
    h.assertOperationOutcome(await h.fhirGet(srv, 'hardcoded',
      `ImagingStudy?patient.identifier=${encodeURIComponent(`${h.MRN_SYSTEM}|not-the-mrn`)}`), 403);
  });

  it('a search without a patient gets 403 OperationOutcome', async () => {
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', 'ImagingStudy'), 403);
    h.assertOperationOutcome(await h.fhirGet(srv, 'hardcoded', 'ImagingStudy'), 403);
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', 'ImagingStudy?modality=CT'), 403);
  });

  it('an unknown resource type gets 404 OperationOutcome', async () => {
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', `Observation?${q()}`), 404);
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', 'Observation'), 404);
  });

  it('malformed parameters get 400 OperationOutcome', async () => {
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', `ImagingStudy?${q('started=notadate')}`), 400);
    h.assertOperationOutcome(await h.fhirGet(srv, 'open', `ImagingStudy?${q('_count=abc')}`), 400);
  });

  it('an unknown tenant gets 404', async () => {
    const r = await h.fhirGet(srv, 'no-such-tenant', `ImagingStudy?${q()}`);
    h.assertOperationOutcome(r, 404);
    const m = await h.fhirGet(srv, 'no-such-tenant', 'metadata');
    h.assertStatus(m, 404);
  });

  it('a DICOM file dropped into the folder appears in search within 10 s, without a restart', async () => {
    // Copy one whole study of the sample set under a new study directory by rewriting nothing:
    // a new sample set with another seed has other UIDs.
    const extraDir = path.join(fx.root, 'extra');
    const extra = await require('./lib/server').makeSamples(extraDir, { seed: 12, scale: 0.1 });
    const extraTruth = h.truthOf(extra);
    const newStudy = [...extraTruth.values()].find((s) => !fx.truth.has(s.studyUid));
    assert.ok(newStudy, 'seed 12 makes studies seed 11 has not');
    for (const se of newStudy.series.values()) {
      for (const inst of se.instances) {
        const rel = path.relative(extraDir, inst.path);
        const dest = path.join(fx.samplesDir, rel);
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        // Write under a temporary name and rename, as a real producer would.
        fs.copyFileSync(inst.path, `${dest}.part`);
        fs.renameSync(`${dest}.part`, dest);
      }
    }
    const found = await h.waitFor(async () => {
      const r = await h.searchStudies(srv, 'open', q(`identifier=urn:oid:${newStudy.studyUid}`));
      const s = r.studies.get(newStudy.studyUid);
      return s && s.study.numberOfInstances === newStudy.instanceCount ? s : null;
    }, { timeoutMs: 10000, what: `new study ${newStudy.studyUid} visible` });
    h.assertStudyMatchesTruth(found.study, newStudy);
  });
});
