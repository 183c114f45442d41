// A long run's event log starts with its last 200 events; "Load earlier",
// pressed from the keyboard, brings the rest: then the log is exactly
// 1..N, the button is gone, and the focus is on the first event (not lost
// with the button).
//
//   DASH_TOKEN  a viewer's token
//   DASH_RUN    a finished run with more than 200 events
//   DASH_LAST   its last seq
import {main, need, ok, check, signIn, go, seqs, checkSeqs, eventItems} from './browser.mjs';

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');
const last = Number(need('DASH_LAST'));

await main(async ({open}) => {
  const page = await open();
  await signIn(page, token);
  await go(page, `#/runs/${run}`, 'run');
  const first = await seqs(page);
  check(first.length === 200 && Math.min(...first) === last - 199,
    `the log should start with the last 200 of ${last} events; it has ${first.length} ` +
    `from #${Math.min(...first)}`);
  ok(`the log starts with the last 200 events (#${last - 199}..#${last})`);

  const earlier = page.getByRole('region', {name: 'Events'}).getByRole('button', {name: 'Load earlier'});
  await earlier.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => document.querySelectorAll('.log details[data-seq]').length === n,
    last, {timeout: 30000}).catch(() => {});
  checkSeqs(await seqs(page), last, 'after "Load earlier"');
  check(await earlier.isHidden(), '"Load earlier" is still shown with nothing earlier');
  const focused = await page.evaluate(() => {
    const d = document.activeElement && document.activeElement.closest('details[data-seq]');
    return d ? Number(d.dataset.seq) : null;
  });
  check(focused === 1, `after the last "Load earlier" the focus is on ${focused === null ? 'no event' : '#' + focused}, not on #1`);
  check(await eventItems(page).count() === last, 'the log has the wrong number of events');
  ok(`"Load earlier" from the keyboard: the log is 1..${last}, the focus on #1`);
});
