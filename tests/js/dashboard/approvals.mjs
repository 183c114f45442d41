// Journeys 2 and 6: the approvals inbox. A viewer sees the waiting call
// but no button that decides, in the inbox or on the run; an operator
// finds it through the header's badge, reads it, reaches "Approve" with
// the Tab key and presses Enter, and sees the run finish. Axe and a
// screenshot of the inbox with a call selected.
//
//   DASH_TOKEN     an operator's token
//   DASH_VIEWER    a viewer's token
//   DASH_RUN       the run that waits
//   DASH_APPROVAL  its approval
import {main, need, ok, check, signIn, waitReady, axe, shot, go, waitStatus, apiGet,
  tabTo, Failure} from './browser.mjs';

const token = need('DASH_TOKEN');
const viewer = need('DASH_VIEWER');
const run = need('DASH_RUN');
const appr = need('DASH_APPROVAL');
const deciders = ['Approve', 'Reject', 'Cancel run', 'Pause', 'Unpause', 'Resume'];

async function noDeciders(page, where) {
  for (const b of deciders) {
    const n = await page.getByRole('button', {name: b, exact: true}).count();
    check(n === 0, `a viewer sees the "${b}" button on the ${where}`);
  }
}

await main(async ({open}) => {
  // The viewer first: the call is there to read, not to decide.
  const v = await open();
  await signIn(v, viewer);
  await go(v, `#/approvals/${appr}`, 'approvals');
  await v.getByRole('list', {name: 'Pending approvals'}).locator(`[data-approval-id="${appr}"]`).waitFor();
  await v.getByText('make the file').first().waitFor();
  await noDeciders(v, 'approvals view');
  await go(v, `#/runs/${run}`, 'run');
  await waitStatus(v, 'waiting_approval');
  await noDeciders(v, 'run view');
  ok('a viewer sees the waiting call and the run, and no button that changes anything');
  await shot(v, 'approvals-viewer');

  const page = await open();
  await signIn(page, token);
  const link = page.getByRole('navigation', {name: 'Main'}).getByRole('link', {name: /Approvals/});
  try {
    await page.getByRole('navigation', {name: 'Main'})
      .getByRole('link', {name: /\b1 pending\b/}).waitFor();
  } catch {
    throw new Failure(`the Approvals link does not say "1 pending": its name is ` +
      `"${await link.textContent()}"`);
  }
  ok('the header\'s Approvals link says "1 pending"');
  await link.click();
  await waitReady(page, 'approvals');
  const list = page.getByRole('list', {name: 'Pending approvals'});
  const item = list.locator(`[data-approval-id="${appr}"]`);
  await item.waitFor();
  check(await list.locator('[data-approval-id]').count() === 1,
    'the inbox lists another approval than the one waiting');
  await item.click();
  await waitReady(page, 'approvals');

  // What a reviewer needs: goal, the call, its hash, the agent's words, the rule.
  const a = await apiGet(token, `/v1/approvals/${appr}`);
  for (const [what, text] of [['goal', a.goal], ['agent\'s words', a.reason],
    ['call hash', a.call_hash], ['rule', a.rule], ['tool', a.tool]]) {
    try {
      await page.getByText(text, {exact: false}).first().waitFor();
    } catch {
      throw new Failure(`the selected approval does not show its ${what}: "${text}"`);
    }
  }
  const box = page.getByRole('textbox', {name: 'Arguments (JSON)'});
  let shown;
  try { shown = JSON.parse(await box.inputValue()); } catch (e) {
    throw new Failure(`"Arguments (JSON)" does not hold JSON: ${e.message}`);
  }
  check(shown.command === a.arguments.command,
    `"Arguments (JSON)" holds ${JSON.stringify(shown)}, the call is ${JSON.stringify(a.arguments)}`);
  await page.getByRole('textbox', {name: 'Reason'}).waitFor();
  ok('the selected approval shows the goal, the call, its hash, the agent\'s words and the rule');
  await axe(page, 'approvals');
  await shot(page, 'approvals');

  // Approve from the keyboard.
  const approve = page.getByRole('button', {name: 'Approve', exact: true});
  await box.focus();
  await tabTo(page, approve, '"Approve"');
  await page.keyboard.press('Enter');
  await item.waitFor({state: 'detached'});
  const after = await apiGet(token, `/v1/approvals/${appr}`);
  check(after.state === 'approved', `the approval is ${after.state} after "Approve"`);
  ok('"Approve" reached with Tab and pressed with Enter: approved, gone from the inbox');
  await page.getByRole('navigation', {name: 'Main'}).getByRole('link', {name: /\b0 pending\b/})
    .or(page.getByRole('navigation', {name: 'Main'}).getByRole('link', {name: 'Approvals', exact: true}))
    .first().waitFor();
  ok('the badge no longer counts it');

  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'succeeded');
  ok('the run it held finished: succeeded');
});
