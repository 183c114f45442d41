/*
 * The Run view: one run, step by step. What it is and why (status, reason,
 * model, worker), what it may still spend (budget bars), what it plans,
 * what each step did (the timeline), what it cost over time (chart), the
 * raw log (events), what it changed (diff) and whether its checks pass.
 *
 * It follows the run's event stream. The log must show every event once,
 * in seq order, even across a `serve` restart: events go through one
 * queue; one already shown is dropped; one past a gap first fetches the
 * gap from the events endpoint. The other panels are refreshed from the
 * API a moment after events arrive (debounced), not rebuilt from events;
 * each refresh runs one at a time (serial: one asked for while one is on
 * its way runs after it), so two never work from the same last step and
 * no answer is drawn over a newer one.
 */

import { api, enc, can, ApiError } from './api.js';
import { h, replace, notice, section, statusEl, timeEl, fmtTokens, fmtMoney, fmtDuration, fmtTime, debounce, serial, focusFirst, TERMINAL } from './dom.js';
import { follow } from './sse.js';
import { costChart } from './chart.js';

const EVENTS_BACK = 200;

export async function render(ctx) {
  const id = ctx.route.id;
  const runP = api('/v1/runs/' + enc(id), { signal: ctx.signal });
  const tlP = fetchTimeline(id, 0, ctx.signal).catch((e) => e);
  const diffP = fetchDiff(id, ctx.signal);
  let run, me;
  try {
    [run, me] = await Promise.all([runP, ctx.whoami()]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      replace(ctx.main, notice('error', h('p', null, `No run has the id “${id}”. `), h('a', { href: '#/runs' }, 'Back to the runs')));
      ctx.ready('run');
      return;
    }
    throw e;
  }
  const v = makeView(ctx, run, me);
  const evP = loadInitialEvents(v, run);
  replace(ctx.main, v.el);
  drawRun(v, run);
  /* Each panel draws when its answer comes; the view is ready when all have. */
  await Promise.all([
    tlP.then((tl) => drawTimeline(v, tl)),
    diffP.then((d) => drawDiff(v, d)),
    evP]);
  if (ctx.signal.aborted) return;
  ctx.ready('run');
  followRun(v);
}

/* ---- the skeleton: a heading, facts, controls, then one region each ---- */

function makeView(ctx, run, me) {
  /* runAsked/runDrawn: the number of the latest request for the run and of
   * the one drawn, so an older answer is never drawn over a newer one.
   * resolution: the Resume choice, kept across redraws. */
  const v = { ctx, id: run.id, me, run, lastSeq: 0, firstSeq: 0, queue: Promise.resolve(), steps: [], tlMissing: false,
    runAsked: 0, runDrawn: 0, controlsKey: null, resolution: 'retry-call' };
  v.title = h('h1', { class: 'run-title' });
  v.facts = h('dl', { class: 'facts' });
  v.controls = h('div', { class: 'controls' });
  v.controlMsg = h('div', { class: 'control-msg' });
  v.budget = h('div', { class: 'bars' });
  v.plan = h('div');
  v.timeline = h('div');
  v.chart = h('div');
  v.log = h('div', { role: 'log', 'aria-label': 'Event log', class: 'log' });
  v.earlier = h('button', { type: 'button', class: 'quiet', on: { click: () => loadEarlier(v) } }, 'Load earlier');
  v.logMsg = h('div');
  v.diff = h('div');
  v.checks = h('div');
  v.tlRegion = section('Timeline', 'timeline', v.timeline);
  v.el = h('div', { class: 'run-view' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/runs' }, '← Runs')),
    v.title, v.facts, h('div', { class: 'control-bar' }, v.controls, v.controlMsg),
    h('div', { class: 'cols' }, section('Budget', 'budget', v.budget), section('Plan', 'plan', v.plan)),
    v.tlRegion,
    section('Cost and tokens', 'cost', v.chart),
    section('Events', 'events', v.earlier, v.log, v.logMsg),
    section('Changes', 'changes', v.diff),
    section('Checks', 'checks', v.checks));
  return v;
}

/* Everything that comes from the run's JSON. */
function drawRun(v, run) {
  v.run = run;
  replace(v.title, run.name ? h('span', null, run.name, ' ') : 'Run ', h('span', { class: 'mono id' }, run.id));
  const u = run.usage || {};
  const fact = (k, ...val) => [h('dt', null, k), h('dd', null, ...val)];
  replace(v.facts,
    fact('Status', statusEl(run.status, { id: 'run-status' }),
      run.cancel_requested ? h('span', { class: 'muted' }, ' cancel requested') : null,
      run.pause_requested ? h('span', { class: 'muted' }, ' pause requested') : null),
    run.reason ? fact('Reason', run.reason) : null,
    fact('Model', h('span', { class: 'mono' }, run.model || '–')),
    fact('Worker', run.lease ? h('span', { class: 'mono', title: 'lease epoch ' + run.lease.epoch + ', expires ' + fmtTime(run.lease.expires_ms) }, run.lease.owner) : h('span', { class: 'muted' }, 'none')),
    fact('Attempts', String(run.attempts), h('span', { class: 'muted' }, ` · ${run.recoveries} recover${run.recoveries === 1 ? 'y' : 'ies'}`)),
    fact('Tenant', run.tenant),
    fact('Agent', run.agent ? `${run.agent}${run.agent_version ? ' v' + run.agent_version : ''}` : h('span', { class: 'muted' }, 'inline spec')),
    fact('Created', timeEl(run.created_ms), run.created_by ? ` by ${run.created_by}` : ''),
    fact('Spent', `${fmtMoney(run.cost_usd)} · ${fmtTokens((u.input_tokens || 0) + (u.output_tokens || 0))} tokens · ${u.tool_calls ?? 0} tool calls`),
    run.labels && Object.keys(run.labels).length ? fact('Labels', Object.entries(run.labels).map(([k, val]) => h('span', { class: 'tag' }, `${k}=${val}`))) : null,
    run.summary ? fact('Summary', run.summary) : null);
  drawControls(v, run);
  drawBudget(v, run);
  drawPlan(v, run.plan || []);
  drawChecks(v, run.checks);
}

/* ---- controls: only those the status allows and the role may ---- */

/* The states the store lets a pause take (lib/store/sql-queue.c): a run
 * waiting for an approval or sleeping is not paused, it is already still. */
const PAUSABLE = new Set(['queued', 'running', 'evaluating']);

/* Drawn again only when the set of controls changes, so a refresh leaves
 * the focus and the Resume choice as they are; when it does change, the
 * focus goes back to the control of the same name, else the first one. */
function drawControls(v, run) {
  if (!can(v.me, 'operator')) { replace(v.controls); return; }
  const st = run.status;
  const want = [];
  if (PAUSABLE.has(st) && !run.pause_requested) want.push('Pause');
  if (st === 'paused' || run.pause_requested) want.push('Unpause');
  if (st === 'needs_human') want.push('Resume');
  if (!TERMINAL.has(st)) want.push('Cancel run');
  const key = want.join('|');
  if (key === v.controlsKey) return;
  v.controlsKey = key;
  if (st !== 'needs_human') v.resolution = 'retry-call';
  const had = v.controls.contains(document.activeElement) ? controlName(document.activeElement) : null;
  const btn = (label, fn, cls) => h('button', { type: 'button', class: cls || null, on: { click: fn } }, label);
  replace(v.controls, want.map((w) => {
    if (w === 'Pause') return btn('Pause', () => control(v, 'pause'));
    if (w === 'Unpause') return btn('Unpause', () => control(v, 'unpause'));
    if (w === 'Resume') return resumeEl(v);
    return btn('Cancel run', () => confirmCancel(v), 'danger');
  }));
  if (had !== null) focusControl(v, had);
}

/* A control's name: a button's text, a radio's value. */
function controlName(el) {
  return el.type === 'radio' ? 'radio:' + el.value : el.textContent;
}

/* Focus to the control named `name`, else the first control, else the heading. */
function focusControl(v, name) {
  const all = [...v.controls.querySelectorAll('button, input')];
  focusFirst(all.find((el) => controlName(el) === name), all[0], v.title);
}

function resumeEl(v) {
  const radio = (val, label) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'resolution', value: val, checked: v.resolution === val,
      on: { change: (e) => { if (e.target.checked) v.resolution = val; } } }), ' ', label);
  const fs = h('fieldset', { class: 'resume' },
    h('legend', null, 'Resolution of the call it stopped on'),
    radio('retry-call', 'Retry the call'), radio('skip-call', 'Skip the call'));
  const go = h('button', { type: 'button', class: 'primary', on: { click: () => {
    const r = fs.querySelector('input[name=resolution]:checked');
    control(v, 'resume', { resolution: r ? r.value : v.resolution });
  } } }, 'Resume');
  return h('div', { class: 'resume-box' }, fs, go);
}

/* A native modal <dialog>: focus moves into it, Escape closes it, Tab
 * stays inside; the safe choice has the focus. */
function confirmCancel(v) {
  const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'cancel-h', 'aria-describedby': 'cancel-d' });
  const keep = h('button', { type: 'button', autofocus: true, on: { click: () => dlg.close() } }, 'Keep running');
  const yes = h('button', { type: 'button', class: 'danger', on: { click: () => { dlg.close(); control(v, 'cancel'); } } }, 'Cancel run');
  replace(dlg, h('h2', { id: 'cancel-h' }, 'Cancel this run?'),
    h('p', { id: 'cancel-d' }, `Run ${v.id} stops at its next step boundary and ends as cancelled. It cannot be resumed.`),
    h('div', { class: 'dialog-buttons' }, keep, yes));
  /* What is behind the modal is hidden from assistive tech too (as the
   * browser already makes it inert), so one "Cancel run" is announced. */
  const behind = [document.getElementById('top'), document.getElementById('main')];
  /* The focus goes back to the button that opened it, or, if a redraw
   * replaced it meanwhile, to the control of that name (or the first). */
  const opener = document.activeElement;
  dlg.addEventListener('close', () => {
    for (const el of behind) el.removeAttribute('aria-hidden');
    dlg.remove();
    if (opener && opener.isConnected && opener !== document.body) opener.focus();
    else focusControl(v, 'Cancel run');
  });
  document.body.appendChild(dlg);
  for (const el of behind) el.setAttribute('aria-hidden', 'true');
  dlg.showModal();
  keep.focus();
}

async function control(v, what, body) {
  replace(v.controlMsg, notice('loading', `Asking to ${what}…`));
  try {
    const t = ++v.runAsked;
    const run = await api(`/v1/runs/${enc(v.id)}/${what}`, { method: 'POST', body: body || {}, signal: v.ctx.signal });
    replace(v.controlMsg, notice('ok', doneText(what)));
    drawRunIf(v, Object.assign({}, v.run, run), t);
    refreshRunSoon(v);
  } catch (e) {
    if (e instanceof ApiError && e.status !== 401) replace(v.controlMsg, notice('error', e.message));
    else v.ctx.fail(e, v.controlMsg);
  }
}

function doneText(what) {
  return {
    pause: 'Pause requested: the run stops at its next step boundary.',
    unpause: 'Unpaused: the run goes back to the queue.',
    resume: 'Resumed: the run is back in the queue.',
    cancel: 'Cancel requested: the run ends at its next step boundary.',
  }[what];
}

/* ---- budget: used of limit, per limit ---- */

function drawBudget(v, run) {
  const b = run.budget || {};
  const u = run.usage || {};
  const wallUsed = run.started_ms ? ((run.finished_ms || Date.now()) - run.started_ms) / 1000 : 0;
  replace(v.budget,
    bar('Steps', u.steps || 0, b.steps, (x) => String(x)),
    bar('Tokens', (u.input_tokens || 0) + (u.output_tokens || 0), b.tokens, fmtTokens),
    bar('Dollars', run.cost_usd || 0, b.dollars, fmtMoney),
    bar('Wall clock', Math.round(wallUsed), b.wall_clock_s, (s) => (s < 1 ? '0 s' : fmtDuration(s * 1000))),
    b.tool_calls != null ? bar('Tool calls', u.tool_calls || 0, b.tool_calls, String) : null,
    run.budget ? null : h('p', { class: 'muted small' }, 'This server does not report the run’s limits; only what it used is shown.'));
}

/* A progressbar named for its limit; with no limit, used only. */
function bar(name, used, limit, fmt) {
  const has = limit !== null && limit !== undefined;
  const frac = has && limit > 0 ? Math.min(1, used / limit) : 0;
  const text = has ? `${fmt(used)} of ${fmt(limit)}` : `${fmt(used)} used, no limit`;
  const fill = h('div', { class: 'fill' + (frac >= 0.9 ? ' hot' : frac >= 0.7 ? ' warm' : '') });
  fill.style.width = (frac * 100).toFixed(1) + '%';
  const pb = h('div', { class: 'track' + (has ? '' : ' nolimit'), role: 'progressbar', 'aria-label': name,
    'aria-valuemin': 0, 'aria-valuenow': round(used), 'aria-valuemax': has ? round(limit) : null, 'aria-valuetext': text }, fill);
  return h('div', { class: 'bar' }, h('div', { class: 'bar-head' }, h('span', null, name), h('span', { class: 'num' }, text)), pb);
}

function round(x) {
  return Math.round(x * 10000) / 10000;
}

/* ---- plan and checks ---- */

function drawPlan(v, plan) {
  if (!plan.length) { replace(v.plan, h('p', { class: 'muted' }, 'The agent has not written a plan.')); return; }
  replace(v.plan, h('ol', { class: 'plan' }, plan.map((p) =>
    h('li', { class: 'plan-' + (p.status || 'pending').replace(/[^a-z_]/g, '') },
      h('span', { class: 'plan-status' }, (p.status || 'pending').replace(/_/g, ' ')), ' ', p.step))));
}

function drawChecks(v, checks) {
  if (!checks) { replace(v.checks, h('p', { class: 'muted' }, 'No acceptance checks have run yet.')); return; }
  const results = checks.results || [];
  replace(v.checks,
    h('p', null, h('span', { class: 'status ' + (checks.passed ? 'st-succeeded' : 'st-failed') }, checks.passed ? 'passed' : 'failed'),
      checks.attempt ? ` on attempt ${checks.attempt}` : ''),
    results.map((r) => h('details', { class: 'check', open: !r.ok },
      h('summary', null, h('span', { class: r.ok ? 'ok' : 'bad' }, r.ok ? '✓ ' : '✗ '), r.name,
        h('span', { class: 'muted' }, ` — exit ${r.exit_code ?? '?'}`)),
      h('pre', { class: 'output', tabindex: 0 }, r.output || '(no output)'))));
}

/* ---- timeline: a strip to read the run at a glance, a row per step ---- */

async function fetchTimeline(id, after, signal) {
  const steps = [];
  let page;
  do {
    page = await api(`/v1/runs/${enc(id)}/timeline?after=${after}&limit=5000`, { signal });
    steps.push(...page.steps);
    after = page.next_after;
  } while (page.more && page.steps.length);
  return { steps, last_seq: page.last_seq };
}

function drawTimeline(v, tl) {
  if (tl instanceof Error) {
    /* The run loaded, so a 404 here is a server without the endpoint. */
    if (tl instanceof ApiError && tl.status === 404) {
      v.tlMissing = true;
      replace(v.timeline, notice('empty', 'This durin serve has no timeline endpoint; the event log below has every step.'));
    } else replace(v.timeline, notice('error', 'The timeline did not load: ' + tl.message));
  } else {
    v.steps = tl.steps;
    renderSteps(v);
  }
  v.tlRegion.dataset.timelineReady = '1';
}

function renderSteps(v) {
  const steps = v.steps;
  if (!steps.length) {
    replace(v.timeline, notice('empty', 'No step yet: the run has not started.'));
    replace(v.chart, costChart([], 'chart'));
    v.list = null;
    return;
  }
  v.maxDur = Math.max(1, ...steps.map((s) => s.duration_ms || 0));
  const strip = document.createDocumentFragment();
  const list = document.createDocumentFragment();
  for (const s of steps) {
    strip.appendChild(stripBar(s, v.maxDur));
    list.appendChild(stepRow(s));
  }
  v.stripHead = h('span');
  v.strip = h('div', { class: 'strip', 'aria-hidden': 'true' }, strip);
  v.list = h('ol', { class: 'steps', 'aria-label': 'Steps' }, list);
  replace(v.timeline, h('div', { class: 'strip-head' }, v.stripHead, legend()), v.strip, v.list);
  drawTotals(v);
}

function drawTotals(v) {
  const total = v.steps.reduce((a, s) => a + (s.duration_ms || 0), 0);
  /* Step 0 is what came before the first model call, not a step the
   * budget counts. */
  const n = v.steps.filter((s) => s.step > 0).length;
  v.stripHead.textContent = `${n} step${n === 1 ? '' : 's'} · ${fmtDuration(total)}`;
  replace(v.chart, costChart(v.steps, 'chart'));
}

/* A live run's new steps: its last row is updated in place (it may have
 * grown; its summary keeps the focus, an open row stays open) and new rows
 * appended, so 2,000 rows are not redrawn per event. */
function updateSteps(v, replaced, added) {
  if (!v.list) { renderSteps(v); return; }
  const max = Math.max(v.maxDur, ...[replaced, ...added].filter(Boolean).map((s) => s.duration_ms || 0));
  if (max !== v.maxDur) {
    v.maxDur = max;
    v.steps.forEach((s, i) => { if (v.strip.children[i]) v.strip.children[i].style.flexGrow = grow(s, max); });
  }
  if (replaced) {
    const li = v.list.lastElementChild;
    const bar = v.strip.lastElementChild;
    if (li && Number(li.dataset.step) === replaced.step) {
      setStep(li, replaced);
      if (bar) setBar(bar, replaced, v.maxDur);
    } else added = [replaced, ...added];
  }
  const strip = document.createDocumentFragment();
  const list = document.createDocumentFragment();
  for (const s of added) {
    strip.appendChild(stripBar(s, v.maxDur));
    list.appendChild(stepRow(s));
  }
  v.strip.appendChild(strip);
  v.list.appendChild(list);
  drawTotals(v);
}

/* What a step was, for its colour: the worst thing that happened in it. */
function stepKind(s) {
  const calls = s.calls || [];
  const marks = s.marks || [];
  if (calls.some((c) => c.approval && c.approval.state === 'rejected')) return 'denied';
  if (calls.some((c) => c.ok === false) || marks.some((m) => /error|budget|loop|fail/.test(m.type))) return 'failed';
  if (calls.some((c) => c.approval)) return 'approval';
  if (calls.some((c) => c.ok === null)) return 'pending';
  if (marks.some((m) => /lease|recover|compact/.test(m.type))) return 'lease';
  if (calls.length) return 'tool';
  if (s.model) return 'model';
  return 'control';
}

const KINDS = [['model', 'model only'], ['tool', 'tool calls'], ['approval', 'approval'], ['pending', 'in flight'],
  ['lease', 'lease / compaction'], ['failed', 'failed'], ['denied', 'rejected'], ['control', 'control']];

function legend() {
  return h('span', { class: 'legend' }, KINDS.map(([k, t]) => h('span', { class: 'lg' }, h('i', { class: 'k-' + k }), t)));
}

function stripBar(s, maxDur) {
  return setBar(h('span'), s, maxDur);
}

function setBar(b, s, maxDur) {
  b.className = 'sb k-' + stepKind(s);
  b.title = `step ${s.step}: ${fmtDuration(s.duration_ms)}`;
  /* Width follows duration, with a floor so a fast step still shows. */
  b.style.flexGrow = grow(s, maxDur);
  return b;
}

function grow(s, maxDur) {
  return String(0.15 + (s.duration_ms || 0) / maxDur);
}

/* A step's row: one line collapsed; its details are built when opened, so
 * a 2,000-step run draws 2,000 summaries, not 2,000 bodies. */
function stepRow(s) {
  const body = h('div', { class: 'step-body' });
  const det = h('details', { on: { toggle: () => { if (det.open && !body.firstChild) fillStep(body, det.step); } } },
    h('summary'), body);
  return setStep(h('li', { class: 'step', dataset: { step: s.step } }, det), s);
}

/* (Re)draws a row for step s in place: the same <details> and <summary>. */
function setStep(li, s) {
  const det = li.firstElementChild;
  const body = det.lastElementChild;
  det.step = s;
  replace(det.firstElementChild,
    h('span', { class: 'dot k-' + stepKind(s), 'aria-hidden': 'true' }),
    h('span', { class: 'st-n' }, 'Step ' + s.step),
    h('span', { class: 'st-what' }, stepWhat(s, s.calls || [])),
    h('span', { class: 'st-dur num' }, fmtDuration(s.duration_ms)),
    h('span', { class: 'st-tok num', title: 'tokens so far' }, fmtTokens(s.tokens)),
    h('span', { class: 'st-cost num', title: 'cost so far' }, fmtMoney(s.cost_usd)));
  const inBody = body.contains(document.activeElement);
  if (det.open) fillStep(body, s);
  else replace(body);
  if (inBody) det.firstElementChild.focus();
  return li;
}

function stepWhat(s, calls) {
  const parts = [];
  if (s.model) parts.push('model');
  for (const c of calls) {
    let t = c.name;
    if (c.approval) t += ` (${c.approval.state})`;
    else if (c.policy && c.policy.decision === 'deny') t += ' (denied)';
    if (c.ok === false) t += ' ✗';
    parts.push(t);
  }
  for (const m of s.marks || []) parts.push(m.type.replace(/_/g, ' '));
  return parts.join(' · ') || '—';
}

function fillStep(body, s) {
  const kv = (k, val) => [h('dt', null, k), h('dd', null, val)];
  const m = s.model;
  replace(body,
    h('p', { class: 'muted small' }, `${fmtTime(s.start_ms)} · events ${s.first_seq}–${s.last_seq}`),
    m ? h('div', { class: 'step-model' },
      h('h3', null, 'Model call'),
      h('dl', { class: 'facts small' },
        kv('Tokens', `${m.input_tokens} in, ${m.output_tokens} out`), kv('Cost', fmtMoney(m.cost_usd)),
        kv('Finish', m.finish_reason || '–'), kv('Duration', fmtDuration(m.duration_ms)),
        m.retries ? kv('Retries', String(m.retries)) : null),
      m.text ? h('blockquote', null, m.text) : null) : null,
    (s.calls || []).map((c) => h('div', { class: 'step-call' },
      h('h3', null, 'Tool call ', h('span', { class: 'mono' }, c.name),
        h('span', { class: c.ok === false ? 'bad' : c.ok ? 'ok' : 'muted' }, c.ok === null ? ' (no result yet)' : c.ok ? ' ok' : ' failed')),
      h('dl', { class: 'facts small' },
        kv('Duration', fmtDuration(c.duration_ms)),
        c.reused ? kv('Reused', 'yes: the ledger had its result') : null,
        c.policy ? kv('Policy', `${c.policy.decision}${c.policy.rule ? ' by ' + c.policy.rule : ''}`) : null,
        c.approval ? kv('Approval', `${c.approval.state}${c.approval.by ? ' by ' + c.approval.by : ''}${c.approval.wait_ms != null ? ' after ' + fmtDuration(c.approval.wait_ms) : ''}`) : null),
      c.output ? h('pre', { class: 'output', tabindex: 0 }, c.output) : null)),
    (s.marks || []).length ? h('ul', { class: 'marks' }, s.marks.map((mk) =>
      h('li', null, h('span', { class: 'mono' }, mk.type), ' ', mk.text || ''))) : null);
}

/* The last step of a live run may still grow: ask again from just before
 * it and replace it; new steps are appended. */
async function refreshTimeline(v) {
  if (v.tlMissing) return;
  const last = v.steps[v.steps.length - 1];
  const after = last ? last.first_seq - 1 : 0;
  let tl;
  try {
    tl = await fetchTimeline(v.id, after, v.ctx.signal);
  } catch (_) { return; /* the next event tries again */ }
  const fresh = tl.steps.filter((s) => !last || s.step >= last.step);
  const replaced = last && fresh.length && fresh[0].step === last.step ? fresh.shift() : null;
  if (replaced) v.steps[v.steps.length - 1] = replaced;
  v.steps.push(...fresh);
  if (!replaced && !fresh.length) return;
  updateSteps(v, replaced, fresh);
}

/* ---- events: the raw log, every event once, in order ---- */

/* The log is a live region: a batch (the first events, earlier ones, a
 * gap) goes in while it is aria-busy, so it is not read out event by event. */
function logBusy(v, on) {
  v.busy = (v.busy || 0) + (on ? 1 : -1);
  v.log.setAttribute('aria-busy', v.busy > 0 ? 'true' : 'false');
}

async function loadInitialEvents(v, run) {
  const after = Math.max(0, run.last_seq - EVENTS_BACK);
  v.firstSeq = after + 1;
  v.lastSeq = after;
  logBusy(v, true);
  try {
    await fetchEventsUpTo(v, Infinity);
  } catch (e) {
    v.ctx.fail(e, v.logMsg);
  } finally {
    logBusy(v, false);
  }
  v.earlier.hidden = v.firstSeq <= 1;
  if (!v.log.firstChild) replace(v.logMsg, notice('empty', 'No events yet.'));
}

/* Appends events after lastSeq until `upTo` (inclusive) or the end. */
async function fetchEventsUpTo(v, upTo) {
  for (;;) {
    const want = Math.min(500, upTo === Infinity ? 500 : upTo - v.lastSeq);
    if (want <= 0) return;
    const page = await api(`/v1/runs/${enc(v.id)}/events?after=${v.lastSeq}&limit=${want}`, { signal: v.ctx.signal });
    appendEvents(v, page.events);
    if (!page.more || !page.events.length) return;
  }
}

function appendEvents(v, events) {
  const frag = document.createDocumentFragment();
  for (const ev of events) {
    if (ev.seq !== v.lastSeq + 1) continue; /* shown already, or a gap the caller fills */
    frag.appendChild(eventEl(ev));
    v.lastSeq = ev.seq;
  }
  if (frag.firstChild) {
    v.log.appendChild(frag);
    replace(v.logMsg);
  }
}

async function loadEarlier(v) {
  const after = Math.max(0, v.firstSeq - 1 - EVENTS_BACK);
  const limit = v.firstSeq - 1 - after;
  if (limit <= 0) return;
  /* aria-disabled, not disabled: a disabled button drops the focus. */
  if (v.earlier.getAttribute('aria-disabled') === 'true') return;
  v.earlier.setAttribute('aria-disabled', 'true');
  logBusy(v, true);
  let first = null;
  try {
    const page = await api(`/v1/runs/${enc(v.id)}/events?after=${after}&limit=${limit}`, { signal: v.ctx.signal });
    const frag = document.createDocumentFragment();
    for (const ev of page.events) {
      if (ev.seq >= v.firstSeq) continue;
      const el = eventEl(ev);
      frag.appendChild(el);
      if (!first) first = el;
    }
    v.log.insertBefore(frag, v.log.firstChild);
    v.firstSeq = after + 1;
  } catch (e) {
    v.ctx.fail(e, v.logMsg);
  } finally {
    logBusy(v, false);
  }
  v.earlier.removeAttribute('aria-disabled');
  if (v.firstSeq <= 1) {
    /* Nothing earlier: the button goes, and the focus to the first event. */
    const had = document.activeElement === v.earlier;
    v.earlier.hidden = true;
    if (had && first) first.querySelector('summary').focus();
  }
}

function eventEl(ev) {
  return h('details', { class: 'event', dataset: { seq: ev.seq, type: ev.type } },
    h('summary', null,
      h('span', { class: 'ev-seq num' }, '#' + ev.seq),
      h('time', { datetime: new Date(ev.ts_ms).toISOString(), class: 'ev-time' }, new Date(ev.ts_ms).toLocaleTimeString()),
      h('span', { class: 'ev-step' }, 'step ' + ev.step),
      h('span', { class: 'ev-type' }, ev.type),
      h('span', { class: 'ev-brief' }, brief(ev))),
    h('pre', { class: 'json', tabindex: 0 }, JSON.stringify(ev.data, null, 2)));
}

/* One line of what the event says, from the fields most types carry. */
function brief(ev) {
  const d = ev.data || {};
  const s = d.name || d.tool || d.status || d.reason || d.decision || d.action || d.text || '';
  return typeof s === 'string' ? s.slice(0, 120) : '';
}

/* ---- live ---- */

function followRun(v) {
  const refreshRun = debounce(serial(() => refreshRunNow(v)), 800);
  const refreshTl = debounce(serial(() => refreshTimeline(v)), 1200);
  const refreshDiff = debounce(serial(async () => drawDiff(v, await fetchDiff(v.id, v.ctx.signal))), 3000);
  v.refreshRun = refreshRun;
  follow(`/v1/runs/${enc(v.id)}/events/stream`, {
    signal: v.ctx.signal,
    lastId: () => String(v.lastSeq),
    onMessage: (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      v.queue = v.queue.then(() => ingest(v, ev)).catch(() => {});
      refreshRun();
      refreshTl();
      if (ev.type === 'tool_result' || ev.type === 'run_finished') refreshDiff();
    },
    onEnd: () => { refreshRun(); refreshTl(); refreshDiff(); },
    onError: (e) => v.ctx.fail(e, v.logMsg),
  });
}

/* One event from the stream: dropped if shown, appended if next, and if
 * it comes after a gap (a reconnect that skipped), the gap first. */
async function ingest(v, ev) {
  if (ev.seq <= v.lastSeq) return;
  if (ev.seq > v.lastSeq + 1) await fillGap(v, ev.seq - 1);
  appendEvents(v, [ev]);
}

/* The events up to `upTo`, tried again with backoff while the server does
 * not answer (the queue waits meanwhile, so the order holds); a refusal
 * is said under the log, and the next event tries again. */
async function fillGap(v, upTo) {
  const signal = v.ctx.signal;
  logBusy(v, true);
  try {
    for (let delay = 1000; ; delay = Math.min(delay * 2, 10000)) {
      try {
        await fetchEventsUpTo(v, upTo);
        return;
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') throw e;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          v.ctx.fail(e, v.logMsg);
          throw e;
        }
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, delay);
        signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  } finally {
    logBusy(v, false);
  }
}

function refreshRunSoon(v) {
  if (v.refreshRun) v.refreshRun();
}

async function refreshRunNow(v) {
  const t = ++v.runAsked;
  try {
    drawRunIf(v, await api('/v1/runs/' + enc(v.id), { signal: v.ctx.signal }), t);
  } catch (_) { /* the stream's reconnects say when the server is gone */ }
}

/* Draws the answer to request `t` unless one asked for later is drawn. */
function drawRunIf(v, run, t) {
  if (t < v.runDrawn || v.ctx.signal.aborted) return;
  v.runDrawn = t;
  drawRun(v, run);
}

/* ---- changes: the workspace diff, a <details> per file ---- */

async function fetchDiff(id, signal) {
  try {
    return await api(`/v1/runs/${enc(id)}/diff`, { signal, text: true });
  } catch (e) {
    return e;
  }
}

function drawDiff(v, diff) {
  if (diff instanceof Error) {
    if (diff.name === 'AbortError') return;
    const msg = diff instanceof ApiError && diff.status === 404
      ? 'No diff: the run has no snapshot of its workspace’s start (it has no workspace, or has not started).'
      : 'The diff did not load: ' + diff.message;
    replace(v.diff, notice('empty', msg));
    return;
  }
  replace(v.diff, diffEl(diff));
}

/* Splits a unified diff (git headers) into files. */
/* The one-line changes `durin diff` prints instead of a text diff: binary
 * files, links, a file that became a link (cli/cmd-diff.c, print_change). */
const ONE_LINE = [
  /^(?:new|deleted|old) file (.+) \((?:binary, )?\d+ bytes\)$/,
  /^binary file (.+) changed \(\d+ -> \d+ bytes\)$/,
  /^(?:old|new|deleted) symlink (.+?) -> /,
];

export function parseDiff(text) {
  const files = [];
  let cur = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --git ')) {
      const m = / b\/(.*)$/.exec(line);
      cur = { path: m ? m[1] : line.slice(11), lines: [], add: 0, del: 0 };
      files.push(cur);
      continue;
    }
    const one = ONE_LINE.map((re) => re.exec(line)).find(Boolean);
    if (one) {
      /* A link change is two such lines about one path. */
      if (!cur || cur.path !== one[1] || !cur.oneLine) {
        cur = { path: one[1], lines: [], add: 0, del: 0, oneLine: true };
        files.push(cur);
      }
      cur.lines.push(line);
      continue;
    }
    if (!cur) {
      if (!line) continue;
      cur = { path: '(changes)', lines: [], add: 0, del: 0 };
      files.push(cur);
    }
    if (line.startsWith('+') && !line.startsWith('+++')) cur.add++;
    else if (line.startsWith('-') && !line.startsWith('---')) cur.del++;
    cur.lines.push(line);
  }
  return files;
}

export function diffEl(text) {
  const files = parseDiff(text || '');
  if (!files.length) return h('p', { class: 'muted' }, 'No changes to the workspace.');
  const few = files.length <= 3;
  return h('div', { class: 'diff' }, files.map((f) => {
    const pre = h('pre', { class: 'diff-body', tabindex: 0 });
    const det = h('details', { class: 'diff-file', dataset: { path: f.path },
      on: { toggle: () => { if (det.open && !pre.firstChild) fillDiff(pre, f); } } },
    h('summary', null, h('span', { class: 'mono' }, f.path), ' ',
      h('span', { class: 'add' }, '+' + f.add), ' ', h('span', { class: 'del' }, '−' + f.del)),
    pre);
    if (few) { fillDiff(pre, f); det.open = true; }
    return det;
  }));
}

function fillDiff(pre, f) {
  const frag = document.createDocumentFragment();
  for (const line of f.lines) {
    let cls = 'ctx';
    if (line.startsWith('@@')) cls = 'hunk';
    else if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('index ') || /^(new|deleted|old|similarity|rename|Binary)/.test(line)) cls = 'meta';
    else if (line.startsWith('+')) cls = 'add';
    else if (line.startsWith('-')) cls = 'del';
    frag.appendChild(h('span', { class: 'dl ' + cls }, line + '\n'));
  }
  pre.appendChild(frag);
}
