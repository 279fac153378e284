// End-to-end test of the agent catalog and prompts in the console (issue 12), against a real
// airmeshd, two real runners and a git repo made here, in Debian's Chromium:
//   - the new-pod form's Program list offers the catalog's agents the chosen runner has (runner A
//     has a fake `claude` in its --agents-dir, runner B has none): with "Any online runner" and
//     with runner A, Claude Code is offered with its version; with runner B it is disabled and
//     says why; Gemini (on no runner) is disabled; choosing an agent shows the Prompt field;
//   - starting Claude Code with a prompt from the form makes a pod with agent=claude whose
//     command ends with the prompt (the fake prints its arguments);
//   - the pod page's prompt box sends a prompt: the fake reads its raw terminal and prints the
//     bytes it got in hex, so the page's terminal shows the exact bracketed paste and Enter.
//
//   node --test tests/e2e/catalog.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, bin, startDaemon, launchChromium, waitText, stepper, git, until, api, signIn, RUNNER, enrollRunner, runRunner, stopAll, saveLogs } from './harness.mjs';

// Runner A's agents dir: under /tmp (the pods' user must be able to reach it).
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-catalog-'));
const s = { daemon: null, runners: {}, browser: null, page: null, url: '', ids: {}, pod: '' };
const step = stepper();
const hex = (str) => Buffer.from(str, 'utf8').toString('hex');

const READER = `import os, sys, tty
tty.setraw(0)
sys.stdout.write("READY\\r\\n"); sys.stdout.flush()
buf = b""
while True:
    d = os.read(0, 65536)
    if not d:
        break
    buf += d
    while b"\\x1b[201~\\r" in buf:
        one, _, buf = buf.partition(b"\\x1b[201~\\r")
        sys.stdout.write("PASTE:%s:END\\r\\n" % (one + b"\\x1b[201~\\r").hex()); sys.stdout.flush()
`;

const call = (method, path, body) => api(s.page, s.url, method, path, body);

before(async () => {
  for (const f of [AIRMESHD, RUNNER, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  writeFileSync(join(s.repo, 'README.md'), '# catalog\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.agents = join(tmp, 'agents');
  mkdirSync(join(s.agents, 'bin'), { recursive: true });
  writeFileSync(join(s.agents, 'reader.py'), READER);
  writeFileSync(join(s.agents, 'bin', 'claude'), `#!/bin/sh
case "$1" in --version) echo "2.7.1 (Claude Code)"; exit 0;; esac
for a in "$@"; do printf 'ARG[%s]\\r\\n' "$a"; done
exec python3 ${join(s.agents, 'reader.py')}
`);
  chmodSync(join(s.agents, 'bin', 'claude'), 0o755);
  chmodSync(tmp, 0o755);
  s.browser = await launchChromium();
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  ctx.setDefaultTimeout(T);
  s.page = await ctx.newPage();
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([...Object.values(s.runners), s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner-a.log', 'runner-b.log'], (f) => 'catalog-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: admin logs in, runner A (with claude) and runner B (without) enroll', async () => {
  const p = s.page;
  await signIn(p, 'admin', s.password, s.url + '/');
  for (const k of ['a', 'b']) {
    const t = await call('POST', '/runner-tokens', { ttl: '1h' });
    enrollRunner(t.command, join(tmp, 'runner-' + k));
    s.ids[k] = JSON.parse(readFileSync(join(tmp, 'runner-' + k, 'runner.json'), 'utf8')).runner_id;
    const extra = k === 'a' ? ['--agents-dir', s.agents] : [];
    s.runners[k] = runRunner(join(tmp, 'runner-' + k), join(tmp, `runner-${k}.log`), extra);
  }
  await until('both runners online', async () => (await call('GET', '/runners')).runners.filter((r) => r.state === 'online').length === 2);
  const { agents } = await call('GET', '/agents');
  assert.deepEqual(agents.find((a) => a.name === 'claude').runners.map((r) => [r.id, r.version]), [[s.ids.a, '2.7.1']]);
});

step('new-pod form: the Program list offers the agents the chosen runner has', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/pods');
  await p.click('#new-pod');
  await p.waitForSelector('#pod-preset option[value="agent:claude"]', { state: 'attached' });
  const opt = (v) => p.$eval(`#pod-preset option[value="${v}"]`, (o) => ({ text: o.textContent, disabled: o.disabled }));
  assert.deepEqual(await opt('agent:claude'), { text: 'Claude Code 2.7.1', disabled: false }, 'any online runner: runner A has it');
  assert.deepEqual(await opt('agent:gemini'), { text: 'Gemini CLI (not on any online runner)', disabled: true });
  await p.selectOption('#pod-runner', s.ids.b);
  assert.deepEqual(await opt('agent:claude'), { text: 'Claude Code (not on this runner)', disabled: true }, 'runner B lacks it');
  await p.selectOption('#pod-runner', s.ids.a);
  assert.equal((await opt('agent:claude')).disabled, false);
  assert.ok(await p.isHidden('#pod-prompt'), 'no prompt field for a shell');
  await p.selectOption('#pod-preset', 'agent:claude');
  await p.waitForSelector('#pod-prompt', { state: 'visible' });
  await p.fill('#pod-repo', s.repo);
  await p.fill('#pod-prompt', 'fix the bug from the form');
  await p.click('#pod-form button[type="submit"]');
  await p.waitForURL(/#\/pods\/p-[0-9a-f]{12}$/);
  s.pod = p.url().split('/').pop();
  const pod = await call('GET', '/pods/' + s.pod);
  assert.equal(pod.agent, 'claude');
  assert.equal(pod.runner, s.ids.a);
  assert.deepEqual(pod.command, ['claude', '--dangerously-skip-permissions', 'fix the bug from the form']);
});

step('pod page: the prompt box sends a bracketed paste and Enter to the program', async () => {
  const p = s.page;
  await p.waitForSelector('#terminal .xterm-rows');
  await waitText(p, '#terminal .xterm-rows', 'ARG[fix the bug from the form]');
  await waitText(p, '#terminal .xterm-rows', 'READY');
  await p.waitForSelector('#prompt-box:not([hidden])');
  await p.fill('#prompt-text', 'hello from the box');
  await p.click('#prompt-send');
  await waitText(p, '.term-notices', 'Prompt sent (18 bytes)');
  const want = 'PASTE:' + hex('\x1b[200~hello from the box\x1b[201~\r') + ':END';
  // The terminal wraps the long hex line: compare without the row breaks.
  await p.waitForFunction((w) => [...document.querySelectorAll('#terminal .xterm-rows > div')].map((d) => d.textContent.trimEnd()).join('').includes(w), want, { timeout: T });
  // Ctrl+Enter sends too.
  await p.fill('#prompt-text', 'second');
  await p.press('#prompt-text', 'Control+Enter');
  const want2 = 'PASTE:' + hex('\x1b[200~second\x1b[201~\r') + ':END';
  await p.waitForFunction((w) => [...document.querySelectorAll('#terminal .xterm-rows > div')].map((d) => d.textContent.trimEnd()).join('').includes(w), want2, { timeout: T });
  assert.equal(await p.inputValue('#prompt-text'), '', 'the box is emptied once sent');
  await call('POST', `/pods/${s.pod}/stop`);
  await p.waitForSelector('#prompt-box[hidden]', { state: 'attached' });
});
