#!/usr/bin/env node
// An SSE client for the e2e tests, built on the `eventsource` package (a
// WHATWG-conformant EventSource), so that durin's stream is read by a
// third-party implementation and not by code written alongside the server.
//
//   node sse-client.mjs URL [--token TOK] [--last-event-id N] [--out FILE]
//                           [--until-event TYPE] [--timeout SEC] [--verbose]
//
// Each message is appended as one JSON line {"id":..., "event":..., "data":...}
// to FILE (or stdout) as soon as it arrives. id and data are the strings the
// server sent (id "" when the message had no id; data is not JSON-parsed, use
// `jq '.data|fromjson'`). event is the message's type, "message" by default.
//
// Reconnects are the package's own: after the server closes the stream or
// the connection drops it waits the server's `retry:` (3 s until the server
// sends one) and reconnects with Last-Event-ID set to the last id received.
// --last-event-id N sends "Last-Event-ID: N" on any connection made before the
// stream has given an id of its own (the package has no option for a first
// value, so the fetch wrapper adds it).
//
// Exit status:
//   0  a message of type TYPE (--until-event) arrived, or one of type "end"
//   1  --timeout SEC (default 60; 0 = none) passed first
//   2  the stream failed for good: a non-200 answer, a 204, or a
//      Content-Type other than text/event-stream (the spec's "fail the
//      connection"; no reconnect). The status is printed on stderr as
//      "sse-client: failed: HTTP <code>: <message>".
//   64 bad usage
// --verbose prints every connection attempt (with the Last-Event-ID it
// sends) and every error to stderr, prefixed "sse-client: ".
import fs from 'node:fs';
import {EventSource} from 'eventsource';

function usage(msg) {
  process.stderr.write(`sse-client: ${msg}\n` +
    'usage: node sse-client.mjs URL [--token TOK] [--last-event-id N] [--out FILE] ' +
    '[--until-event TYPE] [--timeout SEC] [--verbose]\n');
  process.exit(64);
}

const opts = {timeout: 60, verbose: false};
let url;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  switch (a) {
    case '--token': opts.token = val(); break;
    case '--last-event-id': opts.lastEventId = val(); break;
    case '--out': opts.out = val(); break;
    case '--until-event': opts.until = val(); break;
    case '--timeout': opts.timeout = Number(val()); break;
    case '--verbose': opts.verbose = true; break;
    case '-h': case '--help': usage('help'); break;
    default:
      if (a.startsWith('--') || url !== undefined) usage(`unexpected argument ${a}`);
      url = a;
  }
}
if (url === undefined) usage('no URL');
if (!Number.isFinite(opts.timeout) || opts.timeout < 0) usage('bad --timeout');

const note = (msg) => { if (opts.verbose) process.stderr.write(`sse-client: ${msg}\n`); };

// One synchronous write per message: the line is in the file before the next
// message is handled, so a test polling FILE sees messages as they come.
const outFd = opts.out ? fs.openSync(opts.out, 'a') : 1;
function emit(obj) {
  const line = JSON.stringify(obj) + '\n';
  for (let buf = Buffer.from(line); buf.length > 0;) {
    try {
      buf = buf.subarray(fs.writeSync(outFd, buf));
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e; // a non-blocking stdout pipe that is full
    }
  }
}

let connects = 0;
const es = new EventSource(url, {
  fetch: (input, init) => {
    const headers = {...(init.headers || {})};
    if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.lastEventId !== undefined && !('Last-Event-ID' in headers)) {
      headers['Last-Event-ID'] = opts.lastEventId;
    }
    connects++;
    note(`connect ${connects} Last-Event-ID: ${headers['Last-Event-ID'] ?? '(none)'}`);
    return fetch(input, {...init, headers});
  },
});

let done = false;
function finish(code, msg) {
  if (done) return;
  done = true;
  if (msg) process.stderr.write(`sse-client: ${msg}\n`);
  es.close();
  if (outFd !== 1) fs.closeSync(outFd);
  process.exit(code);
}

// The package dispatches every message as a MessageEvent named after its
// `event:` field; listening for all types means seeing every dispatch.
const dispatch = es.dispatchEvent.bind(es);
es.dispatchEvent = (ev) => {
  if (ev instanceof MessageEvent) {
    emit({id: ev.lastEventId, event: ev.type, data: ev.data});
    if (opts.until !== undefined && ev.type === opts.until) {
      finish(0);
      return true;
    }
    if (ev.type === 'end') {
      finish(0, opts.until !== undefined ? `stream ended before a "${opts.until}" message` : undefined);
      return true;
    }
  }
  return dispatch(ev);
};

es.addEventListener('open', () => note('open'));
es.addEventListener('error', (err) => {
  if (es.readyState === EventSource.CLOSED) {
    finish(2, `failed: HTTP ${err.code ?? '-'}: ${err.message ?? 'error'}`);
  } else {
    note(`error (will reconnect): ${err.code ?? '-'} ${err.message ?? ''}`);
  }
});

if (opts.timeout > 0) {
  setTimeout(() => finish(1, `timeout after ${opts.timeout} s`), opts.timeout * 1000);
}
