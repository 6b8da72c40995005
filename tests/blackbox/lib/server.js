'use strict';
// Starting and stopping the real smart-imaging binary for black-box tests.
// CommonJS, node >= 18.19. Everything here talks only to 127.0.0.1.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// The key tests give --path-key; tokens.test.js derives the JWE key from it.
const TEST_PATH_KEY = 'blackbox-test-path-key-0123456789';

// Settings the server also reads from the environment: a test never inherits them
// from the shell that runs it, only gets what it asks for.
const SERVER_ENV_VARS = [
  'PORT', 'BASE_URL', 'PATH_KEY', 'CONFIG_DIR', 'DIMSE_DIR', 'DIMSE_PORT',
  'DYN_CONFIG', 'DYN_ALLOW_HOSTS', 'TOKEN_TTL',
];

function binaryPath() {
  const bin = process.env.SMART_IMAGING_BIN;
  if (!bin) {
    throw new Error('SMART_IMAGING_BIN is not set: point it at the smart-imaging binary ' +
      '(ctest sets it; by hand: SMART_IMAGING_BIN=build/smart-imaging node --test tests/blackbox/)');
  }
  if (!fs.existsSync(bin)) throw new Error(`SMART_IMAGING_BIN=${bin} does not exist`);
  return bin;
}

function cleanEnv(extra) {
  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  return { ...env, ...(extra || {}) };
}

// A port that was free a moment ago on 127.0.0.1.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function makeTempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `si-bb-${prefix || 'tmp'}-`));
}

function removeDir(dir) {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

// Writes CONFIG_DIR/<name>.json.
function writeTenant(configDir, name, config) {
  fs.mkdirSync(configDir, { recursive: true });
  const file = path.join(configDir, `${name}.json`);
  fs.writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return file;
}

// Every server started and not yet stopped, so a crashing test file leaves no orphans.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* already gone */ }
  }
});

function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.removeListener('exit', onExit); resolve(false); }, ms);
    function onExit() { clearTimeout(timer); resolve(true); }
    child.once('exit', onExit);
  });
}

// Resolves once the output matches `ready`; rejects when the process exits first or on timeout.
function waitUntilReady(child, ready, timeoutMs, commandLine, output) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let timer = null;
    const finish = (e) => {
      clearInterval(timer);
      child.removeListener('exit', onExit);
      child.removeListener('error', onError);
      if (e) reject(e); else resolve();
    };
    const onExit = (code, signal) => {
      // Let the last output arrive before reporting.
      setTimeout(() => finish(new Error(
        `smart-imaging exited (code ${code}, signal ${signal}) before "listening on"\n` +
        `command: ${commandLine}\n--- output ---\n${output()}`)), 50);
    };
    const onError = (e) => finish(new Error(`could not start ${commandLine}: ${e.message}`));
    child.once('exit', onExit);
    child.once('error', onError);
    timer = setInterval(() => {
      if (ready.test(output())) return finish();
      if (Date.now() - started > timeoutMs) {
        try { child.kill('SIGKILL'); } catch (_) { /* gone */ }
        finish(new Error(`smart-imaging printed no "listening on" within ${timeoutMs} ms\n` +
          `command: ${commandLine}\n--- output ---\n${output()}`));
      }
    }, 25);
  });
}

// startServer({configDir, env, args, dimseDir, pathKey, dimsePort, port, bare, timeoutMs, readyPattern})
//   args: extra CLI arguments, or a function (port) => arguments (e.g. for --base-url).
// Resolves to {baseUrl, port, proc, logs(), stdout(), stderr(), stop()}.
async function startServer(opts = {}) {
  const bin = binaryPath();
  const port = opts.port || await freePort();
  const ownDimseDir = !opts.dimseDir && !opts.bare;
  const dimseDir = opts.dimseDir || (opts.bare ? null : makeTempDir('dimse'));
  const extra = typeof opts.args === 'function' ? opts.args(port) : (opts.args || []);
  const args = ['serve'];
  if (!opts.bare) {
    // bare: only `serve` + args, the settings coming from opts.env (port must then be given).
    args.push('--port', String(port));
    if (opts.configDir) args.push('--config-dir', opts.configDir);
    args.push('--dimse-dir', dimseDir, '--path-key', opts.pathKey || TEST_PATH_KEY);
    // A DIMSE listener on a default port would make parallel test files collide.
    if (opts.dimsePort !== false && !extra.includes('--dimse-port')) {
      args.push('--dimse-port', String(opts.dimsePort || await freePort()));
    }
  }
  args.push(...extra);

  const child = spawn(bin, args, { env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  let all = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { out += d; all += d; });
  child.stderr.on('data', (d) => { err += d; all += d; });
  child.on('exit', () => live.delete(child));

  const commandLine = [bin, ...args].join(' ');
  const timeoutMs = opts.timeoutMs || 20000;
  const ready = opts.readyPattern || /listening on http:\/\//;
  try {
    await waitUntilReady(child, ready, timeoutMs, commandLine, () => all);
  } catch (e) {
    if (ownDimseDir) removeDir(dimseDir);
    throw e;
  }

  let stopped = null;
  const server = {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    proc: child,
    args,
    dimseDir,
    logs: () => all,
    stdout: () => out,
    stderr: () => err,
    stop() {
      if (!stopped) {
        stopped = (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            try { process.kill(child.pid, 'SIGTERM'); } catch (_) { /* gone */ }
            if (!await waitForExit(child, 5000)) {
              try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ }
              await waitForExit(child, 5000);
            }
          }
          live.delete(child);
          if (ownDimseDir) removeDir(dimseDir);
        })();
      }
      return stopped;
    },
  };
  return server;
}

// Runs the binary to completion: {code, signal, stdout, stderr}.
function runCli(args, opts = {}) {
  const bin = binaryPath();
  const timeoutMs = opts.timeoutMs || 120000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'],
      cwd: opts.cwd });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      try { child.kill('SIGKILL'); } catch (_) { /* gone */ }
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); live.delete(child); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, output: stdout + stderr });
    });
  });
}

// Runs `smart-imaging samples` into dir and returns the file index (see listSamples).
async function makeSamples(dir, { seed = 1, scale = 0.1 } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const r = await runCli(['samples', '--out', dir, '--seed', String(seed), '--scale', String(scale)]);
  if (r.code !== 0) {
    throw new Error(`smart-imaging samples exited ${r.code} (signal ${r.signal})\n` +
      `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  const files = listSamples(dir);
  if (files.length === 0) throw new Error(`smart-imaging samples wrote no .dcm files under ${dir}`);
  return files;
}

// The sample layout is DIR/<PatientID>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm.
function listSamples(dir) {
  const result = [];
  const walk = (d, parts) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p, [...parts, ent.name]);
      else if (ent.isFile() && ent.name.endsWith('.dcm') && parts.length === 3) {
        result.push({
          path: p,
          patientId: parts[0],
          studyUid: parts[1],
          seriesUid: parts[2],
          sopUid: ent.name.slice(0, -4),
        });
      }
    }
  };
  walk(dir, []);
  return result.sort((a, b) => a.path.localeCompare(b.path));
}

module.exports = {
  TEST_PATH_KEY,
  binaryPath,
  freePort,
  makeTempDir,
  removeDir,
  writeTenant,
  startServer,
  runCli,
  makeSamples,
  listSamples,
};
