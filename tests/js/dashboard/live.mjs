// Journey 1: a run submitted through the API goes live in the browser.
// The runs view is open when the run is submitted: its row appears
// without a reload; its run view shows the events as they commit (the
// run waits at an approval the shell grants through the API while the
// page watches), and the status reaches succeeded, all in one document.
// The event log is then exactly the run's events 1..last_seq. Axe and
// screenshots of the runs, run and workers views.
//
//   DASH_TOKEN  an operator's token
//   sync: "submit" (the shell submits the run and writes its id to
//         DASH_SYNC/run-id), "approve" (the run waits for approval; the
//         shell approves it through the API)
import fs from 'node:fs';
import path from 'node:path';
import {main, need, ok, check, signIn, waitReady, axe, shot, sync, go, markDocument,
  sameDocument, eventItems, waitStatus, seqs, checkSeqs, apiGet, runStatus, Failure} from './browser.mjs';

const token = need('DASH_TOKEN');
const syncDir = need('DASH_SYNC');

await main(async ({open}) => {
  const page = await open();
  await signIn(page, token);
  await markDocument(page);

  await sync('submit');
  const id = fs.readFileSync(path.join(syncDir, 'run-id'), 'utf8').trim();
  const table = page.getByRole('table', {name: 'Runs'});
  const row = table.locator(`[data-run-id="${id}"]`);
  await row.waitFor();
  check(await sameDocument(page), 'the page reloaded to show the new run');
  ok(`the new run ${id} appears in the Runs table without a reload`);
  await row.locator('[data-status]').first().waitFor();
  await axe(page, 'runs');

  await row.getByRole('link', {name: id, exact: true}).click();
  await waitReady(page, 'run');
  check(page.url().endsWith(`#/runs/${id}`), `the run link went to ${page.url()}`);
  await page.getByRole('heading').filter({hasText: id}).first().waitFor();
  ok('its link opens the run view, whose heading names the run');

  await waitStatus(page, 'waiting_approval');
  await eventItems(page).first().waitFor();
  const before = (await seqs(page)).length;
  check(before > 0, 'no events shown while the run waits');
  ok(`the run view shows the run waiting for approval, with ${before} events`);

  // From here the API answers the run view slowly: the timeline more
  // slowly than its refreshes are asked for, the run after a random wait.
  // Refreshes must not overlap (no step twice) and no answer may be drawn
  // over a newer one (the status stays succeeded).
  const slow = (ms) => (route) => new Promise((r) => setTimeout(r, ms())).then(() => route.continue());
  const tlUrl = (u) => u.pathname === `/v1/runs/${id}/timeline`;
  const runUrl = (u) => u.pathname === `/v1/runs/${id}`;
  await page.route(tlUrl, slow(() => 3000));
  await page.route(runUrl, slow(() => Math.random() * 1500));

  await sync('approve');
  await waitStatus(page, 'succeeded');
  const run = await apiGet(token, `/v1/runs/${id}`);
  // The last events may land just after the status: wait for them.
  await page.waitForFunction((n) =>
    document.querySelectorAll('[data-seq]').length >= n, run.last_seq).catch(() => {});
  const got = await seqs(page);
  check(got.length > before, `no event arrived after the approval (${got.length} shown)`);
  checkSeqs(got, run.last_seq, 'live run');
  check(await sameDocument(page), 'the page reloaded while the run went on');
  ok(`events arrived live (${before} -> ${got.length}, data-seq 1..${run.last_seq}) ` +
    'and the status reached succeeded without a reload');

  const want = (await apiGet(token, `/v1/runs/${id}/timeline`)).steps.map((s) => s.step);
  const shown = () => page.evaluate(() =>
    [...document.querySelectorAll('li[data-step]')].map((e) => Number(e.dataset.step)));
  await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('li[data-step]')]
    .map((e) => Number(e.dataset.step))) === JSON.stringify(w), want, {timeout: 20000}).catch(() => {});
  // ... and still once any refresh still on its way has answered.
  await page.waitForTimeout(4000);
  const tl = await shown();
  check(JSON.stringify(tl) === JSON.stringify(want),
    `with a slow API, the timeline shows steps [${tl}], the run has [${want}]`);
  await waitStatus(page, 'succeeded', 1000);
  await page.unroute(tlUrl);
  await page.unroute(runUrl);
  ok(`with a slow API, the timeline shows each step once ([${tl}]) and the status stays succeeded`);

  const bud = page.getByRole('region', {name: 'Budget'});
  const steps = bud.getByRole('progressbar', {name: 'Steps'});
  await steps.waitFor({state: 'attached'});
  const now = Number(await steps.getAttribute('aria-valuenow'));
  check(now === run.usage.steps, `the Steps progressbar says ${now}, the run took ${run.usage.steps}`);
  ok(`the Budget region's Steps progressbar says ${now} of ${await steps.getAttribute('aria-valuemax') ?? 'no limit'}`);
  for (const r of ['Plan', 'Timeline', 'Cost and tokens', 'Events', 'Changes', 'Checks']) {
    await page.getByRole('region', {name: r}).waitFor();
  }
  const items = page.getByRole('region', {name: 'Timeline'}).getByRole('listitem').and(page.locator('[data-step]'));
  await items.first().waitFor();
  ok(`the run view has its regions; the timeline shows ${await items.count()} steps`);
  check(await page.getByRole('button', {name: 'Cancel run'}).count() === 0,
    'a finished run offers "Cancel run"');
  await axe(page, 'run');
  await shot(page, 'run');

  await go(page, '#/workers', 'workers');
  const workers = page.getByRole('table', {name: 'Workers'});
  await workers.locator('[data-owner]').first().waitFor();
  ok(`the Workers table lists the serve's worker (${await workers.locator('[data-owner]').count()} rows)`);
  await axe(page, 'workers');
  await shot(page, 'workers');

  await go(page, '#/runs', 'runs');
  await page.getByRole('table', {name: 'Runs'}).locator(`[data-run-id="${id}"] [data-status="succeeded"]`)
    .first().waitFor();
  ok('back on the runs view, the run\'s status cell says succeeded');
  await shot(page, 'runs');
});
