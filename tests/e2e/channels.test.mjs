// End-to-end test of the console's Channels page (issue 13), against a real airmeshd in
// Debian's Chromium:
//   - Channels is in the sidebar; ann (a member) creates #general from the page and posts;
//   - ben, in another browser context on the same channel, sees the message arrive live (the
//     events stream; his page is not reloaded), with ann's display name as its author, and an
//     @mention highlighted; he joins and answers, and ann sees that live too;
//   - a viewer reads but has no composer;
//   - at 390 px nothing sticks out sideways; no CSP violation or page error on the way.
//
//   node --test tests/e2e/channels.test.mjs   (after `make ui` and a Bazel build of airmeshd)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, startDaemon, launchChromium, waitText, stepper, layoutProblems, api, signIn, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-channels-'));
const s = { daemon: null, browser: null, admin: null, url: '', password: '', pages: {} };
const problems = [];
const step = stepper();

async function newUser(viewport = { width: 1280, height: 800 }) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective}`));
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  return page;
}

const login = (page, user, password) => signIn(page, user, password, s.url + '/#/channels');

const call = (method, path, body) => api(s.admin, s.url, method, path, body);

before(async () => {
  for (const f of [AIRMESHD, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build airmeshd and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.browser = await launchChromium();
  s.admin = await newUser();
  await login(s.admin, 'admin', s.password);
  for (const [name, role, dn] of [['ann', 'member', 'Ann Ærø'], ['ben', 'member', ''], ['vic', 'viewer', '']]) {
    await call('POST', '/users', { name, role, password: name + '-password-123', ...(dn ? { display_name: dn } : {}) });
  }
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.daemon]);
  saveLogs(tmp, ['airmeshd.log'], () => 'airmeshd-channels.log');
  rmSync(tmp, { recursive: true, force: true });
});

step('ann creates a channel from the page and posts', async () => {
  const p = s.pages.ann = await newUser();
  await login(p, 'ann', 'ann-password-123');
  await waitText(p, '.page-title', 'Channels');
  assert.equal(await p.locator('.nav-links a[href="#/channels"]').count(), 1, 'Channels is in the sidebar');
  await p.fill('#chan-new-name', 'general');
  await p.click('#chan-create button');
  await waitText(p, '#chan-title', '#general');
  await p.waitForSelector('#chan-composer:not([hidden])');
  await p.fill('#chan-text', 'hello @ben, first message');
  await p.click('#chan-send');
  await waitText(p, '#chan-feed', 'first message');
});

step('ben sees it live, joins and answers; ann sees the answer live', async () => {
  const b = s.pages.ben = await newUser();
  await login(b, 'ben', 'ben-password-123');
  await b.goto(s.url + '/#/channels/general');
  await waitText(b, '#chan-feed', 'first message');
  await b.waitForSelector('#chan-feed[data-live="1"]');
  // not a member yet: a Join button and no composer
  assert.equal(await b.isVisible('#chan-composer'), false);
  // a new message of ann's arrives without a reload
  await s.pages.ann.fill('#chan-text', 'second one, live');
  await s.pages.ann.click('#chan-send');
  await waitText(b, '#chan-feed', 'second one, live');
  const author = await b.textContent('.chan-msg[data-seq="2"] .chan-author');
  assert.equal(author, 'Ann Ærø', 'the author shows by display name');
  assert.equal(await b.textContent('.chan-msg[data-seq="1"] .mention'), '@ben', 'the mention is highlighted');
  await b.click('#chan-join');
  await b.waitForSelector('#chan-composer:not([hidden])');
  await b.fill('#chan-text', 'ben here');
  await b.press('#chan-text', 'Control+Enter');
  await waitText(s.pages.ann, '#chan-feed', 'ben here');
});

step('a viewer reads without a composer; 390 px fits', async () => {
  const v = await newUser({ width: 390, height: 844 });
  await login(v, 'vic', 'vic-password-123');
  await v.goto(s.url + '/#/channels/general');
  await waitText(v, '#chan-feed', 'ben here');
  assert.equal(await v.isVisible('#chan-composer'), false);
  assert.equal(await v.isVisible('#chan-create'), false);
  assert.equal(await v.locator('#chan-join').count(), 0);
  const long = 'x'.repeat(300);
  await call('POST', '/channels/general/members', {});
  await call('POST', '/channels/general/messages', { text: `a long word ${long} and @p-0123456789ab` });
  await waitText(v, '#chan-feed', long.slice(0, 50));
  await v.screenshot({ path: join(ARTIFACTS, 'channels-390.png'), fullPage: true });
  assert.deepEqual(await layoutProblems(v), []);
  assert.deepEqual(problems, []);
});
