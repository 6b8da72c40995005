'use strict';
// WADO-RS frames, transcoding and rendered/thumbnail over a folder source, with
// dicomweb-client (the library OHIF uses) where it has a call for it. The study
// comes from `smart-imaging samples --pixel-variants`: the same pixels stored
// native (3 frames), JPEG lossless, JPEG-LS, RLE and deflated; RGB native and
// JPEG baseline; MONOCHROME1; and a JPEG 2000 file this build cannot decode.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
global.XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');
const h = require('./lib/helpers');
const server = require('./lib/server');
const { parseContentType, parseMultipartResponse } = require('./lib/multipart');
const { parseDicom } = require('./lib/dicom');

const PATIENT = h.KSHLERIN_MRN;
const ELE = '1.2.840.10008.1.2.1';
const ROWS = 48;
const COLS = 64;
const FRAMES = 3;

// The generator's pixel formulas (dimse/pixel_samples.cpp).
function mono16Value(frame, row, col) {
  let v = (row * 61 + col * 37 + frame * 500) % 4096;
  if (row >= 10 && row < 20 && col >= 10 * frame && col < 10 * frame + 10) v = 4000;
  return v;
}
function mono16Frame(frame) {
  const b = Buffer.alloc(ROWS * COLS * 2);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) b.writeUInt16LE(mono16Value(frame, r, c), 2 * (r * COLS + c));
  return b;
}
function rgbFrame() {
  const b = Buffer.alloc(ROWS * COLS * 3);
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < COLS; c++) {
      const i = 3 * (r * COLS + c);
      b[i] = (r * 5) & 255; b[i + 1] = (c * 4) & 255; b[i + 2] = (255 - r * 2 - c) & 255;
    }
  }
  return b;
}

// PNG: signature, IHDR size, and the pixel rows (filters undone) for 8-bit gray or RGB.
// dicomweb-client resolves a single-part body as [ArrayBuffer] or ArrayBuffer.
const bodyOf = (x) => Buffer.from(Array.isArray(x) ? x[0] : x);

function decodePng(buf) {
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'PNG signature');
  let pos = 8;
  let width; let height; let colorType; let bitDepth;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4); bitDepth = data[8]; colorType = data[9];
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  assert.equal(bitDepth, 8, 'PNG bit depth');
  const channels = colorType === 2 ? 3 : colorType === 0 ? 1 : assert.fail(`PNG colour type ${colorType}`);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      let p;
      if (f === 0) p = 0; else if (f === 1) p = a; else if (f === 2) p = b; else if (f === 3) p = (a + b) >> 1;
      else { const q = a + b - c; const pa = Math.abs(q - a); const pb = Math.abs(q - b); const pc = Math.abs(q - c); p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      px[y * stride + x] = (v + p) & 255;
    }
  }
  return { width, height, channels, px, at: (x, y, k = 0) => px[y * stride + x * channels + k] };
}

// JPEG: SOI, and the size from the first SOFn marker.
function jpegSize(buf) {
  assert.equal(buf.subarray(0, 2).toString('hex'), 'ffd8', 'JPEG SOI');
  let pos = 2;
  while (pos + 4 < buf.length) {
    assert.equal(buf[pos], 0xff, `JPEG marker at ${pos}`);
    const m = buf[pos + 1];
    const len = buf.readUInt16BE(pos + 2);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      return { height: buf.readUInt16BE(pos + 5), width: buf.readUInt16BE(pos + 7) };
    }
    pos += 2 + len;
  }
  return assert.fail('no SOF marker in the JPEG');
}

describe('WADO-RS frames, transcoding, rendered (folder source)', { timeout: 180000 }, () => {
  let root; let srv; let address; let studyUid; let client;
  const v = {}; // name -> {name, ts, path, seriesUid, sopUid}

  before(async () => {
    root = server.makeTempDir('frames');
    const samples = path.join(root, 'samples');
    const r = await server.runCli(['samples', '--out', samples, '--pixel-variants', PATIENT]);
    assert.equal(r.code, 0, r.output);
    for (const line of r.stdout.trim().split('\n')) {
      const [name, ts, file] = line.split(' ');
      const parts = file.split(path.sep);
      v[name] = { name, ts, path: file, sopUid: parts.at(-1).slice(0, -4), seriesUid: parts.at(-2) };
      studyUid = parts.at(-3);
    }
    const configDir = path.join(root, 'config');
    server.writeTenant(configDir, 'open', h.openFolderTenant(samples));
    srv = await server.startServer({ configDir });
    const found = (await h.searchStudies(srv, 'open', `patient=${PATIENT}`)).studies;
    assert.ok(found.has(studyUid), 'the pixel study is found');
    address = h.localUrl(srv, found.get(studyUid).address);
    client = new api.DICOMwebClient({ url: address });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (root) server.removeDir(root);
  });

  const ids = (name) => ({ studyInstanceUID: studyUid, seriesInstanceUID: v[name].seriesUid, sopInstanceUID: v[name].sopUid });
  const instanceUrl = (name) => `${address}/studies/${studyUid}/series/${v[name].seriesUid}/instances/${v[name].sopUid}`;

  async function frames(name, list, accept) {
    const r = await h.request(`${instanceUrl(name)}/frames/${list}`, { headers: accept ? { accept } : {} });
    return r;
  }
  function multipartParts(r) {
    h.assertStatus(r, 200);
    return parseMultipartResponse(r.headers.get('content-type'), r.body);
  }

  it('dicomweb-client retrieveInstanceFrames: default (uncompressed) frames equal the source pixels', async () => {
    for (const name of ['mono16', 'mono16-jpegll', 'mono16-jpegls', 'mono16-rle', 'mono16-deflate']) {
      const got = await client.retrieveInstanceFrames({ ...ids(name), frameNumbers: [1, 3] });
      assert.equal(got.length, 2, `${name}: two frames`);
      assert.ok(Buffer.from(got[0]).equals(mono16Frame(1)), `${name}: frame 1 bit-exact`);
      assert.ok(Buffer.from(got[1]).equals(mono16Frame(3)), `${name}: frame 3 bit-exact`);
    }
    const rgb = await client.retrieveInstanceFrames({ ...ids('rgb'), frameNumbers: [1] });
    assert.ok(Buffer.from(rgb[0]).equals(rgbFrame()), 'rgb frame bit-exact');
  });

  it('dicomweb-client retrieveInstanceFrames with transfer-syntax=*: stored bitstreams, native ones equal', async () => {
    const mt = [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }];
    const native = await client.retrieveInstanceFrames({ ...ids('mono16'), frameNumbers: [2], mediaTypes: mt });
    assert.ok(Buffer.from(native[0]).equals(mono16Frame(2)), 'native frame 2 as stored');
    const jpeg = await client.retrieveInstanceFrames({ ...ids('mono16-jpegll'), frameNumbers: [1, 2, 3], mediaTypes: mt });
    assert.equal(jpeg.length, 3);
    for (const f of jpeg) {
      const b = Buffer.from(f);
      assert.equal(b.subarray(0, 2).toString('hex'), 'ffd8', 'each JPEG lossless frame starts with SOI');
      assert.ok(b.length < ROWS * COLS * 2, 'compressed');
    }
    assert.ok(!Buffer.from(jpeg[0]).equals(Buffer.from(jpeg[1])), 'frames differ');
  });

  it('unquoted type (as OHIF sends it) with transfer-syntax=*: the stored syntax and its media type', async () => {
    const cases = [
      ['mono16-jpegll', 'image/jpeg', '1.2.840.10008.1.2.4.70'],
      ['mono16-jpegls', 'image/jls', '1.2.840.10008.1.2.4.80'],
      ['mono16-rle', 'image/dicom-rle', '1.2.840.10008.1.2.5'],
      ['rgb-jpeg', 'image/jpeg', '1.2.840.10008.1.2.4.50'],
      ['j2k', 'image/jp2', '1.2.840.10008.1.2.4.90'],
      ['mono16', 'application/octet-stream', ELE],
    ];
    for (const [name, media, ts] of cases) {
      const r = await frames(name, '1', 'multipart/related; type=application/octet-stream; transfer-syntax=*');
      const { parts } = multipartParts(r);
      assert.equal(parts.length, 1, name);
      const ct = parseContentType(parts[0].headers['content-type']);
      assert.equal(ct.type, media, `${name} part type`);
      assert.equal(ct.params['transfer-syntax'], ts, `${name} part transfer-syntax`);
    }
    const quoted = multipartParts(await frames('mono16', '1,2', 'multipart/related; type="application/octet-stream"'));
    assert.ok(quoted.parts[1].body.equals(mono16Frame(2)), 'quoted type, frame 2');
  });

  it('single-part image/jpeg of a stored JPEG frame; transcoded frames to JPEG-LS decode back', async () => {
    const r = await frames('rgb-jpeg', '1', 'image/jpeg');
    h.assertStatus(r, 200);
    assert.equal(parseContentType(r.headers.get('content-type')).type, 'image/jpeg');
    assert.deepEqual(jpegSize(r.body), { width: COLS, height: ROWS });
    const ls = multipartParts(await frames('mono16', '2', 'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80'));
    assert.equal(parseContentType(ls.parts[0].headers['content-type']).params['transfer-syntax'], '1.2.840.10008.1.2.4.80');
    assert.equal(ls.parts[0].body.subarray(0, 4).toString('hex'), 'ffd8fff7', 'JPEG-LS SOI + SOF55');
  });

  it('frame numbers out of range or 0 are 404; a malformed list is 400; J2K decoding is 406', async () => {
    h.assertStatus(await frames('mono16', '4'), 404);
    h.assertStatus(await frames('mono16', '0'), 404);
    h.assertStatus(await frames('rgb', '1,2'), 404);
    for (const bad of ['1,,2', 'a', '-1', '1;2']) h.assertStatus(await frames('mono16', encodeURIComponent(bad)), 400);
    const j = await frames('j2k', '1');
    h.assertStatus(j, 406);
    assert.match(j.json.message, /cannot decode/);
    const t = await h.request(instanceUrl('j2k'), { headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${ELE}` } });
    h.assertStatus(t, 406);
    assert.match(t.json.message, /cannot decode/);
    const s = await h.request(instanceUrl('j2k'), { headers: { accept: h.DICOM_ACCEPT } });
    h.assertStatus(s, 200);
    // 16-bit pixels are never squeezed into 8-bit JPEG baseline.
    h.assertStatus(await h.request(instanceUrl('mono16'), { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' } }), 406);
  });

  it('instances transcoded to each syntax decode back to the source pixels (through a second server)', async () => {
    const targets = ['1.2.840.10008.1.2', ELE, '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70',
      '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.5'];
    const backDir = path.join(root, 'back');
    const configDir = path.join(root, 'back-config');
    for (const [k, ts] of targets.entries()) {
      const source = k % 2 ? 'mono16-rle' : 'mono16-deflate'; // compressed and deflated input
      const r = await h.request(instanceUrl(source), { headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${ts}` } });
      const { parts } = multipartParts(r);
      assert.equal(parts.length, 1);
      assert.equal(parseContentType(parts[0].headers['content-type']).params['transfer-syntax'], ts, 'part syntax');
      const d = parseDicom(parts[0].body);
      assert.equal(d.transferSyntax, ts, `file meta of the ${ts} instance`);
      assert.equal(d.get('00080018'), v[source].sopUid, 'SOP Instance UID kept');
      const bits = d.get('00280100');
      assert.equal(Buffer.isBuffer(bits) ? bits.readUInt16LE(0) : bits, 16, 'bits allocated kept');
      const dir = path.join(backDir, `t${k}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'x.dcm'), parts[0].body);
      server.writeTenant(configDir, `t${k}`, h.openFolderTenant(dir));
    }
    const back = await server.startServer({ configDir });
    try {
      for (const [k, ts] of targets.entries()) {
        const found = (await h.searchStudies(back, `t${k}`, `patient=${PATIENT}`)).studies;
        const source = k % 2 ? 'mono16-rle' : 'mono16-deflate';
        const c = new api.DICOMwebClient({ url: h.localUrl(back, found.get(studyUid).address) });
        const got = await c.retrieveInstanceFrames({ ...ids(source), frameNumbers: [1, 2, 3] });
        for (let f = 1; f <= 3; f++) {
          const px = Buffer.from(got[f - 1]);
          const want = mono16Frame(f);
          if (ts === '1.2.840.10008.1.2.4.81') {
            let maxDiff = 0;
            for (let i = 0; i < want.length; i += 2) maxDiff = Math.max(maxDiff, Math.abs(px.readUInt16LE(i) - want.readUInt16LE(i)));
            assert.ok(maxDiff <= 2, `near-lossless JPEG-LS within 2 (got ${maxDiff})`);
          } else {
            assert.ok(px.equals(want), `${ts} frame ${f} bit-exact after the round trip`);
          }
        }
      }
    } finally {
      await back.stop();
    }
  });

  it('JPEG baseline of RGB: the transcoded header says YBR_FULL_422; decoded back it says YBR_FULL', async () => {
    const r = await h.request(instanceUrl('rgb'), { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' } });
    const d = parseDicom(multipartParts(r).parts[0].body);
    assert.equal(d.transferSyntax, '1.2.840.10008.1.2.4.50');
    assert.equal(d.get('00280004'), 'YBR_FULL_422');
    const e = await h.request(instanceUrl('rgb-jpeg'), { headers: { accept: `application/dicom; transfer-syntax=${ELE}` } });
    h.assertStatus(e, 200);
    assert.equal(parseContentType(e.headers.get('content-type')).type, 'application/dicom', 'single part');
    const de = parseDicom(e.body);
    assert.equal(de.transferSyntax, ELE);
    assert.equal(de.get('00280004'), 'YBR_FULL', 'the decoded pixels keep their colour space and say so');
  });

  it('dicomweb-client retrieveInstanceRendered: JPEG by default, PNG on request, windowed, viewport', async () => {
    const jpeg = bodyOf(await client.retrieveInstanceRendered({ ...ids('mono16') }));
    assert.deepEqual(jpegSize(jpeg), { width: COLS, height: ROWS });
    const png = decodePng(bodyOf(await client.retrieveInstanceRendered({ ...ids('mono16-jpegls'), mediaTypes: [{ mediaType: 'image/png' }] })));
    assert.equal(png.width, COLS);
    assert.equal(png.channels, 1);
    const values = new Set(png.px);
    assert.ok(values.size > 50, `not blank: ${values.size} grey levels`);
    // The bright square of frame 1 (raw 4000, the maximum) renders near white in the file's window.
    assert.ok(png.at(15, 15) > 240, `square at (15,15) is ${png.at(15, 15)}`);
    const small = decodePng(bodyOf(await client.retrieveInstanceRendered({ ...ids('mono16'), mediaTypes: [{ mediaType: 'image/png' }], queryParams: { viewport: '32,32' } })));
    assert.deepEqual([small.width, small.height], [32, 24], 'fit into 32x32 keeping 4:3');
    // A narrow window around the ramp: pixels below it black, above it white.
    const win = decodePng((await h.request(`${instanceUrl('mono16')}/rendered?window=0,100`, { headers: { accept: 'image/png' } })).body);
    const rawAt = (x, y) => mono16Value(1, y, x) - 1024;
    for (const [x, y] of [[0, 0], [40, 40], [63, 47], [5, 30]]) {
      const m = rawAt(x, y);
      if (m < -60) assert.equal(win.at(x, y), 0, `(${x},${y}) modality ${m} below the window`);
      if (m > 60) assert.equal(win.at(x, y), 255, `(${x},${y}) modality ${m} above the window`);
    }
    h.assertStatus(await h.request(`${instanceUrl('mono16')}/rendered?window=0,100,cubic`), 400);
    h.assertStatus(await h.request(`${instanceUrl('mono16')}/rendered?viewport=0,10`), 400);
    h.assertStatus(await h.request(`${instanceUrl('mono16')}/rendered`, { headers: { accept: 'image/gif' } }), 406);
    h.assertStatus(await h.request(`${instanceUrl('j2k')}/rendered`), 406);
  });

  it('multi-frame renders frame 1 unless asked; MONOCHROME1 inverts; RGB stays colour', async () => {
    const get = async (rel) => decodePng((await h.request(`${instanceUrl('mono16')}${rel}`, { headers: { accept: 'image/png' } })).body);
    const f1 = await get('/rendered');
    const f1b = await get('/frames/1/rendered');
    const f2 = await get('/frames/2/rendered');
    assert.ok(f1.px.equals(f1b.px), 'frame 1 by default');
    assert.ok(!f1.px.equals(f2.px), 'frame 2 differs');
    assert.ok(f2.at(25, 15) > 240 && f1.at(25, 15) < f2.at(25, 15), 'the square moved to frame 2\'s place');
    h.assertStatus(await h.request(`${instanceUrl('mono16')}/frames/4/rendered`), 404);
    const m1 = decodePng((await h.request(`${instanceUrl('mono1')}/rendered`, { headers: { accept: 'image/png' } })).body);
    assert.ok(m1.at(0, 10) > m1.at(63, 10), `MONOCHROME1: low values bright (${m1.at(0, 10)} vs ${m1.at(63, 10)})`);
    const rgb = decodePng((await h.request(`${instanceUrl('rgb-jpeg')}/rendered`, { headers: { accept: 'image/png' } })).body);
    assert.equal(rgb.channels, 3);
    // Row 40: red 200, green 4*col; JPEG is lossy, so within a margin.
    assert.ok(Math.abs(rgb.at(50, 40, 0) - 200) < 20 && Math.abs(rgb.at(50, 40, 1) - 200) < 20, `RGB pixel ${rgb.at(50, 40, 0)},${rgb.at(50, 40, 1)}`);
    assert.ok(rgb.at(2, 40, 1) < 40, 'green low at the left');
  });

  it('thumbnails and rendered at series and study level', async () => {
    const series = `${address}/studies/${studyUid}/series/${v.mono16.seriesUid}`;
    const t = await h.request(`${series}/thumbnail`);
    h.assertStatus(t, 200);
    assert.equal(t.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(jpegSize(t.body), { width: 128, height: 96 }, 'default thumbnail viewport 128');
    const st = await h.request(`${address}/studies/${studyUid}/thumbnail?viewport=64,64`, { headers: { accept: 'image/png' } });
    h.assertStatus(st, 200);
    const p = decodePng(st.body);
    assert.ok(p.width === 64 || p.height === 64, 'study thumbnail fits 64x64');
    const sr = await h.request(`${series}/rendered`, { headers: { accept: 'image/png' } });
    h.assertStatus(sr, 200);
    assert.equal(decodePng(sr.body).width, COLS);
    const inst = await h.request(`${instanceUrl('rgb')}/thumbnail`, { headers: { origin: 'http://viewer.example' } });
    h.assertStatus(inst, 200);
    assert.equal(inst.headers.get('access-control-allow-origin'), 'http://viewer.example', 'CORS');
  });
});

// The same routes over a DIMSE tenant: the instance comes from Orthanc into our cache first.
const HAVE_ORTHANC = fs.existsSync(process.env.ORTHANC_BIN || '/usr/sbin/Orthanc');
describe('WADO-RS frames and rendered over a DIMSE source (Orthanc, C-GET)', { timeout: 180000, skip: !HAVE_ORTHANC && 'Orthanc is not installed' }, () => {
  const pacsLib = require('./lib/pacs');
  let root; let pacs; let srv; let address; let studyUid;
  const v = {};

  before(async () => {
    root = server.makeTempDir('frames-dimse');
    const samples = path.join(root, 'samples');
    const r = await server.runCli(['samples', '--out', samples, '--pixel-variants', PATIENT]);
    assert.equal(r.code, 0, r.output);
    for (const line of r.stdout.trim().split('\n')) {
      const [name, ts, file] = line.split(' ');
      const parts = file.split(path.sep);
      v[name] = { name, ts, path: file, sopUid: parts.at(-1).slice(0, -4), seriesUid: parts.at(-2) };
      studyUid = parts.at(-3);
    }
    const dimsePort = await server.freePort();
    pacs = await pacsLib.startOrthanc({ facades: [{ ae: 'FACADEGET', port: dimsePort }] });
    await pacs.load(['mono16-jpegls', 'rgb-jpeg', 'j2k'].map((n) => v[n].path));
    const configDir = path.join(root, 'config');
    server.writeTenant(configDir, 'pacs', pacsLib.dimseTenant({ port: pacs.port, calledAe: pacs.aeTitle, ae: 'FACADEGET', retrieval: 'c-get' }));
    srv = await server.startServer({ configDir, dimsePort, dimseDir: path.join(root, 'dimse') });
    const found = (await h.searchStudies(srv, 'pacs', `patient=${PATIENT}`)).studies;
    assert.ok(found.has(studyUid), 'the PACS has the pixel study');
    address = h.localUrl(srv, found.get(studyUid).address);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (pacs) await pacs.cleanup();
    if (root) server.removeDir(root);
  });

  const instanceUrl = (name) => `${address}/studies/${studyUid}/series/${v[name].seriesUid}/instances/${v[name].sopUid}`;

  it('frames (default and *), rendered, thumbnail, transcoding and the J2K 406', async () => {
    const client = new api.DICOMwebClient({ url: address });
    const ids = { studyInstanceUID: studyUid, seriesInstanceUID: v['mono16-jpegls'].seriesUid, sopInstanceUID: v['mono16-jpegls'].sopUid };
    const got = await client.retrieveInstanceFrames({ ...ids, frameNumbers: [2, 3] });
    assert.ok(Buffer.from(got[0]).equals(mono16Frame(2)) && Buffer.from(got[1]).equals(mono16Frame(3)), 'frames 2 and 3 bit-exact from the PACS copy');
    const star = await h.request(`${instanceUrl('mono16-jpegls')}/frames/1`, { headers: { accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*' } });
    const { parts } = parseMultipartResponse(star.headers.get('content-type'), star.body);
    assert.equal(parseContentType(parts[0].headers['content-type']).params['transfer-syntax'], '1.2.840.10008.1.2.4.80');
    const png = decodePng(bodyOf(await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/png' }] })));
    assert.equal(png.width, COLS);
    assert.ok(new Set(png.px).size > 50, 'not blank');
    const thumb = await h.request(`${address}/studies/${studyUid}/series/${v['rgb-jpeg'].seriesUid}/thumbnail`);
    h.assertStatus(thumb, 200);
    assert.deepEqual(jpegSize(thumb.body), { width: 128, height: 96 });
    const t = await h.request(instanceUrl('mono16-jpegls'), { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5' } });
    h.assertStatus(t, 200);
    const d = parseDicom(parseMultipartResponse(t.headers.get('content-type'), t.body).parts[0].body);
    assert.equal(d.transferSyntax, '1.2.840.10008.1.2.5');
    h.assertStatus(await h.request(`${instanceUrl('j2k')}/frames/1`), 406);
    h.assertStatus(await h.request(`${instanceUrl('mono16-jpegls')}/frames/9`), 404);
  });
});
