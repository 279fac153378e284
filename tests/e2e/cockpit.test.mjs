// End-to-end test of the console as a team lead's cockpit (issue 14), against a real airmeshd, a
// real runner and a git repo made here, in Debian's Chromium:
//   - the overview on the landing page counts what the API says (pods by state, runners online,
//     slots used of capacity, recent failures, who is running what);
//   - a failed pod shows its reason in a red banner; exit codes read as words ("killed (SIGKILL)");
//   - the recording plays in the browser (asciinema-player) and seeking to the end shows the
//     last line; the pod page says what the pod is (program, repo, branch, base, limits, owner);
//   - a shown-once password / enrollment command survives a second click of "Add …"; a double
//     click on "Create team" creates one team; a bad name is explained before submitting;
//   - a member on an admin's unshared pod gets Take control / Stop disabled with the reason;
//     the admin's Share toggle opens it to her (issue 14, whose pod);
//   - the same user in a second tab is told "(you, other tab)"; keyboard shortcuts; the audit
//     page lists newest first with expandable details, linked targets and part-of-text filters;
//   - every page at 1366×768 and 390×844, light and dark: nothing sticks out sideways (checked by
//     layoutProblems in harness.mjs), the narrow sidebar collapses; the theme follows the system
//     and the toggle's choice survives a reload. Screenshots of every page in both themes and both
//     widths go to E2E_SCREENS (test-artifacts/screens).
//
//   node --test tests/e2e/cockpit.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, bin, startDaemon, launchChromium, waitText, stepper, layoutProblems, git, until, api, RUNNER, signIn, startRunner, runnerOnline, stopAll, saveLogs } from './harness.mjs';

const SCREENS = bin('E2E_SCREENS', 'test-artifacts/screens');
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-cockpit-'));
const s = { daemon: null, runner: null, browser: null, ctx: null, page: null, url: '', pods: {} };
const problems = []; // CSP violations and page errors, from every page
const step = stepper();
const LONG_BRANCH = 'feature/ünïcødé-a-very-long-branch-name-that-goes-on-and-on-and-does-not-fit-anywhere';

async function newPage(ctx) {
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  return page;
}

async function newContext(viewport) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport, acceptDownloads: true });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const t = e.target;
      const what = t && t.tagName ? `<${t.tagName.toLowerCase()} class="${t.className}">` : String(t);
      console.error(`csp-violation: ${e.violatedDirective} by ${what} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  return ctx;
}

// The REST API with the page's session (cookie) and the CSRF header.
const call = (method, path, body) => api(s.page, s.url, method, path, body);

// fn may set until.seen to what it saw, so a timeout says what the state was.
const podState = (id) => call('GET', '/pods/' + id);

const login = (page, user, password) => signIn(page, user, password, s.url + '/');

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
  writeFileSync(join(s.repo, 'README.md'), '# cockpit\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.browser = await launchChromium();
  s.ctx = await newContext({ width: 1366, height: 768 });
  s.page = await newPage(s.ctx);
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'cockpit-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: admin logs in, a runner enrolls, pods that run, exit, get killed and fail', async () => {
  await login(s.page, 'admin', s.password);
  const t = await call('POST', '/runner-tokens', { ttl: '1h', labels: { cockpit: 'yes' } });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline(call);
  const create = (body) => call('POST', '/pods', { repo: s.repo, ...body });
  s.pods.done = (await create({ command: ['sh', '-c', 'echo first-line; sleep 1; echo middle-line; sleep 1; echo LAST-LINE-42'] })).id;
  s.pods.killed = (await create({ command: ['sh', '-c', 'kill -9 $$'] })).id;
  s.pods.failed = (await create({ repo: join(tmp, 'no-such-repo'), command: ['sh'] })).id;
  s.pods.run = (await create({ branch: LONG_BRANCH, command: ['sh', '-c', 'echo ready; exec sh'], limits: { memory: '512M', pids: 256 } })).id;
  await until('the pods to settle', async () => {
    const [d, k, f, r] = await Promise.all([podState(s.pods.done), podState(s.pods.killed), podState(s.pods.failed), podState(s.pods.run)]);
    until.seen = [d, k, f, r].map((x) => ({ id: x.id, state: x.state, exit_code: x.exit_code, reason: x.reason, recording: x.recording }));
    return d.state === 'exited' && d.recording && k.state === 'exited' && f.state === 'failed' && r.state === 'running';
  });
});

step('overview: the landing page counts what the API says, and is live', async () => {
  const p = s.page;
  await p.goto(s.url + '/');
  await p.waitForSelector('#overview[data-loaded] #ov-states');
  const { pods } = await call('GET', '/pods');
  const { runners } = await call('GET', '/runners');
  const n = (pred) => pods.filter(pred).length;
  const want = {
    running: n((x) => x.state === 'running'), starting: n((x) => x.state === 'pending' || x.state === 'starting'),
    failed: n((x) => x.state === 'failed'), exited: n((x) => x.state === 'exited'), stopped: n((x) => x.state === 'stopped'),
  };
  assert.deepEqual(want, { running: 1, starting: 0, failed: 1, exited: 2, stopped: 0 }, 'the pods this test made');
  for (const [st, count] of Object.entries(want)) {
    assert.equal(await p.getAttribute(`#ov-states [data-state="${st}"]`, 'data-count'), String(count), st);
  }
  const online = runners.filter((r) => r.state === 'online');
  assert.equal(await p.getAttribute('#ov-runners-online', 'data-online'), String(online.length));
  assert.equal(await p.getAttribute('#ov-slots', 'data-capacity'), String(online.reduce((a, r) => a + r.capacity, 0)));
  assert.equal(await p.getAttribute('#ov-slots', 'data-used'), '1');
  // Recent failures name the failed and the killed pod with their reasons, in words.
  const failures = await p.textContent('#ov-failures');
  assert.match(failures, new RegExp(s.pods.failed));
  assert.match(failures, new RegExp(`${s.pods.killed}.*killed \\(SIGKILL\\)`));
  assert.match(await p.textContent('#ov-who'), /admin.*on repo/);
  // Model usage today is the API's (GET /api/v1/usage), quota included.
  const usage = await call('GET', '/usage');
  assert.equal(await p.getAttribute('#ov-tokens', 'data-tokens'), String(usage.today.tokens));
  assert.equal(await p.getAttribute('#ov-tokens', 'data-quota'), String(usage.tokens_per_day));
  assert.equal(await p.getAttribute('#ov-requests', 'data-requests'), String(usage.today.requests));
  await p.waitForSelector('#overview[data-live="1"]');
  // Live: a new pod shows up in the counts.
  const before = Number(await p.getAttribute('#ov-states [data-state="running"]', 'data-count'));
  s.pods.second = (await call('POST', '/pods', { repo: s.repo, command: ['sh', '-c', 'exec sleep 300'] })).id;
  await p.waitForFunction((b) => Number(document.querySelector('#ov-states [data-state="running"]')?.getAttribute('data-count')) === b + 1, before);
  await call('POST', `/pods/${s.pods.second}/stop`);
  await p.waitForSelector('#ov-states [data-state="stopped"][data-count="1"]');
});

step('pods: created-by and exit words in the list; filters and "My pods"', async () => {
  const p = s.page;
  await p.waitForSelector(`#pods-table tr[data-pod="${s.pods.killed}"]`);
  assert.match(await p.textContent(`#pods-table tr[data-pod="${s.pods.killed}"]`), /killed \(SIGKILL\)/);
  assert.doesNotMatch(await p.textContent(`#pods-table tr[data-pod="${s.pods.killed}"]`), /code 137$/);
  assert.match(await p.textContent(`#pods-table tr[data-pod="${s.pods.run}"] .owner-text`), /^admin$/);
  // The long branch is cut to fit, whole on hover.
  assert.equal(await p.getAttribute(`#pods-table tr[data-pod="${s.pods.run}"] .cell-name .trunc`, 'title'), LONG_BRANCH);
  await p.selectOption('#pods-state', 'failed');
  assert.deepEqual(await p.$$eval('#pods-table tbody tr', (rs) => rs.map((r) => r.dataset.pod)), [s.pods.failed]);
  await p.selectOption('#pods-state', '');
  await p.fill('#pods-search', 'ünïcødé');
  assert.deepEqual(await p.$$eval('#pods-table tbody tr', (rs) => rs.map((r) => r.dataset.pod)), [s.pods.run]);
  await p.fill('#pods-search', 'nothing-matches-this');
  await p.waitForSelector('#pods-none');
  await p.fill('#pods-search', '');
  await p.click('#pods-mine');
  assert.equal(await p.locator('#pods-table tbody tr').count(), 5, 'admin made all five');
  await p.click('#pods-mine');
});

step('a failed pod shows its reason in a red banner', async () => {
  const p = s.page;
  const pod = await podState(s.pods.failed);
  assert.ok(pod.reason, 'the API has a reason');
  await p.goto(`${s.url}/#/pods/${s.pods.failed}`);
  await p.waitForSelector('#pod-failed:not([hidden])');
  const text = await p.textContent('#pod-failed');
  assert.ok(text.includes(pod.reason) || text.toLowerCase().includes(pod.reason.toLowerCase()), `${text} names ${pod.reason}`);
  const colour = await p.$eval('#pod-failed', (el) => getComputedStyle(el).borderTopColor);
  assert.equal(colour, 'rgb(207, 34, 46)', 'the banner is red (the danger colour)');
});

step('pod page: the header says what the pod is, beside the terminal', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/pods/${s.pods.run}`);
  await p.waitForSelector('#pod-facts #fact-owner');
  assert.equal(await p.textContent('#fact-owner'), 'admin');
  assert.equal(await p.textContent('#fact-branch'), LONG_BRANCH);
  assert.equal(await p.textContent('#fact-repo'), s.repo);
  assert.match(await p.textContent('#fact-command'), /echo ready; exec sh/);
  assert.match(await p.textContent('#fact-limits'), /512 MiB memory, 256 processes/);
  const term = await p.$eval('.term-wrap', (el) => el.getBoundingClientRect());
  const facts = await p.$eval('#pod-facts', (el) => el.getBoundingClientRect());
  assert.ok(facts.left >= term.right - 1 && Math.abs(facts.top - term.top) < 2, 'the facts sit beside the terminal');
});

step('input control: the same user in another tab reads "(you, other tab)"', async () => {
  const p = s.page;
  await p.waitForSelector('#term-status.conn-live');
  await p.waitForSelector('#control-btn:not([disabled])');
  if ((await p.textContent('#control-btn')).startsWith('Take')) await p.click('#control-btn');
  await waitText(p, '#control-holder', 'You have control');
  await p.click('#terminal');
  await p.keyboard.type('echo typed$((20+22))\n');
  await waitText(p, '#terminal .xterm-rows', 'typed42');
  const p2 = await newPage(s.ctx);
  try {
    await p2.goto(`${s.url}/#/pods/${s.pods.run}`);
    await waitText(p2, '#control-holder', 'admin has control (you, other tab)');
    // The appliance does not take control from a holder: the button says so instead of failing.
    assert.ok(await p2.isDisabled('#control-btn'), 'not offered while the other tab holds it');
    assert.match(await p2.getAttribute('#control-btn', 'title'), /another tab.*release it there/);
    await p.click('#control-btn'); // release in the first tab
    await waitText(p, '#control-holder', 'Nobody has control');
    await p2.waitForSelector('#control-btn:not([disabled])');
    await p2.click('#control-btn');
    await waitText(p2, '#control-holder', 'You have control');
    await waitText(p, '#control-holder', 'admin has control (you, other tab)');
  } finally {
    await p2.close();
  }
});

step('recording: the player plays it, and seeking to the end shows the last line', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/pods/${s.pods.done}`);
  await p.waitForSelector('#play-recording:not([hidden])');
  await p.click('#play-recording');
  await waitText(p, '#player-status', 'Ready');
  await p.click('#player-play');
  await waitText(p, '#player', 'first-line');
  await waitText(p, '#player', 'LAST-LINE-42');
  await p.click('#player-start');
  await waitText(p, '#player-status', 'At the start');
  await p.waitForFunction(() => !document.querySelector('#player').textContent.includes('LAST-LINE-42'));
  await p.click('#player-end');
  await waitText(p, '#player', 'LAST-LINE-42');
  await p.selectOption('#player-speed', '4');
  assert.ok(await p.isVisible('#download-recording'), 'the download stays');
  await p.screenshot({ path: join(SCREENS, 'player-1366-light.png') });
  // Play in the pod list opens the player directly.
  await p.goto(`${s.url}/#/pods`);
  await p.click(`#pods-table tr[data-pod="${s.pods.done}"] a:text("Play")`);
  await waitText(p, '#player-status', 'Ready');
  assert.match(p.url(), new RegExp(`#/pods/${s.pods.done}\\?play=1$`));
});

step('a shown-once password and enrollment command survive a second click', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/users`);
  await p.click('#add-user');
  await p.fill('#user-name', 'Zoë');
  await waitText(p, '#user-form .hint', 'Not allowed here');
  await p.fill('#user-name', 'zoe');
  await p.click('#user-form button[type=submit]');
  await p.waitForSelector('#new-user-password');
  const pw = await p.textContent('#new-user-password');
  await p.click('#add-user');
  assert.ok(await p.isVisible('#new-user-password'), 'the password is still shown');
  assert.equal(await p.textContent('#new-user-password'), pw);
  await p.waitForSelector('.keep-secret');
  s.zoePassword = pw.trim();
  await p.goto(`${s.url}/#/runners`);
  await p.click('#add-runner');
  await p.click('text=Create enrollment token');
  await p.waitForSelector('#enroll-command');
  const cmd = await p.textContent('#enroll-command');
  await p.click('#add-runner');
  assert.ok(await p.isVisible('#enroll-command'), 'the command is still shown');
  assert.equal(await p.textContent('#enroll-command'), cmd);
});

step('teams: a bad name is explained before submitting; a double click creates one team', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/teams`);
  await p.fill('#team-name', 'Équipe 🚀');
  await waitText(p, '#team-form .hint', 'Not allowed here');
  await p.click('#create-team');
  await waitText(p, '#team-form .form-error', 'Not allowed here');
  await p.fill('#team-name', 'twice');
  await p.dblclick('#create-team');
  await p.waitForSelector('#teams-table tr[data-team="twice"]');
  await waitText(p, '.messages', 'Team twice is created');
  assert.equal(await p.textContent('#team-form .form-error'), '', 'no "already exists"');
  const { teams } = await call('GET', '/teams');
  assert.equal(teams.filter((t) => t.id === 'twice').length, 1);
  const ev = (await call('GET', '/audit?action=team.create&limit=1000')).events;
  assert.equal(ev.length, 1, 'one team.create request reached the appliance: ' + JSON.stringify(ev.map((e) => e.result)));
});

step('pod form: a relative repository path and a bad branch name are explained before sending', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/pods`);
  await p.click('#new-pod');
  const before = (await call('GET', '/pods')).pods.length;
  await p.fill('#pod-repo', 'relative/repo');
  await p.click('text=Start pod');
  await waitText(p, '#pod-form .form-error', 'or an absolute path on the runner');
  await p.fill('#pod-repo', s.repo);
  await p.fill('#pod-branch', 'bad..branch');
  await p.click('text=Start pod');
  await waitText(p, '#pod-form .form-error', 'The branch has a character git does not allow');
  await p.fill('#pod-branch', 'ends-with/');
  await p.click('text=Start pod');
  await waitText(p, '#pod-form .form-error', 'The branch cannot start with');
  assert.equal((await call('GET', '/pods')).pods.length, before, 'nothing was sent');
  await p.click('#pod-form button:text("Cancel")');
});

step('keyboard: ? shows the shortcuts, g r goes to runners, / focuses the search', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/pods`);
  await p.waitForSelector('#pods-table');
  await p.locator('body').focus();
  await p.keyboard.press('?');
  await p.waitForSelector('#shortcuts-help[open]');
  await p.screenshot({ path: join(SCREENS, 'help-1366-light.png') });
  await p.keyboard.press('Escape');
  await p.waitForSelector('#shortcuts-help', { state: 'detached' });
  await p.keyboard.press('g');
  await p.keyboard.press('r');
  await p.waitForURL(/#\/runners$/);
  await p.keyboard.press('g');
  await p.keyboard.press('p');
  await p.waitForURL(/#\/pods$/);
  await p.waitForSelector('#pods-search');
  await p.keyboard.press('/');
  assert.equal(await p.evaluate(() => document.activeElement?.id), 'pods-search');
});

step('audit: newest first, details expand, targets link, filters match part of the text', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/audit`);
  await p.waitForSelector('#audit-table');
  const seqs = await p.$$eval('#audit-table tbody tr', (rs) => rs.map((r) => Number(r.dataset.seq)));
  assert.ok(seqs.length > 5 && seqs.every((v, i) => i === 0 || seqs[i - 1] > v), 'newest first: ' + seqs.slice(0, 8));
  const sources = await p.$$eval('#audit-table tbody td:nth-child(6)', (tds) => tds.map((td) => td.textContent));
  assert.ok(sources.every((x) => !x.startsWith('ipv4:')), 'sources read as addresses: ' + Array.from(new Set(sources)));
  await p.fill('#audit-action', 'pod.');
  await p.click('#audit-apply');
  await p.waitForFunction(() => Array.from(document.querySelectorAll('#audit-table tbody td:nth-child(3)')).every((td) => td.textContent.startsWith('pod.')));
  const actions = await p.$$eval('#audit-table tbody td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
  assert.ok(actions.includes('pod.create') && actions.includes('pod.stop'), 'a part matches several actions: ' + Array.from(new Set(actions)));
  await p.click(`#audit-table a[href="#/pods/${s.pods.second}"] >> nth=0`);
  await p.waitForURL(new RegExp(`#/pods/${s.pods.second}$`));
  await p.goBack();
  await p.waitForSelector('#audit-table details.more');
  const d = p.locator('#audit-table details.more').first();
  await d.locator('summary').click();
  assert.equal(await d.getAttribute('open'), '');
  assert.ok(await d.locator('pre').isVisible(), 'the whole details show');
});

step('a member and an admin: whose pod it is, who may take control over from whom, audited', async () => {
  const ctx = await newContext({ width: 1366, height: 768 });
  try {
    const p = await newPage(ctx);
    await login(p, 'zoe', s.zoePassword);
    await waitText(p, '#nav-role', 'member');
    await p.waitForSelector('#pods-table');
    await p.click('#pods-mine');
    await p.waitForSelector('#pods-none');
    await p.goto(`${s.url}/#/pods/${s.pods.run}`);
    await p.waitForSelector('#term-status.conn-live');
    // Admin's pod, not shared (issue 14): zoe watches; take control and stop are disabled with
    // the reason, and only its starter or an admin is offered Share.
    await p.waitForFunction(() => /has not shared it/.test(document.querySelector('#control-btn')?.title || ''));
    assert.ok(await p.isDisabled('#control-btn'), 'no take for a member on an unshared pod of another');
    assert.ok(await p.isDisabled('#stop-pod'), 'no stop for a member on an unshared pod of another');
    assert.match(await p.getAttribute('#stop-pod', 'title'), /admin started this pod and has not shared it/);
    assert.ok(await p.isHidden('#share-pod'), 'only its starter or an admin shares it');
    // The admin shares it from the pod page; then zoe may take control and stop it.
    const sh = await newPage(s.ctx);
    await sh.goto(`${s.url}/#/pods/${s.pods.run}`);
    await waitText(sh, '#share-pod', 'Share');
    await sh.click('#share-pod');
    await waitText(sh, '#share-pod', 'Shared');
    await sh.close();
    assert.equal((await podState(s.pods.run)).shared, true);
    await p.reload();
    await p.waitForSelector('#term-status.conn-live');
    await p.waitForSelector('#control-btn:not([disabled])');
    assert.ok(!(await p.isDisabled('#stop-pod')), 'a shared pod may be stopped by a member');
    await p.click('#control-btn');
    await waitText(p, 'dialog.confirm', "Take control of admin's pod?");
    await p.click('dialog.confirm button:text("Cancel")');
    await waitText(p, '#control-holder', 'Nobody has control');
    // While admin holds it, a member cannot take it over (not her pod, not an admin).
    const a0 = await newPage(s.ctx);
    await a0.goto(`${s.url}/#/pods/${s.pods.run}`);
    await a0.waitForSelector('#control-btn:not([disabled])');
    await a0.click('#control-btn');
    await waitText(a0, '#control-holder', 'You have control');
    await waitText(p, '#control-holder', 'admin has control');
    assert.ok(await p.isDisabled('#control-btn'), 'no take-over for a member on another user\'s pod');
    assert.match(await p.getAttribute('#control-btn', 'title'), /the pod's owner or an admin may take it over/);
    await a0.close();
    await waitText(p, '#control-holder', 'Nobody has control');
    await p.click('#stop-pod');
    await waitText(p, 'dialog.confirm', 'It was started by admin, not you.');
    await p.click('dialog.confirm button:text("Cancel")');
    assert.equal((await podState(s.pods.run)).state, 'running', 'cancel changes nothing');
    // Her own pod: she types; an admin takes control from her (another user), she is told who.
    const r = await p.request.post(s.url + '/api/v1/pods', { headers: { 'X-Airmesh-CSRF': '1' }, data: { repo: s.repo, command: ['sh'] } });
    assert.equal(r.status(), 201, await r.text());
    const mine = (await r.json()).id;
    await until('her pod running', async () => (await podState(mine)).state === 'running');
    await p.goto(`${s.url}/#/pods/${mine}`);
    await p.waitForSelector('#term-status.conn-live');
    await p.waitForSelector('#control-btn:not([disabled])');
    await p.click('#control-btn');
    await waitText(p, '#control-holder', 'You have control');
    const a = s.page;
    await a.goto(`${s.url}/#/pods/${mine}`);
    await waitText(a, '#control-holder', 'zoe has control');
    await waitText(a, '#control-btn', 'Take control from zoe');
    await a.click('#control-btn');
    await waitText(a, 'dialog.confirm', "Take control of zoe's pod?");
    await a.click('dialog.confirm .btn-primary');
    await waitText(a, '#control-holder', 'You have control');
    await waitText(p, '.notice[data-key="taken"]', 'admin took control');
    await waitText(p, '#control-holder', 'admin has control');
    const ev = (await call('GET', '/audit?action=pod.terminal.take&limit=1000')).events.filter((e) => e.target === 'pod:' + mine);
    assert.deepEqual(ev.map((e) => [e.actor, e.details && e.details.from, e.details && e.details.why]),
      [['user:zoe', undefined, undefined], ['user:admin', 'user:zoe', 'taken over']], 'the take-over is audited with whom it was taken from');
    await call('POST', `/pods/${mine}/stop`);
  } finally {
    await ctx.close();
  }
});

// Every page, both widths, both themes: nothing sticks out sideways; a screenshot of each.
const PAGES = [
  ['pods', '#/pods', '#overview[data-loaded] #ov-states'],
  // Narrower than 900 px the facts fold away behind "Details" (the terminal keeps the width).
  ['pod-running', () => '#/pods/' + s.pods.run, '#pod-facts #fact-owner', async (p, w) => {
    await p.waitForSelector('#terminal .xterm-rows');
    if (w < 900) await p.click('#pod-facts-toggle');
  }],
  ['pod-failed', () => '#/pods/' + s.pods.failed, '#pod-failed:not([hidden])'],
  ['pod-ended', () => '#/pods/' + s.pods.done, '#play-recording:not([hidden])'],
  ['runners', '#/runners', '#runners-table'],
  ['activity', '#/activity', '#activity-table'],
  ['audit', '#/audit', '#audit-table'],
  ['teams', '#/teams', '#teams-table'],
  ['users', '#/users', '#users-table'],
  ['orgs', '#/orgs', '#orgs-table'],
  ['account', '#/account', '#password-form'],
  ['pod-form', '#/pods', '#pod-form', async (p) => { await p.waitForSelector('#new-pod'); await p.click('#new-pod'); }],
];

for (const [w, hgt] of [[1366, 768], [390, 844]]) {
  for (const theme of ['light', 'dark']) {
    step(`layout at ${w}×${hgt}, ${theme}: no page sticks out sideways`, async () => {
      const ctx = await newContext({ width: w, height: hgt });
      try {
        const p = await newPage(ctx);
        await p.emulateMedia({ colorScheme: theme });
        // Logged out: the login page.
        await p.goto(s.url + '/#/login');
        await p.waitForSelector('#login-user');
        assert.deepEqual(await layoutProblems(p), [], `login at ${w} ${theme}`);
        await p.screenshot({ path: join(SCREENS, `login-${w}-${theme}.png`), fullPage: true });
        await p.fill('#login-user', 'admin');
        await p.fill('#login-password', s.password);
        await p.press('#login-password', 'Enter');
        await p.waitForSelector('.shell .page-title');
        const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
        assert.equal(bg, theme === 'dark' ? 'rgb(13, 17, 23)' : 'rgb(246, 248, 250)', 'the theme follows the system');
        for (const [name, hash, ready, prep] of PAGES) {
          await p.goto(s.url + '/' + (typeof hash === 'function' ? hash() : hash));
          if (prep) await prep(p, w);
          await p.waitForSelector(ready);
          await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
          assert.deepEqual(await layoutProblems(p), [], `${name} at ${w}×${hgt} ${theme}`);
          await p.screenshot({ path: join(SCREENS, `${name}-${w}-${theme}.png`), fullPage: true });
        }
        if (w < 760) {
          // The sidebar is a top bar whose menu opens on demand.
          assert.ok(!(await p.isVisible('.nav-links')), 'the menu starts closed');
          await p.click('#nav-toggle');
          assert.ok(await p.isVisible('.nav-links a[href="#/runners"]'), 'the menu opens');
          assert.deepEqual(await layoutProblems(p), [], `open menu at ${w} ${theme}`);
          await p.screenshot({ path: join(SCREENS, `menu-${w}-${theme}.png`) });
          await p.click('.nav-links a[href="#/runners"]');
          await p.waitForSelector('#runners-table');
          assert.ok(!(await p.isVisible('.nav-links')), 'and closes after navigating');
          // Stacked table cells carry their column's name.
          assert.equal(await p.getAttribute('#runners-table tbody td:nth-child(2)', 'data-label'), 'State');
        }
      } finally {
        await ctx.close();
      }
    });
  }
}

step('theme: the toggle overrides the system and survives a reload', async () => {
  const ctx = await newContext({ width: 1366, height: 768 });
  try {
    const p = await newPage(ctx);
    await p.emulateMedia({ colorScheme: 'dark' });
    await login(p, 'admin', s.password);
    const bg = () => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(await bg(), 'rgb(13, 17, 23)');
    await waitText(p, '#theme-toggle', 'Theme: system');
    await p.click('#theme-toggle');
    await waitText(p, '#theme-toggle', 'Theme: light');
    assert.equal(await bg(), 'rgb(246, 248, 250)', 'light although the system is dark');
    await p.reload();
    await p.waitForSelector('#theme-toggle');
    assert.equal(await bg(), 'rgb(246, 248, 250)', 'still light after a reload');
    await waitText(p, '#theme-toggle', 'Theme: light');
    await p.click('#theme-toggle');
    await waitText(p, '#theme-toggle', 'Theme: dark');
    await p.emulateMedia({ colorScheme: 'light' });
    assert.equal(await bg(), 'rgb(13, 17, 23)', 'dark although the system is light');
  } finally {
    await ctx.close();
  }
});

step('no CSP violation or page error on any page', async () => {
  assert.deepEqual(problems, []);
});
