'use strict';
// OHIF Viewer (npm @ohif/app, its prebuilt dist/ taken with `npm pack`, lib/ohif.js) in headless
// Debian Chromium driven by playwright-core: a study must render, i.e. the viewport canvas shows a
// non-blank image.
// - First over Orthanc's own DICOMweb (behind a same-origin proxy that adds its basic auth): this
//   proves the browser harness by itself, so a failure of the facade cases is the facade's.
// - Then through the facade, OHIF on another origin (CORS): the data source's qidoRoot and wadoRoot
//   are the Endpoint address of our FHIR Bundle (_include=ImagingStudy:endpoint), for a folder
//   tenant, a dicom-web tenant over that Orthanc and a DIMSE tenant over Orthanc (C-GET); once more
//   for the folder with quoted multipart Accept headers, which Chromium preflights (CORS).
// Each case keeps a screenshot and the list of requests OHIF made in artifacts/ (git-ignored).
// Slow-ish (about 10 s per case plus a one-time 50 MB download into .cache/).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/helpers');
const server = require('./lib/server');
const ow = require('./lib/orthanc-web');
const pacsLib = require('./lib/pacs');
const ohif = require('./lib/ohif');

const unavailable = ohif.available() || ow.available();

// The study OHIF opens: the first CT study by UID (else MR), so every run shows the same kind.
function pickStudy(truth) {
  const all = [...truth.values()].sort((a, b) => a.studyUid.localeCompare(b.studyUid));
  return all.find((s) => s.modalities.includes('CT')) || all.find((s) => s.modalities.includes('MR')) || all[0];
}

function isDicomWebCall(url) {
  return /\/studies(\/|$)/.test(new URL(url).pathname);
}

function writeRequests(name, requests) {
  const file = path.join(ohif.ARTIFACTS_DIR, `ohif-${name}-requests.txt`);
  fs.mkdirSync(ohif.ARTIFACTS_DIR, { recursive: true });
  fs.writeFileSync(file, `${ohif.formatRequests(requests)}\n`);
  return file;
}

// What every rendering case checks: an image on the canvas, the DICOMweb calls OHIF made all
// succeeded, the QIDO and metadata calls named the bound study, and frames of it were fetched.
function assertRendered(result, { root, study, label }) {
  const s = result.stats;
  assert.ok(s && s.nonBlack > 0.02 && s.levels > 16,
    `${label}: the viewport canvas is blank: ${JSON.stringify(s)}`);
  const calls = result.requests.filter((r) => r.url.startsWith(`${root}/`) && isDicomWebCall(r.url));
  const listing = ohif.formatRequests(calls);
  const failed = calls.filter((r) => r.failure || !(r.status >= 200 && r.status < 300));
  assert.deepEqual(failed.map((r) => `${r.url} -> ${r.failure || r.status}`), [],
    `${label}: DICOMweb requests that failed:\n${listing}`);
  const rel = calls.map((r) => r.url.slice(root.length));
  assert.ok(rel.some((u) => u.startsWith('/studies?') && u.includes(`StudyInstanceUID=${study.studyUid}`)),
    `${label}: OHIF searched for the study:\n${listing}`);
  assert.ok(rel.some((u) => u.startsWith(`/studies/${study.studyUid}/series?`) || u === `/studies/${study.studyUid}/series`),
    `${label}: OHIF searched the study's series:\n${listing}`);
  const seriesOfStudy = [...study.series.keys()];
  const metadata = rel.filter((u) => /\/metadata$/.test(u));
  assert.ok(metadata.length > 0, `${label}: OHIF fetched metadata:\n${listing}`);
  for (const u of metadata) {
    assert.ok(seriesOfStudy.some((se) => u === `/studies/${study.studyUid}/series/${se}/metadata`),
      `${label}: metadata request outside the study: ${u}`);
  }
  const frames = rel.filter((u) => /\/frames\/\d+/.test(u));
  assert.ok(frames.length > 0, `${label}: OHIF fetched frames:\n${listing}`);
  for (const u of frames) assert.ok(u.startsWith(`/studies/${study.studyUid}/series/`), `${label}: frame outside the study: ${u}`);
  assert.ok(result.screenshot && fs.statSync(result.screenshot).size > 0, `${label}: screenshot kept`);
  return calls;
}

// Through the facade every study search, also OHIF's search of the patient's other studies
// (PatientID only), names the bound study and no other.
function assertOnlyBoundStudy(calls, study, label) {
  const searches = calls.filter((r) => /\/studies$/.test(new URL(r.url).pathname));
  assert.ok(searches.some((r) => new URL(r.url).searchParams.has('00100020')),
    `${label}: OHIF searched the patient's studies: ${searches.map((r) => r.url)}`);
  for (const r of searches) {
    assert.equal(typeof r.body, 'string', `${label}: body of ${r.url} kept`);
    const uids = (r.body ? JSON.parse(r.body) : []).map((d) => d['0020000D'] && d['0020000D'].Value[0]);
    assert.deepEqual(uids, [study.studyUid], `${label}: ${r.url} answered ${uids}`);
  }
}

describe('OHIF renders a study in headless Chromium', { timeout: 300000, skip: unavailable || false }, () => {
  let root;
  let files;
  let truth;
  let study;
  let dist;
  const cleanups = [];

  before(async () => {
    root = server.makeTempDir('ohif');
    files = await server.makeSamples(path.join(root, 'samples'), { seed: 5, scale: 0.1 });
    truth = h.truthOf(files);
    study = pickStudy(truth);
    dist = ohif.fetchOhif();
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    server.removeDir(root);
  });

  // Runs OHIF on `root`; on failure the message carries OHIF's requests and console and the
  // upstream's log tail.
  async function view(name, dicomWebRoot, { proxy, source, logs } = {}) {
    // Stale artifacts of an earlier run must not pass for this one's.
    for (const f of ['.png', '-failed.png', '-requests.txt']) fs.rmSync(path.join(ohif.ARTIFACTS_DIR, `ohif-${name}${f}`), { force: true });
    const web = await ohif.startOhifServer({ dist, root: dicomWebRoot, source, proxy });
    cleanups.push(() => web.stop());
    try {
      const result = await ohif.openViewer({
        ohifUrl: web.url, studyUid: study.studyUid,
        artifact: path.join(ohif.ARTIFACTS_DIR, `ohif-${name}.png`),
      });
      const list = writeRequests(name, result.requests);
      const rootUrl = typeof dicomWebRoot === 'function' ? dicomWebRoot(web.port) : dicomWebRoot;
      return { ...result, list, rootUrl };
    } catch (e) {
      if (e.requests) writeRequests(name, e.requests);
      if (logs) e.message += `\n--- ${name} server log (tail) ---\n${logs().split('\n').slice(-80).join('\n')}`;
      throw e;
    } finally {
      await web.stop();
    }
  }

  let orthanc; // Orthanc with its DICOMweb plugin, loaded with the samples: the first case's and the dicom-web tenant's

  it('over Orthanc\'s DICOMweb (proves the browser harness on its own)', async (t) => {
    orthanc = await ow.startOrthancWeb();
    cleanups.push(() => orthanc.stop());
    await orthanc.load(files.map((f) => f.path));
    const r = await view('orthanc', (port) => `http://127.0.0.1:${port}/dicom-web`,
      { proxy: { prefix: '/dicom-web', target: orthanc.root, headers: { authorization: orthanc.auth } },
        logs: orthanc.log });
    const calls = assertRendered(r, { root: r.rootUrl, study, label: 'orthanc' });
    // Orthanc answers the patient's other studies too: the facade cases' "only the bound study"
    // is then a real restriction, not what any server would say.
    const others = calls.filter((x) => new URL(x.url).searchParams.has('00100020'));
    assert.ok(others.length > 0 && others.every((x) => JSON.parse(x.body).length > 1),
      `Orthanc listed more than one study of the patient: ${others.map((x) => x.body && JSON.parse(x.body).length)}`);
    t.diagnostic(`screenshot ${r.screenshot}, requests ${r.list}, dismissed ${JSON.stringify(r.dismissed)}`);
  });

  // The Endpoint address the FHIR Bundle gives for the study, found as an app would.
  async function endpointAddress(srv, tenant) {
    const q = `patient=${encodeURIComponent(study.patientId)}&_include=ImagingStudy:endpoint`;
    const { studies } = await h.searchStudies(srv, tenant, q);
    const hit = studies.get(study.studyUid);
    assert.ok(hit, `the FHIR search of ${tenant} did not find ${study.studyUid}: ${[...studies.keys()]}`);
    assert.equal(hit.endpoint.connectionType.code, 'dicom-wado-rs');
    return hit.address;
  }

  it('through the facade: folder tenant, OHIF on another origin', async (t) => {
    const configDir = path.join(root, 'config-folder');
    server.writeTenant(configDir, 'open', h.openFolderTenant(path.join(root, 'samples')));
    const srv = await server.startServer({ configDir });
    cleanups.push(() => srv.stop());
    const address = await endpointAddress(srv, 'open');
    const r = await view('facade-folder', address, { logs: srv.logs });
    assertOnlyBoundStudy(assertRendered(r, { root: address, study, label: 'facade folder' }), study, 'facade folder');
    t.diagnostic(`screenshot ${r.screenshot}, requests ${r.list}`);
    await srv.stop();
  });

  // With quotes (type="application/octet-stream") the Accept header is no longer CORS-safelisted,
  // so Chromium preflights every frame request: the facade's OPTIONS answer must let it through.
  it('through the facade: folder tenant, quoted multipart Accept (CORS preflight)', async (t) => {
    const configDir = path.join(root, 'config-folder-quoted');
    server.writeTenant(configDir, 'open', h.openFolderTenant(path.join(root, 'samples')));
    const srv = await server.startServer({ configDir });
    cleanups.push(() => srv.stop());
    const address = await endpointAddress(srv, 'open');
    const r = await view('facade-preflight', address,
      { source: { omitQuotationForMultipartRequest: false }, logs: srv.logs });
    assertOnlyBoundStudy(assertRendered(r, { root: address, study, label: 'facade preflight' }), study, 'facade preflight');
    const frames = r.requests.filter((x) => /\/frames\/\d+$/.test(new URL(x.url).pathname));
    assert.ok(frames.some((x) => /type="application\/octet-stream"/.test(x.accept || '')),
      `OHIF sent quoted frame Accept headers: ${frames.map((x) => x.accept)}`);
    const preflights = srv.logs().split('\n').filter((l) => /\bOPTIONS \/open\/wado\/\S+\/frames\/\d+ 2\d\d\b/.test(l));
    assert.ok(preflights.length > 0, `the facade answered Chromium's preflights of frames:\n${srv.logs().slice(-4000)}`);
    t.diagnostic(`screenshot ${r.screenshot}, requests ${r.list}, ${preflights.length} preflights`);
    await srv.stop();
  });

  it('through the facade: dicom-web tenant over Orthanc', async (t) => {
    assert.ok(orthanc, 'the Orthanc case ran first and left its Orthanc running');
    const configDir = path.join(root, 'config-dicomweb');
    server.writeTenant(configDir, 'web', ow.dicomWebTenant(orthanc));
    const srv = await server.startServer({ configDir });
    cleanups.push(() => srv.stop());
    const address = await endpointAddress(srv, 'web');
    const r = await view('facade-dicomweb', address, { logs: srv.logs });
    assertOnlyBoundStudy(assertRendered(r, { root: address, study, label: 'facade dicom-web' }), study, 'facade dicom-web');
    t.diagnostic(`screenshot ${r.screenshot}, requests ${r.list}`);
    await srv.stop();
  });

  it('through the facade: DIMSE tenant over Orthanc (C-GET)', async (t) => {
    const pacs = await pacsLib.startOrthanc({ facades: [{ ae: 'OHIFFACADE', port: 1 }] });
    cleanups.push(() => pacs.cleanup());
    await pacs.load(files.map((f) => f.path));
    const configDir = path.join(root, 'config-dimse');
    server.writeTenant(configDir, 'pacs', pacsLib.dimseTenant({
      port: pacs.port, calledAe: pacs.aeTitle, ae: 'OHIFFACADE', retrieval: 'c-get',
    }));
    const srv = await server.startServer({ configDir });
    cleanups.push(() => srv.stop());
    const address = await endpointAddress(srv, 'pacs');
    const r = await view('facade-dimse', address, { logs: srv.logs });
    assertOnlyBoundStudy(assertRendered(r, { root: address, study, label: 'facade dimse' }), study, 'facade dimse');
    t.diagnostic(`screenshot ${r.screenshot}, requests ${r.list}`);
    await srv.stop();
    await pacs.cleanup();
  });
});
