// A run that stopped for a person (needs_human): the Resume choice and the
// keyboard focus survive the refreshes live events bring, and the choice
// made is the one sent. A person picks "Skip the call" with the keyboard;
// an event then arrives on the run's stream (a replayed one, which the
// page drops but which makes it ask for the run again); "Skip the call" is
// still checked and still has the focus; Resume sends skip-call.
//
//   DASH_TOKEN, DASH_RUN (a needs_human run)
import {main, need, ok, check, signIn, go, waitStatus, apiGet, URL_} from './browser.mjs';

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');

await main(async ({open}) => {
  const page = await open();
  // Each connection of the run's stream brings an event the page has (seq
  // 1) and ends: dropped from the log, but the run is asked for again, and
  // again at each reconnect.
  const ev = (await apiGet(token, `/v1/runs/${run}/events?after=0&limit=1`)).events[0];
  let served = 0;
  await page.route(`${URL_}/v1/runs/${run}/events/stream`, (route) => {
    served++;
    return route.fulfill({status: 200, contentType: 'text/event-stream',
      body: `id: ${ev.seq}\ndata: ${JSON.stringify(ev)}\n\n`});
  });
  const runGets = () => page.waitForResponse((r) => r.request().method() === 'GET' &&
    new URL(r.url()).pathname === `/v1/runs/${run}`, {timeout: 30000});

  await signIn(page, token);
  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'needs_human');
  const retry = page.getByRole('radio', {name: 'Retry the call'});
  const skip = page.getByRole('radio', {name: 'Skip the call'});
  check(await retry.isChecked(), '"Retry the call" is not the choice at first');
  await retry.focus();
  await page.keyboard.press('ArrowDown');
  check(await skip.isChecked(), 'ArrowDown from "Retry the call" did not pick "Skip the call"');
  for (let i = 0; i < 2; i++) await runGets();
  await page.waitForTimeout(200);
  check(served > 1, `the run view did not reconnect its stream (${served} connections)`);
  check(await skip.isChecked(), 'a refresh put the Resume choice back to "Retry the call"');
  check(await skip.evaluate((el) => el === document.activeElement),
    'a refresh took the focus from "Skip the call"');
  ok('"Skip the call", picked with the keyboard, keeps its check and the focus across refreshes');

  await page.getByRole('button', {name: 'Resume', exact: true}).click();
  await page.waitForFunction(() => {
    const e = document.querySelector('#run-status');
    return e && e.dataset.status !== 'needs_human';
  });
  const evs = (await apiGet(token, `/v1/runs/${run}/events?after=0&limit=500`)).events;
  const res = evs.filter((e) => e.type === 'control' && e.data.action === 'resume').map((e) => e.data.resolution);
  check(res.length === 1 && res[0] === 'skip-call', `Resume sent ${JSON.stringify(res)}, not skip-call`);
  ok('Resume sent the choice on screen: skip-call');
});
