/*
 * The Workers view: every worker of the store with its heartbeat, the
 * leases it holds, the runs in flight and its model providers' rate-limit
 * state. A worker that died stays listed, its heartbeat ageing: past two
 * lease times its runs are up for recovery, so it is marked stale.
 */

import { api } from './api.js';
import { h, replace, notice, timeEl, fmtDuration, fmtTokens, fmtTime } from './dom.js';

const REFRESH_MS = 5000;

export async function render(ctx) {
  const body = h('div');
  replace(ctx.main, h('div', { class: 'view-head' }, h('h1', null, 'Workers')), body);
  await load(ctx, body);
  ctx.ready('workers');
  ctx.every(REFRESH_MS, () => load(ctx, body, true));
}

async function load(ctx, box, quiet) {
  let r;
  try {
    r = await api('/v1/workers', { signal: ctx.signal });
  } catch (e) {
    if (!quiet) ctx.fail(e, box);
    return;
  }
  if (!r.workers.length) {
    replace(box, notice('empty', h('p', null, 'No worker is running: queued runs wait.'),
      h('p', null, 'Start one with ', h('code', null, 'durin worker'), ' (or ', h('code', null, 'durin serve'), ', which runs its own).')));
    return;
  }
  const rows = document.createDocumentFragment();
  for (const w of r.workers) rows.appendChild(rowEl(w));
  replace(box, h('div', { class: 'table-wrap' }, h('table', { class: 'grid', 'aria-label': 'Workers' },
    h('thead', null, h('tr', null, ['Worker', 'Kind', 'Started', 'Heartbeat', 'Leases', 'In flight', 'Waiting', 'Claimed', 'Finished', 'Steps', 'Rate limits']
      .map((c, i) => h('th', { scope: 'col', class: i >= 4 && i <= 9 ? 'num' : null }, c)))),
    h('tbody', null, rows))),
  h('p', { class: 'muted small' }, `Refreshed every ${REFRESH_MS / 1000} s.`));
}

function rowEl(w) {
  const info = w.info || {};
  const ttl = info.lease_ttl_ms || 0;
  const stale = ttl > 0 && w.heartbeat_age_ms > 2 * ttl;
  return h('tr', { dataset: { owner: w.owner }, class: stale ? 'stale' : null },
    h('td', { class: 'mono' }, w.owner),
    h('td', null, w.kind),
    h('td', null, timeEl(w.started_ms)),
    h('td', { title: 'last beat ' + fmtTime(w.beat_ms) },
      fmtDuration(w.heartbeat_age_ms) + ' ago',
      stale ? h('span', { class: 'status st-failed stale-tag' }, 'stale') : null),
    h('td', { class: 'num' }, `${w.held} of ${w.max_runs}`),
    h('td', { class: 'num' }, String(info.live ?? '–')),
    h('td', { class: 'num' }, String(info.waiting ?? '–')),
    h('td', { class: 'num' }, String(info.claimed ?? '–')),
    h('td', { class: 'num' }, String(info.finished ?? '–')),
    h('td', { class: 'num' }, String(info.steps ?? '–')),
    h('td', null, limitsEl(info.rate_limits)));
}

function limitsEl(limits) {
  if (!limits || !limits.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'limits' }, limits.map((l) => {
    const blocked = l.blocked_until_ms && l.blocked_until_ms > Date.now();
    return h('li', null, h('span', { class: 'mono' }, l.provider), ': ',
      `${perMin(l.requests_left, l.rpm, fmtNum)} req, ${perMin(l.tokens_left, l.tpm, fmtTokens)} tok per min`,
      blocked ? h('span', { class: 'status st-failed', title: fmtTime(l.blocked_until_ms) }, ' blocked ' + fmtDuration(l.blocked_until_ms - Date.now())) : null);
  }));
}

/* "498/500", or "unlimited": a limit of 0 (or none) is no limit. The
 * numbers come as JSON reals (600.0, 498.2). */
function perMin(left, limit, fmt) {
  if (!limit || !(Number(limit) > 0)) return 'unlimited';
  const l = left === null || left === undefined ? '–' : fmt(Math.max(0, Math.floor(Number(left) || 0)));
  return `${l}/${fmt(Math.round(Number(limit)))}`;
}

function fmtNum(x) {
  return String(x);
}
