#!/usr/bin/env node
// The upstream behind prism in openapi-check.sh's self-test: answers GET
// /v1/runs/{id} for openapi.json beside it, right for some ids, wrong for
// others. Listens on 127.0.0.1 (port argv[2], default 0); the first stdout
// line is the port.
//   /v1/runs/r1     200, a Run as the document says        (conforms)
//   /v1/runs/r2     200, status "bogus" (not in the enum)  (violates)
//   /v1/runs/r3     200, an extra property "oops"          (violates: additionalProperties false)
//   /v1/runs/r404   404, an Error                          (conforms)
//   /v1/runs/r500   500, a status the document does not declare (violates)
//   /v1/runs/r4     200, Content-Type text/plain           (violates: undeclared media type)
import http from 'node:http';

const answers = {
  r1: [200, 'application/json', {id: 'r1', status: 'running', steps: 3}],
  r2: [200, 'application/json', {id: 'r2', status: 'bogus'}],
  r3: [200, 'application/json', {id: 'r3', status: 'queued', oops: true}],
  r404: [404, 'application/json', {error: 'no such run'}],
  r500: [500, 'application/json', {error: 'boom'}],
  r4: [200, 'text/plain', 'running'],
};
const server = http.createServer((req, res) => {
  const m = /^\/v1\/runs\/([^/?]+)/.exec(req.url);
  const a = m && answers[m[1]];
  const [status, type, body] = a || [404, 'application/json', {error: 'no such run'}];
  res.writeHead(status, {'Content-Type': type});
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
