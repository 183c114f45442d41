/*
 * The Runs view: the fleet newest first, filtered by status, agent, tenant
 * and label (all in the URL hash, so a filtered view can be shared), a
 * search by run id, keyset pages, and rows kept live by the fleet stream.
 *
 * Pages are keyed by the server's next_cursor; "Newer" pops a stack of the
 * cursors that led here, so paging stays one indexed query per page at any
 * depth (no offsets: 100,000 runs page as fast as 100).
 */

import { api, enc, ApiError } from './api.js';
import { h, replace, notice, statusEl, timeEl, fmtTokens, fmtMoney, debounce, STATUSES } from './dom.js';

const PAGE = 50;
const FILTERS = ['status', 'agent', 'tenant', 'label'];

export async function render(ctx) {
  const p = ctx.route.params;
  const state = { cursor: '', stack: [], next: null, rows: new Map() };
  const filters = Object.fromEntries(FILTERS.map((k) => [k, p.get(k) || '']));

  const table = h('table', { class: 'grid runs', 'aria-label': 'Runs' },
    h('thead', null, h('tr', null,
      ['Run', 'Status', 'Agent', 'Tenant', 'Age', 'Steps', 'Tokens', 'Cost', 'Attempts'].map((c, i) =>
        h('th', { scope: 'col', class: i >= 5 ? 'num' : null }, c)))),
    h('tbody'));
  const msg = h('div', { class: 'runs-msg' });
  const pager = pagerEl(state, () => load(ctx, state, filters, table, msg, pager));
  const searchMsg = h('div', { class: 'search-msg' });

  replace(ctx.main,
    h('div', { class: 'view-head' }, h('h1', null, 'Runs')),
    filterForm(filters, p.get('q') || '', searchMsg, ctx),
    searchMsg, msg, h('div', { class: 'table-wrap' }, table), pager.el);

  if (p.get('q')) await search(p.get('q'), searchMsg, ctx);
  await load(ctx, state, filters, table, msg, pager);
  ctx.ready('runs');

  /* Live: an event for a row on screen refreshes that row; any event on
   * the first page may mean a new run, so that page is asked for again. */
  const refreshPage = debounce(() => load(ctx, state, filters, table, msg, pager, true), 1000);
  ctx.onFleet((ev) => {
    if (state.stack.length === 0 || state.rows.has(ev.run_id)) refreshPage();
  });
  const tick = setInterval(() => refreshAges(table), 15000);
  ctx.signal.addEventListener('abort', () => clearInterval(tick));
}

function filterForm(filters, q, searchMsg, ctx) {
  const status = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: filters.status === s }, s.replace(/_/g, ' '))));
  const input = (id, name, ph) => h('input', { id, name, type: 'text', value: filters[name], placeholder: ph, autocomplete: 'off', spellcheck: 'false' });
  const agent = input('f-agent', 'agent', 'any');
  const tenant = input('f-tenant', 'tenant', 'any');
  const label = input('f-label', 'label', 'key=value');
  const apply = () => {
    const qs = new URLSearchParams();
    for (const [k, el] of [['status', status], ['agent', agent], ['tenant', tenant], ['label', label]]) {
      if (el.value.trim()) qs.set(k, el.value.trim());
    }
    const s = qs.toString();
    location.hash = '#/runs' + (s ? '?' + s : '');
  };
  status.addEventListener('change', apply);
  const field = (id, text, el) => h('div', { class: 'field' }, h('label', { for: id }, text), el);
  const filterF = h('form', { class: 'filters', 'aria-label': 'Filter runs', on: { submit: (e) => { e.preventDefault(); apply(); } } },
    field('f-status', 'Status', status), field('f-agent', 'Agent', agent),
    field('f-tenant', 'Tenant', tenant), field('f-label', 'Label', label),
    h('button', { type: 'submit' }, 'Filter'));

  const id = h('input', { id: 'f-q', type: 'search', value: q, placeholder: 'r0123…', autocomplete: 'off', spellcheck: 'false' });
  const searchF = h('form', { class: 'filters search', role: 'search', 'aria-label': 'Find a run', on: { submit: (e) => { e.preventDefault(); search(id.value.trim(), searchMsg, ctx); } } },
    field('f-q', 'Run id', id), h('button', { type: 'submit' }, 'Go'));
  return h('div', { class: 'toolbar' }, filterF, searchF);
}

/* An exact id goes to its run; anything else is said not to exist. */
async function search(q, where, ctx) {
  if (!q) { replace(where); return; }
  try {
    const run = await api('/v1/runs/' + enc(q), { signal: ctx.signal });
    location.hash = '#/runs/' + enc(run.id);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
      replace(where, notice('error', `No run has the id “${q}”. Ids look like r followed by 20 hex digits; copy one from the table or from `, h('code', null, 'durin runs'), '.'));
    } else ctx.fail(e, where);
  }
}

function query(filters, cursor) {
  const qs = new URLSearchParams({ limit: String(PAGE) });
  for (const k of FILTERS) if (filters[k]) qs.set(k, filters[k]);
  if (cursor) qs.set('cursor', cursor);
  return '/v1/runs?' + qs;
}

async function load(ctx, state, filters, table, msg, pager, quiet) {
  let page;
  try {
    page = await api(query(filters, state.cursor), { signal: ctx.signal });
  } catch (e) {
    if (quiet && e.name !== 'AbortError' && !(e instanceof ApiError && e.status === 401)) return;
    ctx.fail(e, msg);
    return;
  }
  state.next = page.next_cursor;
  state.rows = new Map(page.runs.map((r) => [r.id, r]));
  const body = document.createDocumentFragment();
  for (const r of page.runs) body.appendChild(rowEl(r));
  table.tBodies[0].replaceChildren(body);
  table.hidden = page.runs.length === 0;
  if (page.runs.length === 0) replace(msg, emptyEl(filters, state));
  else replace(msg);
  pager.update();
}

function rowEl(r) {
  const u = r.usage || {};
  return h('tr', { dataset: { runId: r.id } },
    h('td', null, h('a', { href: '#/runs/' + enc(r.id), class: 'mono' }, r.id),
      r.name ? h('div', { class: 'sub' }, r.name) : null),
    h('td', null, statusEl(r.status)),
    h('td', null, r.agent || h('span', { class: 'muted' }, 'inline')),
    h('td', null, r.tenant),
    h('td', { dataset: { ms: r.created_ms } }, timeEl(r.created_ms)),
    h('td', { class: 'num' }, String(u.steps ?? 0)),
    h('td', { class: 'num', title: `${u.input_tokens ?? 0} in, ${u.output_tokens ?? 0} out` }, fmtTokens((u.input_tokens || 0) + (u.output_tokens || 0))),
    h('td', { class: 'num' }, fmtMoney(r.cost_usd)),
    h('td', { class: 'num' }, String(r.attempts)));
}

function refreshAges(table) {
  for (const td of table.querySelectorAll('td[data-ms]')) {
    td.replaceChildren(timeEl(Number(td.dataset.ms)));
  }
}

function emptyEl(filters, state) {
  if (FILTERS.some((k) => filters[k]) || state.stack.length) {
    return notice('empty', 'No run matches these filters. ', h('a', { href: '#/runs' }, 'Show every run'), '.');
  }
  const origin = location.origin;
  return notice('empty',
    h('h2', null, 'No runs yet'),
    h('p', null, 'Submit one from a spec file with the CLI:'),
    h('pre', null, h('code', null, 'durin submit agent.json')),
    h('p', null, 'or through the API:'),
    h('pre', null, h('code', null,
      `curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\\n` +
      `     -d '{"spec": {"goal": "...", "model": {...}}}' ${origin}/v1/runs`)),
    h('p', null, 'It shows up here as soon as it is queued.'));
}

function pagerEl(state, reload) {
  const newer = h('button', { type: 'button', on: { click: () => { state.cursor = state.stack.pop() || ''; reload(); } } }, 'Newer');
  const older = h('button', { type: 'button', on: { click: () => { state.stack.push(state.cursor); state.cursor = state.next; reload(); } } }, 'Older');
  const where = h('span', { class: 'muted' });
  return {
    el: h('div', { class: 'pager' }, newer, older, where),
    update() {
      newer.disabled = state.stack.length === 0;
      older.disabled = !state.next;
      where.textContent = `page ${state.stack.length + 1}`;
    },
  };
}
