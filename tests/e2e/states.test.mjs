// End-to-end test of agent states in the console (issue 12), against a real airmeshd, a real
// runner and pods that call airmesh-notify, in Debian's Chromium:
//   - the console never asks for notification permission on page load;
//   - a pod that says `airmesh-notify waiting "need a review"` shows "waiting for input" in the
//     pod list, the overview and its page's header, live (the events stream), and — with
//     notifications off — an in-page toast "p-… is waiting for input: need a review";
//   - with the permission granted (context.grantPermissions) and the nav's toggle turned on, the
//     next waiting pod creates a browser Notification with that title and the message as body
//     (window.Notification is wrapped by an init script that records each construction);
//   - no CSP violation or page error on the way.
//
//   node --test tests/e2e/states.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, startDaemon, launchChromium, waitText, stepper, git, api, signIn, startRunner, runnerOnline, RUNNER, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-states-'));
const s = { daemon: null, runner: null, browser: null, ctx: null, page: null, url: '', pods: {} };
const problems = [];
const step = stepper();

const call = (method, path, body) => api(s.page, s.url, method, path, body);

/** A pod that says it waits (for a review), then sleeps; its id once it runs. */
async function waitingPod(message) {
  const p = await call('POST', '/pods', { repo: s.repo, command: ['sh', '-c', `echo ready; airmesh-notify waiting '${message}'; exec sleep 3600`] });
  return p.id;
}

before(async () => {
  for (const f of [AIRMESHD, RUNNER, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  writeFileSync(join(s.repo, 'README.md'), '# states\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.browser = await launchChromium();
  s.ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } });
  s.ctx.setDefaultTimeout(T);
  await s.ctx.grantPermissions(['notifications'], { origin: s.url });
  // Record every Notification the page makes and every permission request (the real ones keep
  // working underneath: permission is the browser's, granted above).
  await s.ctx.addInitScript(() => {
    const Real = window.Notification;
    window.__notes = [];
    window.__asked = 0;
    class Recorded {
      constructor(title, opts) { window.__notes.push({ title, body: (opts && opts.body) || '' }); this.onclick = null; }
      static get permission() { return Real ? Real.permission : 'default'; }
      static requestPermission() { window.__asked++; return Real ? Real.requestPermission() : Promise.resolve('denied'); }
      close() {}
    }
    window.Notification = Recorded;
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective}`));
  });
  s.page = await s.ctx.newPage();
  s.page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  s.page.on('pageerror', (e) => problems.push('page error: ' + e.message));
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'states-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: admin logs in (nothing asks for notifications), a runner enrolls', async () => {
  const p = s.page;
  await signIn(p, 'admin', s.password, s.url + '/');
  const t = await call('POST', '/runner-tokens', { ttl: '1h' });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline(call);
  await waitText(p, '#notify-toggle', 'Notifications: off');
  assert.equal(await p.evaluate(() => window.__asked), 0, 'no permission request on page load');
});

step('a waiting pod: badge in the list, the overview and its page; a toast while notifications are off', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/pods');
  await p.waitForFunction(() => document.documentElement.dataset.agentWatch === 'live');
  s.pods.a = await waitingPod('need a review');
  await p.waitForSelector(`#pods-table tr[data-pod="${s.pods.a}"] [data-agent-state="waiting"]`);
  await waitText(p, `#pods-table tr[data-pod="${s.pods.a}"] .badge-agent`, 'waiting for input');
  await waitText(p, `#ov-agents li[data-pod="${s.pods.a}"]`, 'waiting for input');
  await waitText(p, '#toasts', `${s.pods.a} is waiting for input: need a review`);
  assert.deepEqual(await p.evaluate(() => window.__notes), [], 'no browser notification while off');
  assert.equal((await call('GET', '/pods/' + s.pods.a)).agent_state, 'waiting');
  await p.screenshot({ path: join(ARTIFACTS, 'states-pods.png') });
  await p.goto(`${s.url}/#/pods/${s.pods.a}`);
  await waitText(p, '.pod-state .badge-agent', 'waiting for input');
  await p.screenshot({ path: join(ARTIFACTS, 'states-pod.png') });
});

step('notifications on (permission granted): the next waiting pod is a browser Notification', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/pods');
  await p.waitForFunction(() => document.documentElement.dataset.agentWatch === 'live');
  await p.click('#notify-toggle');
  await waitText(p, '#notify-toggle', 'Notifications: on');
  s.pods.b = await waitingPod('second opinion wanted');
  await p.waitForFunction((id) => window.__notes.some((n) => n.title === `${id} is waiting for input`), s.pods.b);
  const notes = await p.evaluate(() => window.__notes);
  assert.deepEqual(notes.filter((n) => n.title.startsWith(s.pods.b)), [{ title: `${s.pods.b} is waiting for input`, body: 'second opinion wanted' }]);
  // The choice survives a reload (localStorage), still without asking on load.
  await p.reload();
  await waitText(p, '#notify-toggle', 'Notifications: on');
  assert.equal(await p.evaluate(() => window.__asked), 0);
  for (const id of [s.pods.a, s.pods.b]) await call('POST', `/pods/${id}/stop`, {});
});

step('no CSP violation or page error', async () => {
  assert.deepEqual(problems, []);
});
