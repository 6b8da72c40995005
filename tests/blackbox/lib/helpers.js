'use strict';
// Shared helpers for the black-box tests: HTTP calls, the truth about sample files,
// standard tenants, and a fixture that starts one server over one sample set.

const assert = require('node:assert/strict');
const path = require('node:path');
const { validate } = require('./fhir-validate');
const { readDicomFile } = require('./dicom');
const server = require('./server');

const KSHLERIN_MRN = '293ee354-f8ad-4345-b10c-759fdfdcc082';
const HARDCODED_PATIENT_ID = '87a339d0-8cae-418e-89c7-8651e6aab3c6';
const MRN_SYSTEM = 'http://hospital.smarthealthit.org';
const DICOM_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';

// The issue codes of src/status.cpp's table, by HTTP status.
const ISSUE_CODE_FOR_STATUS = {
  400: 'invalid', 401: 'login', 403: 'forbidden', 404: 'not-found', 405: 'not-supported',
  406: 'not-supported', 413: 'too-long', 414: 'too-long', 501: 'not-supported', 503: 'transient',
};

// ---- tenants -------------------------------------------------------------------------

function openFolderTenant(folder) {
  return {
    authorization: { type: 'mock', disableAuthzChecks: true },
    images: { type: 'folder', path: folder, lookup: 'all-studies-on-server' },
  };
}

function hardcodedPatientFolderTenant(folder) {
  return {
    authorization: {
      type: 'mock',
      patient: {
        resourceType: 'Patient',
        id: HARDCODED_PATIENT_ID,
        identifier: [{
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
          system: MRN_SYSTEM,
          value: KSHLERIN_MRN,
        }],
      },
    },
    images: { type: 'folder', path: folder, lookup: 'studies-by-mrn' },
  };
}

// ---- HTTP ----------------------------------------------------------------------------

function headersObject(h) {
  const o = {};
  h.forEach((v, k) => { o[k] = v; });
  return o;
}

// fetch, then read the whole body: {status, headers (Headers), body: Buffer, text, json}.
async function request(url, opts = {}) {
  const res = await fetch(url, { redirect: 'manual', ...opts });
  const body = Buffer.from(await res.arrayBuffer());
  const text = body.toString('utf8');
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch (_) { json = undefined; }
  return { status: res.status, headers: res.headers, body, text, json, url };
}

function describeResponse(r) {
  return `${r.url} -> ${r.status} ${JSON.stringify(headersObject(r.headers))}\n${r.text.slice(0, 2000)}`;
}

function fhirUrl(srv, tenant, rel) {
  return `${srv.baseUrl}/${tenant}/fhir/${rel}`;
}

async function fhirGet(srv, tenant, rel, opts = {}) {
  return request(fhirUrl(srv, tenant, rel), {
    ...opts, headers: { accept: 'application/fhir+json', ...(opts.headers || {}) },
  });
}

// The address's path and query, fetched from our own server (BASE_URL may name another origin).
function localUrl(srv, address) {
  const u = new URL(address);
  return `${srv.baseUrl}${u.pathname}${u.search}`;
}

function assertStatus(r, expected) {
  const ok = Array.isArray(expected) ? expected.includes(r.status) : r.status === expected;
  assert.ok(ok, `expected HTTP ${expected}, got:\n${describeResponse(r)}`);
}

function assertFhirJson(r) {
  const ct = r.headers.get('content-type') || '';
  assert.match(ct, /^application\/fhir\+json\b/i, `content-type of ${r.url}`);
  assert.ok(r.json !== undefined, `body of ${r.url} is not JSON:\n${r.text.slice(0, 500)}`);
}

function assertValidFhir(resource, label) {
  const errors = validate(resource);
  assert.deepEqual(errors, [], `${label || 'resource'} is not valid FHIR R4:\n  ${errors.join('\n  ')}\n` +
    `${JSON.stringify(resource).slice(0, 3000)}`);
}

// An OperationOutcome error response with the table's status and issue code.
function assertOperationOutcome(r, status) {
  assertStatus(r, status);
  assertFhirJson(r);
  assert.equal(r.json.resourceType, 'OperationOutcome', describeResponse(r));
  assert.ok(Array.isArray(r.json.issue) && r.json.issue.length > 0, 'OperationOutcome.issue');
  assert.equal(r.json.issue[0].severity === 'error' || r.json.issue[0].severity === 'fatal', true,
    `issue[0].severity: ${JSON.stringify(r.json.issue[0])}`);
  if (ISSUE_CODE_FOR_STATUS[status]) {
    assert.equal(r.json.issue[0].code, ISSUE_CODE_FOR_STATUS[status], `issue[0].code for ${status}`);
  }
  assertValidFhir(r.json, `OperationOutcome from ${r.url}`);
}

// ---- FHIR results --------------------------------------------------------------------

function studiesOf(bundle) {
  return (bundle.entry || []).filter((e) => e.resource && e.resource.resourceType === 'ImagingStudy')
    .map((e) => e.resource);
}

function studyUidOf(study) {
  const id = (study.identifier || []).find((i) => i.system === 'urn:dicom:uid');
  return id && typeof id.value === 'string' ? id.value.replace(/^urn:oid:/, '') : undefined;
}

// The Endpoint a study references: contained (#id) or an included Bundle entry.
function endpointOf(study, bundle) {
  const ref = study.endpoint && study.endpoint[0] && study.endpoint[0].reference;
  assert.ok(ref, `ImagingStudy ${studyUidOf(study)} has no endpoint reference`);
  if (ref.startsWith('#')) {
    const ep = (study.contained || []).find((c) => c.id === ref.slice(1));
    assert.ok(ep, `endpoint ${ref} is not contained`);
    return ep;
  }
  const entry = ((bundle && bundle.entry) || []).find((e) => e.resource && e.resource.resourceType === 'Endpoint' &&
    (e.fullUrl === ref || `Endpoint/${e.resource.id}` === ref || (e.fullUrl || '').endsWith(`/${ref}`)));
  assert.ok(entry, `endpoint ${ref} is neither contained nor an entry of the Bundle`);
  return entry.resource;
}

// The token in an Endpoint address .../{tenant}/wado/{token}.
function tokenOf(address) {
  const m = /\/wado\/([^/?#]+)\/?$/.exec(new URL(address).pathname);
  assert.ok(m, `Endpoint address ${address} does not end in /wado/{token}`);
  return m[1];
}

// Searches and returns {bundle, studies: Map uid -> {study, endpoint, address, token}}.
async function searchStudies(srv, tenant, query) {
  const r = await fhirGet(srv, tenant, `ImagingStudy?${query}`);
  assertStatus(r, 200);
  assertFhirJson(r);
  const studies = new Map();
  for (const s of studiesOf(r.json)) {
    const ep = endpointOf(s, r.json);
    studies.set(studyUidOf(s), { study: s, endpoint: ep, address: ep.address, token: tokenOf(ep.address) });
  }
  return { response: r, bundle: r.json, studies };
}

// ---- the truth about sample files ----------------------------------------------------

function toInt(v) {
  if (v === undefined || v === '') return undefined;
  const n = parseInt(String(v).trim(), 10);
  return Number.isNaN(n) ? undefined : n;
}

// files (from makeSamples/listSamples) -> Map studyUid -> study truth.
function truthOf(files) {
  const studies = new Map();
  for (const f of files) {
    const d = readDicomFile(f.path);
    const uid = d.get('0020000D');
    assert.equal(uid, f.studyUid, `${f.path}: StudyInstanceUID vs path`);
    assert.equal(d.get('0020000E'), f.seriesUid, `${f.path}: SeriesInstanceUID vs path`);
    assert.equal(d.get('00080018'), f.sopUid, `${f.path}: SOPInstanceUID vs path`);
    assert.equal(d.get('00100020'), f.patientId, `${f.path}: PatientID vs path`);
    let st = studies.get(uid);
    if (!st) {
      st = {
        studyUid: uid, patientId: f.patientId, patientName: d.get('00100010'),
        studyDate: d.get('00080020'), studyTime: d.get('00080030'), series: new Map(), instanceCount: 0,
      };
      studies.set(uid, st);
    }
    let se = st.series.get(f.seriesUid);
    if (!se) {
      se = { seriesUid: f.seriesUid, modality: d.get('00080060'), number: toInt(d.get('00200011')), instances: [] };
      st.series.set(f.seriesUid, se);
    }
    se.instances.push({
      sopUid: f.sopUid, sopClass: d.get('00080016'), number: toInt(d.get('00200013')),
      path: f.path, transferSyntax: d.transferSyntax,
    });
    st.instanceCount++;
  }
  for (const st of studies.values()) st.modalities = [...new Set([...st.series.values()].map((s) => s.modality))].sort();
  return studies;
}

// The file of each SOP Instance UID.
function filesBySop(files) {
  return new Map(files.map((f) => [f.sopUid, f]));
}

// "20200131" -> "2020-01-31"
function dicomDateToFhir(da) {
  return da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}` : undefined;
}

// Checks one ImagingStudy against the files it describes.
function assertStudyMatchesTruth(study, truth) {
  const uid = truth.studyUid;
  const ids = (study.identifier || []).filter((i) => i.system === 'urn:dicom:uid');
  assert.deepEqual(ids.map((i) => i.value), [`urn:oid:${uid}`], `identifier of ${uid}`);
  assert.equal(study.status, 'available', `status of ${uid}`);
  assert.ok(study.subject && (study.subject.reference || study.subject.identifier), `subject of ${uid}`);
  if (truth.studyDate) {
    // The date part may move by a day when the server states the time in another offset.
    const day = (s) => Date.parse(`${s.slice(0, 10)}T00:00:00Z`);
    assert.ok(typeof study.started === 'string' && /^\d{4}-\d{2}-\d{2}/.test(study.started) &&
      Math.abs(day(study.started) - day(dicomDateToFhir(truth.studyDate))) <= 86400000,
      `started of ${uid}: ${study.started} vs StudyDate ${truth.studyDate}`);
  }
  assert.equal(study.numberOfSeries, truth.series.size, `numberOfSeries of ${uid}`);
  assert.equal(study.numberOfInstances, truth.instanceCount, `numberOfInstances of ${uid}`);
  const mods = (study.modality || []).map((m) => m.code).sort();
  assert.deepEqual([...new Set(mods)], truth.modalities, `modality of ${uid}`);
  for (const m of study.modality || []) assert.equal(m.system, 'http://dicom.nema.org/resources/ontology/DCM');

  assert.ok(Array.isArray(study.series), `series of ${uid}`);
  assert.deepEqual(study.series.map((s) => s.uid).sort(), [...truth.series.keys()].sort(), `series uids of ${uid}`);
  for (const s of study.series) {
    const ts = truth.series.get(s.uid);
    if (ts.number !== undefined) assert.equal(s.number, ts.number, `series ${s.uid} number`);
    assert.equal(s.modality && s.modality.code, ts.modality, `series ${s.uid} modality`);
    assert.equal(s.numberOfInstances, ts.instances.length, `series ${s.uid} numberOfInstances`);
    assert.ok(Array.isArray(s.instance), `series ${s.uid} instance[]`);
    assert.deepEqual(s.instance.map((i) => i.uid).sort(), ts.instances.map((i) => i.sopUid).sort(),
      `instance uids of series ${s.uid}`);
    for (const inst of s.instance) {
      const ti = ts.instances.find((i) => i.sopUid === inst.uid);
      if (ti.number !== undefined) assert.equal(inst.number, ti.number, `instance ${inst.uid} number`);
      assert.ok(inst.sopClass && typeof inst.sopClass.code === 'string', `instance ${inst.uid} sopClass`);
      assert.equal(inst.sopClass.code.replace(/^urn:oid:/, ''), ti.sopClass, `instance ${inst.uid} sopClass`);
    }
  }
}

// ---- misc ----------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, { timeoutMs = 10000, intervalMs = 250, what = 'condition' } = {}) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

// One sample set + config dir + running server, cleaned up by cleanup().
// tenants: (samplesDir) => ({name: config}).
async function folderFixture({ name, seed = 1, scale = 0.1, tenants, args, env }) {
  const root = server.makeTempDir(name);
  const fx = { root, samplesDir: path.join(root, 'samples'), configDir: path.join(root, 'config'), servers: [] };
  fx.cleanup = async () => {
    await Promise.all(fx.servers.map((s) => s.stop()));
    server.removeDir(root);
  };
  try {
    fx.files = await server.makeSamples(fx.samplesDir, { seed, scale });
    fx.truth = truthOf(fx.files);
    const t = tenants ? tenants(fx.samplesDir) : { open: openFolderTenant(fx.samplesDir) };
    for (const [tenant, cfg] of Object.entries(t)) server.writeTenant(fx.configDir, tenant, cfg);
    fx.start = async (more = {}) => {
      const s = await server.startServer({ configDir: fx.configDir, args, env, ...more });
      fx.servers.push(s);
      return s;
    };
    fx.server = await fx.start();
  } catch (e) {
    await fx.cleanup();
    throw e;
  }
  return fx;
}

module.exports = {
  KSHLERIN_MRN, HARDCODED_PATIENT_ID, MRN_SYSTEM, DICOM_ACCEPT, ISSUE_CODE_FOR_STATUS,
  openFolderTenant, hardcodedPatientFolderTenant,
  request, describeResponse, fhirUrl, fhirGet, localUrl, headersObject,
  assertStatus, assertFhirJson, assertValidFhir, assertOperationOutcome,
  studiesOf, studyUidOf, endpointOf, tokenOf, searchStudies,
  truthOf, filesBySop, dicomDateToFhir, assertStudyMatchesTruth,
  sleep, waitFor, folderFixture,
};
