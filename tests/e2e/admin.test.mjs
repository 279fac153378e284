// End-to-end test of the console's organization pages against a real airmeshd (no runner):
// the admin creates a viewer (the generated password is read from the page), a team with her
// in it, finds the user.create event on the audit page and downloads the signed export; then
// the viewer, in her own browser context, is offered nothing her role cannot do, sees only
// herself on the Users page, and changes her password under My account.
//
//   node --test tests/e2e/            (after `make ui` and a Bazel build of airmeshd)
//
// AIRMESHD (default bazel-bin/appliance/airmeshd), UI_DIR (ui/dist), CHROMIUM
// (/usr/bin/chromium); screenshots (20-…) go to E2E_ARTIFACTS (test-artifacts/e2e).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, bin, startDaemon, launchChromium, waitText, stepper, stopChecked, signIn, stopAll, saveLogs } from './harness.mjs';


const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-admin-'));
const s = { daemon: null, browser: null, admin: null, vera: null, url: '', password: '', veraPassword: '' };
const problems = []; // CSP violations and page errors, from every page

async function newUser() {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const t = e.target;
      const what = t && t.tagName ? `<${t.tagName.toLowerCase()} class="${t.className}">` : String(t);
      console.error(`csp-violation: ${e.violatedDirective} by ${what} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, name + '.png'), fullPage: true });


const step = stepper();

before(async () => {
  for (const f of [AIRMESHD, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build airmeshd and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.browser = await launchChromium();
  s.admin = await newUser();
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.daemon]);
  saveLogs(tmp, ['airmeshd.log'], () => 'airmeshd-admin.log');
  rmSync(tmp, { recursive: true, force: true });
});

step('admin: creates the viewer vera and reads her generated password once', async () => {
  const p = s.admin;
  await p.goto(s.url + '/#/users');
  await signIn(p, 'admin', s.password);
  await waitText(p, '.page-title', 'Users');
  // The appliance administrator sees the Organizations page; the nav follows whoami.
  assert.equal(await p.locator('.nav-links a[href="#/orgs"]').count(), 1);
  await p.waitForSelector('#users-table tr[data-user="admin"]');
  await p.click('#add-user');
  await p.fill('#user-name', 'vera');
  await p.selectOption('#user-role', 'viewer');
  // An owner can grant up to owner; the form offers exactly the four roles.
  assert.deepEqual(await p.$$eval('#user-role option', (os) => os.map((o) => o.value)), ['viewer', 'member', 'admin', 'owner']);
  await p.click('#user-form button[type=submit]');
  await p.waitForSelector('#new-user-password');
  s.veraPassword = (await p.textContent('#new-user-password')).trim();
  assert.match(s.veraPassword, /^\S{12,}$/);
  await p.waitForSelector('#users-table tr[data-user="vera"]');
  assert.equal(await p.inputValue('#users-table tr[data-user="vera"] select'), 'viewer');
  assert.match(await p.textContent('#users-table tr[data-user="vera"]'), /active/);
  await shot(p, '20-users-created');
  await p.click('section[aria-label="Add a user"] button:text("Done")');
  // Admin actions exist for vera, not for the admin's own row.
  assert.equal(await p.locator('#users-table tr[data-user="vera"] button:text("Delete")').count(), 1);
  assert.equal(await p.locator('#users-table tr[data-user="admin"] button').count(), 0);
});

step('admin: creates a team and adds vera', async () => {
  const p = s.admin;
  await p.click('.nav-links a[href="#/teams"]');
  await waitText(p, '.empty', 'No teams yet');
  await p.fill('#team-name', 'platform');
  await p.click('#create-team');
  await p.waitForSelector('#teams-table tr[data-team="platform"]');
  await p.selectOption('#teams-table tr[data-team="platform"] select', 'vera');
  await p.click('#teams-table tr[data-team="platform"] button:text("Add")');
  await p.waitForSelector('#teams-table tr[data-team="platform"] .chip[data-member="vera"]');
  await waitText(p, '.messages', 'vera joined team platform');
  await shot(p, '21-teams');
});

step('admin: the audit page filters by action and downloads the signed export', async () => {
  const p = s.admin;
  await p.click('.nav-links a[href="#/audit"]');
  await p.waitForSelector('#audit-table');
  await p.fill('#audit-action', 'user.create');
  await p.click('#audit-apply');
  await waitText(p, '#audit-table', 'user:vera');
  const actions = await p.$$eval('#audit-table tbody tr td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(actions, ['user.create'], 'only the user.create event is listed');
  assert.match(await p.textContent('#audit-table tbody tr'), /user:admin.*user\.create.*user:vera.*ok.*role: viewer/);
  assert.match(p.url(), /#\/audit\?action=user\.create$/, 'the filter is in the URL');
  // A range with no events says so in words.
  await p.fill('#audit-since', '2001-01-01T00:00:00');
  await p.fill('#audit-until', '2001-01-02T00:00:00');
  await p.click('#audit-apply');
  await waitText(p, '.empty', 'No events match');
  await p.click('#audit-clear');
  await p.waitForSelector('#audit-table');
  await p.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length > 3);
  await p.fill('#audit-action', 'user.create');
  await p.click('#audit-apply');
  await waitText(p, '#audit-table', 'user:vera');
  await shot(p, '22-audit-filtered');
  // Paging: 105 more events of one action come 100 at a time, the rest after "Load more".
  for (let i = 0; i < 105; i++) {
    const r = await p.request.post(`${s.url}/api/v1/users/vera/sessions/revoke`, { headers: { 'X-Airmesh-CSRF': '1' } });
    assert.equal(r.status(), 200);
  }
  await p.fill('#audit-action', 'user.sessions_revoke');
  await p.click('#audit-apply');
  await waitText(p, '#audit-summary', '100 events so far');
  assert.equal(await p.locator('#audit-table tbody tr').count(), 100);
  await p.click('#audit-more');
  await waitText(p, '#audit-summary', '105 events.');
  assert.equal(await p.locator('#audit-table tbody tr').count(), 105);
  assert.ok(await p.locator('#audit-more').isHidden(), 'no Load more at the end');
  await p.fill('#audit-action', 'user.create');
  await p.click('#audit-apply');
  await waitText(p, '#audit-summary', '1 event.');
  const [download] = await Promise.all([p.waitForEvent('download'), p.click('#audit-export')]);
  assert.match(download.suggestedFilename(), /^airmesh-audit.*\.amexp$/);
  const file = await download.path();
  assert.ok(statSync(file).size > 0, 'the export is not empty');
  await waitText(p, '.export', 'Downloaded');
  assert.match(await p.textContent('.export'), /airmeshctl audit verify FILE/);
  await shot(p, '23-audit-exported');
});

step('admin: the Organizations page lists the default organization', async () => {
  const p = s.admin;
  await p.click('.nav-links a[href="#/orgs"]');
  await p.waitForSelector('#orgs-table tr[data-org="default"]');
  await p.click('#add-org');
  await p.waitForSelector('#org-form');
  await shot(p, '24-orgs');
});

step('vera (viewer): no create-pod, no admin actions, only herself on Users', async () => {
  const p = (s.vera = await newUser());
  await p.goto(s.url + '/');
  await signIn(p, 'vera', s.veraPassword);
  await waitText(p, '.page-title', 'Pods');
  await waitText(p, '#nav-role', 'viewer');
  assert.equal(await p.locator('#new-pod').count(), 0, 'no New pod button');
  await waitText(p, '.empty', 'No pods yet');
  assert.equal(await p.locator('.empty button').count(), 0, 'no New pod button in the empty state either');
  assert.equal(await p.locator('.nav-links a[href="#/orgs"]').count(), 0, 'no Organizations entry');
  await shot(p, '25-vera-pods');

  await p.click('.nav-links a[href="#/runners"]');
  await waitText(p, '.page-title', 'Runners');
  await p.waitForSelector('.empty');
  assert.equal(await p.locator('#add-runner').count(), 0, 'no Add a runner button');

  await p.click('.nav-links a[href="#/users"]');
  await p.waitForSelector('#users-table');
  const users = await p.$$eval('#users-table tbody tr', (trs) => trs.map((tr) => tr.dataset.user));
  assert.deepEqual(users, ['vera'], 'a viewer sees only herself');
  assert.equal(await p.locator('#add-user').count(), 0, 'no Add a user button');
  assert.equal(await p.locator('#users-table select').count(), 0, 'no role changes');
  assert.deepEqual(await p.$$eval('#users-table .row-actions > *', (els) => els.map((e) => e.textContent)), ['My account']);
  await shot(p, '26-vera-users');

  await p.click('.nav-links a[href="#/teams"]');
  await p.waitForSelector('#teams-table tr[data-team="platform"] .chip[data-member="vera"]');
  assert.equal(await p.locator('#team-form').count(), 0, 'no New team form');
  assert.equal(await p.locator('#teams-table button').count(), 0, 'no team actions');

  await p.click('.nav-links a[href="#/audit"]');
  await p.waitForSelector('#audit-table');
  assert.equal(await p.locator('#audit-export').count(), 0, 'export is for owners');
});

step('vera: My account creates and revokes her API token, then changes her password', async () => {
  const p = s.vera;
  await p.click('#nav-account');
  await waitText(p, '.page-title', 'My account');
  await waitText(p, '#no-tokens', 'no API tokens');
  assert.deepEqual(await p.$$eval('#token-role option', (os) => os.map((o) => o.value)), ['viewer'], 'a token never above her role');
  await p.fill('#token-name', 'laptop');
  await p.click('#create-token');
  await p.waitForSelector('#new-api-token');
  assert.match(await p.textContent('#new-api-token'), /^am_[0-9a-f]+$/);
  await p.waitForSelector('#tokens-table tbody tr');
  assert.match(await p.textContent('#tokens-table tbody tr'), /laptop.*viewer/);
  await shot(p, '27-vera-account-token');
  await p.click('#tokens-table tbody tr button:text("Revoke")');
  await p.click('dialog.confirm .btn-danger');
  await waitText(p, '#no-tokens', 'no API tokens');

  // A wrong current password is refused in words; the right one changes it.
  const next = 'vera-new-password-42';
  await p.fill('#current-password', 'not-her-password');
  await p.fill('#new-password', next);
  await p.fill('#new-password-again', next);
  await p.click('#password-form button[type=submit]');
  await waitText(p, '#password-form .form-error', 'current password is wrong');
  await p.fill('#current-password', s.veraPassword);
  await p.fill('#new-password', next);
  await p.fill('#new-password-again', next);
  await shot(p, '28-vera-password-form');
  await p.click('#password-form button[type=submit]');
  await p.waitForSelector('#login-password');
  await waitText(p, '.login-card .notice', 'Your password is changed');
  assert.equal(await p.inputValue('#login-user'), 'vera');
  await shot(p, '29-vera-password-changed');
  // The old password no longer works; the new one does, and lands back on My account.
  await p.fill('#login-password', s.veraPassword);
  await p.press('#login-password', 'Enter');
  await waitText(p, '.form-error', 'wrong password');
  assert.equal((await p.textContent('.form-error')).trim(), 'Unknown user or wrong password');
  await p.fill('#login-password', next);
  await p.press('#login-password', 'Enter');
  await waitText(p, '.page-title', 'My account');
  assert.deepEqual(problems, [], 'no CSP violation or page error on any page');
});

step('shutdown: airmeshd stops on SIGTERM with exit 0 and no sanitizer report', async () => {
  await stopChecked(s.daemon, join(tmp, 'airmeshd.log'), 'airmeshd');
});
