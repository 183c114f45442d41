// A serve started with --no-auth needs no token, and the pages know it
// from /healthz: no sign-in form, the header names the local admin, and
// there is no "Sign out" (there is nothing to sign out of).
//
//   (no variables: the serve at DASH_URL runs with --no-auth)
import {main, ok, check, waitReady, axe} from './browser.mjs';

await main(async ({open}) => {
  const page = await open();
  await page.goto(process.env.DASH_URL + '/');
  await waitReady(page, 'runs');
  check(await page.getByRole('form', {name: 'Sign in'}).count() === 0,
    'a --no-auth serve still asks for a token');
  const nav = page.getByRole('navigation', {name: 'Main'});
  await nav.getByRole('link', {name: 'Runs'}).waitFor();
  const header = await page.locator('header').innerText();
  check(/local/.test(header) && /admin/.test(header),
    `the header does not name the local admin: "${header.replace(/\s+/g, ' ')}"`);
  check(await page.getByRole('button', {name: 'Sign out'}).count() === 0,
    'a --no-auth serve offers "Sign out"');
  ok('--no-auth: straight to the runs view as the local admin, no sign-in, no sign-out');
  await axe(page, 'runs (--no-auth)');
});
