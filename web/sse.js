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
export function follow(url, opts) {
  const run = async () => {
    let delay = 1000;
    while (!opts.signal.aborted) {
      let ended = false;
      try {
        ended = await connect(url, opts, () => { delay = 1000; });
      } catch (e) {
        if (opts.signal.aborted) return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          if (opts.onError) opts.onError(e);
          return;
        }
      }
      if (ended || opts.signal.aborted) return;
      if (opts.onDrop) opts.onDrop();
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/* One connection; true when the stream said `end` (do not reconnect). */
async function connect(url, opts, opened) {
  const hd = authHeaders();
  const last = opts.lastId ? opts.lastId() : '';
  if (last !== '' && last !== null && last !== undefined) hd['Last-Event-ID'] = String(last);
  const resp = await fetch(url, { headers: hd, signal: opts.signal, cache: 'no-store' });
  if (!resp.ok) {
    let e = null;
    try { e = (await resp.json()).error; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, e ? e.code : 'http', e ? e.message : resp.statusText);
  }
  opened();
  if (opts.onOpen) opts.onOpen();
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  const parser = new Parser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
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
