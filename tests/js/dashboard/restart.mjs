// Journey 7: the run view's live stream across a serve restart. The run
// waits for approval; the shell stops serve, approves with the CLI on the
// same store (events committed while no serve runs), and starts a serve
// on the same port, which runs the rest. The page, never reloaded, shows
// the run succeed, and its event log is exactly 1..last_seq: no gap, no
// event twice.
//
//   DASH_TOKEN, DASH_RUN
//   sync: "restart"
import {main, need, ok, note, check, signIn, go, waitStatus, markDocument, sameDocument, seqs,
  checkSeqs, eventItems, apiGet, sync, shot} from './browser.mjs';

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');

await main(async ({open}) => {
  const page = await open();
  // What the page asks of the API from here on, for a failure to show.
  page.on('request', (r) => {
    if (r.url().includes('/v1/')) {
      note(`request ${r.method()} ${r.url().replace(/^https?:\/\/[^/]*/, '')}` +
        (r.headers()['last-event-id'] ? ` Last-Event-ID: ${r.headers()['last-event-id']}` : ''));
    }
  });
  page.on('requestfailed', (r) => note(`failed ${r.url().replace(/^https?:\/\/[^/]*/, '')}: ${r.failure()?.errorText}`));
  await signIn(page, token);
  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'waiting_approval');
  await eventItems(page).first().waitFor();
  const before = await seqs(page);
  const r0 = await apiGet(token, `/v1/runs/${run}`);
  checkSeqs(before, r0.last_seq, 'before the restart');
  await markDocument(page);
  ok(`the run view shows the waiting run: events 1..${r0.last_seq}`);

  await sync('restart');
  await waitStatus(page, 'succeeded', 60000);
  const r1 = await apiGet(token, `/v1/runs/${run}`);
  await page.waitForFunction((n) =>
    document.querySelectorAll('[data-seq]').length >= n, r1.last_seq).catch(() => {});
  const after = await seqs(page);
  checkSeqs(after, r1.last_seq, 'after the restart');
  check(await sameDocument(page), 'the page reloaded');
  ok(`after the restart, without a reload: succeeded, events exactly 1..${r1.last_seq} ` +
    `(${r1.last_seq - r0.last_seq} new)`);
  await shot(page, 'run-after-restart');
});
