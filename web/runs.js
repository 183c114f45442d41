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
import { h, replace, notice, statusEl, timeEl, fmtTokens, fmtMoney, debounce, serial, STATUSES } from './dom.js';

const PAGE = 50;
const FILTERS = ['status', 'agent', 'tenant', 'label'];

export async function render(ctx) {
  const p = ctx.route.params;
  /* req: the number of the latest page request; only its answer is drawn.
   * loading: a page the pager asked for is on its way. */
  const state = { cursor: '', stack: [], next: null, rows: new Map(), req: 0, loading: false };
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
  const refreshPage = debounce(serial(() => load(ctx, state, filters, table, msg, pager, true)), 1000);
  ctx.onFleet((ev) => {
    if (state.stack.length === 0 || !ev.run_id || state.rows.has(ev.run_id)) refreshPage();
  });
  ctx.every(15000, () => refreshAges(table));
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

/* Asks for the page at state.cursor and draws it, if no later request was
 * made meanwhile (a live refresh of page 1 answering after "Older" was
 * pressed is not drawn as page 2). `quiet`: a live refresh, whose failure
 * is not worth a message. */
async function load(ctx, state, filters, table, msg, pager, quiet) {
  /* The page the pager asked for is on its way: it is the fresh one. */
  if (quiet && state.loading) return;
  const req = ++state.req;
  if (!quiet) { state.loading = true; pager.update(); }
  let page;
  try {
    page = await api(query(filters, state.cursor), { signal: ctx.signal });
  } catch (e) {
    if (req !== state.req) return;
    state.loading = false;
    pager.update();
    if (quiet && e.name !== 'AbortError' && !(e instanceof ApiError && e.status === 401)) return;
    ctx.fail(e, msg);
    return;
  }
  if (req !== state.req) return;
  state.loading = false;
  state.next = page.next_cursor;
  state.rows = new Map(page.runs.map((r) => [r.id, r]));
  drawRows(table.tBodies[0], page.runs);
  table.hidden = page.runs.length === 0;
  if (page.runs.length === 0) replace(msg, emptyEl(filters, state));
  else replace(msg);
  pager.update();
}

/* The rows, updated in place by data-run-id: a row already shown keeps its
 * element and its link (which may have the focus), only its other cells
 * are redrawn; new rows go in at their place, gone ones go. Rows are moved
 * only when the order changed, and the focus is put back if one was. */
function drawRows(tbody, runs) {
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const old = new Map([...tbody.rows].map((tr) => [tr.dataset.runId, tr]));
  let cur = tbody.firstElementChild;
  for (const r of runs) {
    const fresh = rowEl(r);
    let tr = old.get(r.id);
    if (tr) {
      old.delete(r.id);
      updateRow(tr, fresh);
    } else tr = fresh;
    if (tr === cur) cur = cur.nextElementSibling;
    else tbody.insertBefore(tr, cur);
  }
  for (const tr of old.values()) tr.remove();
  if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
}

function updateRow(tr, fresh) {
  const cells = [...tr.cells];
  const now = [...fresh.cells];
  /* The first cell holds the link: only the name under it may change. */
  const sub = (td) => td.querySelector('.sub');
  if ((sub(cells[0]) || {}).textContent !== (sub(now[0]) || {}).textContent) {
    if (sub(cells[0])) sub(cells[0]).remove();
    if (sub(now[0])) cells[0].appendChild(sub(now[0]));
  }
  for (let i = 1; i < now.length; i++) {
    if (!cells[i]) tr.appendChild(now[i]);
    else if (!cells[i].isEqualNode(now[i])) tr.replaceChild(now[i], cells[i]);
  }
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

/* Newer and Older are disabled while a page loads (a double click pushes
 * no cursor twice) and where there is no such page. With aria-disabled,
 * not `disabled`: a button that had the focus keeps it. */
function pagerEl(state, reload) {
  const off = (b) => b.getAttribute('aria-disabled') === 'true';
  const newer = h('button', { type: 'button', on: { click: () => {
    if (off(newer)) return;
    state.cursor = state.stack.pop() || '';
    reload();
  } } }, 'Newer');
  const older = h('button', { type: 'button', on: { click: () => {
    if (off(older)) return;
    state.stack.push(state.cursor);
    state.cursor = state.next;
    reload();
  } } }, 'Older');
  const where = h('span', { class: 'muted' });
  const set = (b, disabled) => b.setAttribute('aria-disabled', disabled ? 'true' : 'false');
  return {
    el: h('div', { class: 'pager' }, newer, older, where),
    update() {
      set(newer, state.loading || state.stack.length === 0);
      set(older, state.loading || !state.next);
      where.textContent = state.loading ? `page ${state.stack.length + 1}, loading…` : `page ${state.stack.length + 1}`;
    },
  };
}
