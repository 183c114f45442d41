/*
 * The public /v1 API, as any client calls it: the token as a Bearer header
 * (never in a URL, where it would end up in logs), errors in the one shape
 * {"error": {code, message, field?}} turned into ApiError.
 *
 * The token lives in sessionStorage (gone with the tab) unless the user
 * asked to be remembered on this browser (localStorage).
 */

const KEY = 'durin.token';

export function getToken() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
}

export function setToken(token, remember) {
  clearToken();
  (remember ? localStorage : sessionStorage).setItem(KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/* The server answered, and not with 2xx. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/* The server did not answer at all (fetch threw). */
export class NetworkError extends Error {}

function headers(extra) {
  const hd = Object.assign({ Accept: 'application/json' }, extra || {});
  const t = getToken();
  if (t) hd.Authorization = 'Bearer ' + t;
  return hd;
}

/* api('/v1/runs') → parsed JSON. opts: {method, body (JSON), signal, text}. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: headers(), signal: opts.signal };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers['Content-Type'] = 'application/json';
  }
  if (opts.text) init.headers.Accept = 'text/plain, */*';
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new NetworkError(`durin serve at ${location.origin} does not answer; is it running?`);
  }
  if (!resp.ok) throw await toError(resp);
  if (opts.text) return resp.text();
  if (resp.status === 204) return null;
  return resp.json();
}

async function toError(resp) {
  let e = null;
  try {
    e = (await resp.json()).error;
  } catch (_) { /* not our JSON: a proxy's page, say */ }
  const msg = e && e.message ? e.message : `${resp.status} ${resp.statusText}`;
  return new ApiError(resp.status, e ? e.code : 'http_' + resp.status, msg, e ? e.field : undefined);
}

/* The role order, for showing only the buttons that will work. */
const RANK = { viewer: 1, operator: 2, admin: 3 };

export function can(me, role) {
  return !!me && (RANK[me.role] || 0) >= RANK[role];
}

export function authHeaders() {
  return headers({ Accept: 'text/event-stream' });
}

export const enc = encodeURIComponent;
