// End-to-end test of the console: a real airmeshd serving ui/dist, a real runner enrolled with
// the command the console shows, a git repo made here, and Debian's Chromium driven by
// playwright-core (from ui/'s devDependencies; never a downloaded browser).
//
//   node --test tests/e2e/            (after `make ui` and a Bazel build of the binaries)
//
// Binaries: AIRMESHD, AIRMESHCTL, AIRMESH_RUNNER (default bazel-bin/...), UI_DIR (ui/dist),
// CHROMIUM (/usr/bin/chromium). Screenshots of every page go to E2E_ARTIFACTS
// (test-artifacts/e2e). The steps share one appliance and one browser and run in order; every
// step runs (the terminal WebSocket is part of the appliance: no step skips when it is missing,
// it fails). The last step stops the runner and airmeshd and checks their exit status and logs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, bin, startDaemon, launchChromium, waitText, stepper, stopChecked, git, RUNNER, startRunner, stopAll, saveLogs } from './harness.mjs';

const AIRMESHCTL = bin('AIRMESHCTL', 'bazel-bin/appliance/airmeshctl');

// The runner's data dir (and so the pods' worktrees) lives in /tmp, never under /root.
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-'));
const s = { daemon: null, runner: null, browser: null, ctx: null, page: null, url: '', grpc: '', pod: '' };
const cspViolations = [];

async function shot(name) {
  await s.page.screenshot({ path: join(ARTIFACTS, name + '.png') });
}

const step = stepper();

before(async () => {
  for (const f of [AIRMESHD, AIRMESHCTL, RUNNER, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  // A repository for the pods.
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  writeFileSync(join(s.repo, 'README.md'), '# e2e\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.browser = await launchChromium();
  s.ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  s.ctx.setDefaultTimeout(T);
  // Every CSP violation is reported with the element that caused it.
  await s.ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const t = e.target;
      const what = t && t.tagName ? `<${t.tagName.toLowerCase()} class="${t.className}">` : String(t);
      console.error(`csp-violation: ${e.violatedDirective} by ${what} at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber} sample=${e.sample}`);
    });
  });
  s.page = await s.ctx.newPage();
  s.page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) cspViolations.push(m.text()); });
  s.page.on('pageerror', (e) => cspViolations.push('page error: ' + e.message));
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log']);
  rmSync(tmp, { recursive: true, force: true });
});

step('login refuses a wrong password in words, then logs in', async () => {
  const p = s.page;
  await p.goto(s.url + '/');
  await p.waitForSelector('#login-user', { timeout: T });
  await shot('01-login');
  await p.fill('#login-user', 'admin');
  await p.fill('#login-password', 'wrong');
  await p.press('#login-password', 'Enter');
  await waitText(p, '.form-error', 'wrong password');
  assert.doesNotMatch(await p.textContent('.form-error'), /[{}]/, 'errors are words, not JSON');
  await p.fill('#login-password', s.password);
  await p.press('#login-password', 'Enter');
  await waitText(p, '.page-title', 'Pods');
  await waitText(p, '.empty', 'No pods yet');
  await shot('02-pods-empty');
});

step('runners: a token shows the enroll command; the enrolled runner shows online', async () => {
  const p = s.page;
  await p.click('a[href="#/runners"]');
  await waitText(p, '.empty', 'No runners yet');
  await p.click('#add-runner');
  await p.fill('#token-labels', 'e2e=yes');
  await p.click('text=Create enrollment token');
  await p.waitForSelector('#enroll-command', { timeout: T });
  const cmd = (await p.textContent('#enroll-command')).trim();
  assert.match(cmd, /^airmesh-runner enroll --appliance \S+ --token \S+ --ca-sha256 [0-9a-f]+$/);
  await shot('03-runners-token');
  s.runner = startRunner(cmd, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await p.click('text=Done');
  await p.waitForSelector('#runners-table .badge-online', { timeout: T });
  const row = await p.textContent('#runners-table tbody tr');
  assert.match(row, /e2e=yes/);
  assert.match(row, /in \d+ (days|h)/, 'certificate expiry is shown');
  await shot('04-runners');
});

step('pods: the create form starts a shell pod and opens its terminal', async () => {
  const p = s.page;
  await p.click('a[href="#/pods"]');
  await p.click('#new-pod');
  await p.fill('#pod-repo', s.repo);
  await p.fill('#pod-memory', '512M');
  await p.fill('#pod-env', 'GREETING=hello from e2e');
  await shot('05-pod-form');
  // A bad memory value is explained, not sent.
  await p.fill('#pod-memory', 'lots');
  await p.click('text=Start pod');
  await waitText(p, '#pod-form .form-error', 'Memory is a size');
  await p.fill('#pod-memory', '512M');
  await p.click('text=Start pod');
  await p.waitForURL(/#\/pods\/[A-Za-z0-9_-]+$/, { timeout: T });
  s.pod = p.url().split('/').pop();
  await p.waitForSelector('.pod-state .badge-running', { timeout: T }).catch(async (e) => {
    await shot('06-terminal-failed');
    throw new Error(`the pod is not running: ${await p.innerText('main')}\n${e.message}`);
  });
  await p.waitForSelector('#terminal .xterm-rows', { timeout: T });
  // xterm's styles apply under the strict CSP (no 'unsafe-inline'), without violations.
  const fg = await p.$eval('#terminal .xterm-rows', (el) => getComputedStyle(el).color);
  assert.equal(fg, 'rgb(230, 237, 243)', 'the terminal theme applies');
  const csp = (await p.request.get(s.url + '/')).headers()['content-security-policy'];
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.deepEqual(cspViolations, []);
  // The terminal endpoint exists (a 404 here used to skip every terminal step): a plain GET
  // with the session cookie and no Origin gets its WebSocket rule, not "no such endpoint".
  const probe = await p.request.get(`${s.url}/api/v1/pods/${s.pod}/terminal`);
  const said = await probe.text();
  assert.deepEqual([probe.status(), JSON.parse(said).error?.code], [403, 'origin'], 'the terminal endpoint: ' + said);
  await shot('06-terminal');
});

step('terminal: take control, type echo hello, see the output', async () => {
  const p = s.page;
  await p.waitForSelector('#term-status.conn-live', { timeout: T });
  await p.waitForSelector('#control-btn:not([disabled])', { timeout: T });
  if ((await p.textContent('#control-btn')).startsWith('Take')) await p.click('#control-btn');
  await waitText(p, '#control-holder', 'You have control');
  await p.click('#terminal');
  await p.keyboard.type('echo hel""lo $GREETING\n');
  await waitText(p, '#terminal .xterm-rows', 'hello hello from e2e');
  // 24-bit and palette colours render under the strict CSP (xterm sets them as inline styles).
  await p.keyboard.type("printf '\\033[38;2;255;0;0mTRUE\\033[0m \\033[32mPALETTE\\033[0m\\n'\n");
  await waitText(p, '#terminal .xterm-rows', 'TRUE PALETTE');
  const colour = (word) => p.$$eval('#terminal .xterm-rows span', (spans, w) =>
    spans.filter((el) => el.textContent === w).map((el) => getComputedStyle(el).color).pop(), word);
  assert.equal(await colour('TRUE'), 'rgb(255, 0, 0)');
  assert.equal(await colour('PALETTE'), 'rgb(63, 185, 80)');
  await shot('07-terminal-hello');
});

step('terminal: resizing the window resizes the pod (the holder sends resize)', async () => {
  const p = s.page;
  // `stty size` prints the pod PTY's "ROWS COLS"; the marker tells this answer from older ones.
  const sttySize = async (mark) => {
    await p.keyboard.type(`stty size; echo ${mark}$((6*7))\n`);
    await waitText(p, '#terminal .xterm-rows', `${mark}42`);
    const text = await p.innerText('#terminal .xterm-rows');
    const m = text.match(new RegExp(`(\\d+) (\\d+)\\s*\\n${mark}42`));
    assert.ok(m, 'stty size printed: ' + text);
    return [Number(m[1]), Number(m[2])];
  };
  const screenRows = () => p.evaluate(() => {
    const screen = document.querySelector('#terminal .xterm-screen').getBoundingClientRect();
    const row = document.querySelector('#terminal .xterm-rows > div').getBoundingClientRect();
    return Math.round(screen.height / row.height);
  });
  const [r1, c1] = await sttySize('big');
  assert.equal(r1, await screenRows(), 'the pod has as many rows as the terminal shows');
  await p.setViewportSize({ width: 980, height: 640 });
  // Wait for the conditions themselves: the terminal re-fits to fewer rows, then the pod's PTY
  // reports the same size (the resize reached it). The deadline only bounds a hang.
  await p.waitForFunction((rows) => {
    const screen = document.querySelector('#terminal .xterm-screen').getBoundingClientRect();
    const row = document.querySelector('#terminal .xterm-rows > div').getBoundingClientRect();
    return Math.round(screen.height / row.height) < rows;
  }, r1, { timeout: T });
  let r2 = 0, c2 = 0, shown = 0;
  for (let i = 0, deadline = Date.now() + T; ; i++) {
    [r2, c2] = await sttySize(`small${i}x`);
    shown = await screenRows();
    if (r2 === shown || Date.now() > deadline) break;
  }
  assert.equal(r2, shown, 'after the resize too');
  assert.ok(r2 < r1 && c2 < c1 - 20, `the pod shrank with the window: ${r1}x${c1} -> ${r2}x${c2}`);
  await shot('08-terminal-resized');
  await p.setViewportSize({ width: 1280, height: 800 });
});

step('terminal: a second viewer sees the same output and who has control', async () => {
  const p2 = await s.ctx.newPage();
  try {
    await p2.goto(`${s.url}/#/pods/${s.pod}`);
    await waitText(p2, '#terminal .xterm-rows', 'hello hello from e2e');
    await waitText(p2, '#control-holder', 'admin has control');
    await p2.screenshot({ path: join(ARTIFACTS, '09-terminal-second-viewer.png') });
    // Output typed by the holder reaches the viewer live.
    await s.page.keyboard.type('echo second$((40+2))\n');
    await waitText(p2, '#terminal .xterm-rows', 'second42');
  } finally {
    await p2.close();
  }
});

step('terminal: a dropped connection reconnects from its offset and shows nothing twice', async () => {
  const p2 = await s.ctx.newPage();
  const urls = [];
  let route = null;
  // The page's terminal socket goes through Playwright, which can cut it like a network drop.
  await p2.routeWebSocket(/\/terminal\?offset=/, (ws) => {
    urls.push(ws.url());
    ws.connectToServer();
    route = ws;
  });
  try {
    await p2.goto(`${s.url}/#/pods/${s.pod}`);
    await waitText(p2, '#terminal .xterm-rows', 'second42');
    await p2.waitForSelector('#term-status.conn-live', { timeout: T });
    await route.close({ code: 4000, reason: 'e2e drop' });
    await p2.waitForSelector('#term-status.conn-retry, #term-status.conn-connecting', { timeout: T });
    await p2.waitForSelector('#term-status.conn-live', { timeout: T });
    assert.equal(urls.length, 2, 'one reconnect');
    assert.match(urls[0], /offset=0$/);
    const resumed = Number(new URL(urls[1]).searchParams.get('offset'));
    assert.ok(resumed > 0, 'the reconnect asks for the bytes after the ones shown: ' + urls[1]);
    await s.page.keyboard.type('echo third$((1+2))\n');
    await waitText(p2, '#terminal .xterm-rows', 'third3');
    const text = await p2.innerText('#terminal .xterm-rows');
    assert.equal(text.split('second42').length - 1, 1, 'nothing is shown twice');
  } finally {
    await p2.close();
  }
});

step('terminal: a reload replays the scrollback and resumes live', async () => {
  const p = s.page;
  await p.reload();
  await waitText(p, '#terminal .xterm-rows', 'hello hello from e2e');
  await p.waitForSelector('#term-status.conn-live', { timeout: T });
  await p.waitForSelector('#control-btn:not([disabled])', { timeout: T });
  if ((await p.textContent('#control-btn')).startsWith('Take')) await p.click('#control-btn');
  await waitText(p, '#control-holder', 'You have control');
  await p.click('#terminal');
  await p.keyboard.type('echo after$((1+1))reload\n');
  await waitText(p, '#terminal .xterm-rows', 'after2reload');
  const text = await p.innerText('#terminal .xterm-rows');
  assert.equal(text.split('hello hello from e2e').length - 1, 1, 'the output is shown once, not twice');
  await shot('10-terminal-reloaded');
});

step('stop: the Stop button ends the pod; the list shows it ended', async () => {
  const p = s.page;
  await p.click('#stop-pod');
  await p.click('dialog.confirm .btn-danger');
  await p.waitForSelector('.pod-state .badge-stopped, .pod-state .badge-exited', { timeout: T });
  await p.waitForSelector('.notice[data-key="exit"]', { timeout: T });
  await shot('11-terminal-stopped');
  // The recording (asciicast, uploaded by the runner at the end) downloads from the page.
  await p.waitForSelector('#download-recording:not([hidden])', { timeout: T });
  const [download] = await Promise.all([p.waitForEvent('download'), p.click('#download-recording')]);
  assert.equal(download.suggestedFilename(), `${s.pod}.cast`);
  const cast = readFileSync(await download.path(), 'utf8').split('\n');
  assert.equal(JSON.parse(cast[0]).version, 2);
  assert.match(cast.slice(1).join('\n'), /hello hello from e2e/);
  // Coming back to an ended pod shows its output and why it ended, once.
  await p.reload();
  await p.waitForSelector('#term-status.conn-ended', { timeout: T });
  await waitText(p, '#terminal .xterm-rows', 'after2reload');
  assert.equal(await p.locator('.notice[data-key="exit"]').count(), 1);
  await p.click('a.back');
  await p.waitForSelector(`#pods-table tr[data-pod="${s.pod}"] .badge-stopped, #pods-table tr[data-pod="${s.pod}"] .badge-exited`, { timeout: T });
  await shot('12-pods');
});

step('activity: the latest audit events, newest first', async () => {
  const p = s.page;
  await p.click('a[href="#/activity"]');
  await p.waitForSelector('#activity-table', { timeout: T });
  await waitText(p, '#activity-table', 'pod.stop');
  // Newest first, exactly: the table's first rows are the audit log's latest events (from the
  // API), in the same order. The table is live, so wait until it has caught up.
  let rows = [], latest = [];
  for (const deadline = Date.now() + T; ;) {
    const r = await p.request.get(`${s.url}/api/v1/audit?limit=1000`);
    assert.equal(r.status(), 200);
    latest = (await r.json()).events.sort((a, b) => b.seq - a.seq).slice(0, 5).map((e) => e.action);
    rows = await p.$$eval('#activity-table tbody tr td:nth-child(3)', (tds) => tds.slice(0, 5).map((td) => td.textContent));
    if (JSON.stringify(rows) === JSON.stringify(latest) || Date.now() > deadline) break;
    await p.waitForTimeout(200); // polling pace, not a wait for anything in particular
  }
  assert.deepEqual(rows, latest, 'newest first');
  assert.ok(latest.includes('pod.stop'), latest.join(' '));
  await waitText(p, '#activity-table', 'auth.login');
  await shot('13-activity');
  assert.deepEqual(cspViolations, [], 'no CSP violation or page error on any page');
});

step('shutdown: the runner and airmeshd stop on SIGTERM with exit 0 and no sanitizer report', async () => {
  await stopChecked(s.runner, join(tmp, 'runner.log'), 'airmesh-runner');
  await stopChecked(s.daemon, join(tmp, 'airmeshd.log'), 'airmeshd');
});
