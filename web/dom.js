/*
 * Building the page without innerHTML: every string from the API goes in
 * as text, so a run named "<img onerror=...>" is only a name. Also the
 * formats every view shares (ages, money, tokens, durations).
 */

/* h('a', {href: '#/runs', class: 'x', dataset: {runId}}, 'text', child...).
 * Attributes named on* are refused: the CSP forbids inline handlers and
 * listeners go through `on: {click: fn}`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'open') el[k] = v;
    else if (k.startsWith('on')) throw new Error('h: use on: {} for ' + k);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/* Appends children: nodes, strings (as text), arrays of them; null skipped. */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

/* Replaces el's children with these (one DOM write). */
export function replace(el, ...children) {
  const frag = document.createDocumentFragment();
  append(frag, children);
  el.replaceChildren(frag);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/* ---- formats ---- */

const nf1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/* 950, 12.3k, 4.5M: tokens read at a glance. */
export function fmtTokens(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1000) return String(n);
  if (n < 1e6) return nf1.format(n / 1e3) + 'k';
  return nf1.format(n / 1e6) + 'M';
}

/* $0.0123 under a dollar (agents cost cents), $12.34 above. */
export function fmtMoney(x) {
  if (x === null || x === undefined) return '–';
  if (x === 0) return '$0';
  return '$' + (Math.abs(x) < 1 ? x.toFixed(4) : x.toFixed(2));
}

/* 820 ms, 4.1 s, 3m 05s, 2h 10m. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return nf1.format(s) + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
  const hr = Math.floor(m / 60);
  if (hr < 48) return hr + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  return Math.floor(hr / 24) + 'd ' + (hr % 24) + 'h';
}

/* "3m ago"; the exact time goes in a title (see timeEl). */
export function fmtAge(ms, now = Date.now()) {
  if (!ms) return '–';
  const d = Math.max(0, now - ms);
  if (d < 5000) return 'just now';
  if (d < 60e3) return Math.floor(d / 1e3) + 's ago';
  if (d < 3600e3) return Math.floor(d / 60e3) + 'm ago';
  if (d < 86400e3) return Math.floor(d / 3600e3) + 'h ago';
  return Math.floor(d / 86400e3) + 'd ago';
}

export function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

/* A <time> that says "3m ago" and shows the exact moment on hover. */
export function timeEl(ms) {
  if (!ms) return h('span', null, '–');
  return h('time', { datetime: new Date(ms).toISOString(), title: fmtTime(ms) }, fmtAge(ms));
}

/* The status as a coloured pill; data-status is part of the tests' contract. */
export function statusEl(status, attrs) {
  return h('span', Object.assign({ class: 'status st-' + status, dataset: { status } }, attrs || {}),
    status.replace(/_/g, ' '));
}

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'budget_exceeded']);

export const STATUSES = ['queued', 'running', 'waiting_approval', 'sleeping', 'evaluating',
  'paused', 'needs_human', 'succeeded', 'failed', 'cancelled', 'budget_exceeded'];

/* A status / alert box: role=status for loading and empty, alert for errors. */
export function notice(kind, ...children) {
  return h('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/* Calls fn at most once per `ms`, trailing: live updates arrive in bursts. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    if (t) return;
    t = setTimeout(() => { t = null; fn(...args); }, ms);
  };
}

/* An async fn that runs one at a time: a call while it runs marks it dirty
 * and it runs once more after that run ends (however many calls came
 * meanwhile), so two runs never work from the same state and answers are
 * drawn in the order they were asked for. Errors are the fn's to handle. */
export function serial(fn) {
  let running = false;
  let dirty = false;
  return async () => {
    if (running) { dirty = true; return; }
    running = true;
    try {
      do {
        dirty = false;
        try { await fn(); } catch (e) { if (!e || e.name !== 'AbortError') console.error(e); }
      } while (dirty);
    } finally {
      running = false;
    }
  };
}

/* Focus to the first of `els` that is in the page; focusing something
 * that has no tabindex makes it focusable by script only. */
export function focusFirst(...els) {
  for (const el of els) {
    if (!el || !el.isConnected) continue;
    if (!el.matches('a[href], button, input, select, textarea, [tabindex]')) el.setAttribute('tabindex', '-1');
    el.focus({ preventScroll: false });
    if (document.activeElement === el) return true;
  }
  return false;
}

export function section(label, id, ...children) {
  const hid = 'h-' + id;
  return h('section', { class: 'panel', id, 'aria-labelledby': hid },
    h('h2', { id: hid }, label), ...children);
}
