/*
 * The run's cumulative cost and tokens over its steps, as an inline SVG
 * built node by node (no library, no innerHTML). Two lines on one plot:
 * dollars against the left axis, tokens against the right; both only grow,
 * so the shape says where a run got expensive. The SVG names itself
 * (role=img, <title>, <desc>) and a sentence under it says the same for
 * anyone who cannot see it.
 */

import { h, svg, fmtMoney, fmtTokens } from './dom.js';

const W = 640, H = 180, PAD = { l: 56, r: 56, t: 12, b: 26 };

/* steps: [{step, tokens, cost_usd}], running totals in step order. */
export function costChart(steps, idBase) {
  const pts = steps.filter((s) => s.tokens !== undefined && s.cost_usd !== undefined);
  const last = pts[pts.length - 1];
  const sentence = last
    ? `After step ${last.step}, the run has cost ${fmtMoney(last.cost_usd)} and used ${fmtTokens(last.tokens)} tokens.`
    : 'No model call yet: nothing spent.';
  if (pts.length < 2) return h('p', { class: 'muted' }, sentence);

  const maxCost = Math.max(...pts.map((s) => s.cost_usd), 1e-9);
  const maxTok = Math.max(...pts.map((s) => s.tokens), 1);
  const x = (i) => PAD.l + (i / (pts.length - 1)) * (W - PAD.l - PAD.r);
  const yOf = (v, max) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const line = (key, max) => pts.map((s, i) => `${x(i).toFixed(1)},${yOf(s[key], max).toFixed(1)}`).join(' ');

  const tid = idBase + '-title', did = idBase + '-desc';
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': `${tid} ${did}` },
    svg('title', { id: tid }, 'Cumulative cost and tokens by step'),
    svg('desc', { id: did }, sentence),
    grid(),
    svg('polyline', { points: line('tokens', maxTok), class: 'line-tokens', fill: 'none' }),
    svg('polyline', { points: line('cost_usd', maxCost), class: 'line-cost', fill: 'none' }),
    svg('text', { x: PAD.l - 6, y: PAD.t + 8, class: 'axis cost', 'text-anchor': 'end' }, fmtMoney(maxCost)),
    svg('text', { x: PAD.l - 6, y: H - PAD.b, class: 'axis cost', 'text-anchor': 'end' }, '$0'),
    svg('text', { x: W - PAD.r + 6, y: PAD.t + 8, class: 'axis tokens' }, fmtTokens(maxTok)),
    svg('text', { x: W - PAD.r + 6, y: H - PAD.b, class: 'axis tokens' }, '0'),
    svg('text', { x: PAD.l, y: H - 6, class: 'axis' }, `step ${pts[0].step}`),
    svg('text', { x: W - PAD.r, y: H - 6, class: 'axis', 'text-anchor': 'end' }, `step ${last.step}`));
  return h('figure', { class: 'chart-fig' }, chart,
    h('figcaption', null,
      h('span', { class: 'key key-cost' }, 'dollars (left)'), ' ',
      h('span', { class: 'key key-tokens' }, 'tokens (right)'), ' — ', sentence));
}

function grid() {
  const g = svg('g', { class: 'grid-lines' });
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + (i / 4) * (H - PAD.t - PAD.b);
    g.appendChild(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }));
  }
  return g;
}
