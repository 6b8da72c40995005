'use strict';
// OHIF Viewer in headless Chromium, for the proof that a DICOMweb root renders.
// - fetchOhif(): `npm pack @ohif/app@OHIF_VERSION` (its prebuilt dist/, never npm-installed) into a
//   git-ignored cache (tests/blackbox/.cache/), the tarball checked against the pinned integrity,
//   then extracted once.
// - startOhifServer(): serves dist/ statically on a free loopback port with an SPA fallback to
//   index.html and our own app-config.js (one dicomweb data source); optionally a same-origin proxy
//   (used to prove the harness against Orthanc, which has no CORS of its own).
// - openViewer(): Debian's /usr/bin/chromium driven by playwright-core, fresh user-data-dir; opens
//   /viewer?StudyInstanceUIDs=..., dismisses popups, waits until the viewport canvas shows an image,
//   saves a screenshot and returns what OHIF requested.
// CommonJS, node >= 18.19.

const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./server');

const OHIF_VERSION = '3.13.2';
// `npm view @ohif/app@3.13.2 dist.integrity`: the tarball must match it byte for byte.
const OHIF_INTEGRITY =
  'sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==';
const CACHE_DIR = process.env.SI_OHIF_CACHE || path.resolve(__dirname, '..', '.cache');
const CHROMIUM = process.env.SI_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS_DIR = process.env.SI_TEST_ARTIFACTS || path.resolve(__dirname, '..', 'artifacts');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function available() {
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium chromium-driver)`;
  try { require.resolve('playwright-core'); } catch (_) { return 'npm playwright-core is not installed (npm ci)'; }
  return null;
}

function integrityOf(file) {
  return `sha512-${crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

// -> the extracted dist/ directory. Downloads only when the cache lacks a verified copy.
function fetchOhif() {
  const home = path.join(CACHE_DIR, `ohif-${OHIF_VERSION}`);
  const dist = path.join(home, 'package', 'dist');
  const done = path.join(home, '.extracted');
  if (fs.existsSync(done) && fs.readFileSync(done, 'utf8') === OHIF_INTEGRITY) return dist;
  fs.mkdirSync(home, { recursive: true });
  const tgz = path.join(home, `ohif-app-${OHIF_VERSION}.tgz`);
  if (!fs.existsSync(tgz) || integrityOf(tgz) !== OHIF_INTEGRITY) {
    fs.rmSync(tgz, { force: true });
    const r = spawnSync('npm', ['pack', `@ohif/app@${OHIF_VERSION}`, '--pack-destination', home, '--silent'],
      { encoding: 'utf8', timeout: 300000, cwd: home });
    if (r.status !== 0) throw new Error(`npm pack @ohif/app@${OHIF_VERSION} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  const got = integrityOf(tgz);
  if (got !== OHIF_INTEGRITY) {
    fs.rmSync(tgz, { force: true });
    throw new Error(`@ohif/app@${OHIF_VERSION} tarball integrity ${got} is not the pinned ${OHIF_INTEGRITY}`);
  }
  fs.rmSync(path.join(home, 'package'), { recursive: true, force: true });
  const x = spawnSync('tar', ['-xzf', tgz, '-C', home, 'package/dist'], { encoding: 'utf8', timeout: 300000 });
  if (x.status !== 0) throw new Error(`tar could not extract ${tgz}: ${x.stderr}`);
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist}/index.html missing after extraction`);
  fs.writeFileSync(done, OHIF_INTEGRITY);
  return dist;
}

// OHIF's configuration: one dicomweb data source on `root` (QIDO and WADO alike), no study list,
// nothing that pops up over the viewport. `source` overrides data source options.
function appConfig(root, source = {}) {
  const config = {
    routerBasename: '/',
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: false,
    maxNumberOfWebWorkers: 1,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    investigationalUseDialog: { option: 'never' },
    strictZSpacingForVolumeViewport: true,
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
    showErrorDetails: 'always',
    defaultDataSourceName: 'facade',
    dataSources: [{
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'facade',
      configuration: {
        friendlyName: 'smart-imaging',
        name: 'facade',
        wadoUriRoot: root,
        qidoRoot: root,
        wadoRoot: root,
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
        ...source,
      },
    }],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf',
  '.txt': 'text/plain; charset=utf-8', '.map': 'application/json',
};

// startOhifServer({dist, root, source, proxy}) -> {url, port, stop()}
//   root: the DICOMweb root OHIF is given; source: more data source options. Either may be a
//   function of the port (to name this server). proxy: {prefix, target, headers} forwards
//   `${prefix}...` to `${target}...` with extra headers (same origin as OHIF).
async function startOhifServer({ dist, root, source, proxy }) {
  const port = await freePort();
  const config = appConfig(typeof root === 'function' ? root(port) : root,
    typeof source === 'function' ? source(port) : source);
  const realDist = fs.realpathSync(dist);
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (proxy && u.pathname.startsWith(proxy.prefix)) {
      const target = new URL(proxy.target + u.pathname.slice(proxy.prefix.length) + u.search);
      const headers = { ...req.headers, ...(proxy.headers || {}), host: target.host };
      const up = http.request(target, { method: req.method, headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
      req.pipe(up);
      return;
    }
    if (u.pathname === '/app-config.js') {
      res.writeHead(200, { 'content-type': TYPES['.js'], 'cache-control': 'no-store' });
      res.end(config);
      return;
    }
    let file = path.join(realDist, path.normalize(decodeURIComponent(u.pathname)));
    if (!file.startsWith(realDist)) { res.writeHead(403); res.end(); return; }
    let st = null;
    try { st = fs.statSync(file); } catch (_) { /* not a file */ }
    // SPA: routes such as /viewer are the app's, not files.
    if (!st || !st.isFile()) {
      if (path.extname(u.pathname)) { res.writeHead(404); res.end(); return; }
      file = path.join(realDist, 'index.html');
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(port, '127.0.0.1', resolve); });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); }),
  };
}

// Counts what the viewport canvases show: the largest canvas's size, its non-black fraction and
// its distinct grey levels. Runs in the page.
function canvasStatsInPage() {
  let best = null;
  for (const c of document.querySelectorAll('canvas')) {
    const r = c.getBoundingClientRect();
    if (r.width < 64 || r.height < 64 || !c.width || !c.height) continue;
    let data;
    try {
      const ctx = c.getContext('2d');
      if (!ctx) continue;
      data = ctx.getImageData(0, 0, c.width, c.height).data;
    } catch (_) { continue; }
    let nonBlack = 0;
    const levels = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const v = Math.max(data[i], data[i + 1], data[i + 2]);
      if (v > 8) nonBlack += 1;
      levels.add(v);
    }
    const s = { width: c.width, height: c.height, nonBlack: nonBlack / (data.length / 4), levels: levels.size,
      className: String(c.className), rect: { x: r.x, y: r.y, width: r.width, height: r.height } };
    if (!best || s.width * s.height > best.width * best.height) best = s;
  }
  return best;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// openViewer({ohifUrl, studyUid, artifact, timeoutMs, stallMs, isImage}) ->
//   {stats, requests: [{method, url, status, accept, failure, body (QIDO /studies only)}], console: [...], screenshot}
// Resolves once the canvas shows an image (isImage(stats)), or rejects with the browser console and
// the requests made so far.
async function openViewer({ ohifUrl, studyUid, artifact, timeoutMs = 90000, stallMs = 10000,
  isImage = (s) => s && s.nonBlack > 0.02 && s.levels > 16 }) {
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'si-bb-chromium-'));
  const requests = [];
  const consoleLines = [];
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    const entry = new Map();
    let lastActivity = Date.now();
    page.on('request', (r) => {
      lastActivity = Date.now();
      const e = { method: r.method(), url: r.url(), accept: r.headers().accept, status: null, failure: null };
      entry.set(r, e);
      requests.push(e);
    });
    page.on('requestfinished', async (r) => {
      lastActivity = Date.now();
      const e = entry.get(r);
      try {
        const res = await r.response();
        if (e && res) {
          e.status = res.status();
          // QIDO study answers are small: kept, so a test can see what OHIF was told.
          if (/\/studies$/.test(new URL(e.url).pathname) && e.status === 200) e.body = (await res.body()).toString('utf8');
        }
      } catch (_) { /* closed */ }
    });
    page.on('requestfailed', (r) => { lastActivity = Date.now(); const e = entry.get(r); if (e) e.failure = r.failure()?.errorText || 'failed'; });

    const viewerUrl = `${ohifUrl}/viewer?StudyInstanceUIDs=${encodeURIComponent(studyUid)}`;
    await page.goto(viewerUrl, { waitUntil: 'domcontentloaded', timeout: timeoutMs });

    const deadline = Date.now() + timeoutMs;
    let stats = null;
    let dismissed = [];
    for (;;) {
      dismissed = dismissed.concat(await dismissPopups(page));
      stats = await page.evaluate(canvasStatsInPage).catch(() => null);
      if (isImage(stats)) break;
      // OHIF gives up quietly when a DICOMweb call fails: once one has failed and nothing moved
      // for a while, waiting longer shows nothing new.
      const failed = requests.some((r) => r.failure || r.status >= 400);
      const stalled = failed && Date.now() - lastActivity > stallMs;
      if (Date.now() > deadline || stalled) {
        const shot = artifact ? await saveScreenshot(page, artifact.replace(/\.png$/, '-failed.png')) : null;
        const why = stalled ? `after a failed request and ${stallMs} ms without network activity` : `within ${timeoutMs} ms`;
        const err = new Error(`OHIF showed no image ${why} (canvas: ${JSON.stringify(stats)}; ` +
          `screenshot: ${shot})\n--- requests ---\n${formatRequests(requests)}\n--- console ---\n` +
          `${consoleLines.slice(-80).join('\n')}`);
        err.requests = requests;
        throw err;
      }
      await sleep(250);
    }
    // Popups that appear late (the tour starts once the viewport is up) must not cover the image.
    await sleep(500);
    dismissed = dismissed.concat(await dismissPopups(page));
    stats = await page.evaluate(canvasStatsInPage);
    const screenshot = artifact ? await saveScreenshot(page, artifact) : null;
    return { stats, requests, console: consoleLines, screenshot, dismissed };
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// Closes OHIF's onboarding tour (shepherd.js) and any modal dialog; returns what it closed.
async function dismissPopups(page) {
  return page.evaluate(() => {
    const closed = [];
    const click = (el, what) => { el.click(); closed.push(what); };
    for (const b of document.querySelectorAll('.shepherd-element button, .shepherd-cancel-icon')) {
      const t = (b.textContent || b.getAttribute('aria-label') || '').trim();
      if (/skip|close|cancel|done|got it|end/i.test(t)) { click(b, `tour: ${t}`); return closed; }
    }
    for (const d of document.querySelectorAll('[role="dialog"], [role="alertdialog"]')) {
      for (const b of d.querySelectorAll('button')) {
        const t = (b.textContent || b.getAttribute('aria-label') || '').trim();
        if (/^(close|ok|confirm|accept|agree|continue|got it|dismiss|skip)/i.test(t)) {
          click(b, `dialog: ${t}`);
          return closed;
        }
      }
    }
    return closed;
  }).catch(() => []);
}

async function saveScreenshot(page, file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: false }).catch(() => {});
  return fs.existsSync(file) ? file : null;
}

function formatRequests(requests) {
  return requests
    .filter((r) => !/\.(js|css|wasm|woff2?|ttf|svg|png|ico|json)(\?|$)/.test(new URL(r.url).pathname) ||
      /\/(studies|series|instances|frames|metadata|bulk)/.test(r.url))
    .map((r) => `${r.method} ${r.url} -> ${r.failure || r.status}${r.accept ? ` [accept: ${r.accept}]` : ''}`)
    .join('\n');
}

module.exports = {
  OHIF_VERSION, OHIF_INTEGRITY, ARTIFACTS_DIR, available, fetchOhif, appConfig, startOhifServer, openViewer,
  formatRequests,
};
