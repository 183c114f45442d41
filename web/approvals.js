/*
 * The approvals inbox: the calls a policy held for a person, oldest first,
 * and for the one selected everything a reviewer needs to decide it: the
 * exact call, why the agent wants it, what the run cost so far, the diff
 * so far, and the time left. Approve (optionally with edited arguments)
 * or reject (with a reason the agent gets back), then on to the next.
 *
 * Edited arguments are checked twice: here for being JSON at all (said in
 * place, nothing sent), then by the server against the tool's schema and
 * the policy (422, its message shown in the same place).
 */

import { api, enc, can, ApiError } from './api.js';
import { h, replace, notice, timeEl, fmtTokens, fmtMoney, fmtDuration, debounce, serial, statusEl } from './dom.js';
import { diffEl } from './run.js';

/* A confirmation carried over to the next approval's render. */
let flash = null;

export async function render(ctx) {
  const [list, me] = await Promise.all([api('/v1/approvals', { signal: ctx.signal }), ctx.whoami()]);
  const pending = list.approvals;
  const selId = ctx.route.id || (pending[0] && pending[0].id) || '';
  const listBox = h('div', { class: 'inbox-list' });
  const detail = h('div', { class: 'inbox-detail' });
  /* The live region goes in empty and is filled a moment later: text put
   * in with the region itself is not announced. */
  const flashBox = h('div', { class: 'flash', role: 'status' });
  const said = flash;
  flash = null;

  replace(ctx.main, h('div', { class: 'view-head' }, h('h1', null, 'Approvals')), flashBox,
    h('div', { class: 'inbox' }, listBox, detail));
  if (said) setTimeout(() => { if (!ctx.signal.aborted) flashBox.append(h('div', { class: 'notice notice-ok' }, said)); }, 100);
  drawList(listBox, pending, selId);

  if (!selId) {
    replace(detail, notice('empty', h('p', null, 'Nothing waits for a person.'),
      h('p', { class: 'muted' }, 'A run whose policy says "ask" for a call shows up here; this page updates by itself.')));
  } else {
    await drawDetail(ctx, me, detail, selId, pending, flashBox);
  }
  ctx.ready('approvals');

  const refresh = debounce(serial(async () => {
    try {
      const l = await api('/v1/approvals', { signal: ctx.signal });
      drawList(listBox, l.approvals, selId);
      ctx.refreshBadge();
    } catch (_) { /* kept as is; the next event tries again */ }
  }), 700);
  ctx.onFleet((ev) => { if (/^approval/.test(ev.type) || !ev.run_id || ev.type === 'run_finished') refresh(); });
}

function drawList(box, pending, selId) {
  /* A redraw keeps the focus on the same approval's link, if still listed. */
  const had = box.contains(document.activeElement) ? document.activeElement.dataset.approvalId : null;
  drawItems(box, pending, selId);
  if (had) {
    const el = box.querySelector(`[data-approval-id="${CSS.escape(had)}"]`);
    if (el) el.focus();
  }
}

function drawItems(box, pending, selId) {
  if (!pending.length) { replace(box, h('p', { class: 'muted' }, 'No pending approvals.')); return; }
  replace(box, h('ul', { 'aria-label': 'Pending approvals', class: 'inbox-items' }, pending.map((a) =>
    h('li', null, h('a', {
      href: '#/approvals/' + enc(a.id), dataset: { approvalId: a.id },
      'aria-current': a.id === selId ? 'true' : null,
    },
    h('span', { class: 'ai-tool mono' }, a.tool),
    h('span', { class: 'ai-run' }, a.run_name ? a.run_name + ' · ' : 'run ',
      h('span', { class: 'mono', title: a.run }, '…' + a.run.slice(-6)), ' step ' + a.step),
    h('span', { class: 'ai-time' }, 'asked ', timeEl(a.requested_ms)))))));
}

async function drawDetail(ctx, me, box, id, pending, flashBox) {
  let a;
  try {
    a = await api('/v1/approvals/' + enc(id), { signal: ctx.signal });
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      replace(box, notice('error', `No approval has the id “${id}”; it may belong to a run you cannot see.`));
      return;
    }
    ctx.fail(e, box);
    return;
  }
  const mayDecide = can(me, 'operator') && a.state === 'pending' || can(me, 'operator') && a.state === 'expired' && a.expires_in_ms > 0;
  const s = a.spent || {};
  const kv = (k, ...v) => [h('dt', null, k), h('dd', null, ...v)];
  const left = h('span', { class: 'countdown num' });
  startCountdown(ctx, left, a);

  replace(box,
    h('h2', null, 'Call to ', h('span', { class: 'mono' }, a.tool), ' in ', a.run_name || 'run ' + a.run),
    h('dl', { class: 'facts' },
      kv('Run', h('a', { href: '#/runs/' + enc(a.run), class: 'mono' }, a.run), ' ', statusEl(a.run_status)),
      kv('Tenant', a.tenant),
      kv('State', a.state),
      kv('Time left', left),
      kv('At expiry', a.on_expiry === 'needs_human' ? 'the run stops for a person' : 'the call is rejected'),
      kv('Rule', a.rule ? h('span', { class: 'mono' }, a.rule) : h('span', { class: 'muted' }, 'none')),
      kv('Asked', timeEl(a.requested_ms), ` at step ${a.step}, call ${a.call}`)),
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-goal' }, h('h3', { id: 'ap-goal' }, 'Goal'),
      h('p', { class: 'goal' }, a.goal || '(the run’s spec cannot be read)')),
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-words' }, h('h3', { id: 'ap-words' }, 'The agent’s words'),
      a.reason ? h('blockquote', null, a.reason) : h('p', { class: 'muted' }, 'The agent said nothing with this call.')),
    decisionForm(ctx, a, mayDecide, pending, flashBox),
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-spent' }, h('h3', { id: 'ap-spent' }, 'Cost so far'),
      h('dl', { class: 'facts' },
        kv('Dollars', fmtMoney(s.cost_usd)), kv('Steps', String(s.steps ?? '–')),
        kv('Tool calls', String(s.tool_calls ?? '–')),
        kv('Tokens', `${fmtTokens(s.tokens)} (${fmtTokens(s.input_tokens)} in, ${fmtTokens(s.output_tokens)} out)`))),
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-plan' }, h('h3', { id: 'ap-plan' }, 'Plan'),
      (a.plan || []).length ? h('ol', { class: 'plan' }, a.plan.map((p) => h('li', { class: 'plan-' + String(p.status || 'pending').replace(/[^a-z_]/g, '') },
        h('span', { class: 'plan-status' }, String(p.status || 'pending').replace(/_/g, ' ')), ' ', p.step)))
        : h('p', { class: 'muted' }, 'The agent has not written a plan.')),
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-diff' }, h('h3', { id: 'ap-diff' }, 'Changes so far'),
      a.diff === null || a.diff === undefined ? h('p', { class: 'muted' }, 'No diff: the run has no snapshot of its workspace’s start.') : diffEl(a.diff)));
}

/* Time left, ticking; the server's expires_in_ms is measured from now. */
function startCountdown(ctx, el, a) {
  if (a.expires_in_ms === null || a.expires_in_ms === undefined) { el.textContent = 'decided'; return; }
  const end = Date.now() + a.expires_in_ms;
  const tick = () => {
    const ms = end - Date.now();
    el.textContent = ms > 0 ? fmtDuration(Math.ceil(ms / 1000) * 1000) : 'expired';
    el.classList.toggle('urgent', ms < 60000);
    return ms > 0;
  };
  if (!tick()) return;
  const t = ctx.every(1000, () => { if (!tick()) clearInterval(t); });
}

function decisionForm(ctx, a, mayDecide, pending, flashBox) {
  const original = a.arguments === undefined ? {} : a.arguments;
  const originalText = JSON.stringify(original, null, 2);
  const args = h('textarea', { id: 'ap-args', class: 'mono', rows: Math.min(16, originalText.split('\n').length + 1), spellcheck: 'false', readonly: !mayDecide, value: originalText });
  const argsErr = h('div', { id: 'ap-args-err', class: 'field-err' });
  const comment = h('input', { id: 'ap-comment', type: 'text', autocomplete: 'off' });
  const reason = h('textarea', { id: 'ap-reason', rows: 2 });
  const reasonErr = h('div', { id: 'ap-reason-err', class: 'field-err' });
  const result = h('div', { class: 'decision-msg' });

  const call = h('section', { class: 'sub-panel call', 'aria-labelledby': 'ap-call' },
    h('h3', { id: 'ap-call' }, 'The call'),
    h('p', null, 'Tool ', h('span', { class: 'mono strong' }, a.tool), h('span', { class: 'muted' }, ` (call id ${a.call_id})`)),
    h('div', { class: 'field' }, h('label', { for: 'ap-args' }, 'Arguments (JSON)'), args, argsErr),
    h('p', { class: 'small' }, 'Call hash ', h('code', { class: 'hash' }, a.call_hash)));
  if (!mayDecide) {
    const why = a.state !== 'pending' ? `This approval is ${a.state}; nothing is left to decide.`
      : 'Your token may review but not decide: approving or rejecting needs an operator token.';
    return h('div', null, call, notice('empty', why));
  }

  const setErr = (field, box, msg) => {
    if (msg) {
      replace(box, h('p', { role: 'alert' }, msg));
      field.setAttribute('aria-invalid', 'true');
      field.setAttribute('aria-describedby', box.id);
    } else {
      replace(box);
      field.removeAttribute('aria-invalid');
      field.removeAttribute('aria-describedby');
    }
  };
  const busy = (on) => { for (const b of form.querySelectorAll('button')) b.disabled = on; };

  const approve = async () => {
    setErr(args, argsErr, '');
    setErr(reason, reasonErr, '');
    const body = {};
    if (args.value.trim() !== originalText.trim()) {
      let v;
      try { v = JSON.parse(args.value); } catch (e) {
        setErr(args, argsErr, `The arguments are not valid JSON (${e.message}); fix them, or put back the agent’s with Reset. Nothing was sent.`);
        args.focus();
        return;
      }
      if (!v || typeof v !== 'object' || Array.isArray(v)) {
        setErr(args, argsErr, 'The arguments must be a JSON object ({...}). Nothing was sent.');
        args.focus();
        return;
      }
      if (JSON.stringify(v) !== JSON.stringify(original)) body.args = v;
    }
    if (comment.value.trim()) body.comment = comment.value.trim();
    await decide(ctx, a, 'approve', body, { busy, result, pending, flashBox, onInvalid: (m) => { setErr(args, argsErr, m); args.focus(); } });
  };
  const reject = async () => {
    setErr(reason, reasonErr, '');
    setErr(args, argsErr, '');
    if (!reason.value.trim()) {
      setErr(reason, reasonErr, 'Say why: the agent gets the reason as the call’s result.');
      reason.focus();
      return;
    }
    await decide(ctx, a, 'reject', { reason: reason.value.trim() }, { busy, result, pending, flashBox, onInvalid: (m) => setErr(reason, reasonErr, m) });
  };

  const form = h('div', { class: 'decide' },
    h('div', { class: 'decide-col' },
      h('div', { class: 'field' }, h('label', { for: 'ap-comment' }, 'Comment (optional)'), comment),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'primary', on: { click: approve } }, 'Approve'),
        h('button', { type: 'button', class: 'quiet', on: { click: () => { args.value = originalText; setErr(args, argsErr, ''); } } }, 'Reset arguments'))),
    h('div', { class: 'decide-col' },
      h('div', { class: 'field' }, h('label', { for: 'ap-reason' }, 'Reason'), reason, reasonErr),
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'danger', on: { click: reject } }, 'Reject'))));
  return h('div', null, call,
    h('section', { class: 'sub-panel', 'aria-labelledby': 'ap-decide' }, h('h3', { id: 'ap-decide' }, 'Decide'), form, result));
}

async function decide(ctx, a, what, body, ui) {
  ui.busy(true);
  replace(ui.result, notice('loading', what === 'approve' ? 'Approving…' : 'Rejecting…'));
  try {
    const r = await api(`/v1/approvals/${enc(a.id)}/${what}`, { method: 'POST', body });
    /* The user left meanwhile: the decision is made, the page stays where
     * they went. */
    if (ctx.signal.aborted) { ctx.refreshBadge(); return; }
    const done = what === 'approve' ? (r.state === 'edited' ? 'Approved with your arguments' : 'Approved') : 'Rejected';
    flash = `${done}: ${a.tool} in ${a.run_name || a.run} (approval ${a.id}).`;
    ctx.refreshBadge();
    goNext(ctx, a.id, ui.pending);
  } catch (e) {
    if (ctx.signal.aborted) return;
    ui.busy(false);
    replace(ui.result);
    if (!(e instanceof ApiError) || e.status === 401) { ctx.fail(e, ui.result); return; }
    if (e.status === 422 || (e.status === 400 && e.field)) { ui.onInvalid(e.message); return; }
    if (e.status === 409) {
      flash = `Not ${what === 'approve' ? 'approved' : 'rejected'}: ${e.message}. The list is up to date again.`;
      goNext(ctx, a.id, ui.pending);
      return;
    }
    replace(ui.result, notice('error', e.message));
  }
}

/* On to the next pending approval (or the empty inbox), keeping the flash. */
function goNext(ctx, doneId, pending) {
  if (ctx.signal.aborted) return;
  const rest = pending.filter((p) => p.id !== doneId);
  const next = rest.length ? '#/approvals/' + enc(rest[0].id) : '#/approvals';
  if (location.hash === next) ctx.retry();
  else location.hash = next;
}
