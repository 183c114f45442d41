#!/usr/bin/env node
// A webhook endpoint for the e2e tests that checks signatures with the
// `standardwebhooks` package (the reference library of the Standard Webhooks
// spec), so durin's signing is judged by a third-party implementation.
//
//   node webhook-receiver.mjs --secret whsec_... [--port P] [--port-file F]
//        [--log FILE] [--fail-first N] [--down-until-file PATH]
//
// Listens on 127.0.0.1:P (P = 0, the default, picks a free port); the first
// stdout line is the port (also written to F with --port-file, for tests that
// poll a file as start_fake does). Any path accepts POST deliveries.
//
// Every request is one JSON line in FILE (stdout without --log), written
// before the answer is sent:
//   {"n":    request number from 1,
//    "id":   the webhook-id header (null if absent),
//    "type": the body's "type" field (null if the body is not a JSON object),
//    "verified": true when webhook-id/-timestamp/-signature verify against
//                the secret over the raw body (timestamp within 5 minutes),
//    "error": why verification failed (absent when verified),
//    "status": the status answered,
//    "timestamp": the webhook-timestamp header, "path": the request path,
//    "body": the body parsed as JSON, or the raw text if it is not JSON}
// Answers, in this order of precedence:
//   503 while --down-until-file PATH exists (the endpoint is "down"),
//   503 to the first N requests (--fail-first N; counted over every request,
//       including those answered 503 because PATH existed),
//   405 for a method other than POST,
//   204 when verified, 401 when not.
// A test counting successful deliveries selects status 204; one checking
// retries counts the lines with a given id.
import fs from 'node:fs';
import http from 'node:http';
import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
const {Webhook} = require('standardwebhooks');

function usage(msg) {
  process.stderr.write(`webhook-receiver: ${msg}\n` +
    'usage: node webhook-receiver.mjs --secret whsec_... [--port P] [--port-file F] ' +
    '[--log FILE] [--fail-first N] [--down-until-file PATH]\n');
  process.exit(64);
}

const o = {port: 0, failFirst: 0};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  switch (a) {
    case '--secret': o.secret = val(); break;
    case '--port': o.port = Number(val()); break;
    case '--port-file': o.portFile = val(); break;
    case '--log': o.log = val(); break;
    case '--fail-first': o.failFirst = Number(val()); break;
    case '--down-until-file': o.downFile = val(); break;
    default:
      if (/^[0-9]+$/.test(a)) o.port = Number(a); // a bare port, as in `... 0`
      else usage(`unexpected argument ${a}`);
  }
}
if (!o.secret) usage('--secret is required');
if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad port');
if (!Number.isInteger(o.failFirst) || o.failFirst < 0) usage('bad --fail-first');

let wh;
try {
  wh = new Webhook(o.secret);
} catch (e) {
  usage(`bad secret: ${e.message}`);
}

const logFd = o.log ? fs.openSync(o.log, 'a') : 1;
function logLine(obj) {
  fs.writeSync(logFd, JSON.stringify(obj) + '\n');
}

let n = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    n++;
    const raw = Buffer.concat(chunks);
    const text = raw.toString('utf8');
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: logged as the raw text
    }
    let verified = false;
    let error;
    try {
      wh.verify(raw, req.headers, {jsonParse: false});
      verified = true;
    } catch (e) {
      error = e.message;
    }
    let status;
    if (o.downFile && fs.existsSync(o.downFile)) status = 503;
    else if (n <= o.failFirst) status = 503;
    else if (req.method !== 'POST') status = 405;
    else status = verified ? 204 : 401;
    const type = body !== null && typeof body === 'object' && !Array.isArray(body) &&
      typeof body.type === 'string' ? body.type : null;
    logLine({
      n,
      id: req.headers['webhook-id'] ?? null,
      type,
      verified,
      ...(error !== undefined ? {error} : {}),
      status,
      timestamp: req.headers['webhook-timestamp'] ?? null,
      path: req.url,
      body,
    });
    res.writeHead(status, status === 204 ? {} : {'Content-Type': 'text/plain'});
    res.end(status === 204 ? undefined : `${status}\n`);
  });
});
server.listen(o.port, '127.0.0.1', () => {
  const port = server.address().port;
  process.stdout.write(`${port}\n`);
  if (o.portFile) {
    fs.writeFileSync(`${o.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${o.portFile}.tmp`, o.portFile);
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
