// Journey 5: cancel a run from its view while a tool call runs (a bash
// `sleep 300`): the status reaches cancelled long before the call would
// have ended, without a reload.
//
//   DASH_TOKEN, DASH_RUN
import {main, need, ok, check, signIn, go, waitStatus, markDocument, sameDocument,
  shot} from './browser.mjs';

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
  const cancel = page.getByRole('button', {name: 'Cancel run', exact: true});
  await cancel.click();
  // An in-page confirmation: a dialog whose own "Cancel run" confirms.
  const dlg = page.getByRole('dialog');
  if (await dlg.count()) await dlg.getByRole('button', {name: 'Cancel run', exact: true}).click();
  await waitStatus(page, 'cancelled');
  check(await sameDocument(page), 'the page reloaded');
  check(await page.getByRole('button', {name: 'Cancel run', exact: true}).count() === 0,
    'a cancelled run still offers "Cancel run"');
  ok('"Cancel run" during a sleep 300 call: the run view says cancelled, no reload');
  await shot(page, 'run-cancelled');
});
