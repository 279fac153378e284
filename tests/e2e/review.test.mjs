// End-to-end test of the Review page (issue 13), against a real airmeshd, a real runner and a
// pod that commits inside its sandbox, in Debian's Chromium:
//   - the pod page links to its review; the review shows the pod's commit and its change drawn
//     by diff2html (the file, the added line), computed by the runner while the pod runs;
//   - clicking a line of the diff, writing a comment and "Send comments" delivers it to the pod's
//     terminal as one prompt naming file:line: the pod reads the paste from its terminal, writes
//     it into got.txt and commits it, and the review (reloaded) shows that file's lines;
//   - "Approve & push" on a local repository (the runner holds no credentials for it) turns the
//     badge to "ready";
//   - no CSP violation or page error on the way (diff2html's markup carries no inline styles).
//
//   node --test tests/e2e/review.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, startDaemon, launchChromium, waitText, stepper, git, until, api, signIn, startRunner, runnerOnline, RUNNER, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-review-'));
const s = { daemon: null, runner: null, browser: null, ctx: null, page: null, url: '', pod: null };
const problems = [];
const step = stepper();

// The pod: commit a file, then read its terminal; each bracketed paste it gets is written to
// got.txt and committed (so the review shows what arrived), and "GOT-PROMPT" is printed.
const POD = String.raw`
import os, subprocess, sys, tty
def git(*a):
    subprocess.run(["git", "-c", "user.email=p@x", "-c", "user.name=pod", *a], check=True)
with open("added.txt", "w") as f:
    f.write("hello\n")
git("add", "-A")
git("commit", "-qm", "add greeting")
tty.setraw(0)
sys.stdout.write("READY\r\n"); sys.stdout.flush()
buf = b""
while True:
    d = os.read(0, 65536)
    if not d:
        break
    buf += d
    if b"\x1b[201~" in buf:
        text = buf.split(b"\x1b[200~", 1)[-1].split(b"\x1b[201~", 1)[0].decode()
        buf = b""
        with open("got.txt", "w") as f:
            f.write(text + "\n")
        git("add", "-A")
        git("commit", "-qm", "got the review")
        sys.stdout.write("GOT-PROMPT\r\n"); sys.stdout.flush()
`;

const call = (method, path, body) => api(s.page, s.url, method, path, body);

before(async () => {
  for (const f of [AIRMESHD, RUNNER, join(UI_DIR, 'index.html'), join(UI_DIR, 'diff2html.css'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  writeFileSync(join(s.repo, 'README.md'), '# review\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.browser = await launchChromium();
  s.ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  s.ctx.setDefaultTimeout(T);
  await s.ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  s.page = await s.ctx.newPage();
  s.page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text()); });
  s.page.on('pageerror', (e) => problems.push('page error: ' + e.message));
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'review-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: admin logs in, a runner enrolls, a pod commits a change and waits', async () => {
  const p = s.page;
  await signIn(p, 'admin', s.password, s.url + '/');
  const t = await call('POST', '/runner-tokens', { ttl: '1h' });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline(call);
  s.pod = await call('POST', '/pods', { repo: s.repo, base_ref: 'main', command: ['python3', '-c', POD] });
  await until('the pod running', async () => (await call('GET', '/pods/' + s.pod.id)).state === 'running');
});

step('the pod page links to the review, which shows the commit and the diff', async () => {
  const p = s.page;
  await p.goto(`${s.url}/#/pods/${s.pod.id}`);
  await p.click('#review-link');
  await p.waitForURL(/\/review$/);
  await waitText(p, '#review-branch', s.pod.branch);
  await waitText(p, '#review-commits', 'add greeting');
  await waitText(p, '#review-summary-line', '1 commit, 1 file changed, +1 −0');
  await waitText(p, '#review-diff .d2h-file-name', 'added.txt');
  const row = p.locator('#review-diff tr[data-file="added.txt"][data-line="1"]');
  await row.waitFor();
  assert.match(await row.textContent(), /hello/);
  await waitText(p, '#review-state', 'not reviewed');
  // The file list's links scroll within the page; they do not leave it.
  await p.click('#review-diff .d2h-file-list a');
  assert.match(p.url(), new RegExp(`#/pods/${s.pod.id}/review$`));
  await waitText(p, '#review-branch', s.pod.branch);
});

step('a line comment arrives in the pod\'s terminal as one prompt', async () => {
  const p = s.page;
  await p.click('#review-diff tr[data-file="added.txt"][data-line="1"]');
  await waitText(p, '#review-target', 'Comment on added.txt:1');
  await p.fill('#review-comment-text', 'please greet the world');
  await p.click('#review-comment-add');
  await waitText(p, '#review-pending', 'added.txt:1');
  await waitText(p, '#review-send', 'Send 1 comment');
  await p.click('#review-send');
  await waitText(p, '#review-messages', 'Sent to the pod as one prompt.');
  // The pod committed what its terminal received: the review shows it.
  await until('the pod to commit the prompt', async () =>
    (await call('GET', `/pods/${s.pod.id}/review`)).commits.some((c) => c.summary === 'got the review'));
  await p.reload();
  await waitText(p, '#review-commits', 'got the review');
  await waitText(p, '#review-diff', 'Review of your branch ' + s.pod.branch);
  await p.screenshot({ path: join(ARTIFACTS, 'review.png'), fullPage: true });
  const got = p.locator('#review-diff tr[data-file="got.txt"]');
  assert.match(await got.allTextContents().then((t) => t.join('\n')), /added\.txt:1: please greet the world/);
});

step('approve on a repository the runner cannot push to marks it ready', async () => {
  const p = s.page;
  await p.click('#review-approve');
  await waitText(p, '#review-messages', 'marked ready');
  await waitText(p, '#review-state', 'ready');
  assert.equal((await call('GET', '/pods/' + s.pod.id)).review_state, 'ready');
  await p.click('#review-back');
  await waitText(p, '#review-link', 'Review: ready');
  assert.deepEqual(problems, []);
  await call('POST', `/pods/${s.pod.id}/stop`, {});
});
