// Journey 4: edit the arguments before approving. An argument the tool
// does not have, then a command the policy denies: each time the
// server's refusal is shown in place (an alert tied to the arguments box
// by aria-describedby, the box aria-invalid) and nothing is decided.
// Then a good edit is approved (the shell checks it is what ran).
//
//   DASH_TOKEN, DASH_RUN, DASH_APPROVAL
//   DASH_BAD1 DASH_BAD1_SAYS   arguments the tool refuses; a regex of the message
//   DASH_BAD2 DASH_BAD2_SAYS   arguments the policy refuses; the same
//   DASH_GOOD                  arguments that fit
import {main, need, ok, check, openApproval, go, waitStatus, apiGet, shot, Failure} from './browser.mjs';

const token = need('DASH_TOKEN');
const run = need('DASH_RUN');
const appr = need('DASH_APPROVAL');

async function refused(page, box, args, says) {
  await box.fill(args);
  await page.getByRole('button', {name: 'Approve', exact: true}).click();
  const re = new RegExp(says);
  try {
    await page.waitForFunction(([sel, src]) => {
      const b = document.querySelector(sel);
      if (!b || b.getAttribute('aria-invalid') !== 'true') return false;
      const ids = (b.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
      return ids.some((i) => {
        const e = document.getElementById(i);
        return e && (e.getAttribute('role') === 'alert' || e.closest('[role=alert]') ||
          e.querySelector('[role=alert]')) && new RegExp(src).test(e.textContent);
      });
    }, [await box.evaluate((el) => { el.dataset.testBox = '1'; return '[data-test-box="1"]'; }),
      re.source]);
  } catch {
    const inv = await box.getAttribute('aria-invalid');
    const desc = await box.getAttribute('aria-describedby');
    const al = await page.getByRole('alert').allInnerTexts();
    throw new Failure(`approving ${args}: no alert matching /${says}/ tied to the arguments box ` +
      `(aria-invalid=${inv}, aria-describedby=${desc}; alerts: ${JSON.stringify(al)})`);
  }
  const a = await apiGet(token, `/v1/approvals/${appr}`);
  check(a.state === 'pending', `after a refused edit the approval is ${a.state}`);
  const text = await page.evaluate((sel) => {
    const b = document.querySelector(sel);
    return (b.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)
      .map((i) => document.getElementById(i)?.textContent || '').join(' ').trim();
  }, '[data-test-box="1"]');
  ok(`approving ${args} is refused in place: "${text.replace(/\s+/g, ' ')}"; still pending`);
}

await main(async ({open}) => {
  const page = await open();
  const {item, box} = await openApproval(page, token, appr);
  await refused(page, box, need('DASH_BAD1'), need('DASH_BAD1_SAYS'));
  await shot(page, 'approvals-edit-refused');
  await refused(page, box, need('DASH_BAD2'), need('DASH_BAD2_SAYS'));
  await box.fill(need('DASH_GOOD'));
  await page.getByRole('button', {name: 'Approve', exact: true}).click();
  await item.waitFor({state: 'detached'});
  const a = await apiGet(token, `/v1/approvals/${appr}`);
  check(a.state === 'edited', `after the good edit the approval is ${a.state}`);
  ok('the fixed edit is approved (state edited)');
  await go(page, `#/runs/${run}`, 'run');
  await waitStatus(page, 'succeeded');
  ok('the run went on to the end');
});
