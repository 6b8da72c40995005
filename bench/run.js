#!/usr/bin/env node
'use strict';
// The benchmark harness (issue 7): the facade side by side with raw DCMTK tools, Orthanc's own
// DICOMweb, cat and a raw loopback copy, all measured in one run on this machine.
//
//   node bench/run.js [--quick] [--out DIR] [--runs N] [--scale X] [--keep] [--update-benchmarks-md]
//   (--scale: sample scale, default 1, 0.05 with --quick; --keep: leave the temporary directory)
//
// It generates its data with `smart-imaging samples --profile bench`, loads it into a fresh
// Orthanc (DICOMweb plugin on, TCP_NODELAY=1) on free loopback ports, starts the facade with a
// C-MOVE and a C-GET DIMSE tenant (restarted on an empty cache for every cold run), a second
// facade with folder tenants behind the real test EHR (tests/blackbox/ehr/ehr.js) for the SMART
// figures, and writes DIR/results.json (one object per scenario) and DIR/results.md.
// --quick: one run per scenario on small studies (scale 0.05): proves the harness works, asserts
// no speed. Exit status 1 when a scenario failed (neither a figure nor a stated reason).
// Every process it starts is stopped by PID at exit; its temporary directory is removed.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const option = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const QUICK = flag('quick');
const RUNS = Number(option('runs', QUICK ? 1 : 3));
const OUT = path.resolve(option('out', path.join(ROOT, 'build', QUICK ? 'bench-quick' : 'bench')));
const SCALE = Number(option('scale', QUICK ? 0.05 : 1));
const BIN = process.env.SMART_IMAGING_BIN || path.join(ROOT, 'build', 'smart-imaging');
const ORTHANC = process.env.ORTHANC_BIN || 'Orthanc';
const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const BENCH_MRN = 'BENCH-0001';
const PATH_KEY = 'bench-path-key';
const WRK_SECONDS = QUICK ? 1 : 5;
const ACCEPT_DICOM = 'multipart/related; type="application/dicom"';
const ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"';

// ---- processes, ports, files ---------------------------------------------------------------

const children = new Set();
let work = null;

function log(msg) { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); }

// Spawns with stdout/stderr into files (never a pipe into this process, which would slow the
// child and skew the figures); tracked so cleanup stops it by PID.
function start(cmd, args, { env, name } = {}) {
  if (stopping || !work) throw new Error('stopping');
  const logFile = path.join(work, `${name || path.basename(cmd)}-${Date.now()}.log`);
  const fd = fs.openSync(logFile, 'w');
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.logFile = logFile;
  child.exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  child.on('error', () => {});
  children.add(child);
  child.exited.then(() => children.delete(child));
  child.log = () => { try { return fs.readFileSync(logFile, 'utf8'); } catch (_) { return ''; } };
  return child;
}

async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(child.pid, 'SIGTERM'); } catch (_) { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch (_) {} }, 5000);
  await child.exited;
  clearTimeout(t);
}

async function cleanup() {
  await Promise.all([...children].map(stop));
  if (work && !flag('keep')) fs.rmSync(work, { recursive: true, force: true });
  work = null;
}
process.on('exit', () => { for (const c of children) { try { process.kill(c.pid, 'SIGKILL'); } catch (_) {} } });
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;  // start() refuses from now on, so the run cannot spawn behind cleanup's back
    cleanup().finally(() => process.exit(130));
  });
}

// Runs to completion; resolves {code, stdout, stderr, ms}.
function run(cmd, args, { env, timeoutMs = 600000 } = {}) {
  return new Promise((resolve, reject) => {
    if (stopping) { reject(new Error('stopping')); return; }
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch (_) {} }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); children.delete(child); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

async function mustRun(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).slice(-800)}`);
  return r;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// A PATH lookup in this process (no child, so a signal never lands in a synchronous spawn).
function have(tool) {
  if (tool.includes('/')) return fs.existsSync(tool);
  return (process.env.PATH || '').split(':').some((d) => {
    try { fs.accessSync(path.join(d || '.', tool), fs.constants.X_OK); return true; } catch (_) { return false; }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, what, timeoutMs = 120000) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out); else if (e.isFile()) out.push(p);
  }
  return out;
}

function vmHwmMb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// ---- HTTP clients ----------------------------------------------------------------------------

// curl, so whole-study transfers are read by the same efficient client for every server.
async function curl(url, headers = {}) {
  const args = ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_starttransfer} %{time_total} %{size_download}'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const r = await run('curl', args);
  const [code, ttfb, total, size] = r.stdout.trim().split(' ').map(Number);
  if (code !== 200) throw new Error(`GET ${redact(url)}: HTTP ${code}`);
  return { ttfbMs: ttfb * 1000, totalMs: total * 1000, bytes: size };
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get(url, { headers, agent: keepAlive }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}
async function getJson(url, headers) {
  const r = await get(url, headers);
  if (r.status !== 200) throw new Error(`GET ${redact(url)}: HTTP ${r.status} ${r.body.toString().slice(0, 300)}`);
  return JSON.parse(r.body.toString('utf8'));
}
const redact = (u) => u.replace(/\/wado\/[^/]+/, '/wado/{token}');

// ---- statistics and results ------------------------------------------------------------------

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const round = (x, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
const results = [];

// One scenario row. values: the facade's figures; baseline: {name, values} measured in this run.
// target: {text, check(ratio, row) -> bool} where the issue names one.
function record({ name, unit, values, baseline, notes = [], target, higherIsBetter = false }) {
  const row = { name, runs: values.length, median: round(median(values), 2), min: round(Math.min(...values), 2), max: round(Math.max(...values), 2), unit };
  if (baseline) {
    row.baseline = baseline.name;
    row.baseline_median = round(median(baseline.values), 2);
    row.baseline_runs = baseline.values.length;
    row.ratio = round(row.median / row.baseline_median, 3);
  } else {
    row.baseline = null; row.baseline_median = null; row.ratio = null;
  }
  row.higher_is_better = higherIsBetter;
  if (target) { row.target = target.text; row.target_met = target.check(row); }
  row.notes = notes.join('; ');
  results.push(row);
  log(`${name}: median ${row.median} ${unit}${row.baseline ? `, ${row.baseline} ${row.baseline_median} (ratio ${row.ratio})` : ''}${target ? `, target ${target.text}: ${row.target_met ? 'met' : 'MISSED'}` : ''}`);
  return row;
}
function notAvailable(name, reason) {
  results.push({ name, runs: 0, median: null, unit: null, baseline: null, ratio: null, available: false, notes: `not available: ${reason}` });
  log(`${name}: not available: ${reason}`);
}
function failed(name, err) {
  results.push({ name, runs: 0, median: null, unit: null, baseline: null, ratio: null, error: String(err && err.stack || err) });
  log(`${name}: FAILED: ${err && err.stack || err}`);
}
async function scenario(names, fn) {
  try { await fn(); } catch (e) { for (const n of [].concat(names)) if (!results.some((r) => r.name === n)) failed(n, e); }
}
async function times(n, fn) { const out = []; for (let i = 0; i < n; i++) out.push(await fn(i)); return out; }

// ---- the run ---------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'si-bench-'));
  const t0 = Date.now();
  const missing = ['findscu', 'movescu', 'getscu', 'storescp', 'storescu', 'echoscu', 'curl', ORTHANC].filter((t) => !have(t));
  if (!fs.existsSync(BIN)) throw new Error(`no binary at ${BIN} (build first, or set SMART_IMAGING_BIN)`);
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (bash scripts/install-deps.sh)`);
  const env = { TCP_NODELAY: '1' };  // Orthanc and the DCMTK baselines with Nagle off, as the facade

  // Data.
  log(`generating samples (scale ${SCALE}) in ${work}`);
  const samplesDir = path.join(work, 'samples');
  const gen = await mustRun(BIN, ['samples', '--out', samplesDir, '--seed', '7', '--scale', String(SCALE), '--profile', 'bench']);
  const studies = [];
  for (const line of gen.stdout.split('\n')) {
    const m = /^\s+(\S+)\s+(\S+)\s+(\d+) series,\s+(\d+) instances\s+study (\S+)/.exec(line);
    if (m) studies.push({ patient: m[1], modality: m[2], series: +m[3], instances: +m[4], uid: m[5] });
  }
  const benchStudies = studies.filter((s) => s.patient === BENCH_MRN);
  if (benchStudies.length !== 5) throw new Error(`expected 5 bench studies, got ${benchStudies.length}:\n${gen.stdout}`);
  const [ct, large] = benchStudies;
  for (const s of studies) {
    const dir = path.join(samplesDir, s.patient, s.uid);
    s.files = walk(dir);
    s.bytes = s.files.reduce((a, f) => a + fs.statSync(f).size, 0);
    s.seriesUids = fs.readdirSync(dir).sort();
  }
  log(`CT study ${ct.instances} instances ${(ct.bytes / 1e6).toFixed(0)} MB; large study ${large.instances} instances ${(large.bytes / 1e6).toFixed(0)} MB`);

  // Orthanc, with its DICOMweb plugin, loaded by storescu.
  const ports = { orthancHttp: await freePort(), orthancDicom: await freePort(), facadeScp: await freePort(), storescp: await freePort(), facade: await freePort(), folderFacade: await freePort() };
  const orthancDir = path.join(work, 'orthanc');
  fs.mkdirSync(orthancDir);
  const orthancCfg = path.join(work, 'orthanc.json');
  fs.writeFileSync(orthancCfg, JSON.stringify({
    Name: 'bench', StorageDirectory: orthancDir, IndexDirectory: orthancDir,
    HttpPort: ports.orthancHttp, DicomPort: ports.orthancDicom, DicomAet: 'ORTHANC',
    RemoteAccessAllowed: false, AuthenticationEnabled: false, HttpCompressionEnabled: false, StorageCompression: false,
    Plugins: fs.existsSync(DICOMWEB_PLUGIN) ? [DICOMWEB_PLUGIN] : [],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
    DicomModalities: {
      facade: ['FACADE', '127.0.0.1', ports.facadeScp], facadeget: ['FACADEGET', '127.0.0.1', ports.facadeScp],
      storescp: ['STORESCP', '127.0.0.1', ports.storescp], getscu: ['GETSCU', '127.0.0.1', 1],
    },
    DicomAlwaysAllowEcho: true, DicomAlwaysAllowStore: true, DicomAlwaysAllowFind: true, DicomAlwaysAllowMove: true,
    DicomAlwaysAllowGet: true, DicomCheckModalityHost: false, StrictAetComparison: false, DicomCheckCalledAet: false,
  }));
  const orthanc = start(ORTHANC, ['--verbose', orthancCfg], { env, name: 'orthanc' });
  const orthancBase = `http://127.0.0.1:${ports.orthancHttp}`;
  await until(async () => {
    if (orthanc.exitCode !== null) throw new Error(`Orthanc exited: ${orthanc.log().slice(-1000)}`);
    try { return (await get(`${orthancBase}/system`)).status === 200; } catch (_) { return false; }
  }, 'Orthanc');
  log('loading Orthanc');
  await mustRun('storescu', ['+sd', '+r', '-aec', 'ORTHANC', '127.0.0.1', String(ports.orthancDicom), samplesDir], { env });
  const stats = await getJson(`${orthancBase}/statistics`);
  const total = studies.reduce((a, s) => a + s.instances, 0);
  if (stats.CountInstances !== total) throw new Error(`Orthanc holds ${stats.CountInstances} instances, expected ${total}`);
  const countMoves = () => (orthanc.log().match(/Move-SCU request received/g) || []).length;

  // storescp, the C-MOVE baseline's destination.
  const storescpDir = path.join(work, 'storescp');
  fs.mkdirSync(storescpDir);
  start('storescp', ['-aet', 'STORESCP', '-od', storescpDir, String(ports.storescp)], { env, name: 'storescp' });

  // The DIMSE facade: restarted on an empty cache for each cold run.
  const configDir = path.join(work, 'config');
  fs.mkdirSync(configDir);
  const dimseTenant = (ae, retrieval) => ({
    authorization: { type: 'mock', disableAuthzChecks: true },
    images: { type: 'dicom-dimse', lookup: 'studies-by-mrn', endpoint: `dimse://127.0.0.1:${ports.orthancDicom}`, ae, calledAe: 'ORTHANC', retrieval },
  });
  fs.writeFileSync(path.join(configDir, 'move.json'), JSON.stringify(dimseTenant('FACADE', 'c-move')));
  fs.writeFileSync(path.join(configDir, 'get.json'), JSON.stringify(dimseTenant('FACADEGET', 'c-get')));
  const staticFile = path.join(work, 'static-512k.bin');
  fs.writeFileSync(staticFile, Buffer.alloc(512 * 1024, 0x5a));
  const base = `http://127.0.0.1:${ports.facade}`;
  let facade = null;
  let cacheN = 0;
  async function startFacade({ keepCache = false } = {}) {
    await stop(facade);
    const cache = path.join(work, 'cache');
    if (!keepCache) fs.rmSync(cache, { recursive: true, force: true });
    facade = start(BIN, ['serve', '--port', String(ports.facade), '--base-url', base, '--config-dir', configDir,
      '--dimse-dir', cache, '--dimse-port', String(ports.facadeScp), '--path-key', PATH_KEY,
      '--bench-static', staticFile], { name: `facade-${++cacheN}` });
    await until(() => {
      if (facade.exitCode !== null) throw new Error(`facade exited: ${facade.log().slice(-1000)}`);
      return /listening on http/.test(facade.log());
    }, 'the facade');
    facade.cache = cache;
  }
  await startFacade();

  // Study tokens (Endpoint addresses) for every study, from the facade's own searches.
  const address = {};
  for (const mrn of [...new Set(studies.map((s) => s.patient))]) {
    for (const tenant of ['move', 'get']) {
      const b = await getJson(`${base}/${tenant}/fhir/ImagingStudy?patient=${encodeURIComponent(mrn)}&_count=100`);
      for (const e of b.entry || []) address[`${tenant}:${e.resource.id}`] = e.resource.contained[0].address;
    }
  }
  const studyUrl = (tenant, s) => `${address[`${tenant}:${s.uid}`]}/studies/${s.uid}`;
  for (const s of studies) if (!address[`move:${s.uid}`]) throw new Error(`no search hit for study ${s.uid}`);

  // 1. ImagingStudy search for the patient with 5 studies (C-FIND) vs findscu, same queries.
  await scenario('ImagingStudy search, patient with 5 studies (C-FIND)', async () => {
    const n = QUICK ? 1 : Math.max(RUNS, 7);
    const facadeMs = await times(n, async () => (await curl(`${base}/move/fhir/ImagingStudy?patient=${BENCH_MRN}`)).totalMs);
    const dimseArgs = ['-S', '-aec', 'ORTHANC'];
    // Series-level queries, one file per study, sent by one findscu over one association; built
    // before the clock starts (the UIDs are known from the generator; the facade learns them from
    // its study-level answer).
    const queries = [];
    for (const s of benchStudies) {
      const dump = path.join(work, `q-${s.uid}.txt`);
      fs.writeFileSync(dump, ['(0008,0052) CS [SERIES]', `(0020,000d) UI [${s.uid}]`, '(0020,000e) UI []', '(0008,0060) CS []',
        '(0020,0011) IS []', '(0008,103e) LO []', '(0008,0021) DA []', '(0008,0031) TM []', '(0018,0015) CS []', '(0020,1209) IS []'].join('\n') + '\n');
      const q = path.join(work, `q-${s.uid}.dcm`);
      await mustRun('dump2dcm', [dump, q]);
      queries.push(q);
    }
    const findscuMs = await times(n, async () => {
      const t = process.hrtime.bigint();
      const study = await mustRun('findscu', [...dimseArgs, '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${BENCH_MRN}`, '-k', 'StudyInstanceUID',
        '-k', 'StudyDate', '-k', 'StudyTime', '-k', 'StudyDescription', '-k', 'AccessionNumber', '-k', 'ReferringPhysicianName',
        '-k', 'ModalitiesInStudy', '-k', 'NumberOfStudyRelatedInstances', '-k', 'NumberOfStudyRelatedSeries', '-k', 'PatientName',
        '-k', 'PatientBirthDate', '-k', 'PatientSex', '127.0.0.1', String(ports.orthancDicom)], { env });
      const series = await mustRun('findscu', [...dimseArgs, '127.0.0.1', String(ports.orthancDicom), ...queries], { env });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const found = (study.stderr + study.stdout).match(/Find Response: \d+ \(Pending\)/g) || [];
      const seriesFound = (series.stderr + series.stdout).match(/Find Response: \d+ \(Pending\)/g) || [];
      const want = benchStudies.reduce((a, x) => a + x.series, 0);
      if (found.length !== 5 || seriesFound.length !== want) throw new Error(`findscu found ${found.length} studies, ${seriesFound.length} series (want 5, ${want})`);
      return ms;
    });
    const echoMs = await times(3, async () => (await mustRun('echoscu', ['-aec', 'ORTHANC', '127.0.0.1', String(ports.orthancDicom)], { env })).ms);
    record({ name: 'ImagingStudy search, patient with 5 studies (C-FIND)', unit: 'ms', values: facadeMs,
      baseline: { name: 'findscu at study level, then one findscu with the 5 series-level queries (one association)', values: findscuMs },
      target: { text: '<= 1.2 x findscu', check: (r) => r.ratio <= 1.2 },
      notes: [`the baseline is 2 DCMTK processes; each costs ~${round(median(echoMs), 0)} ms alone (echoscu: start-up, dictionary, one association)`, 'the facade keeps no C-FIND cache: every search is a study-level and 5 series-level C-FINDs'] });
  });

  // 2./3. Cold whole-study retrieval via C-MOVE and C-GET vs movescu -> storescp and getscu.
  const moveBaseline = { ttfb: [], ttlb: [] };
  const coldMove = { ttfb: [], ttlb: [] };
  await scenario(['cold whole-study WADO-RS via C-MOVE, time to last byte', 'cold whole-study WADO-RS via C-MOVE, time to first byte'], async () => {
    for (let i = 0; i < RUNS; i++) {
      fs.rmSync(storescpDir, { recursive: true, force: true }); fs.mkdirSync(storescpDir);
      let first = null;
      const t = process.hrtime.bigint();
      const watcher = fs.watch(storescpDir, () => { if (first === null) first = Number(process.hrtime.bigint() - t) / 1e6; });
      await mustRun('movescu', ['-S', '-aec', 'ORTHANC', '-aem', 'STORESCP', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${ct.uid}`,
        '127.0.0.1', String(ports.orthancDicom)], { env });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      watcher.close();
      const got = fs.readdirSync(storescpDir).length;
      if (got !== ct.instances) throw new Error(`storescp received ${got} of ${ct.instances}`);
      moveBaseline.ttfb.push(first); moveBaseline.ttlb.push(ms);
    }
    for (let i = 0; i < RUNS; i++) {
      await startFacade();
      const r = await curl(studyUrl('move', ct), { Accept: ACCEPT_DICOM });
      if (r.bytes < ct.bytes) throw new Error(`cold C-MOVE returned ${r.bytes} bytes, less than the ${ct.bytes} stored`);
      coldMove.ttfb.push(r.ttfbMs); coldMove.ttlb.push(r.totalMs);
    }
    // What the facade asks before its C-MOVE (existence, patient, instance list): the share of
    // the time to first byte that the raw tools skip.
    const imageFind = await times(RUNS, async () => (await mustRun('findscu', ['-S', '-aec', 'ORTHANC', '-k', 'QueryRetrieveLevel=IMAGE',
      '-k', `StudyInstanceUID=${ct.uid}`, '-k', 'SeriesInstanceUID', '-k', 'SOPInstanceUID', '-k', 'SOPClassUID', '127.0.0.1', String(ports.orthancDicom)], { env })).ms);
    const planNote = `an IMAGE-level C-FIND of the study (findscu, the facade's plan before its C-MOVE) takes ${round(median(imageFind), 0)} ms`;
    const note = `CT study, ${ct.series} series x ${ct.instances / ct.series} instances, ${(ct.bytes / 1e6).toFixed(0)} MB; the facade fsyncs and indexes every instance, storescp does neither; ${planNote}`;
    record({ name: 'cold whole-study WADO-RS via C-MOVE, time to last byte', unit: 'ms', values: coldMove.ttlb,
      baseline: { name: 'movescu -> storescp', values: moveBaseline.ttlb }, target: { text: '<= 1.10 x movescu -> storescp', check: (r) => r.ratio <= 1.10 }, notes: [note] });
    const b = median(moveBaseline.ttfb);
    record({ name: 'cold whole-study WADO-RS via C-MOVE, time to first byte', unit: 'ms', values: coldMove.ttfb,
      baseline: { name: 'movescu start -> first file created by storescp', values: moveBaseline.ttfb },
      target: { text: '<= raw time to first instance + 50 ms', check: (r) => r.median <= b + 50 }, notes: [`the facade confirms the study and lists its instances by C-FIND first; ${planNote}`] });
  });
  await scenario('cold whole-study WADO-RS via C-GET, time to last byte', async () => {
    const getDir = path.join(work, 'getscu');
    const base_ = await times(RUNS, async () => {
      fs.rmSync(getDir, { recursive: true, force: true }); fs.mkdirSync(getDir);
      const r = await mustRun('getscu', ['-S', '-aet', 'GETSCU', '-aec', 'ORTHANC', '-od', getDir, '-k', 'QueryRetrieveLevel=STUDY',
        '-k', `StudyInstanceUID=${ct.uid}`, '127.0.0.1', String(ports.orthancDicom)], { env });
      const got = fs.readdirSync(getDir).length;
      if (got !== ct.instances) throw new Error(`getscu received ${got} of ${ct.instances}`);
      return r.ms;
    });
    const vals = await times(RUNS, async () => {
      await startFacade();
      return (await curl(studyUrl('get', ct), { Accept: ACCEPT_DICOM })).totalMs;
    });
    record({ name: 'cold whole-study WADO-RS via C-GET, time to last byte', unit: 'ms', values: vals, baseline: { name: 'getscu', values: base_ },
      notes: ['no target in the issue; the C-MOVE target (1.10x) is the reference'] });
  });

  // 4. Warm whole-study throughput (the facade has the CT study cached after a cold C-MOVE).
  const warmNames = ['warm whole-study WADO-RS, cached (vs Orthanc WADO-RS)', 'warm whole-study WADO-RS, cached (vs cat to /dev/null)', 'warm whole-study WADO-RS, cached (vs raw loopback)'];
  let warmReady = false;
  let warmMbps = NaN;
  await scenario(warmNames, async () => {
    await startFacade();
    await curl(studyUrl('move', ct), { Accept: ACCEPT_DICOM });  // fills the cache
    warmReady = true;
    const n = QUICK ? 1 : Math.max(RUNS, 5);
    const mbps = (r) => r.bytes / 1e6 / (r.totalMs / 1000);
    const facadeVals = await times(n, async () => mbps(await curl(studyUrl('move', ct), { Accept: ACCEPT_DICOM })));
    warmMbps = median(facadeVals);
    const orthancUrl = `${orthancBase}/dicom-web/studies/${ct.uid}`;
    await curl(orthancUrl, { Accept: ACCEPT_DICOM });
    const orthancVals = await times(n, async () => mbps(await curl(orthancUrl, { Accept: ACCEPT_DICOM })));
    const stored = walk(path.join(facade.cache)).filter((f) => f.endsWith('.dcm'));
    const storedBytes = stored.reduce((a, f) => a + fs.statSync(f).size, 0);
    if (stored.length !== ct.instances) throw new Error(`cache holds ${stored.length} .dcm files, expected ${ct.instances}`);
    await mustRun('cat', stored);
    const catVals = await times(n, async () => {
      const t = process.hrtime.bigint();
      await new Promise((resolve, reject) => {
        const devnull = fs.openSync('/dev/null', 'w');
        const c = spawn('cat', stored, { stdio: ['ignore', devnull, 'ignore'] });
        fs.closeSync(devnull);
        c.on('error', reject); c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`cat exited ${code}`))));
      });
      return storedBytes / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9);
    });
    // Raw loopback: a separate process sends the same stored files to a socket with sendfile(2)
    // (no user-space copy) behind a minimal HTTP head, read by the same curl: the cost of moving
    // the bytes through loopback to this client, with no DICOM or HTTP logic at all.
    const rawPort = await freePort();
    const listFile = path.join(work, 'raw-files.json');
    fs.writeFileSync(listFile, JSON.stringify(stored));
    const raw = start('python3', ['-c', `
import json, os, socket, sys
files = json.load(open(sys.argv[1]))
size = sum(os.path.getsize(f) for f in files)
srv = socket.create_server(('127.0.0.1', int(sys.argv[2])))
print('ready', flush=True)
while True:
    c, _ = srv.accept()
    c.recv(65536)
    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: application/octet-stream\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n' % size)
    for f in files:
        with open(f, 'rb') as fh:
            c.sendfile(fh)
    c.close()
`, listFile, String(rawPort)], { name: 'raw-loopback' });
    await until(() => /ready/.test(raw.log()), 'raw loopback server');
    const rawVals = await times(n, async () => mbps(await curl(`http://127.0.0.1:${rawPort}/`)));
    await stop(raw);
    const note = `${(ct.bytes / 1e6).toFixed(0)} MB CT study, curl -o /dev/null as the client for every server`;
    const hib = true;
    record({ name: warmNames[0], unit: 'MB/s', values: facadeVals, baseline: { name: "Orthanc's own WADO-RS (dicom-web plugin), same study", values: orthancVals },
      higherIsBetter: hib, target: { text: '>= 2 x Orthanc', check: (r) => r.ratio >= 2 }, notes: [note] });
    record({ name: warmNames[1], unit: 'MB/s', values: facadeVals, baseline: { name: 'cat of the cached files to /dev/null (page cache)', values: catVals },
      higherIsBetter: hib, target: { text: '>= 0.70 x cat', check: (r) => r.ratio >= 0.7 }, notes: [note] });
    record({ name: warmNames[2], unit: 'MB/s', values: facadeVals, baseline: { name: 'raw loopback: sendfile(2) of the same files to one socket, same curl client', values: rawVals },
      higherIsBetter: hib, notes: [note] });
  });

  // 5. Series metadata for 200 instances, warm.
  await scenario('series metadata, 200-instance series, warm', async () => {
    if (!warmReady) throw new Error('the CT study is not cached (the warm scenario failed)');
    const se = ct.seriesUids[0];
    const ours = `${address[`move:${ct.uid}`]}/studies/${ct.uid}/series/${se}/metadata`;
    const theirs = `${orthancBase}/dicom-web/studies/${ct.uid}/series/${se}/metadata`;
    const h = { Accept: 'application/dicom+json' };
    await curl(ours, h); await curl(theirs, h);
    const n = QUICK ? 1 : Math.max(RUNS, 7);
    record({ name: 'series metadata, 200-instance series, warm', unit: 'ms', values: await times(n, async () => (await curl(ours, h)).totalMs),
      baseline: { name: "Orthanc's /dicom-web/studies/S/series/SE/metadata", values: await times(n, async () => (await curl(theirs, h)).totalMs) },
      notes: [`${ct.instances / ct.series} instances in the series`] });
  });

  // 6. Requests per second (wrk, keep-alive, 2 threads, 64 connections) vs the static 512 KB file.
  const rpsNames = ['cached single-instance requests/s', 'cached single-frame requests/s'];
  await scenario(rpsNames, async () => {
    if (!have('wrk')) { for (const n of rpsNames) notAvailable(n, 'wrk is not installed (Debian wrk; scripts/install-deps.sh)'); return; }
    if (!warmReady) throw new Error('the CT study is not cached (the warm scenario failed)');
    const se = ct.seriesUids[0];
    const sop = path.basename(walk(path.join(samplesDir, BENCH_MRN, ct.uid, se)).sort()[0], '.dcm');
    const instanceUrl = `${address[`move:${ct.uid}`]}/studies/${ct.uid}/series/${se}/instances/${sop}`;
    const wrk = async (url, accept) => {
      const args = ['-t2', '-c64', `-d${WRK_SECONDS}s`];
      if (accept) args.push('-H', `Accept: ${accept}`);
      const r = await mustRun('wrk', [...args, url]);
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
      const bad = /Non-2xx or 3xx responses:\s+(\d+)/.exec(r.stdout);
      const errs = /Socket errors:.*/.exec(r.stdout);
      if (!rps) throw new Error(`wrk printed no Requests/sec: ${r.stdout}`);
      if (bad) throw new Error(`wrk saw ${bad[1]} non-2xx answers from ${redact(url)}`);
      return { rps: Number(rps[1]), errs: errs ? errs[0] : '' };
    };
    const staticUrl = `${base}/bench-static`;
    const one = await get(instanceUrl, { Accept: ACCEPT_DICOM });
    if (one.status !== 200) throw new Error(`instance: HTTP ${one.status}`);
    const staticVals = []; const instVals = []; const notes = [];
    for (let i = 0; i < RUNS; i++) {
      const s = await wrk(staticUrl); staticVals.push(s.rps);
      const r = await wrk(instanceUrl, ACCEPT_DICOM); instVals.push(r.rps);
      if (s.errs || r.errs) notes.push(`wrk ${s.errs} ${r.errs}`.trim());
    }
    const staticBase = { name: 'static 512 KB file (serve --bench-static) on the same HTTP stack', values: staticVals };
    record({ name: rpsNames[0], unit: 'req/s', values: instVals, baseline: staticBase, higherIsBetter: true,
      notes: [`one ${(one.body.length / 1024).toFixed(0)} KB part (512x512 16-bit CT); wrk -t2 -c64 -d${WRK_SECONDS}s, keep-alive`, ...notes] });
    const frameUrl = `${instanceUrl}/frames/1`;
    const probe = await get(frameUrl, { Accept: ACCEPT_FRAMES });
    if (probe.status !== 200) { notAvailable(rpsNames[1], `frames endpoint ${probe.status} (branch frames not merged)`); return; }
    const frameVals = await times(RUNS, async () => (await wrk(frameUrl, ACCEPT_FRAMES)).rps);
    record({ name: rpsNames[1], unit: 'req/s', values: frameVals, baseline: staticBase, higherIsBetter: true,
      notes: [`frame 1 of the same instance, ${(probe.body.length / 1024).toFixed(0)} KB response`] });
  });

  // 7. Concurrency: N clients on one cold study (expect one C-MOVE), N clients on 8 cold studies.
  const rss32 = [];
  for (const n of [8, 32]) {
    const name = `${n} concurrent clients, one cold study (C-MOVE)`;
    await scenario(name, async () => {
      const vals = []; const moves = [];
      for (let i = 0; i < RUNS; i++) {
        await startFacade();
        const before = countMoves();
        const t = process.hrtime.bigint();
        const rs = await Promise.all(Array.from({ length: n }, () => curl(studyUrl('move', ct), { Accept: ACCEPT_DICOM })));
        vals.push(Number(process.hrtime.bigint() - t) / 1e6);
        if (rs.some((r) => r.bytes < ct.bytes)) throw new Error('a client got a short study');
        await sleep(200);  // Orthanc writes its log line asynchronously
        moves.push(countMoves() - before);
        if (n === 32) rss32.push(vmHwmMb(facade.pid));
      }
      record({ name, unit: 'ms', values: vals, baseline: { name: 'one client (cold C-MOVE, time to last byte)', values: coldMove.ttlb },
        target: n === 32 ? { text: 'one C-MOVE, <= 1.2 x one client', check: (r) => r.ratio <= 1.2 && moves.every((m) => m === 1) } : undefined,
        notes: [`C-MOVE requests seen by Orthanc per run: ${moves.join(', ')}`, 'wall time until every client has the whole study',
          `${n} x ${(ct.bytes / 1e6).toFixed(0)} MB at the warm rate (${round(warmMbps, 0)} MB/s) alone takes ${round(n * ct.bytes / 1e6 / warmMbps * 1000, 0)} ms`] });
    });
  }
  const eight = studies.filter((s) => s.patient !== BENCH_MRN).sort((a, b) => b.instances - a.instances).slice(0, 8);
  const serial = [];
  for (const n of [8, 32]) {
    const name = `${n} concurrent clients, 8 different cold studies (C-MOVE)`;
    await scenario(name, async () => {
      if (eight.length < 8) throw new Error('fewer than 8 studies besides the bench patient');
      if (!serial.length) {
        for (let i = 0; i < RUNS; i++) {
          await startFacade();
          const t = process.hrtime.bigint();
          for (const s of eight) await curl(studyUrl('move', s), { Accept: ACCEPT_DICOM });
          serial.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }
      const vals = []; const moves = [];
      for (let i = 0; i < RUNS; i++) {
        await startFacade();
        const before = countMoves();
        const t = process.hrtime.bigint();
        await Promise.all(Array.from({ length: n }, (_, k) => curl(studyUrl('move', eight[k % 8]), { Accept: ACCEPT_DICOM })));
        vals.push(Number(process.hrtime.bigint() - t) / 1e6);
        await sleep(200);
        moves.push(countMoves() - before);
      }
      const mb = eight.reduce((a, s) => a + s.bytes, 0) / 1e6;
      record({ name, unit: 'ms', values: vals, baseline: { name: 'the 8 studies one after another (one client)', values: serial },
        notes: [`8 studies, ${eight.reduce((a, s) => a + s.instances, 0)} instances, ${mb.toFixed(0)} MB`, `C-MOVE requests per run: ${moves.join(', ')}`,
          'maxAssociations 4 (the default): at most 4 retrievals at a time'] });
    });
  }

  // 8. Peak RSS: during the ~1 GB study's cold retrieval, and while 32 clients stream.
  await scenario('facade peak RSS, ~1 GB study cold C-MOVE', async () => {
    const vals = []; const ttlb = [];
    for (let i = 0; i < (QUICK ? 1 : 2); i++) {
      await startFacade();
      const r = await curl(studyUrl('move', large), { Accept: ACCEPT_DICOM });
      if (r.bytes < large.bytes) throw new Error('short large study');
      ttlb.push(r.totalMs);
      vals.push(vmHwmMb(facade.pid));
    }
    record({ name: 'facade peak RSS, ~1 GB study cold C-MOVE', unit: 'MB', values: vals,
      target: { text: '< 150 MB', check: (r) => r.max < 150 },
      notes: [`VmHWM from /proc; study ${large.instances} instances, ${(large.bytes / 1e6).toFixed(0)} MB; time to last byte ${round(median(ttlb), 0)} ms`] });
  });
  await scenario('facade peak RSS, 32 clients streaming one cold study', async () => {
    if (!rss32.length) throw new Error('the 32-client scenario produced no figure');
    record({ name: 'facade peak RSS, 32 clients streaming one cold study', unit: 'MB', values: rss32,
      target: { text: '< 150 MB', check: (r) => r.max < 150 }, notes: [`VmHWM from /proc; CT study, ${(ct.bytes / 1e6).toFixed(0)} MB`] });
  });
  await stop(facade);

  // 9. SMART tenant: per-request overhead of authorization vs an open tenant.
  const smartNames = ['SMART tenant search, decision cache on', 'SMART tenant search, decision cache off'];
  await scenario(smartNames, async () => {
    let startEhr, patientResource;
    try {
      ({ startEhr, patientResource } = require(path.join(ROOT, 'tests', 'blackbox', 'ehr', 'ehr.js')));
      require.resolve('oidc-provider', { paths: [path.join(ROOT, 'tests', 'blackbox')] });
    } catch (e) {
      for (const n of smartNames) notAvailable(n, 'the test EHR needs tests/blackbox/node_modules (cd tests/blackbox && npm ci)');
      return;
    }
    const crypto = require('node:crypto');
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const kid = 'bench';
    const pub = { ...publicKey.export({ format: 'jwk' }), alg: 'ES384', kid };
    const priv = { ...privateKey.export({ format: 'jwk' }), alg: 'ES384', kid };
    const demoMrn = studies[0].patient;  // the sandbox patient: three small studies
    const ehr = await startEhr({ facadeClients: [{ client_id: 'bench-facade', jwk: pub, alg: 'ES384' }], patients: { p1: patientResource('p1', demoMrn) } });
    let srv = null;
    try {
      const dir = path.join(work, 'smart-config');
      fs.mkdirSync(dir);
      const folder = path.join(samplesDir, demoMrn);
      const images = { type: 'folder', path: folder, lookup: 'studies-by-mrn' };
      const smart = (extra) => ({ authorization: { type: 'smart-on-fhir', fhirBaseUrl: ehr.fhirBase, scope: 'system/Patient.read', client: { client_id: 'bench-facade', jwkPrivate: priv }, ...extra }, images });
      fs.writeFileSync(path.join(dir, 'open.json'), JSON.stringify({ authorization: { type: 'mock', disableAuthzChecks: true }, images }));
      fs.writeFileSync(path.join(dir, 'smart.json'), JSON.stringify(smart({})));
      fs.writeFileSync(path.join(dir, 'smartnocache.json'), JSON.stringify(smart({ decisionCacheSeconds: 0 })));
      const fbase = `http://127.0.0.1:${ports.folderFacade}`;
      srv = start(BIN, ['serve', '--port', String(ports.folderFacade), '--base-url', fbase, '--config-dir', dir, '--dimse-dir', path.join(work, 'smart-cache'),
        '--dimse-port', String(await freePort()), '--path-key', PATH_KEY], { name: 'facade-smart' });
      await until(() => { if (srv.exitCode !== null) throw new Error(`facade exited: ${srv.log()}`); return /listening on http/.test(srv.log()); }, 'the SMART facade');
      const token = await ehr.mint({ patient: 'p1', scope: 'launch/patient patient/ImagingStudy.rs', expiresIn: 3600 });
      const perRun = QUICK ? 20 : 200;
      const auth = { Authorization: `Bearer ${token}` };
      const urls = { open: [`${fbase}/open/fhir/ImagingStudy?patient=${demoMrn}`, {}],
        cached: [`${fbase}/smart/fhir/ImagingStudy?patient=p1`, auth], uncached: [`${fbase}/smartnocache/fhir/ImagingStudy?patient=p1`, auth] };
      for (const [url, headers] of Object.values(urls)) {
        const first = await getJson(url, headers);
        if (!first.entry || first.entry.length !== 3) throw new Error(`search ${url} found ${first.entry ? first.entry.length : 0} studies, expected 3`);
      }
      const oneRun = async ([url, headers]) => {
        const t = process.hrtime.bigint();
        for (let i = 0; i < perRun; i++) { const r = await get(url, headers); if (r.status !== 200) throw new Error(`HTTP ${r.status}`); }
        return Number(process.hrtime.bigint() - t) / 1e6 / perRun;
      };
      // Interleaved, so drift on this shared machine hits the three alike.
      const open = [], cached = [], uncached = [];
      ehr.resetStats();
      for (let i = 0; i < (QUICK ? 1 : Math.max(RUNS, 5)); i++) {
        open.push(await oneRun(urls.open)); cached.push(await oneRun(urls.cached)); uncached.push(await oneRun(urls.uncached));
      }
      const calls = { ...ehr.stats };
      const openBase = { name: 'open tenant (mock authorization), same search', values: open };
      const note = `mean of ${perRun} sequential keep-alive searches per run (3 studies each), EHR = tests/blackbox/ehr/ehr.js (oidc-provider) on loopback`;
      record({ name: smartNames[0], unit: 'ms/request', values: cached, baseline: openBase, target: { text: '<= 1.10 x open', check: (r) => r.ratio <= 1.10 }, notes: [note] });
      record({ name: smartNames[1], unit: 'ms/request', values: uncached, baseline: openBase,
        notes: [note, `EHR calls over all runs: ${calls.introspect} introspections, ${calls.patient} Patient reads (all from the uncached tenant: ${open.length * perRun} requests)`] });
    } finally {
      await stop(srv);
      await ehr.stop();
    }
  });

  // Output.
  const meta = {
    date: new Date().toISOString(), mode: QUICK ? 'quick' : 'full', runs: RUNS, scale: SCALE,
    commit: gitCommit(), machine: { cores: os.cpus().length, cpu: os.cpus()[0] && os.cpus()[0].model, memory_gb: round(os.totalmem() / 2 ** 30, 1), kernel: os.release() },
    duration_s: round((Date.now() - t0) / 1000, 0),
  };
  fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify({ ...meta, scenarios: results }, null, 2) + '\n');
  const md = markdown(meta);
  fs.writeFileSync(path.join(OUT, 'results.md'), md);
  if (flag('update-benchmarks-md')) fs.writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), benchmarksMd(meta, md));
  process.stdout.write(md);
  log(`wrote ${path.join(OUT, 'results.json')} and results.md in ${meta.duration_s} s`);
  const bad = results.filter((r) => !(typeof r.median === 'number' && Number.isFinite(r.median)) && r.available !== false);
  return bad.length ? 1 : 0;
}

function gitCommit() {
  try {
    const c = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim();
    return dirty ? `${c} (with uncommitted changes)` : c;
  } catch (_) { return 'unknown'; }
}

function markdown(meta) {
  const cell = (x) => (x === null || x === undefined ? '' : String(x).replace(/\|/g, '\\|'));
  const lines = [
    `Run ${meta.date} (${meta.mode}, ${meta.runs} run(s) per scenario, sample scale ${meta.scale}), commit ${meta.commit},`,
    `${meta.machine.cores} cores (${meta.machine.cpu}), ${meta.machine.memory_gb} GB memory, took ${meta.duration_s} s.`,
    '',
    '| scenario | runs | median | min | max | unit | baseline | baseline median | ratio | target | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const target = r.target ? `${r.target}: ${r.target_met ? 'met' : '**missed**'}` : '';
    const notes = r.error ? `FAILED: ${r.error.split('\n')[0]}` : r.notes;
    lines.push(`| ${cell(r.name)} | ${r.runs} | ${cell(r.median)} | ${cell(r.min)} | ${cell(r.max)} | ${cell(r.unit)} | ${cell(r.baseline)} | ${cell(r.baseline_median)} | ${cell(r.ratio)} | ${cell(target)} | ${cell(notes)} |`);
  }
  return lines.join('\n') + '\n';
}

// The table is regenerated; everything from the analysis marker on (profiles of missed targets,
// written by hand) is kept from the existing file.
const ANALYSIS_MARKER = '<!-- analysis: kept by bench/run.js --update-benchmarks-md -->';
function benchmarksMd(meta, md) {
  let analysis = '';
  try {
    const old = fs.readFileSync(path.join(ROOT, 'BENCHMARKS.md'), 'utf8');
    const i = old.indexOf(ANALYSIS_MARKER);
    if (i >= 0) analysis = old.slice(i);
  } catch (_) { /* first run */ }
  return `# Benchmarks\n\nThe latest full run of \`node bench/run.js --update-benchmarks-md\` (see README, "Benchmarks").\n` +
    `The machine is shared and noisy: compare the ratios, measured side by side in one run, not absolute times across runs.\n` +
    `Ratios are facade / baseline (for MB/s and req/s, higher is better).\n\n${md}\n${analysis || `${ANALYSIS_MARKER}\n`}`;
}

main().then(async (code) => { await cleanup(); process.exit(code); }, async (e) => {
  log(`harness failed: ${e && e.stack || e}`);
  await cleanup();
  process.exit(1);
});
