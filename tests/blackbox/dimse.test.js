'use strict';
// The DIMSE image source against real PACS: Debian's Orthanc and DCMTK's dcmqrscp, each
// started on free loopback ports (lib/pacs.js) and loaded with generated sample studies.
// For both PACS and both retrieval modes (C-MOVE to our Storage SCP, C-GET): FHIR search by
// MRN, study/series/instance retrieval byte-identical to the loaded files, single-flight,
// concurrency, the cache with the PACS stopped, unknown studies, an unreachable PACS, the
// PACS or the facade killed mid-retrieval, and a bounded stress run.
//
// Needs: Orthanc (/usr/sbin/Orthanc, Debian `orthanc`) and DCMTK's dcmqrscp, storescu,
// echoscu (Debian `dcmtk`). A PACS that is not installed skips its tests.
// SI_DIMSE_SKIP_SLOW=1 skips the slow parts (kills mid-retrieval with a Nagle-on PACS, stress).
// SI_DIMSE_FIGURES=file writes the measured timings there as JSON.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const h = require('./lib/helpers');
const server = require('./lib/server');
const pacsLib = require('./lib/pacs');
const { parseContentType, parseMultipartResponse } = require('./lib/multipart');
const crypto = require('node:crypto');
const jose = require('jose');

// A study token as the server mints them (see tokens.test.js), for tenants a search cannot reach.
async function mintToken(tenantKey, uid, patientId) {
  const iat = Math.floor(Date.now() / 1000);
  const key = crypto.createHash('sha256').update(server.TEST_PATH_KEY, 'utf8').digest();
  return new jose.CompactEncrypt(Buffer.from(JSON.stringify({ uid, query: { tenantKey, byPatientId: patientId }, iat, exp: iat + 600 }), 'utf8'))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(key);
}

const SKIP_SLOW = process.env.SI_DIMSE_SKIP_SLOW === '1';
const HAVE_ORTHANC = fs.existsSync(process.env.ORTHANC_BIN || '/usr/sbin/Orthanc');
const HAVE_DCMQRSCP = ['/usr/bin/dcmqrscp', '/usr/bin/storescu', '/usr/bin/echoscu'].every((f) => fs.existsSync(f));

const MODES = [
  { name: 'c-move', tenant: 'move', ae: 'FACADE', count: (p) => p.countMoves() },
  { name: 'c-get', tenant: 'get', ae: 'FACADEGET', count: (p) => p.countGets() },
];

// ---- figures ---------------------------------------------------------------------------

const figures = [];
function figure(t, entry) {
  figures.push(entry);
  const ms = (x) => (x === null || x === undefined ? '-' : `${x.toFixed(1)} ms`);
  t.diagnostic(`${entry.what}: ${entry.instances} instances, ${(entry.bytes / 1048576).toFixed(2)} MiB: ` +
    `headers ${ms(entry.headersMs)}, first byte ${ms(entry.firstByteMs)}, total ${ms(entry.totalMs)}`);
}
process.on('exit', () => {
  if (process.env.SI_DIMSE_FIGURES) fs.writeFileSync(process.env.SI_DIMSE_FIGURES, JSON.stringify(figures, null, 2));
});

// ---- retrieval -------------------------------------------------------------------------

// GET with the DICOM Accept header, reading the body as it streams. Never throws for a cut
// connection: {status, headers, body, error (the transport error, if the body was cut),
// parts (parsed, when the closing boundary is there), parseError, headersMs, firstByteMs, totalMs}.
// onFirstByte(): called once, when the first body bytes arrive.
async function retrieve(url, { onFirstByte, accept = h.DICOM_ACCEPT } = {}) {
  const t0 = performance.now();
  const out = { url, status: 0, headers: null, body: Buffer.alloc(0), error: null, parts: null, parseError: null,
    headersMs: null, firstByteMs: null, totalMs: null };
  let res;
  try {
    res = await fetch(url, { headers: { accept } });
  } catch (e) {
    out.error = e;
    out.totalMs = performance.now() - t0;
    return out;
  }
  out.status = res.status;
  out.headers = res.headers;
  out.headersMs = performance.now() - t0;
  const chunks = [];
  if (res.body) {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (out.firstByteMs === null) {
          out.firstByteMs = performance.now() - t0;
          if (onFirstByte) onFirstByte();
        }
        chunks.push(Buffer.from(value));
      }
    } catch (e) {
      out.error = e;
    }
  }
  out.totalMs = performance.now() - t0;
  out.body = Buffer.concat(chunks);
  if (out.status === 200) {
    try {
      out.parts = parseMultipartResponse(res.headers.get('content-type'), out.body).parts;
    } catch (e) {
      out.parseError = e;
    }
  }
  return out;
}

function describeRetrieval(r) {
  const hdrs = r.headers ? JSON.stringify(h.headersObject(r.headers)) : '(no response)';
  return `${r.url} -> ${r.status} ${hdrs}; ${r.body.length} body bytes; transport error: ` +
    `${r.error ? `${r.error.message} ${r.error.cause ? r.error.cause.message || r.error.cause.code : ''}` : 'none'}; ` +
    `multipart: ${r.parseError ? r.parseError.message : r.parts ? `${r.parts.length} parts, closed` : '-'}` +
    `${r.status !== 200 ? `\n${r.body.toString('utf8').slice(0, 1000)}` : ''}`;
}

// The File Meta group (0002, always explicit VR little endian) and where the dataset starts:
// {meta: {TAG: value}, offset}. Works for every transfer syntax, big endian included.
function parseMeta(buf) {
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') throw new Error('no DICM preamble');
  const meta = {};
  let pos = 132;
  while (pos + 8 <= buf.length && buf.readUInt16LE(pos) === 0x0002) {
    const key = `0002${buf.readUInt16LE(pos + 2).toString(16).padStart(4, '0')}`.toUpperCase();
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    let len;
    if (['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'].includes(vr)) {
      len = buf.readUInt32LE(pos + 8);
      pos += 12;
    } else {
      len = buf.readUInt16LE(pos + 6);
      pos += 8;
    }
    meta[key] = buf.toString('latin1', pos, pos + len).replace(/[\0 ]+$/, '');
    pos += len;
  }
  return { meta, offset: pos };
}

// The bytes after the File Meta group: the dataset as the PACS holds it.
function datasetBytes(buf) {
  return buf.subarray(parseMeta(buf).offset);
}

function sopOfPart(buf) {
  return parseMeta(buf).meta['00020003'];
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

// A complete 200 whose parts are exactly `expected` (file records), each dataset byte-identical
// to its loaded file and in the same transfer syntax. Returns the parts.
//   pacsCopy: Map sop -> Buffer, what a bit-preserving DCMTK receiver got from the same PACS; a
//   part that differs from the loaded file but equals this is the PACS's doing, noted in notes[].
function assertComplete(r, expected, bySop, what, { pacsCopy, notes } = {}) {
  assert.equal(r.status, 200, `${what}: ${describeRetrieval(r)}`);
  assert.equal(r.error, null, `${what}: the body was cut: ${describeRetrieval(r)}`);
  assert.ok(r.parts, `${what}: no closing boundary: ${describeRetrieval(r)}`);
  const ct = parseContentType(r.headers.get('content-type'));
  assert.equal(ct.params.type, 'application/dicom', `${what}: type parameter`);
  const sops = [];
  for (const [i, p] of r.parts.entries()) {
    assert.equal(parseContentType(p.headers['content-type']).type, 'application/dicom', `${what}: part ${i} content-type`);
    const { meta } = parseMeta(p.body);
    const sop = meta['00020003'];
    const file = bySop.get(sop);
    assert.ok(file, `${what}: part ${i} is SOP ${sop}, which was never loaded`);
    const original = fs.readFileSync(file.path);
    const want = parseMeta(original).meta;
    assert.equal(meta['00020010'], want['00020010'], `${what}: transfer syntax of ${sop} (${file.name || file.path})`);
    assert.equal(meta['00020002'], want['00020002'], `${what}: meta SOP class of ${sop}`);
    const got = datasetBytes(p.body);
    const exp = datasetBytes(original);
    if (!got.equals(exp)) {
      const ref = pacsCopy && pacsCopy.get(sop);
      if (ref && got.equals(datasetBytes(ref))) {
        if (notes) notes.push(`${file.name || file.path}: the PACS itself changes the dataset (${exp.length} -> ${got.length} bytes, first difference at ${firstDifference(got, exp)}); ours equals a bit-preserving storescp's copy`);
      } else {
        assert.fail(`${what}: dataset of ${sop} (${file.name || file.path}, ${want['00020010']}) differs from the loaded file: ` +
          `${got.length} vs ${exp.length} bytes, first difference at dataset byte ${firstDifference(got, exp)}` +
          (ref ? `; and from a bit-preserving storescp's copy from the same PACS (${datasetBytes(ref).length} bytes, first difference at ${firstDifference(got, datasetBytes(ref))})` : ''));
      }
    }
    sops.push(sop);
  }
  assert.equal(new Set(sops).size, sops.length, `${what}: an instance was sent twice`);
  assert.deepEqual(sops.slice().sort(), expected.map((f) => f.sopUid).sort(), `${what}: instances`);
  return r.parts;
}

// A 200 that was cut off: no closing boundary (and, per the README, the connection dropped).
function assertAborted(r, what) {
  assert.equal(r.status, 200, `${what}: expected a started 200 that is cut off: ${describeRetrieval(r)}`);
  assert.equal(r.parts, null, `${what}: a closing boundary was sent although the retrieval failed: ` +
    `${describeRetrieval(r)}`);
  assert.ok(r.error, `${what}: no closing boundary, but the connection ended cleanly (expected it to be dropped): ` +
    `${describeRetrieval(r)}`);
}

// ---- fixture ---------------------------------------------------------------------------

// The truth per study, ordered by UID for a stable assignment of studies to tests.
function studiesByUid(truth) {
  return [...truth.values()].sort((a, b) => a.studyUid.localeCompare(b.studyUid));
}

function filesOfStudy(st) {
  return [...st.series.values()].flatMap((se) => se.instances.map((i) => ({ path: i.path, sopUid: i.sopUid })));
}

// Samples + PACS + facade with a c-move and a c-get tenant over it (and one whose PACS is down).
//   pick: (studies by UID) => the studies to load (default all).
async function pacsFixture({ kind, name, seed, scale, nodelay = true, maxAssociations, downTenant = false, pick }) {
  const root = server.makeTempDir(name);
  const fx = { root, kind, samplesDir: path.join(root, 'samples'), configDir: path.join(root, 'config'), servers: [] };
  fx.dimsePort = await server.freePort();
  fx.cleanup = async () => {
    await Promise.all(fx.servers.map((s) => s.stop()));
    if (fx.pacs) await fx.pacs.cleanup();
    server.removeDir(root);
  };
  try {
    fx.files = await server.makeSamples(fx.samplesDir, { seed, scale });
    if (pick) {
      const keep = new Set(pick(studiesByUid(h.truthOf(fx.files))).map((st) => st.studyUid));
      for (const f of fx.files) if (!keep.has(f.studyUid)) fs.rmSync(f.path);
      fx.files = fx.files.filter((f) => keep.has(f.studyUid));
    }
    fx.truth = h.truthOf(fx.files);
    fx.bySop = h.filesBySop(fx.files);
    const facades = MODES.map((m) => ({ ae: m.ae, port: fx.dimsePort }));
    if (kind === 'orthanc') {
      fx.pacs = await pacsLib.startOrthanc({ facades, nodelay });
      await fx.pacs.load(fx.files.map((f) => f.path));
    } else {
      fx.pacs = await pacsLib.startDcmqrscp({ facades, nodelay });
      await fx.pacs.load(fx.samplesDir);
    }
    for (const m of MODES) {
      server.writeTenant(fx.configDir, m.tenant, pacsLib.dimseTenant({
        port: fx.pacs.port, calledAe: fx.pacs.aeTitle, ae: m.ae, retrieval: m.name, maxAssociations,
      }));
    }
    if (downTenant) {
      // Our AE is one the PACS does not know as a C-MOVE destination.
      server.writeTenant(fx.configDir, 'stranger', pacsLib.dimseTenant({
        port: fx.pacs.port, calledAe: fx.pacs.aeTitle, ae: 'STRANGER', retrieval: 'c-move',
      }));
      // A port nobody listens on (free a moment ago).
      server.writeTenant(fx.configDir, 'down', pacsLib.dimseTenant({
        port: await server.freePort(), calledAe: 'NOBODY', ae: 'FACADEDOWN', retrieval: 'c-move',
      }));
    }
    fx.dimseDir = path.join(root, 'dimse');
    fx.start = async (more = {}) => {
      const s = await server.startServer({ configDir: fx.configDir, dimseDir: fx.dimseDir, dimsePort: fx.dimsePort, ...more });
      fx.servers.push(s);
      return s;
    };
    fx.server = await fx.start();
    // Study tokens for every study, per tenant: Map tenant -> Map uid -> {study, address}.
    fx.found = new Map();
    fx.search = async (tenant) => {
      const all = new Map();
      for (const pid of new Set(fx.files.map((f) => f.patientId))) {
        const { studies } = await h.searchStudies(fx.server, tenant, `patient=${encodeURIComponent(pid)}`);
        for (const [uid, v] of studies) all.set(uid, v);
      }
      fx.found.set(tenant, all);
      return all;
    };
    // Searches once, so a test run alone (--test-name-pattern) has its tokens too.
    fx.ensure = async (tenant) => { if (!fx.found.has(tenant)) await fx.search(tenant); };
    fx.url = (tenant, uid, rel = '', srv = fx.server) => {
      const entry = fx.found.get(tenant).get(uid);
      assert.ok(entry, `no study token for ${uid} under ${tenant}`);
      return h.localUrl(srv, `${entry.address}/studies/${uid}${rel}`);
    };
  } catch (e) {
    await fx.cleanup();
    throw e;
  }
  return fx;
}

function serverLogTail(srv, n = 40) {
  return srv.logs().split('\n').slice(-n).join('\n');
}

// ---- the main suite, per PACS ----------------------------------------------------------

for (const kind of ['orthanc', 'dcmqrscp']) {
  const have = kind === 'orthanc' ? HAVE_ORTHANC && HAVE_DCMQRSCP : HAVE_DCMQRSCP;
  describe(`DIMSE source over ${kind}`, { timeout: 180000, skip: have ? false : `${kind} is not installed` }, () => {
    let fx;
    let studies; // the truth, by UID
    // Which study each test uses (both tenants have their own cache, so both use the same ones).
    let S;

    before(async () => {
      fx = await pacsFixture({ kind, name: `dimse-${kind}`, seed: kind === 'orthanc' ? 31 : 32, scale: 0.1, downTenant: true });
      studies = studiesByUid(fx.truth);
      assert.ok(studies.length >= 7, `need 7 sample studies, have ${studies.length}`);
      const multiSeries = studies.filter((s) => s.series.size >= 2 && s.instanceCount >= 4);
      const rest = studies.filter((s) => !multiSeries.includes(s));
      const pick = [...multiSeries, ...rest];
      S = { whole: pick[0], series: pick[1], instance: pick[2], single: pick[3], twoA: pick[4], twoB: pick[5], gone: pick[6],
        meta: pick[7] || pick[0] };
    });
    after(async () => { if (fx) await fx.cleanup(); });

    for (const mode of MODES) {
      it(`${mode.name}: ImagingStudy search by MRN finds each patient's studies with their series and instance counts`, async (t) => {
        const t0 = performance.now();
        const found = await fx.search(mode.tenant);
        const ms = performance.now() - t0;
        assert.deepEqual([...found.keys()].sort(), [...fx.truth.keys()].sort(), 'every loaded study is found by its MRN');
        for (const pid of new Set(fx.files.map((f) => f.patientId))) {
          const { bundle, studies: mine } = await h.searchStudies(fx.server, mode.tenant, `patient=${encodeURIComponent(pid)}`);
          h.assertValidFhir(bundle, `Bundle for ${pid}`);
          const want = [...fx.truth.values()].filter((s) => s.patientId === pid).map((s) => s.studyUid).sort();
          assert.deepEqual([...mine.keys()].sort(), want, `studies of ${pid}`);
          for (const [uid, { study }] of mine) {
            const truth = fx.truth.get(uid);
            assert.equal(study.numberOfSeries, truth.series.size, `numberOfSeries of ${uid}`);
            assert.equal(study.numberOfInstances, truth.instanceCount, `numberOfInstances of ${uid}`);
            assert.deepEqual([...new Set((study.modality || []).map((m) => m.code))].sort(), truth.modalities, `modality of ${uid}`);
            assert.deepEqual((study.series || []).map((s) => s.uid).sort(), [...truth.series.keys()].sort(), `series of ${uid}`);
            for (const se of study.series) {
              const ts = truth.series.get(se.uid);
              assert.equal(se.numberOfInstances, ts.instances.length, `numberOfInstances of series ${se.uid}`);
              assert.equal(se.modality && se.modality.code, ts.modality, `modality of series ${se.uid}`);
              if (ts.number !== undefined) assert.equal(se.number, ts.number, `number of series ${se.uid}`);
            }
            assert.equal(study.status, 'available');
          }
        }
        t.diagnostic(`${kind} ${mode.name}: ${new Set(fx.files.map((f) => f.patientId)).size} ImagingStudy searches (cold) in ${ms.toFixed(1)} ms`);
        assert.ok(ms < 10000, `searching ${new Set(fx.files.map((f) => f.patientId)).size} patients took ${ms} ms`);
      });

      it(`${mode.name}: whole study, series and instance retrieval (cold, then warm) are byte-identical to the loaded files`, async (t) => {
        await fx.ensure(mode.tenant);
        const url = (uid, rel) => fx.url(mode.tenant, uid, rel);
        // Whole study, cold then warm.
        const whole = S.whole;
        const wholeFiles = filesOfStudy(whole);
        const bytes = wholeFiles.reduce((n, f) => n + fs.statSync(f.path).size, 0);
        const before = mode.count(fx.pacs);
        const cold = await retrieve(url(whole.studyUid));
        assertComplete(cold, wholeFiles, fx.bySop, `cold study ${whole.studyUid}`);
        assert.equal(cold.parts.length, whole.instanceCount, 'parts = instances');
        assert.equal(mode.count(fx.pacs) - before, 1, `one ${mode.name} for the cold study`);
        figure(t, { what: `${kind} ${mode.name} cold study`, instances: whole.instanceCount, bytes, headersMs: cold.headersMs, firstByteMs: cold.firstByteMs, totalMs: cold.totalMs });
        const warm = await retrieve(url(whole.studyUid));
        assertComplete(warm, wholeFiles, fx.bySop, `warm study ${whole.studyUid}`);
        assert.equal(mode.count(fx.pacs) - before, 1, `no ${mode.name} for the cached study`);
        figure(t, { what: `${kind} ${mode.name} warm study`, instances: whole.instanceCount, bytes, headersMs: warm.headersMs, firstByteMs: warm.firstByteMs, totalMs: warm.totalMs });

        // Each series of another study, cold (a SERIES-level retrieval each), then the whole study
        // from the cache.
        const st = S.series;
        for (const se of st.series.values()) {
          const files = se.instances.map((i) => ({ path: i.path, sopUid: i.sopUid }));
          const n0 = mode.count(fx.pacs);
          const r = await retrieve(url(st.studyUid, `/series/${se.seriesUid}`));
          assertComplete(r, files, fx.bySop, `cold series ${se.seriesUid}`);
          assert.equal(mode.count(fx.pacs) - n0, 1, `one ${mode.name} for series ${se.seriesUid}`);
        }
        const n1 = mode.count(fx.pacs);
        assertComplete(await retrieve(url(st.studyUid)), filesOfStudy(st), fx.bySop, `study ${st.studyUid} from its cached series`);
        assert.equal(mode.count(fx.pacs) - n1, 0, `no ${mode.name} once every series is cached`);

        // One instance of a third study, cold, then warm; then its series (the rest comes from the PACS).
        const it3 = S.instance;
        const se3 = [...it3.series.values()].find((s) => s.instances.length >= 2) || it3.series.values().next().value;
        const inst = se3.instances[0];
        const instUrl = url(it3.studyUid, `/series/${se3.seriesUid}/instances/${inst.sopUid}`);
        const n2 = mode.count(fx.pacs);
        const ci = await retrieve(instUrl);
        assertComplete(ci, [{ path: inst.path, sopUid: inst.sopUid }], fx.bySop, `cold instance ${inst.sopUid}`);
        assert.equal(mode.count(fx.pacs) - n2, 1, `one ${mode.name} for the instance`);
        figure(t, { what: `${kind} ${mode.name} cold instance`, instances: 1, bytes: fs.statSync(inst.path).size, headersMs: ci.headersMs, firstByteMs: ci.firstByteMs, totalMs: ci.totalMs });
        const wi = await retrieve(instUrl);
        assertComplete(wi, [{ path: inst.path, sopUid: inst.sopUid }], fx.bySop, `warm instance ${inst.sopUid}`);
        assert.equal(mode.count(fx.pacs) - n2, 1, `no ${mode.name} for the cached instance`);
        const sr = await retrieve(url(it3.studyUid, `/series/${se3.seriesUid}`));
        assertComplete(sr, se3.instances.map((i) => ({ path: i.path, sopUid: i.sopUid })), fx.bySop, `series ${se3.seriesUid} after one instance`);
        // Single-part application/dicom for one instance.
        const single = await h.request(instUrl, { headers: { accept: 'application/dicom' } });
        if (single.status === 200) {
          assert.ok(datasetBytes(single.body).equals(datasetBytes(fs.readFileSync(inst.path))), 'single-part instance bytes');
        } else {
          t.diagnostic(`single-part application/dicom answered ${single.status}`);
        }
      });

      it(`${mode.name}: 8 concurrent requests for one cold study cause exactly one ${mode.name} at the PACS`, async () => {
        await fx.ensure(mode.tenant);
        const st = S.single;
        const n0 = mode.count(fx.pacs);
        const rs = await Promise.all(Array.from({ length: 8 }, () => retrieve(fx.url(mode.tenant, st.studyUid))));
        for (const [i, r] of rs.entries()) assertComplete(r, filesOfStudy(st), fx.bySop, `request ${i + 1} of 8`);
        assert.equal(mode.count(fx.pacs) - n0, 1, `${mode.name} requests at the PACS for 8 concurrent requests ` +
          `(server log:\n${serverLogTail(fx.server)})`);
      });

      it(`${mode.name}: two different studies retrieved at the same time both complete`, async () => {
        await fx.ensure(mode.tenant);
        const [a, b] = await Promise.all([S.twoA, S.twoB].map((st) => retrieve(fx.url(mode.tenant, st.studyUid))));
        assertComplete(a, filesOfStudy(S.twoA), fx.bySop, `study ${S.twoA.studyUid}`);
        assertComplete(b, filesOfStudy(S.twoB), fx.bySop, `study ${S.twoB.studyUid}`);
      });
    }

    for (const mode of MODES) {
      it(`${mode.name}: metadata of a cold study fills the cache with one ${mode.name}`, async () => {
        await fx.ensure(mode.tenant);
        const st = S.meta;
        const n0 = mode.count(fx.pacs);
        const meta = await h.request(fx.url(mode.tenant, st.studyUid, '/metadata'), { headers: { accept: 'application/dicom+json' } });
        h.assertStatus(meta, 200);
        assert.ok(Array.isArray(meta.json), 'DICOM JSON array');
        assert.deepEqual(meta.json.map((o) => o['00080018'].Value[0]).sort(), filesOfStudy(st).map((f) => f.sopUid).sort(), 'one object per instance');
        assert.equal(mode.count(fx.pacs) - n0, 1, `one ${mode.name}`);
        assertComplete(await retrieve(fx.url(mode.tenant, st.studyUid)), filesOfStudy(st), fx.bySop, 'the study after its metadata');
        assert.equal(mode.count(fx.pacs) - n0, 1, `no further ${mode.name}`);
      });
    }

    it('C-MOVE to an AE the PACS does not know: a clear error before the first byte, naming the cause', async (t) => {
      const st = S.twoA;
      const { studies } = await h.searchStudies(fx.server, 'stranger', `patient=${encodeURIComponent(st.patientId)}`);
      const entry = studies.get(st.studyUid);
      assert.ok(entry, 'C-FIND works for the stranger tenant');
      const r = await retrieve(h.localUrl(fx.server, `${entry.address}/studies/${st.studyUid}`));
      assert.ok(r.status >= 500 && r.status <= 504, `expected a 5xx before the first byte: ${describeRetrieval(r)}`);
      const text = r.body.toString('utf8');
      if (kind === 'orthanc') {
        // Orthanc answers 0xC000 (unable to process), not 0xA801: the facade cannot tell the cause for sure.
        t.diagnostic(`Orthanc, unknown move destination: ${r.status} ${text}`);
      } else {
        assert.match(text, /A801|destination|know/i, `the error names the unknown move destination: ${text}`);
      }
    });

    it('PACS unreachable (a closed port): ImagingStudy search answers 503 OperationOutcome quickly', async () => {
      const t0 = performance.now();
      const r = await h.fhirGet(fx.server, 'down', `ImagingStudy?patient=${encodeURIComponent(fx.files[0].patientId)}`);
      const ms = performance.now() - t0;
      h.assertOperationOutcome(r, 503);
      assert.ok(ms < 10000, `503 after ${ms} ms`);
      const text = JSON.stringify(r.json);
      assert.match(text, /127\.0\.0\.1|NOBODY/, `the OperationOutcome names the PACS: ${text}`);
      // WADO-RS too, under a valid token: a DICOMweb error, quickly, never a 200.
      const st = S.whole;
      const token = await mintToken('down', st.studyUid, st.patientId);
      const t1 = performance.now();
      const w = await retrieve(`${fx.server.baseUrl}/down/wado/${token}/studies/${st.studyUid}`);
      const wms = performance.now() - t1;
      assert.equal(w.status, 503, `WADO-RS with the PACS unreachable: ${describeRetrieval(w)}`);
      assert.ok(wms < 10000, `WADO 503 after ${wms} ms`);
    });

    it('a study deleted at the PACS after the search: 404, never a 200 that is cut off', { skip: kind !== 'orthanc' ? 'dcmqrscp cannot delete a study' : false }, async () => {
      const st = S.gone;
      for (const mode of MODES) await fx.ensure(mode.tenant);
      await fx.pacs.deleteStudy(st.studyUid);
      for (const mode of MODES) {
        const r = await retrieve(fx.url(mode.tenant, st.studyUid));
        assert.equal(r.status, 404, `${mode.name}: ${describeRetrieval(r)}`);
        const se = st.series.values().next().value;
        const rs = await retrieve(fx.url(mode.tenant, st.studyUid, `/series/${se.seriesUid}`));
        assert.equal(rs.status, 404, `${mode.name} series: ${describeRetrieval(rs)}`);
        const ri = await retrieve(fx.url(mode.tenant, st.studyUid, `/series/${se.seriesUid}/instances/${se.instances[0].sopUid}`));
        assert.equal(ri.status, 404, `${mode.name} instance: ${describeRetrieval(ri)}`);
      }
    });

    it('a cached study is served with the PACS stopped', async () => {
      for (const mode of MODES) {
        await fx.ensure(mode.tenant);
        // Cached by the tests before; retrieved here again for a run of this test alone.
        for (const st of [S.whole, S.single]) {
          assertComplete(await retrieve(fx.url(mode.tenant, st.studyUid)), filesOfStudy(st), fx.bySop, `${mode.name}: ${st.studyUid} with the PACS up`);
        }
      }
      await fx.pacs.stop();
      for (const mode of MODES) {
        for (const st of [S.whole, S.single]) {
          const r = await retrieve(fx.url(mode.tenant, st.studyUid));
          assertComplete(r, filesOfStudy(st), fx.bySop, `${mode.name}: cached study ${st.studyUid} with ${kind} stopped`);
        }
        const meta = await h.request(fx.url(mode.tenant, S.whole.studyUid, '/metadata'), { headers: { accept: 'application/dicom+json' } });
        h.assertStatus(meta, 200);
        assert.equal(meta.json.length, S.whole.instanceCount, 'metadata from the cache');
      }
    });
  });
}

// ---- failures mid-retrieval (slow: a Nagle-on PACS and full-size studies) ---------------

// Orthanc with Nagle's algorithm on (TCP_NODELAY unset, as at most sites) paces each
// sub-operation by about 40 ms, so a 40-48-instance retrieval takes seconds: long enough to
// kill the PACS or the facade after the first instance went out.
describe('DIMSE source: the PACS or the facade killed mid-retrieval', {
  timeout: 180000,
  skip: !HAVE_ORTHANC || !HAVE_DCMQRSCP ? 'Orthanc or DCMTK is not installed' : SKIP_SLOW ? 'SI_DIMSE_SKIP_SLOW=1' : false,
}, () => {
  let fx;
  let big; // the loaded studies, largest first

  before(async () => {
    fx = await pacsFixture({
      kind: 'orthanc', name: 'dimse-kill', seed: 33, scale: 1, nodelay: false,
      // The six largest studies: two per mode for the kills, one per mode for a clean cold figure.
      pick: (all) => all.slice().sort((a, b) => b.instanceCount - a.instanceCount || a.studyUid.localeCompare(b.studyUid)).slice(0, 6),
    });
    big = studiesByUid(fx.truth).sort((a, b) => b.instanceCount - a.instanceCount || a.studyUid.localeCompare(b.studyUid));
    for (const m of MODES) await fx.search(m.tenant);
  });
  after(async () => { if (fx) await fx.cleanup(); });

  MODES.forEach((mode, k) => {
    it(`${mode.name}: a cold study from a Nagle-on Orthanc (figures)`, async (t) => {
      const st = big[4 + k];
      const files = filesOfStudy(st);
      const bytes = files.reduce((n, f) => n + fs.statSync(f.path).size, 0);
      const cold = await retrieve(fx.url(mode.tenant, st.studyUid));
      assertComplete(cold, files, fx.bySop, `cold study ${st.studyUid}`);
      figure(t, { what: `orthanc (Nagle on) ${mode.name} cold study`, instances: st.instanceCount, bytes, headersMs: cold.headersMs, firstByteMs: cold.firstByteMs, totalMs: cold.totalMs });
      const finds = fx.pacs.countFinds();
      const warm = await retrieve(fx.url(mode.tenant, st.studyUid));
      assertComplete(warm, files, fx.bySop, `warm study ${st.studyUid}`);
      const findsRightAfter = fx.pacs.countFinds() - finds;
      await pacsLib.sleep(500);
      const finds2 = fx.pacs.countFinds();
      const settled = await retrieve(fx.url(mode.tenant, st.studyUid));
      assertComplete(settled, files, fx.bySop, `warm study ${st.studyUid}, 0.5 s later`);
      figure(t, { what: `orthanc (Nagle on) ${mode.name} warm study (right after)`, instances: st.instanceCount, bytes, headersMs: warm.headersMs, firstByteMs: warm.firstByteMs, totalMs: warm.totalMs });
      figure(t, { what: `orthanc (Nagle on) ${mode.name} warm study (0.5 s later)`, instances: st.instanceCount, bytes, headersMs: settled.headersMs, firstByteMs: settled.firstByteMs, totalMs: settled.totalMs });
      assert.equal(fx.pacs.countFinds() - finds2, 0, 'C-FINDs for a complete cached study (0.5 s after it completed)');
      // "A complete cached study is served with no DIMSE traffic at all": also when asked for the
      // moment its last instance went out.
      assert.equal(findsRightAfter, 0, 'C-FINDs for a cached study asked for right after its retrieval completed');
    });

    it(`${mode.name}: Orthanc SIGKILLed mid-retrieval: the response is cut off; after a restart a retry completes`, async () => {
      const st = big[k];
      const files = filesOfStudy(st);
      let killed = null;
      const r = await retrieve(fx.url(mode.tenant, st.studyUid), {
        onFirstByte: () => { killed = fx.pacs.kill(); },
      });
      assert.ok(killed, `no body byte arrived: ${describeRetrieval(r)}`);
      await killed;
      const got = r.parts ? r.parts.length : (r.body.toString('latin1').match(/\r\nContent-Type: application\/dicom/gi) || []).length;
      assertAborted(r, `study ${st.studyUid} (${st.instanceCount} instances; about ${got} parts arrived)`);
      assert.ok(got < st.instanceCount, `the kill came too late: ${got} of ${st.instanceCount} parts`);

      // While the PACS is down: a clean error before the first byte, never a partial 200.
      const down = await retrieve(fx.url(mode.tenant, st.studyUid));
      assert.ok(down.status >= 500 && down.status <= 504, `with the PACS down: ${describeRetrieval(down)}`);

      await fx.pacs.start();
      const retry = await retrieve(fx.url(mode.tenant, st.studyUid));
      assertComplete(retry, files, fx.bySop, `retry of ${st.studyUid} after the PACS restarted ` +
        `(server log:\n${serverLogTail(fx.server)})`);
      const n = mode.count(fx.pacs);
      assertComplete(await retrieve(fx.url(mode.tenant, st.studyUid)), files, fx.bySop, `cached ${st.studyUid}`);
      assert.equal(mode.count(fx.pacs), n, `no ${mode.name} once the study is complete`);
    });

    it(`${mode.name}: the facade SIGKILLed mid-retrieval, restarted on the same --dimse-dir, serves the study complete`, async () => {
      const st = big[2 + k];
      const files = filesOfStudy(st);
      const first = fx.server;
      let killed = null;
      const r = await retrieve(fx.url(mode.tenant, st.studyUid), {
        onFirstByte: () => {
          killed = (async () => {
            try { process.kill(first.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ }
            await new Promise((res) => (first.proc.exitCode !== null || first.proc.signalCode !== null ? res() : first.proc.once('exit', res)));
          })();
        },
      });
      assert.ok(killed, `no body byte arrived: ${describeRetrieval(r)}`);
      await killed;
      assert.equal(r.parts, null, `a closing boundary arrived from a killed facade: ${describeRetrieval(r)}`);
      await first.stop();
      fx.servers = fx.servers.filter((s) => s !== first);
      // The PACS may still be pushing the old C-MOVE at our port; the new process must cope.
      fx.server = await fx.start();
      const again = await retrieve(fx.url(mode.tenant, st.studyUid));
      assertComplete(again, files, fx.bySop, `study ${st.studyUid} after the facade restarted ` +
        `(server log:\n${serverLogTail(fx.server)})`);
      const n = mode.count(fx.pacs);
      // And once more from the cache of a third process: what the restart stored is complete.
      await fx.server.stop();
      fx.servers = fx.servers.filter((s) => s !== fx.server);
      fx.server = await fx.start();
      assertComplete(await retrieve(fx.url(mode.tenant, st.studyUid)), files, fx.bySop, `${st.studyUid} from the cache after a clean restart`);
      assert.equal(mode.count(fx.pacs), n, `no ${mode.name} for a study completed before the restart`);
    });
  });
});

// ---- stress (bounded) --------------------------------------------------------------------

describe('DIMSE source: 20 cold retrievals at once, both tenants, both cores busy', {
  timeout: 180000,
  skip: !HAVE_ORTHANC || !HAVE_DCMQRSCP ? 'Orthanc or DCMTK is not installed' : SKIP_SLOW ? 'SI_DIMSE_SKIP_SLOW=1' : false,
}, () => {
  let fx;
  let burn;

  before(async () => {
    fx = await pacsFixture({ kind: 'orthanc', name: 'dimse-stress', seed: 34, scale: 0.2 });
    for (const m of MODES) await fx.search(m.tenant);
  });
  after(async () => {
    if (burn) await burn.stop();
    if (fx) await fx.cleanup();
  });

  // 18 whole studies (every study under both tenants) plus 2 series of studies also asked for whole.
  function requests() {
    const list = [];
    const all = studiesByUid(fx.truth);
    for (const m of MODES) for (const st of all) list.push({ tenant: m.tenant, rel: '', files: filesOfStudy(st), st });
    for (const [i, m] of MODES.entries()) {
      const st = all[i];
      const se = [...st.series.values()].pop();
      list.push({ tenant: m.tenant, rel: `/series/${se.seriesUid}`, st, files: se.instances.map((x) => ({ path: x.path, sopUid: x.sopUid })) });
    }
    return list.slice(0, 20);
  }

  // Each response: every instance and the closing boundary, or cut off. Never a closed
  // multipart with instances missing. Returns the counts.
  function classify(list, rs) {
    const out = { complete: 0, aborted: 0, error: 0, violations: [] };
    rs.forEach((r, i) => {
      const want = list[i].files.map((f) => f.sopUid).sort();
      if (r.status === 200 && r.parts && !r.error) {
        const got = r.parts.map((p) => sopOfPart(p.body)).sort();
        if (JSON.stringify(got) === JSON.stringify(want)) out.complete++;
        else out.violations.push(`${list[i].tenant} ${list[i].st.studyUid}${list[i].rel}: closed with ${got.length} of ${want.length} instances`);
      } else if (r.status === 200) {
        if (r.parts) out.violations.push(`${list[i].tenant} ${list[i].st.studyUid}${list[i].rel}: closing boundary but transport error`);
        else out.aborted++;
      } else {
        out.error++;
      }
    });
    return out;
  }

  it('a healthy PACS: all 20 complete and byte-identical', async (t) => {
    burn = pacsLib.burnCpus(2);
    const list = requests();
    const t0 = performance.now();
    const rs = await Promise.all(list.map((q) => retrieve(fx.url(q.tenant, q.st.studyUid, q.rel))));
    const ms = performance.now() - t0;
    await burn.stop();
    burn = null;
    const c = classify(list, rs);
    t.diagnostic(`20 cold retrievals with 2 cores busy: ${ms.toFixed(0)} ms; ${c.complete} complete, ${c.aborted} aborted, ${c.error} error statuses; ` +
      `${fx.pacs.countMoves()} C-MOVE, ${fx.pacs.countGets()} C-GET at Orthanc`);
    assert.deepEqual(c.violations, [], 'closed responses with instances missing');
    rs.forEach((r, i) => assertComplete(r, list[i].files, fx.bySop, `request ${i + 1} (${list[i].tenant} ${list[i].st.studyUid}${list[i].rel})`));
  });

  it('Orthanc SIGKILLed during 20 cold retrievals: each response is complete or cut off, then all complete after a restart', async (t) => {
    // A fresh cache: a new facade process over a new --dimse-dir (same DIMSE port, which Orthanc knows).
    await fx.server.stop();
    fx.servers = fx.servers.filter((s) => s !== fx.server);
    fx.server = await fx.start({ dimseDir: path.join(fx.root, 'dimse-2') });
    const list = requests();
    let killed = null;
    const rs = await Promise.all(list.map((q) => retrieve(fx.url(q.tenant, q.st.studyUid, q.rel), {
      onFirstByte: () => { if (!killed) killed = fx.pacs.kill(); },
    })));
    if (killed) await killed;
    const c = classify(list, rs);
    t.diagnostic(`with Orthanc killed at the first byte: ${c.complete} complete, ${c.aborted} cut off, ${c.error} error statuses ` +
      `(${rs.filter((r) => r.status !== 200).map((r) => r.status).join(',')})`);
    assert.deepEqual(c.violations, [], 'closed responses with instances missing');
    for (const r of rs) if (r.status !== 200) assert.ok(r.status >= 500 && r.status <= 504, describeRetrieval(r));
    await fx.pacs.start();
    const again = await Promise.all(list.map((q) => retrieve(fx.url(q.tenant, q.st.studyUid, q.rel))));
    again.forEach((r, i) => assertComplete(r, list[i].files, fx.bySop, `after the restart, request ${i + 1} ` +
      `(${list[i].tenant} ${list[i].st.studyUid}${list[i].rel}) (server log:\n${serverLogTail(fx.server)})`));
  });
});

// ---- real files: character sets and transfer syntaxes (Debian python3-pydicom) ---------------

// The Part 10 files pydicom ships, with what pydicom reads in them (its decoding of PatientName
// is the reference for ours). Null when pydicom is not installed.
const PYDICOM_MANIFEST = `
import json, os, sys
import pydicom
base = os.path.join(os.path.dirname(pydicom.__file__), 'data')
out = []
for sub in ('test_files', 'charset_files'):
    d = os.path.join(base, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if not name.endswith('.dcm') or not os.path.isfile(p):
            continue
        try:
            with open(p, 'rb') as f:
                head = f.read(132)
            if len(head) < 132 or head[128:132] != b'DICM':
                continue
            ds = pydicom.dcmread(p)
            pn = ds.get('PatientName')
            parts = None
            if pn is not None and str(pn) != '':
                c = list(pn.components) + ['', '', '']
                parts = {'Alphabetic': c[0], 'Ideographic': c[1], 'Phonetic': c[2]}
            out.append({'path': p, 'name': sub + '/' + name, 'sopUid': str(ds.get('SOPInstanceUID', '')),
                        'studyUid': str(ds.get('StudyInstanceUID', '')), 'seriesUid': str(ds.get('SeriesInstanceUID', '')),
                        'patientId': str(ds.get('PatientID', '')), 'transferSyntax': str(ds.file_meta.get('TransferSyntaxUID', '')),
                        'charset': ds.get('SpecificCharacterSet'), 'patientName': parts})
        except Exception:
            pass
json.dump(out, sys.stdout, default=str)
`;

async function pydicomFiles() {
  if (!fs.existsSync('/usr/bin/python3')) return null;
  const r = await pacsLib.run('/usr/bin/python3', ['-W', 'ignore', '-c', PYDICOM_MANIFEST], { timeoutMs: 60000 });
  if (r.code !== 0) return null;
  try { return JSON.parse(r.output.slice(r.output.indexOf('['))); } catch (_) { return null; }
}

// One file per SOP Instance UID (the variants of MR_small share one), new transfer syntaxes first;
// only files with a PatientID (a studies-by-mrn tenant finds nothing else); no study that mixes patients.
function selectRealFiles(all) {
  const usable = all.filter((f) => f.patientId && f.studyUid && f.sopUid && f.seriesUid);
  const chosen = new Map();
  const syntaxes = new Set();
  for (const pass of [0, 1]) {
    for (const f of usable) {
      if (chosen.has(f.sopUid)) continue;
      if (pass === 0 && syntaxes.has(f.transferSyntax)) continue;
      chosen.set(f.sopUid, f);
      syntaxes.add(f.transferSyntax);
    }
  }
  const byStudy = new Map();
  for (const f of chosen.values()) byStudy.set(f.studyUid, [...(byStudy.get(f.studyUid) || []), f]);
  return [...byStudy.values()].filter((fs_) => new Set(fs_.map((f) => f.patientId)).size === 1).flat();
}

describe('DIMSE source over Orthanc with real files (character sets, transfer syntaxes, SOP classes)', {
  timeout: 120000, skip: !HAVE_ORTHANC || !HAVE_DCMQRSCP ? 'Orthanc or DCMTK is not installed' : false,
}, () => {
  let files = null; // accepted by Orthanc
  let refused = [];
  let pacs;
  let srv;
  let root;
  let bySop;
  let rawScp;
  const pacsCopy = new Map();
  const nameProblems = {}; // by mode

  before(async () => {
    const all = await pydicomFiles();
    if (!all) return;
    root = server.makeTempDir('dimse-real');
    const dimsePort = await server.freePort();
    const rawPort = await server.freePort();
    pacs = await pacsLib.startOrthanc({ facades: [...MODES.map((m) => ({ ae: m.ae, port: dimsePort })), { ae: 'RAWSCP', port: rawPort }] });
    files = [];
    for (const f of selectRealFiles(all)) {
      const r = await pacs.http('POST', '/instances', fs.readFileSync(f.path));
      if (r.status === 200 && r.json && r.json.ID) files.push(f); else refused.push(f.name);
    }
    const configDir = path.join(root, 'config');
    for (const m of MODES) {
      server.writeTenant(configDir, m.tenant, pacsLib.dimseTenant({ port: pacs.port, calledAe: pacs.aeTitle, ae: m.ae, retrieval: m.name }));
    }
    srv = await server.startServer({ configDir, dimsePort, dimseDir: path.join(root, 'dimse') });
    bySop = new Map(files.map((f) => [f.sopUid, f]));
    // What the PACS really sends, received bit-preserving by DCMTK's storescp (all syntaxes accepted).
    const rawDir = path.join(root, 'raw');
    fs.mkdirSync(rawDir, { recursive: true });
    rawScp = pacsLib.spawnLogged('storescp', ['-aet', 'RAWSCP', '+xa', '+B', '-od', rawDir, String(rawPort)], { TCP_NODELAY: '1' });
    await pacsLib.until(() => pacsLib.echo(rawPort, 'RAWSCP'), { what: 'storescp answering C-ECHO' });
    for (const studyUid of new Set(files.map((f) => f.studyUid))) {
      await pacsLib.run('movescu', ['-S', '-aec', pacs.aeTitle, '-aem', 'RAWSCP', '-k', 'QueryRetrieveLevel=STUDY',
        '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(pacs.port)], { env: { TCP_NODELAY: '1' } });
    }
    for (const name of fs.readdirSync(rawDir)) {
      const buf = fs.readFileSync(path.join(rawDir, name));
      try { pacsCopy.set(sopOfPart(buf), buf); } catch (_) { /* not a Part 10 file */ }
    }
  });
  after(async () => {
    if (process.env.SI_DIMSE_LOG_DIR && srv) {
      fs.writeFileSync(path.join(process.env.SI_DIMSE_LOG_DIR, 'real-files-server.log'), srv.logs());
      fs.writeFileSync(path.join(process.env.SI_DIMSE_LOG_DIR, 'real-files-orthanc.log'), pacs.log());
    }
    if (rawScp) await pacsLib.killNow(rawScp.child);
    if (srv) await srv.stop();
    if (pacs) await pacs.cleanup();
    if (root) server.removeDir(root);
  });

  for (const mode of MODES) {
    it(`${mode.name}: every study found by its PatientID and retrieved byte-identical to the file (or to what the PACS itself sends)`, async (t) => {
      if (!files) { t.skip('python3-pydicom is not installed'); return; }
      t.diagnostic(`${files.length} files loaded (${new Set(files.map((f) => f.transferSyntax)).size} transfer syntaxes); ` +
        `Orthanc refused ${refused.length}: ${refused.join(', ')}`);
      const problems = [];
      const notes = [];
      const names = [];
      nameProblems[mode.name] = names;
      for (const pid of [...new Set(files.map((f) => f.patientId))].sort()) {
        const mine = files.filter((f) => f.patientId === pid);
        let found;
        try {
          found = (await h.searchStudies(srv, mode.tenant, `patient=${encodeURIComponent(pid)}`)).studies;
        } catch (e) {
          problems.push(`search patient=${pid}: ${e.message.slice(0, 300)}`);
          continue;
        }
        for (const studyUid of new Set(mine.map((f) => f.studyUid))) {
          const expected = mine.filter((f) => f.studyUid === studyUid);
          const label = `${pid} ${studyUid} (${expected.map((f) => f.name).join(', ')})`;
          const entry = found.get(studyUid);
          if (!entry) { problems.push(`${label}: not found by patient=${pid}`); continue; }
          if (entry.study.numberOfInstances !== expected.length) {
            problems.push(`${label}: numberOfInstances ${entry.study.numberOfInstances}, loaded ${expected.length}`);
          }
          const r = await retrieve(h.localUrl(srv, `${entry.address}/studies/${studyUid}`));
          try {
            assertComplete(r, expected, bySop, label, { pacsCopy, notes });
          } catch (e) {
            problems.push(`${label}: ${e.message.split('\n')[0].slice(label.length + 2).replace(/\/wado\/[^/]+\//g, '/wado/{token}/').replace(/http:\/\/127\.0\.0\.1:\d+/g, '').slice(0, 600)}`);
            continue;
          }
          const meta = await h.request(h.localUrl(srv, `${entry.address}/studies/${studyUid}/metadata`),
            { headers: { accept: 'application/dicom+json' } });
          if (meta.status !== 200 || !Array.isArray(meta.json)) {
            problems.push(`${label}: metadata ${meta.status} ${meta.text.slice(0, 200)}`);
            continue;
          }
          for (const obj of meta.json) {
            const sop = obj['00080018'] && obj['00080018'].Value && obj['00080018'].Value[0];
            const f = bySop.get(sop);
            if (!f || !f.patientName) continue;
            const pn = (obj['00100010'] && obj['00100010'].Value && obj['00100010'].Value[0]) || {};
            for (const k of ['Alphabetic', 'Ideographic', 'Phonetic']) {
              const want = (f.patientName[k] || '').replace(/=+$/, '');
              const got = (pn[k] || '').replace(/=+$/, '');
              if (want !== got) names.push(`${f.name} (${JSON.stringify(f.charset)}): PatientName ${k} ${JSON.stringify(got)}, pydicom ${JSON.stringify(want)}`);
            }
          }
        }
      }
      for (const n of notes) t.diagnostic(n);
      assert.deepEqual(problems, [], `${problems.length} problems:\n  ${problems.join('\n  ')}\n(server log:\n${serverLogTail(srv, 30)})`);
    });
  }

  it('PatientName in DICOM JSON metadata is decoded from every character set as pydicom decodes it', (t) => {
    if (!files) { t.skip('python3-pydicom is not installed'); return; }
    const names = nameProblems['c-move'];
    assert.ok(names, 'the c-move retrieval ran');
    assert.deepEqual(names, [], `${names.length} names differ:\n  ${names.join('\n  ')}`);
  });
});
