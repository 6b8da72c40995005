'use strict';
// Debian's Orthanc with its DICOMweb plugin, as the upstream of dicom-web tenants:
// started on free ports with its own JSON config and storage in a temp directory,
// HTTP basic auth on, loaded with POST /instances, stopped by PID. CommonJS, node >= 18.19.
// (lib/pacs.js starts Orthanc for DIMSE tests without auth or plugins; this one is for DICOMweb.)

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { freePort, makeTempDir, removeDir } = require('./server');

const ORTHANC_BIN = process.env.ORTHANC_BIN || '/usr/sbin/Orthanc';
const PLUGIN_DIR = process.env.ORTHANC_PLUGINS || '/usr/share/orthanc/plugins';
const USER = 'si-test';
const PASSWORD = 'si-test-secret-9f3b';

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function available() {
  const plugin = path.join(PLUGIN_DIR, 'libOrthancDicomWeb.so');
  if (!fs.existsSync(ORTHANC_BIN)) return `${ORTHANC_BIN} is not installed (apt-get install orthanc orthanc-dicomweb)`;
  if (!fs.existsSync(plugin)) return `${plugin} is not installed (apt-get install orthanc-dicomweb)`;
  return null;
}

// startOrthancWeb() -> {httpPort, root (DICOMweb root URL), user, password, auth (header), load(files),
//   get(rel, headers), pid, log(), stop()}
async function startOrthancWeb() {
  const dir = makeTempDir('orthanc-web');
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage, { recursive: true });
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const cfg = path.join(dir, 'orthanc.json');
  fs.writeFileSync(cfg, JSON.stringify({
    Name: 'si-dicomweb-test',
    StorageDirectory: storage,
    IndexDirectory: storage,
    HttpPort: httpPort,
    DicomPort: dicomPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [USER]: PASSWORD },
    Plugins: [path.join(PLUGIN_DIR, 'libOrthancDicomWeb.so')],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
    HttpCompressionEnabled: false,
    StorageCompression: false,
  }, null, 2));
  const child = spawn(ORTHANC_BIN, [cfg], {
    env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let log = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  child.on('exit', () => live.delete(child));

  const base = `http://127.0.0.1:${httpPort}`;
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const o = {
    httpPort,
    base,
    root: `${base}/dicom-web`,
    user: USER,
    password: PASSWORD,
    auth,
    pid: child.pid,
    log: () => log,
    async get(rel, headers = {}) {
      const res = await fetch(`${base}${rel}`, { headers: { authorization: auth, ...headers } });
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
    },
    // POST /instances, a few at a time; Orthanc stores the file as sent.
    async load(files) {
      let next = 0;
      const worker = async () => {
        while (next < files.length) {
          const f = files[next++];
          const res = await fetch(`${base}/instances`, {
            method: 'POST', headers: { authorization: auth }, body: fs.readFileSync(f),
          });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`Orthanc refused ${f}: ${res.status} ${text.slice(0, 300)}`);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(child.pid, 'SIGTERM'); } catch (_) { /* gone */ }
        const gone = await new Promise((resolve) => {
          const t = setTimeout(() => resolve(false), 8000);
          child.once('exit', () => { clearTimeout(t); resolve(true); });
        });
        if (!gone) { try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ } }
      }
      live.delete(child);
      removeDir(dir);
    },
  };
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) { await o.stop(); throw new Error(`Orthanc exited early:\n${log}`); }
    try {
      const r = await fetch(`${o.root}/studies`, { headers: { authorization: auth } });
      if (r.status === 200) { await r.arrayBuffer(); break; }
    } catch (_) { /* not yet */ }
    if (Date.now() - started > 20000) { await o.stop(); throw new Error(`Orthanc did not answer on ${httpPort}:\n${log}`); }
    await sleep(100);
  }
  return o;
}

// A dicom-web tenant over it.
function dicomWebTenant(orthanc, { lookup = 'all-studies-on-server', authorization, extra } = {}) {
  return {
    authorization: authorization || { type: 'mock', disableAuthzChecks: true },
    images: {
      type: 'dicom-web',
      lookup,
      endpoint: orthanc.root,
      authentication: { type: 'http-basic', username: orthanc.user, password: orthanc.password },
      ...(extra || {}),
    },
  };
}

module.exports = { available, startOrthancWeb, dicomWebTenant, USER, PASSWORD };
