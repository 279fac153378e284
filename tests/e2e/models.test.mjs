// End-to-end test of the console's Models page against a real airmeshd and the scripted test
// model server (tests/model_server/server.py): the admin adds an OpenAI-compatible endpoint with
// a key (a password field), sees the self-test (tools ✓ for the model that calls tools, ✗ with
// the reason for the one that answers text), and the key is nowhere on the page afterwards; a
// member, on a 390 px phone, sees the same list read-only (no form, no Test or Remove) with
// nothing sticking out sideways; the admin re-tests and removes the endpoint.
//
//   node --test tests/e2e/            (after `make ui` and a Bazel build of airmeshd)
//
// AIRMESHD, UI_DIR, CHROMIUM as in harness.mjs; screenshots (60-…) go to E2E_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, ARTIFACTS, CHROMIUM, ROOT, T, UI_DIR, launchChromium, layoutProblems, startDaemon, stepper, waitText, signIn, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-models-'));
const s = { daemon: null, browser: null, admin: null, member: null, url: '', password: '', model: null, modelUrl: '' };
const problems = [];
const KEY = 'sk-e2e-secret-7c3a91d0';
const SCRIPT = {
  models: ['good-model', 'texty-model'],
  rules: [
    { when: { model: 'good-model', tool_offered: 'get_time', tool_result: false },
      reply: { tool_call: { name: 'get_time', arguments: { timezone: 'UTC' } } } },
    { when: { model: 'good-model', tool_result: true }, reply: { text: 'It is 12:00 UTC.' } },
    { when: { model: 'texty-model', tool_offered: 'get_time' }, reply: { text: 'Around noon, I think.' } },
  ],
};

async function newUser(viewport = { width: 1280, height: 800 }) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && /csp|Content Security/i.test(m.text())) problems.push(m.text()); });
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, name + '.png'), fullPage: true });


// The test model server on a free port (its number arrives in the port file).
function startModelServer() {
  return new Promise((res, rej) => {
    const dir = join(tmp, 'model');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'script.json'), JSON.stringify(SCRIPT));
    const pf = join(dir, 'port');
    const proc = spawn('/usr/bin/python3', [join(ROOT, 'tests/model_server/server.py'), '--script', join(dir, 'script.json'),
      '--log', join(dir, 'requests.jsonl'), '--port-file', pf], { stdio: 'ignore' });
    const deadline = Date.now() + 20000;
    const poll = () => {
      if (existsSync(pf) && readFileSync(pf, 'utf8').trim()) return res({ proc, url: 'http://127.0.0.1:' + readFileSync(pf, 'utf8').trim() });
      if (proc.exitCode !== null || Date.now() > deadline) return rej(new Error('the test model server did not start'));
      setTimeout(poll, 50);
    };
    poll();
  });
}

const step = stepper();

before(async () => {
  for (const f of [AIRMESHD, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build airmeshd and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  s.model = await startModelServer();
  s.modelUrl = s.model.url;
  Object.assign(s, await startDaemon(tmp));
  s.browser = await launchChromium();
  s.admin = await newUser();
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.daemon]);
  if (s.model?.proc && s.model.proc.exitCode === null) s.model.proc.kill('SIGTERM');
  saveLogs(tmp, ['airmeshd.log'], () => 'airmeshd-models.log');
  rmSync(tmp, { recursive: true, force: true });
});

step('admin: adds an endpoint with a key and sees its self-test', async () => {
  const p = s.admin;
  await p.goto(s.url + '/#/models');
  await signIn(p, 'admin', s.password);
  await waitText(p, '.page-title', 'Models');
  assert.equal(await p.locator('.nav-links a[href="#/models"]').count(), 1, 'Models is in the sidebar');
  await waitText(p, '.empty', 'No model endpoints yet');
  await p.click('#add-model-open');
  assert.equal(await p.getAttribute('#model-key', 'type'), 'password');
  await p.fill('#model-name', 'local');
  await p.selectOption('#model-api', 'openai');
  await p.fill('#model-url', s.modelUrl + '/v1');
  await p.fill('#model-key', KEY);
  await p.fill('#model-models', 'good-model, texty-model');
  await p.click('#add-model');
  await p.waitForSelector('#models-table tr[data-model-endpoint="local"]');
  await waitText(p, '.messages', 'Endpoint local is added and tested');
  const row = '#models-table tr[data-model-endpoint="local"]';
  assert.equal(await p.getAttribute(`${row} .model-check[data-model="good-model"]`, 'data-tools'), 'yes');
  assert.equal(await p.getAttribute(`${row} .model-check[data-model="texty-model"]`, 'data-tools'), 'no');
  assert.match(await p.textContent(`${row} .model-check[data-model="good-model"]`), /tools ✓/);
  assert.match(await p.textContent(`${row} .model-check[data-model="texty-model"]`), /tools ✗/);
  assert.match(await p.textContent(`${row} .model-test-errors`), /answered with text instead of calling get_time/);
  assert.match(await p.textContent(row), /set/); // the key column says there is one
  // The key was sent once: the field is empty and the page (and its list answer) never has it.
  assert.equal(await p.inputValue('#model-key'), '');
  assert.ok(!(await p.content()).includes(KEY), 'the key is not on the page');
  const list = await p.evaluate(async () => (await fetch('/api/v1/models')).text());
  assert.ok(list.includes('good-model') && !list.includes(KEY), 'the list answer carries no key');
  await shot(p, '60-models-admin');
  // a member for the next step, made through the API with the admin's session
  const st = await p.evaluate(async () => (await fetch('/api/v1/users', {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Airmesh-CSRF': '1' },
    body: JSON.stringify({ name: 'mo', role: 'member', password: 'mo-password-1234' }),
  })).status);
  assert.equal(st, 201);
});

step('member: sees the endpoint and its self-test read-only on a phone', async () => {
  s.member = await newUser({ width: 390, height: 844 });
  const p = s.member;
  await p.goto(s.url + '/#/models');
  await signIn(p, 'mo', 'mo-password-1234');
  await waitText(p, '.page-title', 'Models');
  const row = '#models-table tr[data-model-endpoint="local"]';
  await p.waitForSelector(row);
  assert.equal(await p.getAttribute(`${row} .model-check[data-model="good-model"]`, 'data-tools'), 'yes');
  assert.equal(await p.getAttribute(`${row} .model-check[data-model="texty-model"]`, 'data-tools'), 'no');
  assert.equal(await p.locator('#model-form, #add-model-open').count(), 0, 'no add form for members');
  assert.equal(await p.locator(`${row} button`).count(), 0, 'no Test or Remove for members');
  await waitText(p, '#models-readonly', 'needs the admin role');
  assert.ok(!(await p.content()).includes(KEY));
  // The API agrees with the page: a member's add is refused.
  const st = await p.evaluate(async (u) => (await fetch('/api/v1/models', {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Airmesh-CSRF': '1' },
    body: JSON.stringify({ name: 'mine', api: 'openai', url: u }),
  })).status, s.modelUrl + '/v1');
  assert.equal(st, 403);
  assert.deepEqual(await layoutProblems(p), []);
  await shot(p, '61-models-member-390');
});

step('admin: the page fits a phone, re-tests and removes the endpoint', async () => {
  const p = s.admin;
  await p.setViewportSize({ width: 390, height: 844 });
  await p.reload();
  await p.waitForSelector('#models-table tr[data-model-endpoint="local"]');
  await p.click('#add-model-open'); // the form too
  assert.deepEqual(await layoutProblems(p), []);
  await shot(p, '62-models-admin-390');
  await p.setViewportSize({ width: 1280, height: 800 });
  const row = '#models-table tr[data-model-endpoint="local"]';
  const logged = () => readFileSync(join(tmp, 'model', 'requests.jsonl'), 'utf8').split('\n').filter((l) => l).length;
  const before = logged();
  await p.click(`${row} button[data-action="test"]`);
  await waitText(p, '.messages', 'Endpoint local is tested again');
  await p.waitForSelector(`${row} .model-check[data-model="good-model"][data-tools="yes"]`);
  assert.ok(logged() > before, 'the re-test reached the model server again');
  await p.click(`${row} button[data-action="remove"]`);
  await p.click('dialog.confirm .btn-danger');
  await waitText(p, '.messages', 'Endpoint local is removed');
  await waitText(p, '.empty', 'No model endpoints yet');
  assert.deepEqual(problems, []);
});
