#!/usr/bin/env node
'use strict';
// Figures for dicom-web tenants against real Orthanc + DICOMweb plugin, in one run:
//  1. ImagingStudy latency for a patient with 10 studies, series queries concurrent
//     (queryConcurrency 8) vs one after another (queryConcurrency 1, the reference's N+1);
//     also through a proxy that adds WAN_MS (default 10) ms per request, as a remote VNA;
//  2. whole-study WADO-RS pass-through throughput vs fetching the same study from Orthanc
//     directly (curl both, same run).
// Usage: SMART_IMAGING_BIN=build/smart-imaging node bench/dicomweb-figures.js [runs] [big-scale]
// (defaults: 20 runs, scale 3 for the throughput study). Needs Debian's orthanc + orthanc-dicomweb.

const path = require('node:path');
const fs = require('node:fs');
const http = require('node:http');
const { execFileSync } = require('node:child_process');

const lib = path.join(__dirname, '..', 'tests', 'blackbox', 'lib');
process.env.SMART_IMAGING_BIN = process.env.SMART_IMAGING_BIN || path.join(__dirname, '..', 'build', 'smart-imaging');
const server = require(path.join(lib, 'server'));
const ow = require(path.join(lib, 'orthanc-web'));

const MRN = '293ee354-f8ad-4345-b10c-759fdfdcc082';
const ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const runs = Number(process.argv[2] || 20);
const bigScale = Number(process.argv[3] || 3);
const WAN_MS = Number(process.env.WAN_MS || 10);
const keepAlive = new http.Agent({ keepAlive: true });
const closers = [];

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const p90 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)]; };

// curl: [time_total, time_starttransfer, size_download]
function curl(url, headers) {
  const args = ['-s', '-o', '/dev/null', '-w', '%{time_total} %{time_starttransfer} %{size_download} %{http_code}'];
  for (const [k, v] of Object.entries(headers || {})) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const [total, ttfb, size, code] = execFileSync('curl', args, { encoding: 'utf8' }).trim().split(' ').map(Number);
  if (code !== 200) throw new Error(`${url.replace(/wado\/[^/]+/, 'wado/{token}')}: HTTP ${code}`);
  return { total, ttfb, size };
}

async function main() {
  const missing = ow.available();
  if (missing) throw new Error(missing);
  const root = server.makeTempDir('bench-dicomweb');
  let orthanc;
  let srv;
  try {
    // A patient with exactly 10 studies: the sample patient's studies from several seeds.
    const studies = new Map();
    for (let seed = 1; studies.size < 10; seed++) {
      const files = await server.makeSamples(path.join(root, `s${seed}`), { seed, scale: 0.1 });
      for (const f of files.filter((x) => x.patientId === MRN)) {
        if (!studies.has(f.studyUid) && studies.size >= 10) continue;
        if (!studies.has(f.studyUid)) studies.set(f.studyUid, []);
        studies.get(f.studyUid).push(f.path);
      }
    }
    const big = await server.makeSamples(path.join(root, 'big'), { seed: 99, scale: bigScale });
    const byStudy = new Map();
    for (const f of big) {
      if (f.patientId === MRN) continue;  // keep the patient at 10 studies
      if (!byStudy.has(f.studyUid)) byStudy.set(f.studyUid, []);
      byStudy.get(f.studyUid).push(f.path);
    }
    const [bigUid, bigFiles] = [...byStudy].sort((a, b) =>
      b[1].reduce((n, p) => n + fs.statSync(p).size, 0) - a[1].reduce((n, p) => n + fs.statSync(p).size, 0))[0];
    const bigPatient = big.find((f) => f.studyUid === bigUid).patientId;
    const bigBytes = bigFiles.reduce((n, p) => n + fs.statSync(p).size, 0);

    orthanc = await ow.startOrthancWeb();
    await orthanc.load([...studies.values()].flat());
    await orthanc.load(bigFiles);
    const seriesCount = [...studies.keys()].length;

    // A VNA across a network: a proxy in front of Orthanc that adds WAN_MS before each answer.
    const proxy = http.createServer((req, res) => {
      setTimeout(() => {
        const up = http.request({ host: '127.0.0.1', port: orthanc.httpPort, path: req.url, method: req.method,
          headers: req.headers, agent: keepAlive }, (ur) => { res.writeHead(ur.statusCode, ur.headers); ur.pipe(res); });
        up.on('error', () => res.destroy());
        req.pipe(up);
      }, WAN_MS);
    });
    let proxyConnections = 0;
    proxy.on('connection', () => { proxyConnections++; });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => proxy.close(r)));
    const remote = { ...orthanc, root: `http://127.0.0.1:${proxy.address().port}/dicom-web` };

    const configDir = path.join(root, 'config');
    const tenant = (o, concurrency) => ow.dicomWebTenant(o, { lookup: 'studies-by-mrn', extra: { queryConcurrency: concurrency } });
    server.writeTenant(configDir, 'concurrent', tenant(orthanc, 8));
    server.writeTenant(configDir, 'sequential', tenant(orthanc, 1));
    server.writeTenant(configDir, 'concurrent-wan', tenant(remote, 8));
    server.writeTenant(configDir, 'sequential-wan', tenant(remote, 1));
    server.writeTenant(configDir, 'mrn', ow.dicomWebTenant(orthanc, { lookup: 'studies-by-mrn' }));
    server.writeTenant(configDir, 'open', ow.dicomWebTenant(orthanc));
    srv = await server.startServer({ configDir });

    const search = (t) => `${srv.baseUrl}/${t}/fhir/ImagingStudy?patient=${MRN}`;
    const check = JSON.parse(execFileSync('curl', ['-s', search('concurrent')], { encoding: 'utf8' }));
    if (check.total !== 10) throw new Error(`expected 10 studies, the search found ${check.total}`);
    const totalSeries = check.entry.reduce((n, e) => n + e.resource.numberOfSeries, 0);
    for (let i = 0; i < 3; i++) { curl(search('concurrent')); curl(search('sequential')); }
    const conc = [];
    const seq = [];
    const concWan = [];
    const seqWan = [];
    for (let i = 0; i < runs; i++) {
      conc.push(curl(search('concurrent')).total * 1000);
      seq.push(curl(search('sequential')).total * 1000);
    }
    // execFileSync would block the proxy's event loop: the WAN runs use fetch.
    const timed = async (url) => { const t = performance.now(); const r = await fetch(url); await r.arrayBuffer(); return performance.now() - t; };
    for (let i = 0; i < 2; i++) { await timed(search('concurrent-wan')); await timed(search('sequential-wan')); }
    for (let i = 0; i < runs; i++) {
      concWan.push(await timed(search('concurrent-wan')));
      seqWan.push(await timed(search('sequential-wan')));
    }
    const qido = [];
    for (let i = 0; i < runs; i++) {
      qido.push(curl(`${orthanc.root}/studies?PatientID=${MRN}`, { authorization: orthanc.auth }).total * 1000);
    }

    // Throughput: the same study from Orthanc directly and through us.
    const bundle = JSON.parse(execFileSync('curl', ['-s', `${srv.baseUrl}/open/fhir/ImagingStudy?patient=x&identifier=urn:oid:${bigUid}`],
      { encoding: 'utf8' }));
    const address = bundle.entry[0].resource.contained[0].address.replace(/^https?:\/\/[^/]+/, srv.baseUrl);
    const ours = `${address}/studies/${bigUid}`;
    const direct = `${orthanc.root}/studies/${bigUid}`;
    curl(direct, { accept: ACCEPT, authorization: orthanc.auth });
    curl(ours, { accept: ACCEPT });
    const mrnBundle = JSON.parse(execFileSync('curl', ['-s', `${srv.baseUrl}/mrn/fhir/ImagingStudy?patient=${bigPatient}&identifier=urn:oid:${bigUid}`],
      { encoding: 'utf8' }));
    const mrnUrl = `${mrnBundle.entry[0].resource.contained[0].address.replace(/^https?:\/\/[^/]+/, srv.baseUrl)}/studies/${bigUid}`;
    const d = [];
    const o = [];
    const m = [];
    for (let i = 0; i < Math.max(5, Math.floor(runs / 2)); i++) {
      d.push(curl(direct, { accept: ACCEPT, authorization: orthanc.auth }));
      o.push(curl(ours, { accept: ACCEPT }));
      m.push(curl(mrnUrl, { accept: ACCEPT }));
    }
    const mbps = (xs) => (xs[0].size / median(xs.map((x) => x.total)) / 1e6);

    console.log(`ImagingStudy search, one patient with ${check.total} studies (${totalSeries} series), ${runs} runs each:`);
    console.log(`  series queries concurrent (queryConcurrency 8): median ${median(conc).toFixed(1)} ms, p90 ${p90(conc).toFixed(1)} ms`);
    console.log(`  series queries sequential (queryConcurrency 1): median ${median(seq).toFixed(1)} ms, p90 ${p90(seq).toFixed(1)} ms`);
    console.log(`  (Orthanc's own QIDO-RS /studies?PatientID=…: median ${median(qido).toFixed(1)} ms)`);
    console.log(`  through a proxy adding ${WAN_MS} ms per request (a remote VNA), node fetch:`);
    console.log(`  series queries concurrent: median ${median(concWan).toFixed(1)} ms, p90 ${p90(concWan).toFixed(1)} ms`);
    console.log(`  series queries sequential: median ${median(seqWan).toFixed(1)} ms, p90 ${p90(seqWan).toFixed(1)} ms`);
    console.log(`  TCP connections smart-imaging opened to the proxy for ${2 * (runs + 2)} searches (${2 * (runs + 2) * 11} requests): ${proxyConnections}`);
    console.log(`WADO-RS whole study ${bigUid.slice(0, 24)}… (${bigFiles.length} instances, ${(bigBytes / 1e6).toFixed(1)} MB of files, ${o.length} runs each):`);
    console.log(`  Orthanc directly:   median ${(median(d.map((x) => x.total)) * 1000).toFixed(0)} ms, ${mbps(d).toFixed(0)} MB/s, first byte ${(median(d.map((x) => x.ttfb)) * 1000).toFixed(1)} ms`);
    console.log(`  through smart-imaging: median ${(median(o.map((x) => x.total)) * 1000).toFixed(0)} ms, ${mbps(o).toFixed(0)} MB/s, first byte ${(median(o.map((x) => x.ttfb)) * 1000).toFixed(1)} ms`);
    console.log(`  through smart-imaging, studies-by-mrn tenant (instance-level QIDO-RS with PatientID first): median ${(median(m.map((x) => x.total)) * 1000).toFixed(0)} ms, ${mbps(m).toFixed(0)} MB/s, first byte ${(median(m.map((x) => x.ttfb)) * 1000).toFixed(1)} ms`);
    const rss = fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/);
    if (rss) console.log(`  peak RSS of smart-imaging: ${(Number(rss[1]) / 1024).toFixed(0)} MB (nothing buffered whole)`);
    void seriesCount;
  } finally {
    for (const c of closers) await c();
    keepAlive.destroy();
    if (srv) await srv.stop();
    if (orthanc) await orthanc.stop();
    server.removeDir(root);
  }
}

main().catch((e) => { console.error(e.stack || e.message); process.exit(1); });
