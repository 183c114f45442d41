#!/usr/bin/env node
// Checks one HTTP answer, fetched without prism, against an OpenAPI
// document, with prism's own router and response validator (the code
// `prism proxy` runs on what it forwards). For what the proxy cannot carry:
// binary bodies (it reads them as UTF-8 text, both ways) and requests it
// answers itself without reaching the server (a path or method the document
// does not have, a JSON body it cannot parse).
//
//   node openapi-response.mjs DOC METHOD PATH HEADERS BODY
//
// HEADERS is `curl -D` output (the last block counts: a 100 Continue may
// come first), BODY the body as received. PATH may carry a query.
// Exit 0: the answer matches the document. Exit 1: it does not; stdout is
// a JSON array of {location, severity, code?, message}, as prism's
// sl-violations header. Exit 2: bad usage or an unreadable document.
//
// A request the document has no operation for matches when the server
// also has none: 404 `not_found` for an unknown path, 405
// `method_not_allowed` for a known path with another method (both in the
// Error shape). Any other answer means the server serves something the
// document does not describe.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Not the package's index: it loads the mocker too, and takes three times
// as long to load.
const { getHttpOperationsFromSpec } = require('@stoplight/prism-http/dist/utils/operations');
const route = require('@stoplight/prism-http/dist/router').default;
const { validateOutput } = require('@stoplight/prism-http/dist/validator');

const [docPath, method, rawPath, headersFile, bodyFile] = process.argv.slice(2);
if (!bodyFile) {
  process.stderr.write('usage: openapi-response.mjs DOC METHOD PATH HEADERS BODY\n');
  process.exit(2);
}

function parseHeaders(text) {
  const blocks = text.split(/\r?\n\r?\n/).filter(b => /^HTTP\//.test(b.trim()));
  const lines = (blocks[blocks.length - 1] || '').trim().split(/\r?\n/);
  const m = /^HTTP\/[\d.]+ (\d{3})/.exec(lines.shift() || '');
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, headers };
}

const violations = [];
const flag = (message, severity = 'Error', location = ['response']) =>
  violations.push({ location, severity, message });

const { status, headers } = parseHeaders(fs.readFileSync(headersFile, 'latin1'));
const raw = fs.readFileSync(bodyFile);
const type = headers['content-type'] || '';
let body = raw.toString('latin1');
let json;
if (/^application\/(.*\+)?json\b/.test(type)) {
  try {
    json = JSON.parse(raw.toString('utf8'));
    body = json;
  } catch (e) {
    flag(`The body is not JSON although the Content-Type says so: ${e.message}`);
  }
}

let operations;
try {
  operations = await getHttpOperationsFromSpec(docPath);
} catch (e) {
  process.stderr.write(`openapi-response: cannot read ${docPath}: ${e.message}\n`);
  process.exit(2);
}
const url = new URL(rawPath, 'http://server');
const query = {};
for (const [k, v] of url.searchParams) (query[k] = query[k] || []).push(v);
const input = { method: method.toLowerCase(), url: { path: url.pathname, query }, headers: {} };
const routed = route({ resources: operations, input });

const isError = j =>
  j && typeof j === 'object' && j.error && typeof j.error.code === 'string' &&
  typeof j.error.message === 'string';

if (routed._tag === 'Left') {
  const why = String(routed.left.name || routed.left.message || routed.left);
  const noPath = why.includes('NO_PATH_MATCHED');
  const noMethod = why.includes('NO_METHOD_MATCHED');
  const agrees =
    (noPath && status === 404 && isError(json) && json.error.code === 'not_found') ||
    (noMethod && status === 405 && isError(json) && json.error.code === 'method_not_allowed' &&
      headers.allow);
  if (!agrees)
    flag(`The document has no operation ${method.toUpperCase()} ${url.pathname} (${why}), ` +
      `but the server answered ${status}${isError(json) ? ` ${json.error.code}` : ''}`);
} else if (violations.length === 0) {
  const out = validateOutput({ resource: routed.right, element: { statusCode: status, headers, body } });
  if (out._tag === 'Left')
    for (const v of out.left)
      violations.push({
        location: ['response', ...(v.path || [])],
        severity: typeof v.severity === 'number' ? ['Error', 'Warning', 'Information', 'Hint'][v.severity] : v.severity,
        ...(v.code !== undefined ? { code: v.code } : {}),
        message: v.message,
      });
}
if (violations.length) {
  process.stdout.write(`${JSON.stringify(violations)}\n`);
  process.exit(1);
}
