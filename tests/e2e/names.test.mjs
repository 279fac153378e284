// End-to-end test of display names in the console (issue 14), against a real airmeshd and a real
// runner, in Debian's Chromium:
//   - "Zoë" and "Équipe 🚀" render (text and a non-empty box) on the Users and Teams pages and in
//     the pod list, the pod page's header and Activity, with the id on hover (title);
//   - an admin renames a user, a team, a pod and the org in place (Rename, type, Enter); a bad
//     name (a bidirectional override) is explained before anything is sent and changes nothing;
//     Escape cancels;
//   - a 64-character name is cut with an ellipsis, whole on hover, and at 390×844 no page sticks
//     out sideways (layoutProblems, the check cockpit.test.mjs uses).
//
//   node --test tests/e2e/names.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, bin, startDaemon, launchChromium, waitText, stepper, layoutProblems, until, api, signIn, startRunner, runnerOnline, RUNNER, stopAll, saveLogs } from './harness.mjs';

const SCREENS = bin('E2E_SCREENS', 'test-artifacts/screens');
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-names-'));
const s = { daemon: null, runner: null, browser: null, ctx: null, page: null, url: '', pods: {} };
const problems = [];
const step = stepper();
const ZOE = 'Zoë';
const EQUIPE = 'Équipe 🚀';
// 64 characters (the most a display name may have): wide enough to overflow any card.
const LONG = 'Ångström-Équipe-de-développement-logiciel-très-très-longue-noms🚀';

async function newContext(viewport) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective}`));
  });
  return ctx;
}

async function newPage(ctx) {
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  return page;
}

const call = (method, path, body) => api(s.page, s.url, method, path, body);

const login = (page) => signIn(page, 'admin', s.password, s.url + '/');

/** The name element's text, title and whether it drew anything (a box wider than 0). */
async function shown(page, selector) {
  await page.waitForSelector(selector);
  return page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return { text: el.textContent, title: el.getAttribute('title'), drawn: r.width > 0 && r.height > 0, cut: el.scrollWidth > el.clientWidth + 1 };
  });
}

before(async () => {
  for (const f of [AIRMESHD, RUNNER, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  mkdirSync(SCREENS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  writeFileSync(join(s.repo, 'README.md'), '# names\n');
  execFileSync('git', ['-C', s.repo, 'add', '-A']);
  execFileSync('git', ['-C', s.repo, '-c', 'user.email=e2e@example.com', '-c', 'user.name=e2e', 'commit', '-qm', 'base']);
  s.browser = await launchChromium();
  s.ctx = await newContext({ width: 1366, height: 768 });
  s.page = await newPage(s.ctx);
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'names-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: users, teams and pods with unicode names, through the API', async () => {
  await login(s.page);
  const t = await call('POST', '/runner-tokens', { ttl: '1h' });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline(call);
  await call('POST', '/users', { name: 'zoe', role: 'member', display_name: ZOE });
  await call('POST', '/users', { name: 'long', role: 'viewer', display_name: LONG });
  await call('POST', '/teams', { name: 'equipe', display_name: EQUIPE });
  await call('POST', '/teams', { name: 'longteam', display_name: LONG });
  await call('POST', `/teams/equipe/members`, { user: 'zoe' });
  s.pods.named = (await call('POST', '/pods', { repo: s.repo, command: ['sh', '-c', 'exec sleep 300'], display_name: EQUIPE + ' pod' })).id;
  s.pods.long = (await call('POST', '/pods', { repo: s.repo, command: ['sh', '-c', 'exec sleep 300'], display_name: LONG })).id;
  assert.equal(Array.from(LONG).length, 64);
  assert.equal((await call('GET', '/pods/' + s.pods.long)).display_name, LONG);
});

step('users and teams pages show "Zoë" and "Équipe 🚀", the id on hover', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/users');
  const zoe = await shown(p, '#users-table tr[data-user="zoe"] .dn');
  assert.deepEqual([zoe.text, zoe.title, zoe.drawn], [ZOE, `${ZOE} (zoe)`, true]);
  assert.equal(await p.textContent('#users-table tr[data-user="zoe"] .cell-name .mono'), 'zoe', 'the id in details');
  await p.goto(s.url + '/#/teams');
  const eq = await shown(p, '#teams-table tr[data-team="equipe"] > td .dn');
  assert.deepEqual([eq.text, eq.title, eq.drawn], [EQUIPE, `${EQUIPE} (equipe)`, true]);
  // The emoji drew as a glyph: the name is wider than its text without it.
  const widths = await p.$eval('#teams-table tr[data-team="equipe"] > td .dn', (el) => {
    const probe = (t) => { const c = el.cloneNode(); c.textContent = t; c.style.position = 'absolute'; el.parentElement.appendChild(c); const w = c.getBoundingClientRect().width; c.remove(); return w; };
    return [probe('Équipe 🚀'), probe('Équipe ')];
  });
  assert.ok(widths[0] > widths[1] + 4, `the rocket takes room: ${widths}`);
  // Members show by display name too.
  const chip = await shown(p, '#teams-table tr[data-team="equipe"] .chip[data-member="zoe"] .dn');
  assert.deepEqual([chip.text, chip.title], [ZOE, `${ZOE} (zoe)`]);
});

step('the pod list, the pod page header and Activity show display names', async () => {
  const p = s.page;
  await call('PATCH', '/users/admin', { display_name: 'Ädmin Ünïcode' });
  await p.goto(s.url + '/#/pods');
  const pod = await shown(p, `#pods-table tr[data-pod="${s.pods.named}"] .pod-dn`);
  assert.deepEqual([pod.text, pod.title, pod.drawn], [EQUIPE + ' pod', `${EQUIPE} pod (${s.pods.named})`, true]);
  await waitText(p, `#pods-table tr[data-pod="${s.pods.named}"] .owner-text`, 'Ädmin Ünïcode');
  const long = await shown(p, `#pods-table tr[data-pod="${s.pods.long}"] .pod-dn`);
  assert.ok(long.cut, 'a 64-character name is cut with an ellipsis');
  assert.equal(long.title, `${LONG} (${s.pods.long})`, 'and whole on hover');
  await p.goto(s.url + `/#/pods/${s.pods.named}`);
  await waitText(p, '.page-title', EQUIPE + ' pod');
  const head = await shown(p, '#pod-name');
  assert.deepEqual([head.text, head.title], [EQUIPE + ' pod', `${EQUIPE} pod (${s.pods.named})`]);
  await waitText(p, '#fact-id', s.pods.named);
  await waitText(p, '#fact-owner', 'Ädmin Ünïcode');
  await p.goto(s.url + '/#/activity');
  await waitText(p, '#activity-table', 'Ädmin Ünïcode');
  assert.equal(await p.getAttribute('#activity-table td.actor .dn[data-id="admin"]', 'title'), 'Ädmin Ünïcode (admin)');
});

step('an admin renames in place; a bad name is explained and changes nothing', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/users');
  const row = '#users-table tr[data-user="zoe"]';
  await p.click(`${row} .rename-btn`);
  await p.fill(`${row} .rename-input`, '\u202eevil');
  await waitText(p, `${row} .rename-error`, 'bidirectional');
  await p.press(`${row} .rename-input`, 'Enter');
  await waitText(p, `${row} .rename-error`, 'bidirectional');
  assert.equal((await call('GET', '/users/zoe')).display_name, ZOE, 'nothing was sent');
  await p.press(`${row} .rename-input`, 'Escape');
  await waitText(p, `${row} .dn`, ZOE);
  await p.click(`${row} .rename-btn`);
  await p.fill(`${row} .rename-input`, '  Zoë Ünal  ');
  await p.press(`${row} .rename-input`, 'Enter');
  await waitText(p, `${row} .dn`, 'Zoë Ünal');
  assert.equal((await call('GET', '/users/zoe')).display_name, 'Zoë Ünal');
  // The org, above the users.
  await p.click('.org-line .rename-btn');
  await p.fill('.org-line .rename-input', 'Société Ærø');
  await p.press('.org-line .rename-input', 'Enter');
  await waitText(p, '.org-line .dn', 'Société Ærø');
  assert.equal((await call('GET', '/orgs')).orgs.find((o) => o.id === 'default').display_name, 'Société Ærø');
  // A team and a pod.
  await p.goto(s.url + '/#/teams');
  await p.click('#teams-table tr[data-team="equipe"] .rename-btn');
  await p.fill('#teams-table tr[data-team="equipe"] .rename-input', 'Équipe 🚀🚀');
  await p.press('#teams-table tr[data-team="equipe"] .rename-input', 'Enter');
  await waitText(p, '#teams-table tr[data-team="equipe"] > td .dn', 'Équipe 🚀🚀');
  await p.goto(s.url + '/#/pods');
  const prow = `#pods-table tr[data-pod="${s.pods.named}"]`;
  await p.click(`${prow} .rename-btn`);
  await p.fill(`${prow} .rename-input`, 'Zoë’s pod');
  await p.press(`${prow} .rename-input`, 'Enter');
  await until('the pod renamed', async () => (await call('GET', '/pods/' + s.pods.named)).display_name === 'Zoë’s pod');
  await waitText(p, `${prow} .pod-dn`, 'Zoë’s pod');
  const audit = await call('GET', '/audit?action=user.display_name');
  assert.ok(audit.events.some((e) => e.target === 'user:zoe' && e.result === 'ok' && e.details.display_name === 'Zoë Ünal'));
});

step('at 390×844 a 64-character name fits every page: cut, whole on hover', async () => {
  await call('PATCH', '/users/zoe', { display_name: LONG });
  await call('PATCH', '/orgs/default', { display_name: LONG });
  await call('PATCH', '/pods/' + s.pods.named, { display_name: LONG });
  const ctx = await newContext({ width: 390, height: 844 });
  try {
    const p = await newPage(ctx);
    await login(p);
    const pages = [
      ['users', '#/users', '#users-table tr[data-user="long"] .dn'],
      ['teams', '#/teams', '#teams-table tr[data-team="longteam"] > td .dn'],
      ['pods', '#/pods', `#pods-table tr[data-pod="${s.pods.long}"] .pod-dn`],
      ['pod', `#/pods/${s.pods.long}`, '#pod-name'],
      ['activity', '#/activity', '#activity-table'],
      ['orgs', '#/orgs', '#orgs-table tr[data-org="default"] .dn'],
    ];
    for (const [name, hash, sel] of pages) {
      await p.goto(s.url + '/' + hash);
      await p.waitForSelector(sel);
      await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      assert.deepEqual(await layoutProblems(p), [], `${name} at 390×844`);
      if (sel.endsWith('.dn') || sel.endsWith('.pod-dn') || sel === '#pod-name') {
        const el = await shown(p, sel);
        assert.ok(el.title.startsWith(LONG), `${name}: the whole name on hover`);
      }
      await p.screenshot({ path: join(SCREENS, `names-${name}-390.png`), fullPage: true });
    }
    // An open editor fits too.
    await p.goto(s.url + '/#/users');
    await p.click('#users-table tr[data-user="long"] .rename-btn');
    assert.deepEqual(await layoutProblems(p), [], 'the rename editor at 390×844');
  } finally {
    await ctx.close();
  }
});

step('no CSP violation or page error', async () => {
  assert.deepEqual(problems, []);
});
