#!/usr/bin/env node
// An OTLP/HTTP receiver for the e2e tests, as a collector's OTLP receiver
// listens: POST /v1/traces with an ExportTraceServiceRequest and POST
// /v1/metrics with an ExportMetricsServiceRequest, as JSON.
//
//   node otlp-receiver.mjs --dir DIR [--port-file F] [--fail-first N]
//
// Listens on 127.0.0.1 (a free port, written to F). Each request taken is
// written to DIR/NNNN.json (its body) and DIR/NNNN.meta.json ({path,
// contentType, headers}), traces and metrics numbered together; metrics go
// to DIR/metrics/NNNN.json instead when DIR/metrics exists, so a test that
// takes both can tell them apart by directory. The first N requests are
// answered 503 (a collector that is down for a moment) and not kept.
// Answers 200 with an empty Export*ServiceResponse; 404 for another path,
// 415 for a body that is not application/json, 400 for one that is not
// JSON.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const dir = opt('--dir');
const portFile = opt('--port-file');
let failFirst = Number(opt('--fail-first', '0'));
let n = 0;

fs.mkdirSync(dir, {recursive: true});
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const answer = (status, obj) => {
      res.writeHead(status, {'Content-Type': 'application/json'});
      res.end(JSON.stringify(obj));
    };
    if (req.method !== 'POST' || !['/v1/traces', '/v1/metrics'].includes(req.url))
      return answer(404, {});
    if (failFirst > 0) {
      failFirst--;
      return answer(503, {});
    }
    if (!/^application\/json\b/.test(req.headers['content-type'] || '')) return answer(415, {});
    try {
      JSON.parse(body);
    } catch {
      return answer(400, {});
    }
    n++;
    const name = String(n).padStart(4, '0');
    const to = req.url === '/v1/metrics' && fs.existsSync(path.join(dir, 'metrics'))
      ? path.join(dir, 'metrics') : dir;
    // The meta file first: a test that sees the body sees its meta too.
    fs.writeFileSync(path.join(to, `${name}.meta.json`), JSON.stringify({
      path: req.url, contentType: req.headers['content-type'], headers: req.headers}));
    fs.writeFileSync(path.join(to, `${name}.json.tmp`), body);
    fs.renameSync(path.join(to, `${name}.json.tmp`), path.join(to, `${name}.json`));
    answer(200, {});
  });
});
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  if (portFile) fs.writeFileSync(portFile, String(port));
  process.stdout.write(`${port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
