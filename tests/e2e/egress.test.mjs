// End-to-end test of a pod's egress on its console page (issue 12), against a real airmeshd, a
// real runner and a TCP echo server on the host's loopback (an allowed on-prem host), in
// Debian's Chromium:
//   - a pod with network host shows its policy in red; one with allow names its host:ports;
//   - the allow pod's egress decisions (the connect and close to the allowed echo server, the
//     refusals of an unlisted port) are listed on its page, and a refusal made while the page is
//     open appears without a reload (live over /api/v1/events; the page does not poll them).
//
//   node --test tests/e2e/egress.test.mjs   (after `make ui` and a Bazel build of the binaries)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, UI_DIR, ARTIFACTS, CHROMIUM, T, startDaemon, launchChromium, stepper, until, api, signIn, startRunner, runnerOnline, RUNNER, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-egress-'));
const s = { daemon: null, runner: null, browser: null, page: null, url: '', pods: {}, echo: null };
const problems = [];
const step = stepper();

const call = (method, path, body) => api(s.page, s.url, method, path, body);

// In the pod: one CONNECT to the allowed echo server (relays "ping"), then a refused CONNECT
// to an unlisted port every second, until the test stops the pod.
const PROXY_LOOP = `
import os, socket, time
def connect(target, payload=b""):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (target, target)).encode())
    got = b""
    while b"\\r\\n\\r\\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    if payload and b" 200 " in got.split(b"\\r\\n")[0]:
        s.sendall(payload)
        s.recv(4096)
    s.close()
connect(os.environ["ALLOWED"], b"ping")
while True:
    connect(os.environ["UNLISTED"])
    time.sleep(1)
`;

before(async () => {
  for (const f of [AIRMESHD, RUNNER, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build the binaries and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.repo = join(tmp, 'repo');
  mkdirSync(s.repo);
  execFileSync('git', ['init', '-q', '-b', 'main', s.repo]);
  execFileSync('git', ['-C', s.repo, '-c', 'user.email=e@x', '-c', 'user.name=e', 'commit', '-q', '--allow-empty', '-m', 'base']);
  s.echo = createServer((c) => c.pipe(c));
  await new Promise((r) => s.echo.listen(0, '127.0.0.1', r));
  s.browser = await launchChromium();
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } });
  ctx.setDefaultTimeout(T);
  s.page = await ctx.newPage();
  s.page.on('pageerror', (e) => problems.push('page error: ' + e.message));
});

after(async () => {
  for (const id of Object.values(s.pods)) await call('POST', `/pods/${id}/stop`).catch(() => {});
  await s.browser?.close().catch(() => {});
  s.echo?.close();
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'egress-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

step('setup: admin logs in, a runner enrolls, the org allows the echo server', async () => {
  const p = s.page;
  await signIn(p, 'admin', s.password, s.url + '/');
  const t = await call('POST', '/runner-tokens', { ttl: '1h' });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline(call);
  s.allowed = `127.0.0.1:${s.echo.address().port}`;
  await call('PUT', '/orgs/default/egress-allow', { allow: [s.allowed] });
});

step('a host-network pod shows its policy in red', async () => {
  s.pods.host = (await call('POST', '/pods', { repo: s.repo, command: ['sleep', '300'], network: 'host' })).id;
  const p = s.page;
  await p.goto(`${s.url}/#/pods/${s.pods.host}`);
  await p.waitForSelector('#fact-network .net-host');
  assert.equal(await p.textContent('#fact-network'), "host (the runner's network)");
  const color = await p.$eval('#fact-network .net-host', (el) => getComputedStyle(el).color);
  const plain = await p.$eval('#fact-repo', (el) => getComputedStyle(el).color);
  assert.notEqual(color, plain, 'host stands out from the other facts');
  const [r, g, b] = color.match(/\d+/g).map(Number);
  assert.ok(r > 150 && r > 2 * g && r > 2 * b, 'red: ' + color);
});

step('an allow pod lists its egress decisions, live', async () => {
  const unlisted = `127.0.0.1:${s.echo.address().port === 65535 ? 1 : s.echo.address().port + 1}`;
  const pod = await call('POST', '/pods', {
    repo: s.repo, command: ['python3', '-c', PROXY_LOOP], network: 'allow',
    env: { ALLOWED: s.allowed, UNLISTED: unlisted },
  });
  s.pods.allow = pod.id;
  const p = s.page;
  await p.goto(`${s.url}/#/pods/${pod.id}`);
  await p.waitForSelector('#fact-network');
  await until('the policy', async () => (await p.textContent('#fact-network')).includes(s.allowed));
  assert.equal(await p.textContent('#fact-network'), `allow (the model gateway and ${s.allowed})`);
  await p.waitForSelector('#pod-egress-list li.egress-connect');
  await p.waitForSelector('#pod-egress-list li.egress-close');
  assert.match(await p.textContent('#pod-egress-list li.egress-connect'), new RegExp(`${s.allowed} connected`));
  assert.match(await p.textContent('#pod-egress-list li.egress-close'), /closed: 4 bytes up, 4 bytes down/);
  await p.waitForSelector('#pod-egress-list li.egress-refused');
  assert.match(await p.textContent('#pod-egress-list li.egress-refused'), /not on this organization's egress allow list/);
  // Live: refusals made after the page loaded its list arrive while it stays open.
  const n = await p.locator('#pod-egress-list li.egress-refused').count();
  await p.waitForFunction((k) => document.querySelectorAll('#pod-egress-list li.egress-refused').length >= k + 2, n, { timeout: 20000 });
  const { events } = await call('GET', `/audit?action=pod.egress&actor=pod:${pod.id}&limit=1000`);
  assert.ok(events.some((e) => e.result === 'denied' && e.details.port === Number(unlisted.split(':')[1])), 'audited as denied');
  assert.deepEqual(problems, []);
});
