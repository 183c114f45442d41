/*
 * Server-sent events over fetch. EventSource cannot send an Authorization
 * header and a token in a URL ends up in logs, so this reads the stream
 * itself: the body's bytes through a TextDecoder, split into lines, folded
 * into messages as the SSE spec says (id:, event:, data:, and ":" comments,
 * which are the server's heartbeats).
 *
 * On a drop (serve restarted, network gone) it reconnects with backoff
 * (1 s, 2 s, 4 s ... at most 10 s) sending Last-Event-ID, so the server
 * replays what was missed; a serve that stops says `event: closing` first,
 * which is such a drop. It stops for good on `event: end` (the run is
 * over), on an HTTP error the caller must see (401, 403, 404), or when the
 * caller's AbortSignal fires.
 *
 * Each connection has its own AbortController (the caller's signal aborts
 * it too), closed without the caller's stream ending when:
 *  - no byte came for READ_TIMEOUT_MS: the server sends a heartbeat comment
 *    every 15 s, so the socket is half-open (a laptop slept, the network
 *    changed) and would stay silent forever; it reconnects at once.
 *  - the tab has been hidden for HIDDEN_MS: a browser allows 6 connections
 *    per host over HTTP/1.1, across tabs, and each tab holds up to two
 *    streams, so background tabs would starve the one in use. It
 *    reconnects when the tab is visible again (Last-Event-ID as usual).
 */

import { authHeaders, ApiError } from './api.js';

/*
 * follow(url, {signal, lastId, onMessage, onEnd, onError, onOpen})
 *   lastId(): the id to send on (re)connect, or '' for none; asked at each
 *     connect, so the caller decides where to resume (it may have fetched
 *     a gap meanwhile).
 *   onMessage({id, event, data}): each message; data is the raw text.
 *   onEnd(data): after `event: end`; no reconnect follows.
 *   onError(err): a refusal (4xx); no reconnect follows.
 */
export const READ_TIMEOUT_MS = 45000;
export const HIDDEN_MS = 10000;

/* When the tab was hidden (0: it is visible). */
let hiddenSince = document.hidden ? Date.now() : 0;
document.addEventListener('visibilitychange', () => {
  hiddenSince = document.hidden ? (hiddenSince || Date.now()) : 0;
});

const hiddenLong = () => document.hidden && hiddenSince && Date.now() - hiddenSince >= HIDDEN_MS;

export function follow(url, opts) {
  const run = async () => {
    let delay = 1000;
    while (!opts.signal.aborted) {
      if (hiddenLong()) await untilVisible(opts.signal);
      if (opts.signal.aborted) return;
      const conn = connection(opts.signal);
      let ended = false;
      try {
        ended = await connect(url, opts, conn, () => { delay = 1000; });
      } catch (e) {
        if (opts.signal.aborted) return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          if (opts.onError) opts.onError(e);
          return;
        }
      } finally {
        conn.close();
      }
      if (ended || opts.signal.aborted) return;
      /* Closed by us: hidden waits for the tab at the top of the loop; a
       * silent socket is replaced at once. */
      if (conn.why() === 'hidden' || conn.why() === 'idle') continue;
      if (opts.onDrop) opts.onDrop();
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
}

/* One connection's controller: aborted by the caller's signal, by READ_TIMEOUT_MS
 * without a byte (beat() says one came), or by the tab hidden HIDDEN_MS. */
function connection(outer) {
  const ctrl = new AbortController();
  let why = '';
  let idle = null;
  let hide = null;
  const stop = (w) => { if (!why) why = w; ctrl.abort(); };
  const onAbort = () => stop('caller');
  const beat = () => {
    clearTimeout(idle);
    idle = setTimeout(() => stop('idle'), READ_TIMEOUT_MS);
  };
  const vis = () => {
    clearTimeout(hide);
    hide = null;
    if (document.hidden) hide = setTimeout(() => stop('hidden'), Math.max(0, HIDDEN_MS - (Date.now() - (hiddenSince || Date.now()))));
  };
  outer.addEventListener('abort', onAbort);
  document.addEventListener('visibilitychange', vis);
  beat();
  vis();
  return {
    signal: ctrl.signal,
    beat,
    why: () => why,
    close() {
      clearTimeout(idle);
      clearTimeout(hide);
      outer.removeEventListener('abort', onAbort);
      document.removeEventListener('visibilitychange', vis);
    },
  };
}

function untilVisible(signal) {
  return new Promise((resolve) => {
    const check = () => {
      if (document.hidden && !signal.aborted) return;
      document.removeEventListener('visibilitychange', check);
      signal.removeEventListener('abort', check);
      resolve();
    };
    document.addEventListener('visibilitychange', check);
    signal.addEventListener('abort', check);
    check();
  });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/* One connection; true when the stream said `end` (do not reconnect). */
async function connect(url, opts, conn, opened) {
  const hd = authHeaders();
  const last = opts.lastId ? opts.lastId() : '';
  if (last !== '' && last !== null && last !== undefined) hd['Last-Event-ID'] = String(last);
  const resp = await fetch(url, { headers: hd, signal: conn.signal, cache: 'no-store' });
  if (!resp.ok) {
    let e = null;
    try { e = (await resp.json()).error; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, e ? e.code : 'http', e ? e.message : resp.statusText);
  }
  conn.beat();
  opened();
  if (opts.onOpen) opts.onOpen();
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  const parser = new Parser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    conn.beat();
    for (const msg of parser.feed(dec.decode(value, { stream: true }))) {
      if (msg.event === 'closing') {
        reader.cancel().catch(() => {});
        return false;
      }
      if (msg.event === 'end') {
        reader.cancel().catch(() => {});
        if (opts.onEnd) opts.onEnd(msg.data);
        return true;
      }
      if (msg.event === 'message' && msg.data !== '') opts.onMessage(msg);
    }
  }
}

/* The SSE line protocol: lines end in \n, \r\n or \r; a blank line ends a
 * message; data: lines join with \n; a field's value loses one leading space. */
export class Parser {
  constructor() {
    this.buf = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = null;
  }

  feed(text) {
    const out = [];
    this.buf += text;
    let m;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    while ((m = re.exec(this.buf)) !== null) {
      /* A lone \r at the very end may be half of \r\n: wait for more. */
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      this.line(this.buf.slice(start, m.index), out);
      start = m.index + m[0].length;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  line(line, out) {
    if (line === '') {
      if (this.data.length || this.event) {
        out.push({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
      }
      this.reset();
      return;
    }
    if (line[0] === ':') return; /* a comment: the server's heartbeat */
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    /* retry: ignored; our backoff is our own. */
  }
}
