// bench/dashboard's seeding and measuring; see run.sh for what and how.
//
//   node dashboard.mjs URL TOKEN TESTS_JS_DIR
//
// Env: RUNS (10000), STEPS (2000), REPS (5), CLIENTS (8), DURIN_CHROMIUM.
import net from 'node:net';
import {createRequire} from 'node:module';

const [url, token, jsDir] = process.argv.slice(2);
const require = createRequire(`${jsDir}/package.json`);
const {chromium} = require('playwright-core');
const RUNS = Number(process.env.RUNS || 10000);
const STEPS = Number(process.env.STEPS || 2000);
const REPS = Number(process.env.REPS || 5);
const CLIENTS = Number(process.env.CLIENTS || 8);
const H = {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'};
const now = () => performance.now();

async function req(method, p, body) {
  const r = await fetch(url + p, {method, headers: H, body: body && JSON.stringify(body)});
  const t = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status}: ${t.slice(0, 300)}`);
  return JSON.parse(t);
}
async function until(what, fn, ms = 600000) {
  for (const t0 = now(); now() - t0 < ms; await new Promise((r) => setTimeout(r, 100))) {
    if (await fn()) return;
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The one 2,000-step run: STEPS turns of update_plan (a pure tool of the
// harness: no sandbox, no exec), then finish; budget.steps raised to fit.
function bigRun() {
  const turns = [];
  for (let i = 0; i < STEPS - 1; i++) {
    turns.push({text: `step ${i}`, tool_calls: [{name: 'update_plan', arguments:
      {plan: [{step: `step ${i}`, status: 'done'}, {step: 'the rest', status: 'in_progress'}]}}]});
  }
  turns.push({tool_calls: [{name: 'finish', arguments: {summary: 'done'}}]});
  return {spec: {name: 'bench-2000', goal: 'many steps', tools: ['update_plan', 'finish'],
    budget: {steps: STEPS + 10}, model: {provider: 'script', turns}}};
}

// A model endpoint that accepts and never answers: the run that talks to
// it holds the serve's one worker slot while the store is seeded.
function silentServer() {
  return new Promise((resolve) => {
    const socks = [];
    const s = net.createServer((c) => socks.push(c));
    s.listen(0, '127.0.0.1', () => resolve({port: s.address().port,
      close: () => { socks.forEach((c) => c.destroy()); s.close(); }}));
  });
}

async function seed() {
  let t0 = now();
  const big = await req('POST', '/v1/runs', bigRun());
  await until('the 2,000-step run', async () =>
    ['succeeded', 'failed', 'budget_exceeded', 'cancelled']
      .includes((await req('GET', `/v1/runs/${big.id}`)).status));
  const b = await req('GET', `/v1/runs/${big.id}`);
  if (b.status !== 'succeeded') throw new Error(`the 2,000-step run ended ${b.status}: ${b.reason}`);
  console.log(`seed: run ${big.id}: ${b.usage.steps} steps, ${b.last_seq} events, ` +
    `${((now() - t0) / 1000).toFixed(1)} s`);

  const silent = await silentServer();
  const holder = await req('POST', '/v1/runs', {spec: {name: 'bench-holder', goal: 'hold the slot',
    tools: ['finish'], model: {provider: 'openai', name: 'gpt-4o-mini',
      base_url: `http://127.0.0.1:${silent.port}/v1`, api_key_env: 'BENCH_SILENT',
      timeout_s: 3600, max_retries: 0}}});
  await until('the holder to run', async () =>
    (await req('GET', `/v1/runs/${holder.id}`)).status === 'running', 30000);

  // The rest: runs that wait a year (not_before_ms), as a busy fleet's
  // queue does, created by CLIENTS clients at once.
  t0 = now();
  const nb = Date.now() + 365 * 24 * 3600 * 1000;
  const body = {spec: {name: 'bench-seed', goal: 'fill the store', tools: ['finish'],
    model: {provider: 'script', turns: [{tool_calls: [{name: 'finish',
      arguments: {summary: 'done'}}]}]}}, not_before_ms: nb};
  let left = RUNS - 2;
  await Promise.all(Array.from({length: CLIENTS}, async (_, c) => {
    while (left > 0) {
      left--;
      body.labels = {client: String(c)};
      await req('POST', '/v1/runs', body);
    }
  }));
  const s = (now() - t0) / 1000;
  console.log(`seed: ${RUNS - 2} queued runs through POST /v1/runs from ${CLIENTS} clients ` +
    `in ${s.toFixed(1)} s (${Math.round((RUNS - 2) / s)}/s)`);
  return {big: big.id, holder: holder.id, silent};
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return `median ${q(0.5).toFixed(0)} ms, p90 ${q(0.9).toFixed(0)} ms, ` +
    `min ${s[0].toFixed(0)}, max ${s[s.length - 1].toFixed(0)} (n=${s.length})`;
}

async function main() {
  const {big, holder, silent} = await seed();
  const browser = await chromium.launch({executablePath: process.env.DURIN_CHROMIUM ||
    '/usr/bin/chromium', headless: true, args: ['--headless=new', '--no-sandbox',
    '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync']});
  const context = await browser.newContext({viewport: {width: 1280, height: 800}});
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');

  // Sign in once through the form; the tab keeps the token.
  await page.goto(url + '/');
  await page.waitForFunction(() => document.body.dataset.ready === 'signin');
  await page.getByRole('form', {name: 'Sign in'}).getByLabel('API token').fill(token);
  await page.getByRole('form', {name: 'Sign in'}).getByRole('button', {name: 'Sign in'}).click();
  await page.waitForFunction(() => document.body.dataset.ready === 'runs', null, {timeout: 60000});

  // ms from the navigation's start to COND first holding, in the page's clock.
  async function measure(hash, cond, arg, cold) {
    await page.goto('about:blank');
    if (cold) await cdp.send('Network.clearBrowserCache');
    await page.goto(`${url}/${hash}`, {waitUntil: 'commit'});
    const h = await page.waitForFunction(cond, arg, {polling: 'raf', timeout: 60000});
    return h.jsonValue();
  }
  const runsReady = () => document.body.dataset.ready === 'runs' &&
    document.querySelectorAll('[data-run-id]').length > 0 && performance.now();
  const timelineReady = (n) => {
    const r = document.querySelector('[data-timeline-ready]');
    return r && r.querySelectorAll('[data-step]').length >= n && performance.now();
  };

  const fig = {};
  for (const [name, hash, cond, arg] of [
    ['runs', '#/runs', runsReady, null],
    ['timeline', `#/runs/${big}`, timelineReady, STEPS]]) {
    for (const cold of [true, false]) {
      if (fig[`${name} cold`]?.error) break;
      const key = `${name} ${cold ? 'cold' : 'warm'}`;
      fig[key] = [];
      try {
        for (let i = 0; i < REPS; i++) fig[key].push(await measure(hash, cond, arg, cold));
      } catch (e) {
        fig[key].error = e.message.split('\n')[0];
      }
    }
  }
  const rows = await page.evaluate((h) => { location.hash = h; }, '#/runs')
    .then(() => page.waitForFunction(runsReady, null, {timeout: 60000}))
    .then(() => page.evaluate(() => document.querySelectorAll('[data-run-id]').length));
  console.log(`store: ${RUNS} runs (${big}: ${STEPS} steps); the first page of runs shows ${rows} rows`);
  for (const [k, v] of Object.entries(fig)) {
    console.log(`dashboard ${k.padEnd(13)} ` + (v.error ? `not measured: ${v.error}` : stats(v)) +
      ` load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  }
  await browser.close();
  await req('POST', `/v1/runs/${holder}/cancel`, {}).catch(() => {});
  silent.close();
}

main().catch((e) => { console.error(`dashboard: ${e.stack || e}`); process.exit(1); });
