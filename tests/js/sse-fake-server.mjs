#!/usr/bin/env node
// A small SSE server shaped like durin's GET /v1/runs/{id}/events/stream, for
// testing sse-client.mjs (and for e2e tests that need a stream to read before
// `durin serve` has one). Any path is the stream.
//
//   node sse-fake-server.mjs [--port P] [--token TOK] [--events N]
//        [--drop-after K] [--retry MS] [--interval MS] [--type T] [--log FILE]
//
// Listens on 127.0.0.1:P (0 = any; the port is the first stdout line).
// Events are seq 1..N (default 5): "id: <seq>", "event: <T>" (default "step"),
// "data: {"seq":<seq>}". A connection starts after its Last-Event-ID header
// (so a resume gets no duplicate), sends "retry: MS" first when --retry is
// given, and is closed by the server after K events when --drop-after is
// given (the client must reconnect). After event N it sends "event: end"
// (id N+1, data {}) and closes. Without "Authorization: Bearer TOK" (when
// --token is given) the answer is 401. Each request is logged to FILE as
// {"n":<connection number>, "last_event_id":<header or null>, "auth":<bool>}.
import fs from 'node:fs';
import http from 'node:http';

const o = {port: 0, events: 5, dropAfter: 0, retry: 0, interval: 10, type: 'step'};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const v = argv[i + 1];
  switch (argv[i]) {
    case '--port': o.port = Number(v); i++; break;
    case '--token': o.token = v; i++; break;
    case '--events': o.events = Number(v); i++; break;
    case '--drop-after': o.dropAfter = Number(v); i++; break;
    case '--retry': o.retry = Number(v); i++; break;
    case '--interval': o.interval = Number(v); i++; break;
    case '--type': o.type = v; i++; break;
    case '--log': o.log = v; i++; break;
    default:
      process.stderr.write(`sse-fake-server: unexpected argument ${argv[i]}\n`);
      process.exit(64);
  }
}

let n = 0;
const server = http.createServer((req, res) => {
  n++;
  const lastHdr = req.headers['last-event-id'];
  const auth = o.token === undefined || req.headers.authorization === `Bearer ${o.token}`;
  if (o.log) {
    fs.appendFileSync(o.log, JSON.stringify({n, last_event_id: lastHdr ?? null, auth}) + '\n');
  }
  if (!auth) {
    res.writeHead(401, {'Content-Type': 'application/json'});
    res.end('{"error":"unauthorized"}\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-store',
    Connection: 'keep-alive',
  });
  if (o.retry > 0) res.write(`retry: ${o.retry}\n\n`);
  let seq = Number.parseInt(lastHdr ?? '0', 10);
  if (!Number.isFinite(seq) || seq < 0) seq = 0;
  let sent = 0;
  const tick = () => {
    if (res.destroyed) return;
    if (seq >= o.events) {
      res.end(`id: ${o.events + 1}\nevent: end\ndata: {}\n\n`);
      return;
    }
    if (o.dropAfter > 0 && sent >= o.dropAfter) {
      res.end(); // the server ends the response: the client reconnects
      return;
    }
    seq++;
    sent++;
    res.write(`id: ${seq}\nevent: ${o.type}\ndata: {"seq":${seq}}\n\n`);
    setTimeout(tick, o.interval);
  };
  tick();
});
server.listen(o.port, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
