'use strict';
// Real PACS for the DIMSE black-box tests: Debian's Orthanc and DCMTK's dcmqrscp, each
// started on free loopback ports with its own config and storage in a temp directory,
// loaded with files, and stopped (or SIGKILLed) by PID. CommonJS, node >= 18.19.
//
// Both PACS listen on every interface (neither has a bind option): the ports are free
// ephemeral ones, Orthanc has RemoteAccessAllowed false, and both only ever talk to 127.0.0.1.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { freePort, makeTempDir, removeDir } = require('./server');

const ORTHANC_BIN = process.env.ORTHANC_BIN || '/usr/sbin/Orthanc';

// Every process started here and not yet reaped, so a crashing test file leaves no orphans.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child, ms) {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.removeListener('exit', onExit); resolve(false); }, ms);
    function onExit() { clearTimeout(timer); resolve(true); }
    child.once('exit', onExit);
  });
}

// SIGTERM, then SIGKILL after graceMs; resolves once the process is gone.
async function terminate(child, graceMs = 5000) {
  if (!child) return;
  if (!exited(child)) {
    try { process.kill(child.pid, 'SIGTERM'); } catch (_) { /* gone */ }
    if (!await waitForExit(child, graceMs)) {
      try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ }
      await waitForExit(child, 5000);
    }
  }
  live.delete(child);
}

async function killNow(child) {
  if (!child) return;
  if (!exited(child)) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    await waitForExit(child, 5000);
  }
  live.delete(child);
}

// A long-running process whose output is kept (capped) for log counting and error messages.
// env: added variables; a null value removes one.
function mergedEnv(env) {
  const out = { ...process.env };
  for (const [k, v] of Object.entries(env || {})) {
    if (v === null || v === undefined) delete out[k]; else out[k] = v;
  }
  return out;
}

function spawnLogged(cmd, args, env) {
  const child = spawn(cmd, args, { env: mergedEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let all = '';
  const add = (d) => { all += d; };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  child.on('exit', () => live.delete(child));
  child.on('error', (e) => { all += `\n[spawn error] ${e.message}\n`; });
  return { child, log: () => all };
}

// Runs a command to completion: {code, signal, output}.
function run(cmd, args, { env, timeoutMs = 60000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: mergedEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch (_) { /* gone */ } }, timeoutMs);
    child.on('error', (e) => { output += `\n[spawn error] ${e.message}`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, output });
    });
  });
}

function count(text, re) {
  const m = text.match(re);
  return m ? m.length : 0;
}

// Retries fn until it returns truthy, or throws after timeoutMs.
async function until(fn, { timeoutMs = 20000, intervalMs = 100, what = 'condition', detail } = {}) {
  const start = Date.now();
  for (;;) {
    if (await fn()) return;
    if (Date.now() - start > timeoutMs) {
      throw new Error(`${what} not met within ${timeoutMs} ms${detail ? `\n${detail()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

// C-ECHO (DCMTK echoscu): true when the AE answers.
async function echo(port, calledAe, callingAe = 'ECHOSCU') {
  const r = await run('echoscu', ['-to', '2', '-aet', callingAe, '-aec', calledAe, '127.0.0.1', String(port)],
    { env: { TCP_NODELAY: '1' }, timeoutMs: 5000 });
  return r.code === 0;
}

// ---- dcmqrscp ----------------------------------------------------------------------------

// startDcmqrscp({aeTitle, facades: [{ae, port}], dataDir, nodelay, loadDirs})
//   facades: the AEs that may receive C-MOVE (HostTable). Other AEs may still C-FIND/C-GET (ANY).
// Resolves to {port, aeTitle, dataDir, load(dir), countMoves(), countGets(), log(), stop(), kill(), restart()}.
async function startDcmqrscp(opts = {}) {
  const aeTitle = opts.aeTitle || 'PACS';
  const facades = opts.facades || [{ ae: opts.facadeAe || 'FACADE', port: opts.facadePort }];
  const root = makeTempDir('dcmqrscp');
  const dataDir = opts.dataDir || path.join(root, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const port = opts.port || await freePort();
  const cfg = path.join(root, 'dcmqrscp.cfg');
  const hosts = facades.map((f, i) => `peer${i} = (${f.ae}, 127.0.0.1, ${f.port})`).join('\n');
  fs.writeFileSync(cfg, [
    `NetworkTCPPort  = ${port}`,
    'MaxPDUSize      = 16384',
    'MaxAssociations = 32',
    '',
    'HostTable BEGIN',
    hosts,
    'HostTable END',
    '',
    'VendorTable BEGIN',
    'VendorTable END',
    '',
    'AETable BEGIN',
    `${aeTitle}  ${dataDir}  RW  (500, 1024mb)  ANY`,
    'AETable END',
    '',
  ].join('\n'));
  const env = { TCP_NODELAY: opts.nodelay === false ? null : '1' };

  let proc = null;
  let previousLogs = '';
  const pacs = {
    kind: 'dcmqrscp', port, aeTitle, dataDir, root,
    log: () => previousLogs + (proc ? proc.log() : ''),
    // dcmqrscp -v prints one "Received Move SCP:" / "Received Get SCP:" per request.
    countMoves: () => count(pacs.log(), /Received Move SCP:/g),
    countGets: () => count(pacs.log(), /Received Get SCP:/g),
    countFinds: () => count(pacs.log(), /Received Find SCP:/g),
    async start() {
      proc = spawnLogged('dcmqrscp', ['-v', '-c', cfg], env);
      await until(async () => {
        if (exited(proc.child)) throw new Error(`dcmqrscp exited early:\n${proc.log()}`);
        return echo(port, aeTitle);
      }, { what: `dcmqrscp answering C-ECHO on ${port}`, detail: () => proc.log() });
    },
    pid: () => proc && proc.child.pid,
    // storescu +sd +r: every file under dir, recursively.
    async load(dir) {
      const r = await run('storescu', ['+sd', '+r', '-aec', aeTitle, '127.0.0.1', String(port), dir],
        { env: { TCP_NODELAY: '1' }, timeoutMs: 120000 });
      if (r.code !== 0) throw new Error(`storescu into dcmqrscp failed (${r.code}):\n${r.output}`);
    },
    async stop() {
      if (proc) { await terminate(proc.child); previousLogs += proc.log(); proc = null; }
    },
    async kill() {
      if (proc) { await killNow(proc.child); previousLogs += proc.log(); proc = null; }
    },
    async restart() { await pacs.stop(); await pacs.start(); },
    async cleanup() { await pacs.kill(); removeDir(root); },
  };
  try {
    await pacs.start();
    for (const d of opts.loadDirs || []) await pacs.load(d);
  } catch (e) {
    await pacs.cleanup();
    throw e;
  }
  return pacs;
}

// ---- Orthanc -----------------------------------------------------------------------------

// startOrthanc({facades: [{ae, port}], nodelay (default true), files})
//   facades: DicomModalities entries (C-MOVE destinations; C-GET callers are allowed anyway).
// Resolves to {dicomPort, httpPort, aeTitle, http(method, path, body), load(files),
//   countMoves(), countGets(), log(), stop(), kill(), restart()}.
async function startOrthanc(opts = {}) {
  const facades = opts.facades || [{ ae: opts.facadeAe || 'FACADE', port: opts.facadePort }];
  const root = makeTempDir('orthanc');
  const storage = path.join(root, 'storage');
  fs.mkdirSync(storage, { recursive: true });
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const aeTitle = opts.aeTitle || 'ORTHANC';
  const modalities = {};
  facades.forEach((f, i) => { modalities[`facade${i}`] = [f.ae, '127.0.0.1', f.port]; });
  const cfg = path.join(root, 'orthanc.json');
  fs.writeFileSync(cfg, JSON.stringify({
    Name: 'blackbox',
    StorageDirectory: storage,
    IndexDirectory: storage,
    HttpPort: httpPort,
    DicomPort: dicomPort,
    DicomAet: aeTitle,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomModalities: modalities,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowFind: true,
    DicomAlwaysAllowMove: true,
    DicomAlwaysAllowGet: true,
    DicomCheckModalityHost: false,
    StrictAetComparison: false,
    DicomCheckCalledAet: false,
    Plugins: [],
    HttpCompressionEnabled: false,
    StorageCompression: false,
    ConcurrentJobs: 2,
  }, null, 2));
  // nodelay false: Nagle's algorithm stays on, as at most hospitals.
  const env = { TCP_NODELAY: opts.nodelay === false ? null : '1' };

  let proc = null;
  let previousLogs = '';
  const base = `http://127.0.0.1:${httpPort}`;
  const pacs = {
    kind: 'orthanc', dicomPort, port: dicomPort, httpPort, aeTitle, root,
    log: () => previousLogs + (proc ? proc.log() : ''),
    // Its verbose log has one line per request (see ../../../shared/PEERS.md).
    countMoves: () => count(pacs.log(), /Move-SCU request received/g),
    countGets: () => count(pacs.log(), /C-GET-SCU request received/g),
    countFinds: () => count(pacs.log(), /DICOM C-Find request at level/g),
    pid: () => proc && proc.child.pid,
    async http(method, rel, body) {
      const res = await fetch(`${base}${rel}`, { method, body });
      const buf = Buffer.from(await res.arrayBuffer());
      let json;
      try { json = JSON.parse(buf.toString('utf8')); } catch (_) { json = undefined; }
      return { status: res.status, body: buf, json };
    },
    async start() {
      proc = spawnLogged(ORTHANC_BIN, ['--verbose', cfg], env);
      await until(async () => {
        if (exited(proc.child)) throw new Error(`Orthanc exited early:\n${proc.log()}`);
        try { return (await fetch(`${base}/system`)).ok; } catch (_) { return false; }
      }, { what: `Orthanc answering HTTP on ${httpPort}`, detail: () => proc.log() });
      await until(() => echo(dicomPort, aeTitle), { what: `Orthanc answering C-ECHO on ${dicomPort}` });
    },
    // POST /instances, one file at a time; returns the Orthanc ids by file path.
    async load(files) {
      const ids = new Map();
      for (const f of files) {
        const r = await pacs.http('POST', '/instances', fs.readFileSync(f));
        if (r.status !== 200 || !r.json || !r.json.ID) {
          throw new Error(`Orthanc refused ${f}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
        }
        ids.set(f, r.json);
      }
      return ids;
    },
    // The Orthanc id of a study, by StudyInstanceUID.
    async studyId(studyUid) {
      const r = await pacs.http('POST', '/tools/lookup', studyUid);
      const hit = (r.json || []).find((x) => x.Type === 'Study');
      return hit && hit.ID;
    },
    async deleteStudy(studyUid) {
      const id = await pacs.studyId(studyUid);
      if (!id) throw new Error(`Orthanc has no study ${studyUid}`);
      const r = await pacs.http('DELETE', `/studies/${id}`);
      if (r.status !== 200) throw new Error(`DELETE /studies/${id}: ${r.status}`);
    },
    async stop() {
      if (proc) { await terminate(proc.child, 10000); previousLogs += proc.log(); proc = null; }
    },
    async kill() {
      if (proc) { await killNow(proc.child); previousLogs += proc.log(); proc = null; }
    },
    // Same config, ports and storage.
    async restart() { await pacs.stop(); await pacs.start(); },
    async cleanup() { await pacs.kill(); removeDir(root); },
  };
  try {
    await pacs.start();
    if (opts.files) await pacs.load(opts.files);
  } catch (e) {
    await pacs.cleanup();
    throw e;
  }
  return pacs;
}

// ---- tenants ------------------------------------------------------------------------------

// A DIMSE tenant: open (any patient), studies by MRN.
function dimseTenant({ port, calledAe, ae, retrieval, maxAssociations, extra }) {
  const images = {
    type: 'dicom-dimse',
    lookup: 'studies-by-mrn',
    endpoint: `dimse://127.0.0.1:${port}`,
    ae,
    calledAe,
    retrieval,
    ...(maxAssociations ? { maxAssociations } : {}),
    ...(extra || {}),
  };
  return { authorization: { type: 'mock', disableAuthzChecks: true }, images };
}

// ---- load on the cores --------------------------------------------------------------------

// n busy-looping node processes (to keep the cores busy during a stress test); stop() kills them.
function burnCpus(n) {
  const children = [];
  for (let i = 0; i < n; i++) {
    const c = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
    live.add(c);
    c.on('exit', () => live.delete(c));
    children.push(c);
  }
  return { async stop() { await Promise.all(children.map(killNow)); } };
}

module.exports = { startDcmqrscp, startOrthanc, dimseTenant, burnCpus, run, echo, until, sleep, spawnLogged, killNow, terminate };
