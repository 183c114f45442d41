/*
 * The dashboard's shell: sign-in, the header (nav, approvals badge, who is
 * signed in), the hash router, and what every view shares: one stream of
 * the fleet's events, and one way to say what went wrong and what to do.
 *
 * A view is a module with render(ctx); ctx carries the <main> to fill, the
 * route, an AbortSignal that fires when the user leaves (streams and
 * timers stop on it), and the shared helpers below.
 */

import { api, getToken, setToken, clearToken, ApiError, NetworkError } from './api.js';
import { h, replace, notice, debounce, focusFirst } from './dom.js';
import { follow } from './sse.js';
import * as runsView from './runs.js';
import * as runView from './run.js';
import * as approvalsView from './approvals.js';
import * as workersView from './workers.js';

const main = document.getElementById('main');
const top = document.getElementById('top');

let me = null;          /* whoami's answer once known */
let mePromise = null;   /* ... or the request for it */
let viewCtrl = null;    /* aborts the current view's streams and timers */
let fleetCtrl = null;   /* aborts the fleet stream at sign-out */
const fleetSubs = new Set();
let badgeEl = null;

/* ---- routes ---- */

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query || '');
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch (_) {
    /* A malformed escape (#/runs/%E0): say so rather than leave a dead view. */
    return { name: 'bad', hash: location.hash, params };
  }
  if (parts[0] === 'runs' && parts[1]) return { name: 'run', id: parts[1], params };
  if (parts[0] === 'approvals') return { name: 'approvals', id: parts[1] || '', params };
  if (parts[0] === 'workers') return { name: 'workers', params };
  return { name: 'runs', params };
}

/* The view for an address that does not decode. */
const badView = {
  render(ctx) {
    replace(ctx.main, h('h1', null, 'No such page'),
      notice('error', h('p', null, `The address “${ctx.route.hash}” is not one the dashboard knows. `),
        h('a', { href: '#/runs' }, 'Go to the runs')));
    ctx.ready('error');
  },
};

const VIEWS = { runs: runsView, run: runView, approvals: approvalsView, workers: workersView, bad: badView };
const NAV = [['runs', 'Runs', '#/runs'], ['approvals', 'Approvals', '#/approvals'], ['workers', 'Workers', '#/workers']];

/* Shows the route's view. `moveFocus` (false only for the first view of a
 * page load) moves the focus to the new view's heading once it is drawn,
 * so a keyboard or screen reader user lands on what the route change
 * brought, not on the link that is gone. */
async function show(moveFocus = true) {
  if (viewCtrl) viewCtrl.abort();
  viewCtrl = new AbortController();
  delete document.body.dataset.ready;
  const route = parseRoute();
  markNav(route.name === 'run' ? 'runs' : route.name);
  const ctx = makeCtx(route, viewCtrl.signal, moveFocus);
  replace(main, notice('loading', 'Loading…'));
  try {
    await VIEWS[route.name].render(ctx);
  } catch (e) {
    ctx.fail(e);
  }
}

/* Focus to the view's main heading (or <main>), unless the user has
 * already moved into the view. */
function focusView() {
  const a = document.activeElement;
  if (a && a !== main && main.contains(a)) return;
  focusFirst(main.querySelector('h1'), main);
}

function makeCtx(route, signal, moveFocus) {
  const ctx = {
    main, route, signal,
    whoami: () => mePromise,
    ready: (name) => {
      if (signal.aborted) return;
      if (moveFocus) { moveFocus = false; focusView(); }
      document.body.dataset.ready = name;
    },
    /* Hooks that live as long as the view: a no-op once it is left (a view
     * that registers one after an await may be gone already). */
    onFleet: (fn) => {
      if (signal.aborted) return;
      fleetSubs.add(fn);
      signal.addEventListener('abort', () => fleetSubs.delete(fn), { once: true });
    },
    every: (ms, fn) => {
      if (signal.aborted) return null;
      const t = setInterval(fn, ms);
      signal.addEventListener('abort', () => clearInterval(t), { once: true });
      return t;
    },
    refreshBadge: () => refreshBadge(),
    fail: (e, where) => fail(e, where || main, signal),
    retry: () => show(),
  };
  return ctx;
}

/* Says what went wrong, and what to do, in `where` (the view by default).
 * A refused token goes back to sign-in; anything else offers a retry. */
function fail(e, where, signal) {
  if (signal && signal.aborted) return;
  if (e && e.name === 'AbortError') return;
  if (e instanceof ApiError && e.status === 401) {
    signOut('The server refused the token (revoked or mistyped). Sign in with a valid one.');
    return;
  }
  let msg;
  if (e instanceof NetworkError) msg = e.message;
  else if (e instanceof ApiError) msg = e.message;
  else {
    console.error(e);
    msg = 'Something broke in the dashboard: ' + (e && e.message ? e.message : String(e));
  }
  replace(where, notice('error', h('p', null, msg),
    h('button', { type: 'button', on: { click: () => show() } }, 'Retry')));
  if (where === main && !main.contains(document.activeElement)) focusFirst(main);
  document.body.dataset.ready = 'error';
}

/* ---- header ---- */

function renderHeader() {
  const links = NAV.map(([name, label, href]) => {
    const a = h('a', { href, dataset: { nav: name } }, label);
    if (name === 'approvals') {
      badgeEl = h('span', { class: 'badge', hidden: true });
      a.append(' ', badgeEl);
    }
    return h('li', null, a);
  });
  const who = me ? [h('span', { class: 'who' },
    h('span', { class: 'who-name' }, me.name), ' ',
    h('span', { class: 'role role-' + me.role }, me.role),
    me.tenant ? h('span', { class: 'muted' }, ' · ' + me.tenant) : null)] : [];
  replace(top,
    h('a', { class: 'brand', href: '#/runs' }, h('img', { src: '/ui/icon.svg', alt: '', width: 20, height: 20 }), 'durin'),
    h('nav', { 'aria-label': 'Main' }, h('ul', null, links)),
    h('div', { class: 'session' }, who,
      me && me.auth !== false ? h('button', { type: 'button', class: 'quiet', on: { click: () => signOut('') } }, 'Sign out') : null));
}

function markNav(name) {
  for (const a of top.querySelectorAll('nav a')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function refreshBadge() {
  if (!badgeEl) return;
  try {
    const r = await api('/v1/approvals');
    setBadge(r.approvals.length);
  } catch (_) { /* the views say what is wrong; the badge keeps its count */ }
}

function setBadge(n) {
  if (!badgeEl) return;
  badgeEl.hidden = false;
  badgeEl.classList.toggle('badge-zero', n === 0);
  replace(badgeEl, String(n), h('span', { class: 'sr' }, ' pending'));
  badgeEl.title = n + ' pending';
}

/* ---- the fleet's events: one stream shared by the views and the badge ---- */

const badgeSoon = debounce(refreshBadge, 500);

function startFleet() {
  fleetCtrl = new AbortController();
  let opened = 0;
  follow('/v1/events/stream', {
    signal: fleetCtrl.signal,
    onMessage: (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      if (/^approval/.test(ev.type) || ev.type === 'run_finished') badgeSoon();
      for (const fn of fleetSubs) fn(ev);
    },
    /* Live only: what happened while it was down is not replayed, so a
     * reconnect tells the views to look again. */
    onOpen: () => {
      badgeSoon();
      if (opened++) for (const fn of fleetSubs) fn({ type: 'stream_reopened', run_id: null });
    },
    onError: (e) => { if (e.status === 401) signOut('The server refused the token (revoked or mistyped). Sign in with a valid one.'); },
  });
  /* Deadlines pass without an event: count again now and then. */
  const t = setInterval(refreshBadge, 30000);
  fleetCtrl.signal.addEventListener('abort', () => clearInterval(t));
}

/* ---- sign-in ---- */

function signOut(why) {
  clearToken();
  me = null;
  mePromise = null;
  if (fleetCtrl) fleetCtrl.abort();
  if (viewCtrl) viewCtrl.abort();
  badgeEl = null;
  renderSignIn(why);
}

function renderSignIn(why) {
  replace(top, h('a', { class: 'brand', href: '#/runs' }, h('img', { src: '/ui/icon.svg', alt: '', width: 20, height: 20 }), 'durin'));
  const token = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  const msg = h('div', { class: 'signin-msg' });
  if (why) replace(msg, notice('error', why));
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin', 'aria-label': 'Sign in', on: { submit: (e) => { e.preventDefault(); trySignIn(token.value.trim(), remember.checked, msg, btn); } } },
    h('h1', null, 'Sign in to durin'),
    h('p', { class: 'muted' }, 'Paste an API token. Make one with ', h('code', null, 'durin token create NAME --role operator'), '.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), token),
    h('div', { class: 'check' }, remember, h('label', { for: 'remember' }, 'Remember on this browser')),
    btn, msg);
  replace(main, form);
  document.body.dataset.ready = 'signin';
  token.focus();
}

async function trySignIn(token, remember, msg, btn) {
  if (!token) {
    replace(msg, notice('error', 'Paste a token first.'));
    return;
  }
  btn.disabled = true;
  setToken(token, remember);
  try {
    me = await api('/v1/whoami');
  } catch (e) {
    clearToken();
    btn.disabled = false;
    if (e instanceof ApiError && e.status === 401) {
      replace(msg, notice('error', 'The server refused this token: it may be revoked or mistyped. Check it with ', h('code', null, 'durin token list'), '.'));
    } else {
      replace(msg, notice('error', e.message));
    }
    return;
  }
  mePromise = Promise.resolve(me);
  start();
}

/* Signed in: the header, the fleet stream, the current route. */
function start() {
  renderHeader();
  startFleet();
  refreshBadge();
  show();
}

/* At load: ask who the stored token is while the view's own requests go
 * out in parallel; a refusal of either sends the user to sign-in. Without
 * a token, a serve that needs none (--no-auth, said by /healthz) is used
 * as is; any other asks for one. */
async function boot() {
  window.addEventListener('hashchange', () => { if (me) show(); });
  if (!getToken()) {
    let health = null;
    try {
      health = await api('/healthz');
    } catch (_) { /* unreachable: sign-in says so when it is tried */ }
    if (!health || health.auth !== false) {
      renderSignIn('');
      return;
    }
  }
  mePromise = api('/v1/whoami');
  me = { name: '…', role: 'viewer' };
  renderHeader();
  startFleet();
  refreshBadge();
  show(false);
  mePromise.then((w) => {
    me = w;
    const cur = top.querySelector('[aria-current]');
    renderHeader();
    if (cur) markNav(cur.dataset.nav);
    refreshBadge();
  }, (e) => fail(e, main, null));
}

boot();
