// Journey 5: cancel a run from its view while a tool call runs (a bash
// `sleep 300`): the status reaches cancelled long before the call would
// have ended, without a reload. Before that, "Pause" and "Unpause" pressed
// from the keyboard: the controls are redrawn, and the focus stays on
// them, as it does (on the heading) when the run ends and they go.
//
//   DASH_TOKEN, DASH_RUN
import {main, need, ok, check, signIn, go, waitStatus, markDocument, sameDocument,
  shot} from './browser.mjs';

const focused = (loc) => loc.evaluate((el) => el === document.activeElement);
const focusName = (page) => page.evaluate(() => {
  const a = document.activeElement;
  return !a || a === document.body ? '(nothing)' : `${a.tagName} "${a.textContent.trim().slice(0, 40)}"`;
});

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');

await main(async ({open}) => {
  const page = await open();
  // A confirmation, if the page asks for one, is what a person would say yes to.
  page.on('dialog', (d) => d.accept());
  await signIn(page, token);
  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'running');
  await markDocument(page);

  const pause = page.getByRole('button', {name: 'Pause', exact: true});
  const unpause = page.getByRole('button', {name: 'Unpause', exact: true});
  await pause.focus();
  await page.keyboard.press('Enter');
  await unpause.waitFor();
  check(await focused(unpause), `after "Pause", the focus is on ${await focusName(page)}, not "Unpause"`);
  await page.keyboard.press('Enter');
  await pause.waitFor();
  check(await focused(pause), `after "Unpause", the focus is on ${await focusName(page)}, not "Pause"`);
  ok('"Pause" then "Unpause" pressed with Enter: the focus follows them as they swap');

  const cancel = page.getByRole('button', {name: 'Cancel run', exact: true});
  await cancel.click();
  // An in-page confirmation: a dialog whose own "Cancel run" confirms.
  const dlg = page.getByRole('dialog');
  if (await dlg.count()) await dlg.getByRole('button', {name: 'Cancel run', exact: true}).click();
  await waitStatus(page, 'cancelled');
  check(await sameDocument(page), 'the page reloaded');
  check(await page.getByRole('button', {name: 'Cancel run', exact: true}).count() === 0,
    'a cancelled run still offers "Cancel run"');
  const heading = page.getByRole('heading', {level: 1}).filter({hasText: run});
  check(await focused(heading),
    `with the controls gone, the focus is on ${await focusName(page)}, not the run's heading`);
  ok('"Cancel run" during a sleep 300 call: the run view says cancelled, no reload');
  await shot(page, 'run-cancelled');
});
