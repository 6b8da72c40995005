'use strict';
// multipart/related (RFC 2387 / RFC 2046) parsing for DICOMweb responses. Binary safe.

// parseContentType('multipart/related; type="application/dicom"; boundary=abc')
//   -> {type: 'multipart/related', params: {type: 'application/dicom', boundary: 'abc'}}
// Parameter names are lower-cased; quoted values are unquoted.
function parseContentType(value) {
  if (!value) return { type: '', params: {} };
  const s = String(value);
  let i = s.indexOf(';');
  const type = (i < 0 ? s : s.slice(0, i)).trim().toLowerCase();
  const params = {};
  while (i >= 0 && i < s.length) {
    i++; // skip ';'
    while (i < s.length && /\s/.test(s[i])) i++;
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const name = s.slice(i, eq).trim().toLowerCase();
    let j = eq + 1;
    let val = '';
    if (s[j] === '"') {
      j++;
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\' && j + 1 < s.length) j++;
        val += s[j++];
      }
      j++; // closing quote
      const next = s.indexOf(';', j);
      i = next;
    } else {
      const next = s.indexOf(';', j);
      val = (next < 0 ? s.slice(j) : s.slice(j, next)).trim();
      i = next;
    }
    if (name) params[name] = val;
    if (i < 0) break;
  }
  return { type, params };
}

function parseHeaders(text) {
  const headers = {};
  const lines = text.split(/\r\n/);
  for (const line of lines) {
    if (!line) continue;
    const c = line.indexOf(':');
    if (c <= 0) throw new Error(`malformed part header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

// A delimiter counts only when "--" or optional whitespace + CRLF follow it.
function findDelimiter(body, delimiter, from) {
  for (let at = body.indexOf(delimiter, from); at >= 0; at = body.indexOf(delimiter, at + 1)) {
    let p = at + delimiter.length;
    if (body[p] === 0x2d && body[p + 1] === 0x2d) return at;
    while (body[p] === 0x20 || body[p] === 0x09) p++;
    if (body[p] === 0x0d && body[p + 1] === 0x0a) return at;
  }
  return -1;
}

// parseMultipart(body: Buffer, boundary: string) -> [{headers: {lower-case: value}, body: Buffer}]
// Throws when the body has no opening delimiter, a part has no header/body separator, or the
// closing delimiter ("--boundary--") is missing (a truncated transfer).
function parseMultipart(body, boundary) {
  if (!Buffer.isBuffer(body)) body = Buffer.from(body);
  if (!boundary) throw new Error('no multipart boundary');
  const dashBoundary = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);

  // The first delimiter may sit at the very start (no preceding CRLF) or after a preamble.
  let pos;
  if (body.subarray(0, dashBoundary.length).equals(dashBoundary)) {
    pos = dashBoundary.length;
  } else {
    const at = body.indexOf(delimiter);
    if (at < 0) throw new Error(`no opening boundary "--${boundary}" in a ${body.length}-byte body`);
    pos = at + delimiter.length;
  }

  const parts = [];
  for (;;) {
    // After a delimiter: "--" closes, otherwise optional whitespace then CRLF.
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts;
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) {
      throw new Error(`expected CRLF after boundary at byte ${pos} (part ${parts.length})`);
    }
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    let headers;
    let bodyStart;
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) {
      headers = {}; // no headers at all
      bodyStart = pos + 2;
    } else {
      if (headerEnd < 0) throw new Error(`part ${parts.length}: no end of headers`);
      headers = parseHeaders(body.subarray(pos, headerEnd).toString('latin1'));
      bodyStart = headerEnd + 4;
    }
    const next = findDelimiter(body, delimiter, bodyStart);
    if (next < 0) {
      throw new Error(`part ${parts.length}: no closing boundary (truncated body of ${body.length} bytes?)`);
    }
    parts.push({ headers, body: body.subarray(bodyStart, next) });
    pos = next + delimiter.length;
  }
}

// From a fetch Response-like {headers.get} and a Buffer body.
function parseMultipartResponse(contentType, body) {
  const ct = parseContentType(contentType);
  if (ct.type !== 'multipart/related') throw new Error(`not multipart/related: ${contentType}`);
  if (!ct.params.boundary) throw new Error(`no boundary in ${contentType}`);
  return { contentType: ct, parts: parseMultipart(body, ct.params.boundary) };
}

module.exports = { parseContentType, parseMultipart, parseMultipartResponse };
