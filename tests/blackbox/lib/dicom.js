'use strict';
// A small DICOM Part 10 reader, enough to know the truth about sample files: the
// top-level attributes before Pixel Data. Little endian explicit and implicit VR, and
// deflated explicit VR; sequences (defined or undefined length) are skipped over.

const fs = require('node:fs');
const zlib = require('node:zlib');

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM',
  'UC', 'UI', 'UR', 'UT']);
// VRs for the few tags we read when the transfer syntax is implicit VR.
const IMPLICIT_VRS = {
  '00020010': 'UI', '00080016': 'UI', '00080018': 'UI', '00080020': 'DA', '00080030': 'TM',
  '00080050': 'SH', '00080060': 'CS', '00080061': 'CS', '00081030': 'LO', '0008103E': 'LO',
  '00100010': 'PN', '00100020': 'LO', '00100030': 'DA', '00100040': 'CS', '0020000D': 'UI',
  '0020000E': 'UI', '00200010': 'SH', '00200011': 'IS', '00200013': 'IS', '00280010': 'US',
  '00280011': 'US', '00280008': 'IS',
};

function tagKey(group, element) {
  return (group.toString(16).padStart(4, '0') + element.toString(16).padStart(4, '0')).toUpperCase();
}

function decodeValue(vr, bytes) {
  if (TEXT_VRS.has(vr)) {
    let s = bytes.toString('latin1');
    s = s.replace(/[\0 ]+$/, '');
    if (vr !== 'LT' && vr !== 'ST' && vr !== 'UT') s = s.replace(/^ +/, '');
    return s;
  }
  if (vr === 'US') return bytes.length >= 2 ? bytes.readUInt16LE(0) : undefined;
  if (vr === 'UL') return bytes.length >= 4 ? bytes.readUInt32LE(0) : undefined;
  return bytes;
}

// Reads elements of one dataset from buf[pos..end). Returns {elements, pos}.
// Stops early at stopTag (hex key) or at an item delimiter when inItem.
function readDataset(buf, pos, end, explicit, { stopAtPixelData = true, inItem = false } = {}) {
  const elements = {};
  while (pos + 8 <= end) {
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const key = tagKey(group, element);
    if (group === 0xfffe) {
      const len = buf.readUInt32LE(pos + 4);
      pos += 8;
      if (element === 0xe00d && inItem) return { elements, pos }; // item delimiter
      if (element === 0xe0dd) return { elements, pos, sequenceEnd: true };
      if (len !== 0xffffffff) pos += len;
      continue;
    }
    let vr;
    let len;
    if (explicit) {
      vr = buf.toString('latin1', pos + 4, pos + 6);
      if (LONG_VRS.has(vr)) {
        len = buf.readUInt32LE(pos + 8);
        pos += 12;
      } else {
        len = buf.readUInt16LE(pos + 6);
        pos += 8;
      }
    } else {
      len = buf.readUInt32LE(pos + 4);
      pos += 8;
      vr = IMPLICIT_VRS[key] || (len === 0xffffffff ? 'SQ' : 'UN');
    }
    if (key === '7FE00010' && stopAtPixelData) {
      elements[key] = { vr, length: len, offset: pos };
      return { elements, pos: end };
    }
    if (len === 0xffffffff) {
      // Undefined length: a sequence, or encapsulated pixel data (items then a sequence delimiter).
      pos = skipUndefinedLength(buf, pos, end, explicit);
      elements[key] = { vr, undefinedLength: true };
      continue;
    }
    if (pos + len > end) throw new Error(`element ${key} (${vr}, ${len} bytes) runs past the end`);
    const bytes = buf.subarray(pos, pos + len);
    elements[key] = { vr, value: vr === 'SQ' ? undefined : decodeValue(vr, bytes) };
    pos += len;
  }
  return { elements, pos };
}

function skipUndefinedLength(buf, pos, end, explicit) {
  while (pos + 8 <= end) {
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const len = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (group !== 0xfffe) throw new Error(`expected an item tag at ${pos - 8}`);
    if (element === 0xe0dd) return pos; // sequence delimiter
    if (element === 0xe000) {
      if (len === 0xffffffff) pos = readDataset(buf, pos, end, explicit, { inItem: true, stopAtPixelData: false }).pos;
      else pos += len;
    }
  }
  return pos;
}

// parseDicom(buffer) -> {transferSyntax, meta: {TAG: {vr, value}}, dataset: {...}, get(tag)}
function parseDicom(buf) {
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new Error('not a DICOM Part 10 file (no 128-byte preamble + "DICM")');
  }
  let pos = 132;
  // File meta group: explicit VR LE; its length is in (0002,0000).
  const meta = {};
  while (pos + 8 <= buf.length && buf.readUInt16LE(pos) === 0x0002) {
    const element = buf.readUInt16LE(pos + 2);
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    let len;
    if (LONG_VRS.has(vr)) { len = buf.readUInt32LE(pos + 8); pos += 12; } else { len = buf.readUInt16LE(pos + 6); pos += 8; }
    meta[tagKey(2, element)] = { vr, value: decodeValue(vr, buf.subarray(pos, pos + len)) };
    pos += len;
  }
  const ts = meta['00020010'] ? meta['00020010'].value : '1.2.840.10008.1.2.1';
  let body = buf;
  let start = pos;
  if (ts === '1.2.840.10008.1.2.1.99') {
    body = zlib.inflateRawSync(buf.subarray(pos));
    start = 0;
  }
  if (ts === '1.2.840.10008.1.2.2') throw new Error('big endian transfer syntax not supported by this reader');
  const explicit = ts !== '1.2.840.10008.1.2';
  const { elements } = readDataset(body, start, body.length, explicit);
  return {
    transferSyntax: ts,
    meta,
    dataset: elements,
    get(tag) {
      const e = elements[tag.toUpperCase()] || meta[tag.toUpperCase()];
      return e ? e.value : undefined;
    },
  };
}

function readDicomFile(file) {
  return parseDicom(fs.readFileSync(file));
}

module.exports = { parseDicom, readDicomFile };
