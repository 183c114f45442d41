// What every dashboard journey shares: a headless Chromium driven by
// playwright-core, sign-in, waits on the pages' contract, accessibility
// checks with axe, screenshots, and TAP-ish output.
//
// The pages are found only through their contract with the tests
// (docs/internals/dashboard.md): roles and accessible names, the data-
// attributes, and document.body.dataset.ready (the view that has finished
// loading: "signin", "runs", "run", "approvals", "workers").
//
// Environment (set by tests/e2e/lib-dashboard.sh):
//   DASH_URL        the serve itself (not the prism proxy), e.g. http://127.0.0.1:PORT
//   DASH_ARTEFACTS  where screenshots go (made if missing)
//   DASH_SYNC       a directory for handshakes with the shell test (see sync())
//   DURIN_CHROMIUM  the browser (default /usr/bin/chromium)
//   DASH_TIMEOUT_S  how long a wait may take before it fails (default 30)
import fs from 'node:fs';
import path from 'node:path';
import {chromium} from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';

export const URL_ = process.env.DASH_URL;
export const TIMEOUT = Number(process.env.DASH_TIMEOUT_S || 30) * 1000;
const ARTEFACTS = process.env.DASH_ARTEFACTS;
const SCRIPT = path.basename(process.argv[1] || 'dashboard', '.mjs');

// Flags that work on a closed network and in a container (no user
// namespaces for Chromium's own sandbox); playwright adds a fresh
// --user-data-dir.
const ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

export function need(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    process.stdout.write(`not ok - ${SCRIPT}: ${name} is not set\n`);
    process.exit(64);
  }
  return v;
}

let n = 0;
let browser;
let pages = [];

// One line per check, as TAP: the shell test shows them when it fails.
export function ok(desc) {
  n++;
  process.stdout.write(`ok ${n} - ${desc}\n`);
}
export function note(msg) { process.stdout.write(`# ${msg}\n`); }

export class Failure extends Error {}
export function check(cond, msg) { if (!cond) throw new Failure(msg); }

// main(async ({open}) => ...): runs a journey; on any failure prints
// "not ok", saves a screenshot of each open page as FAIL-<script>-N.png,
// and exits 1. open(opts) gives a new page in a fresh context (its own
// storage, so two tokens do not share a session).
export async function main(fn) {
  need('DASH_URL');
  const exe = process.env.DURIN_CHROMIUM || '/usr/bin/chromium';
  let code = 0;
  try {
    browser = await chromium.launch({executablePath: exe, headless: true, args: ARGS});
    await fn({open});
  } catch (e) {
    code = 1;
    n++;
    const msg = e instanceof Failure ? e.message : (e && e.stack) || String(e);
    process.stdout.write(`not ok ${n} - ${SCRIPT}: ${msg.split('\n').join('\n# ')}\n`);
    for (let i = 0; i < pages.length; i++) {
      try {
        const f = await shot(pages[i], `FAIL-${SCRIPT}-${i}`);
        process.stdout.write(`# page ${i} at ${pages[i].url()}; screenshot ${f}\n`);
      } catch { /* the page is gone */ }
    }
  }
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  process.exit(code);
}

async function open({viewport = {width: 1280, height: 800}} = {}) {
  const context = await browser.newContext({viewport, reducedMotion: 'reduce'});
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on('pageerror', (e) => note(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') note(`console: ${m.text()}`); });
  pages.push(page);
  return page;
}

// The view that has finished loading (document.body.dataset.ready).
export async function waitReady(page, view, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((v) => document.body && document.body.dataset.ready === v,
      view, {timeout});
  } catch (e) {
    const got = await page.evaluate(() => document.body && document.body.dataset.ready)
      .catch(() => '(no page)');
    throw new Failure(`the ${view} view did not become ready (body data-ready is ` +
      `${JSON.stringify(got)}) at ${page.url()}`);
  }
}

// Goes to the dashboard and signs in with TOKEN; ends on the runs view.
export async function signIn(page, token, {hash = '', view = 'runs', remember = false} = {}) {
  await page.goto(`${URL_}/${hash}`);
  await waitReady(page, 'signin');
  const form = page.getByRole('form', {name: 'Sign in'});
  await form.getByLabel('API token').fill(token);
  if (remember) await form.getByRole('checkbox', {name: 'Remember on this browser'}).check();
  await form.getByRole('button', {name: 'Sign in'}).click();
  if (view) await waitReady(page, view);
}

// Follows a hash route inside the page (no reload) and waits for its view.
export async function go(page, hash, view) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  if (view) await waitReady(page, view);
}

// Signs in and opens approval ID in the inbox; once it is listed, returns
// its item in the list and the "Arguments (JSON)" box.
export async function openApproval(page, token, id) {
  await signIn(page, token);
  await go(page, `#/approvals/${id}`, 'approvals');
  const item = page.getByRole('list', {name: 'Pending approvals'})
    .locator(`[data-approval-id="${id}"]`);
  await item.waitFor();
  return {item, box: page.getByRole('textbox', {name: 'Arguments (JSON)'})};
}

// A mark that survives only as long as the document does: a test that
// finds it after a wait knows the page was not reloaded.
export async function markDocument(page) {
  await page.evaluate(() => { window.__durinTestMark = 'same-document'; });
}
export async function sameDocument(page) {
  return page.evaluate(() => window.__durinTestMark === 'same-document');
}

// No serious or critical axe violation on the page as it is now.
export async function axe(page, what) {
  const r = await new AxeBuilder({page}).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    const lines = bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes: ` +
      v.nodes.slice(0, 3).map((x) => x.target.join(' ')).join(', ') + ')');
    throw new Failure(`axe on the ${what} view: ${bad.length} serious or critical ` +
      `violation(s):\n${lines.join('\n')}`);
  }
  ok(`axe: no serious or critical violation on the ${what} view ` +
    `(${r.violations.length} minor or moderate)`);
}

// A PNG of the viewport in the artefacts directory; returns its path.
export async function shot(page, name) {
  if (!ARTEFACTS) return '(no DASH_ARTEFACTS)';
  fs.mkdirSync(ARTEFACTS, {recursive: true});
  const f = path.join(ARTEFACTS, `${name}.png`);
  await page.screenshot({path: f});
  return f;
}

// sync(NAME): tells the shell test this script is at NAME (creates
// DASH_SYNC/NAME.wait) and waits until the shell has done its part
// (creates DASH_SYNC/NAME.go). For what only the shell can do: stopping
// and starting serve, the CLI on the store.
export async function sync(name, timeout = 120000) {
  const dir = need('DASH_SYNC');
  fs.writeFileSync(path.join(dir, `${name}.wait`), '');
  const go_ = path.join(dir, `${name}.go`);
  for (let t = 0; !fs.existsSync(go_); t += 100) {
    if (t > timeout) throw new Failure(`the shell test did not answer at "${name}"`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The run view's parts.
export const runStatus = (page) => page.locator('#run-status');
export const eventItems = (page) =>
  page.getByRole('region', {name: 'Events'}).getByRole('log').locator('details[data-seq]');

export async function waitStatus(page, status, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((s) => {
      const e = document.querySelector('#run-status');
      return e && e.dataset.status === s;
    }, status, {timeout});
  } catch {
    const got = await runStatus(page).getAttribute('data-status', {timeout: 1000})
      .catch(() => '(no #run-status)');
    throw new Failure(`#run-status did not reach data-status="${status}" (it is "${got}")`);
  }
}

// The event log's data-seq values, in document order.
export async function seqs(page) {
  return eventItems(page).evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
}

// Checks the event log holds exactly 1..last, in order, each once.
export function checkSeqs(got, last, what) {
  const want = Array.from({length: last}, (_, i) => i + 1);
  const sorted = [...got].sort((a, b) => a - b);
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same(sorted, want)) {
    const seen = new Set();
    const dup = got.filter((x) => seen.has(x) || !seen.add(x));
    const missing = want.filter((x) => !seen.has(x));
    throw new Failure(`${what}: the event log's data-seq are not exactly 1..${last}: ` +
      `${got.length} items, missing [${missing.slice(0, 20)}], duplicated [${dup.slice(0, 20)}]`);
  }
  check(same(got, want) || same(got, [...want].reverse()),
    `${what}: the event log is not in order: [${got.slice(0, 30)}...]`);
}

// The run as the API has it (for what the page must match).
export async function apiGet(token, p) {
  const r = await fetch(`${URL_}${p}`, {headers: {Authorization: `Bearer ${token}`}});
  check(r.ok, `GET ${p}: HTTP ${r.status}`);
  return r.json();
}

// Moves the focus with Tab (Shift+Tab when back) until LOCATOR has it; a
// person using the keyboard gets there the same way.
export async function tabTo(page, locator, what, {max = 80, back = false} = {}) {
  for (let i = 0; i < max; i++) {
    if (await locator.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  throw new Failure(`${what} cannot be reached with the Tab key (${max} presses)`);
}
