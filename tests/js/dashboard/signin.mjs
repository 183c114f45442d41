// Sign-in and the states without data: a bad token is refused with an
// alert and no way in; a good one shows the runs view, which with no run
// yet says how to submit one; when the server stops answering, the next
// view says it "does not answer". Axe on the sign-in and empty runs views.
//
//   DASH_TOKEN  an operator's token; the store has no run yet.
//   sync: "serve-down" (the shell stops serve, then lets us on)
import {main, need, ok, check, signIn, waitReady, axe, shot, sync, Failure, TIMEOUT} from './browser.mjs';

const token = need('DASH_TOKEN');

await main(async ({open}) => {
  const page = await open();
  await page.goto(process.env.DASH_URL + '/');
  await waitReady(page, 'signin');
  const form = page.getByRole('form', {name: 'Sign in'});
  await form.getByLabel('API token').waitFor();
  ok('no token: the sign-in form, with its "API token" field');
  await axe(page, 'sign-in');
  await shot(page, 'signin');

  // A token nobody made: refused, said so in an alert, still signed out.
  await form.getByLabel('API token').fill('durin_0000000000000000000000000000000000000000');
  await form.getByRole('button', {name: 'Sign in'}).click();
  const alert = page.getByRole('alert').filter({hasText: /\S/});
  await alert.first().waitFor();
  const why = (await alert.first().innerText()).trim();
  check(/token|valid|refused|unauthori/i.test(why),
    `the refusal does not say what is wrong with the token: "${why}"`);
  check(await form.isVisible(), 'a refused token left the sign-in form');
  check(await page.evaluate(() => document.body.dataset.ready) === 'signin',
    'a refused token did not stay on the sign-in view');
  check(await page.getByRole('navigation', {name: 'Main'}).count() === 0,
    'a refused token shows the main navigation');
  ok(`a bad token is refused at sign-in: "${why.replace(/\s+/g, ' ')}"`);
  await shot(page, 'signin-refused');

  // The token itself never goes in a URL.
  await form.getByLabel('API token').fill(token);
  await form.getByRole('button', {name: 'Sign in'}).click();
  await waitReady(page, 'runs');
  check(!page.url().includes(token), 'the token is in the URL');
  const nav = page.getByRole('navigation', {name: 'Main'});
  for (const l of ['Runs', 'Approvals', 'Workers']) await nav.getByRole('link', {name: l}).waitFor();
  await page.getByRole('button', {name: 'Sign out'}).waitFor();
  ok('a good token signs in: the runs view, the main navigation, "Sign out"');

  const empty = page.getByRole('status').filter({hasText: /durin submit|POST \/v1\/runs/});
  try {
    await empty.first().waitFor();
  } catch {
    const st = await page.getByRole('status').allInnerTexts();
    throw new Failure(`no runs yet: no status saying how to submit one ` +
      `("durin submit" or POST /v1/runs); status texts: ${JSON.stringify(st)}`);
  }
  check(await page.getByRole('table', {name: 'Runs'}).locator('[data-run-id]').count() === 0,
    'no runs yet, and yet the table has rows');
  ok('no runs yet: the runs view shows the submit command');
  await axe(page, 'runs (empty)');
  await shot(page, 'runs-empty');

  // The server goes away: the next view says it does not answer.
  await sync('serve-down');
  await nav.getByRole('link', {name: 'Workers'}).click();
  const down = page.getByRole('alert').filter({hasText: /does not answer/});
  try {
    await down.first().waitFor({timeout: TIMEOUT});
  } catch {
    const al = await page.getByRole('alert').allInnerTexts();
    throw new Failure(`serve stopped: no alert saying the server "does not answer"; ` +
      `alerts: ${JSON.stringify(al)}`);
  }
  ok(`serve stopped: "${(await down.first().innerText()).trim().replace(/\s+/g, ' ')}"`);
  await shot(page, 'unreachable');
});
