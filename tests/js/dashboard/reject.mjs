// Journey 3: reject with a reason, from the keyboard. The operator opens
// the waiting call, reaches "Reason" with Tab, types why, reaches
// "Reject" with Tab and presses Space; the call leaves the inbox and the
// run goes on (the shell then finds the reason in the model's next
// request).
//
//   DASH_TOKEN, DASH_RUN, DASH_APPROVAL, DASH_REASON
import {main, need, ok, check, openApproval, go, waitStatus, apiGet, tabTo, shot} from './browser.mjs';

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');
const appr = need('DASH_APPROVAL');
const reason = need('DASH_REASON');

await main(async ({open}) => {
  const page = await open();
  const {item, box} = await openApproval(page, token, appr);
  const why = page.getByRole('textbox', {name: 'Reason'});
  await box.focus();
  await tabTo(page, why, '"Reason"');
  await page.keyboard.type(reason);
  check(await why.inputValue() === reason, `"Reason" holds "${await why.inputValue()}"`);
  await tabTo(page, page.getByRole('button', {name: 'Reject', exact: true}), '"Reject"');
  await page.keyboard.press('Space');
  await item.waitFor({state: 'detached'});
  const a = await apiGet(token, `/v1/approvals/${appr}`);
  check(a.state === 'rejected', `the approval is ${a.state} after "Reject"`);
  check(a.comment === reason, `the rejection's reason is "${a.comment}"`);
  ok('"Reason" typed and "Reject" pressed from the keyboard: rejected with that reason');
  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'succeeded');
  ok('the run went on to the end');
  await shot(page, 'run-rejected');
});
