// End-to-end test of the console's Topology page and the pod page's Bindings (issue 13) against a
// real airmeshd, a real runner and real pods, in Debian's Chromium. Assertions read the graph's
// model (cytoscape's elements, classes and computed style) and the DOM, never pixels:
//   - with no pods the page says so; the CSP airmeshd sends is the strict one (positive
//     control), and cytoscape draws under it with no violation reported;
//   - pods started by ann and ben appear as nodes live, labelled by display name;
//   - a binding between pods of different starters (requested by the admin, who may control
//     both) is a dashed pending edge labelled with its scope; accepted through REST by ben (B's
//     starter) it becomes a solid active edge, on ann's open page, without a reload;
//   - a second binding (to ann's pod) is accepted with the pod page's Accept button: ben, who
//     does not control that pod, sees no button; the graph gains that edge;
//   - under the explicit policy a binding between two of ann's pods waits; Reject (with a reason)
//     on the pod page leaves no edge; End on the pod page removes an active edge;
//   - a pod's agent state (airmesh-notify working → waiting) recolours its node live;
//   - an @mention of a pod in a channel draws a traffic edge to the channel's node;
//   - a click on a node opens the pod's page; a pod that ends leaves the graph unless "Ended
//     pods" is ticked; at 390 px (light and dark) the page fits; no CSP violation.
//
//   node --test tests/e2e/topology.test.mjs   (after `make ui` and a Bazel build of the binaries)
//
// AIRMESHD, AIRMESH_RUNNER, UI_DIR, CHROMIUM as in harness.mjs; screenshots go to E2E_SCREENS.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, ARTIFACTS, CHROMIUM, T, UI_DIR, bin, launchChromium, layoutProblems, startDaemon, stepper, waitText, git, until, api, startRunner, runnerOnline, RUNNER, signIn, stopAll, saveLogs } from './harness.mjs';

const SCREENS = bin('E2E_SCREENS', 'test-artifacts/screens');
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-topology-'));
const s = { daemon: null, runner: null, browser: null, admin: null, ann: null, ben: null, url: '', password: '', repo: '', pods: {}, b: {} };
const problems = [];
const step = stepper();

async function newUser(viewport = { width: 1366, height: 800 }) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`));
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text() + ' at ' + page.url()); });
  return page;
}

const login = (page, user, password, hash = '#/topology') => signIn(page, user, password, s.url + '/' + hash);

// A REST call with that page's session.
const call = (page, method, path, body) => api(page, s.url, method, path, body);

// The graph's model, as the page holds it.
const model = (page) => page.evaluate(() => {
  const cy = document.getElementById('topology-graph')?.cy;
  if (!cy) return null;
  return {
    nodes: cy.nodes().map((n) => ({ id: n.id(), label: n.data('label'), look: n.data('look') || '', classes: n.classes(), bg: n.style('background-color') })),
    edges: cy.edges().map((e) => ({ id: e.id(), source: e.source().id(), target: e.target().id(), label: e.data('label'), state: e.data('state') || '', classes: e.classes(), line: e.style('line-style') })),
  };
});
// Wait until every condition holds on the page's graph: {id, cls?, look?, empty?}.
const waitModel = (page, what, conds) => page.waitForFunction((cs) => {
  const cy = document.getElementById('topology-graph')?.cy;
  return !!cy && cs.every((c) => {
    const e = cy.getElementById(c.id);
    if (c.empty) return e.empty();
    return e.nonempty() && (!c.cls || e.hasClass(c.cls)) && (!c.look || e.data('look') === c.look);
  });
}, conds, { timeout: T }).catch(async (e) => {
  throw new Error(`the graph never had ${what}; it has ${JSON.stringify(await model(page))}\n${e.message}`);
});
const edgeOf = (m, id) => m.edges.find((e) => e.id === id);

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
  writeFileSync(join(s.repo, 'README.md'), '# topology\n');
  git(s.repo, 'add', '-A');
  git(s.repo, 'commit', '-qm', 'base');
  s.browser = await launchChromium();
  s.admin = await newUser();
  await login(s.admin, 'admin', s.password, '#/pods');
  for (const [name, dn] of [['ann', 'Ann'], ['ben', 'Ben']]) {
    await call(s.admin, 'POST', '/users', { name, role: 'member', password: name + '-password-123', display_name: dn });
  }
  const t = await call(s.admin, 'POST', '/runner-tokens', { ttl: '1h' });
  s.runner = startRunner(t.command, join(tmp, 'runner'), join(tmp, 'runner.log'));
  await runnerOnline((method, path) => call(s.admin, method, path));
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.runner, s.daemon]);
  saveLogs(tmp, ['airmeshd.log', 'runner.log'], (f) => 'topology-' + f);
  rmSync(tmp, { recursive: true, force: true });
});

/** A running pod of page's user: says it works, waits for one line, then says it waits. */
async function startPod(page, name) {
  const p = await call(page, 'POST', '/pods', {
    repo: s.repo, display_name: name,
    command: ['sh', '-c', 'airmesh-notify working; read line; airmesh-notify waiting "your turn"; exec sleep 3600'],
  });
  await until(`pod ${p.id} running`, async () => (await call(page, 'GET', '/pods/' + p.id)).state === 'running');
  return p.id;
}

step('no pods: the page says so, under the strict CSP', async () => {
  s.ann = await newUser();
  await login(s.ann, 'ann', 'ann-password-123');
  const a = s.ann;
  await waitText(a, '.page-title', 'Topology');
  assert.equal(await a.locator('.nav-links a[href="#/topology"]').count(), 1, 'Topology is in the sidebar');
  await waitText(a, '#topology-empty', 'No pods yet');
  assert.equal(await a.isVisible('#topology-graph'), false);
  // positive control: the policy cytoscape must live with is the strict one
  const res = await a.request.get(s.url + '/');
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /style-src 'self'/, csp);
  assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'/, csp); // ('wasm-unsafe-eval' is the player's)
  assert.deepEqual(problems, []);
});

step('pods appear live as nodes, labelled by name and coloured by agent state', async () => {
  const a = s.ann;
  await a.waitForSelector('#topology-graph[data-live="1"]', { state: 'attached' });
  await a.evaluate(() => { window.__same = 'no reload'; });
  s.ben = await newUser();
  await login(s.ben, 'ben', 'ben-password-123', '#/pods');
  s.pods.a = await startPod(a, 'Alpha');
  s.pods.b = await startPod(s.ben, 'Bravo');
  s.pods.c = await startPod(a, 'Charlie');
  const { a: A, b: B, c: C } = s.pods;
  await waitModel(a, 'three working pods', [A, B, C].map((id) => ({ id, look: 'working' })));
  const m = await model(a);
  const alpha = m.nodes.find((n) => n.id === A);
  assert.match(alpha.label, /^Alpha\nworking$/);
  assert.ok(alpha.classes.includes('look-working'));
  assert.equal(await a.isVisible('#topology-empty'), false);
  assert.equal(await a.textContent(`#topology-pods li[data-pod="${A}"] .dn`), 'Alpha');
  assert.equal(await a.evaluate(() => window.__same), 'no reload');
});

step('a pending binding is a dashed edge; accepted through REST it turns solid, live', async () => {
  const a = s.ann;
  const { a: A, b: B } = s.pods;
  // different starters: the admin may control both; it waits for B's side (ben)
  const b1 = await call(s.admin, 'POST', '/bindings', { from_pod: A, to_pod: B, scopes: ['read'] });
  assert.equal(b1.state, 'pending');
  s.b.ab = b1.id;
  await waitModel(a, 'the pending edge', [{ id: b1.id, cls: 'pending' }]);
  let e = edgeOf(await model(a), b1.id);
  assert.deepEqual([e.source, e.target, e.label, e.line], [A, B, 'read', 'dashed']);
  assert.equal((await model(a)).edges.filter((x) => x.classes.includes('active')).length, 0, 'no active edge yet');
  await call(s.ben, 'POST', `/bindings/${b1.id}/accept`);
  await waitModel(a, 'the active edge', [{ id: b1.id, cls: 'active' }]);
  e = edgeOf(await model(a), b1.id);
  assert.deepEqual([e.source, e.target, e.state, e.line], [A, B, 'active', 'solid']);
  await waitText(a, `#topology-bindings li[data-binding="${b1.id}"]`, 'read, active');
  await a.screenshot({ path: join(SCREENS, 'topology-1366.png'), fullPage: true });
});

step('the pod page\'s Accept adds the second edge; who may not decide gets no button', async () => {
  const a = s.ann;
  const { a: A, b: B } = s.pods;
  const b2 = await call(s.admin, 'POST', '/bindings', { from_pod: B, to_pod: A, scopes: ['read', 'write'] });
  assert.equal(b2.state, 'pending');
  s.b.ba = b2.id;
  // ben started B, not A: he sees the request on A's page but cannot decide it
  await s.ben.goto(`${s.url}/#/pods/${A}`);
  await s.ben.waitForSelector(`#pod-bindings-list li[data-binding="${b2.id}"][data-state="pending"]`);
  assert.equal(await s.ben.locator(`li[data-binding="${b2.id}"] .binding-accept`).count(), 0);
  // ann, A's starter, accepts it on a second page while her topology page stays open
  const pa = await a.context().newPage();
  pa.on('pageerror', (err) => problems.push('page error: ' + err.message));
  await pa.goto(`${s.url}/#/pods/${A}`);
  const row = `#pod-bindings-list li[data-binding="${b2.id}"]`;
  await pa.waitForSelector(`${row}[data-dir="in"][data-state="pending"] .binding-accept`);
  assert.match(await pa.textContent(row), /Bravo may read \+ write this pod/);
  await pa.click(`${row} .binding-accept`);
  await pa.waitForSelector(`${row}[data-state="active"]`);
  await waitText(pa, '#pod-bindings-messages', 'Accepted');
  assert.equal((await call(a, 'GET', '/bindings?pod=' + A)).bindings.find((x) => x.id === b2.id).state, 'active');
  // the open topology gained it (and ben's pod page shows it active too, live)
  await waitModel(a, 'the second active edge', [{ id: b2.id, cls: 'active' }]);
  const m = await model(a);
  assert.equal(m.edges.filter((x) => x.classes.includes('binding') && x.state === 'active').length, 2);
  assert.equal(edgeOf(m, b2.id).label, 'read+write');
  await s.ben.waitForSelector(`#pod-bindings-list li[data-binding="${b2.id}"][data-state="active"]`);
  await pa.screenshot({ path: join(SCREENS, 'pod-bindings-1366.png'), fullPage: true });
  s.pa = pa;
});

step('explicit policy: a request waits; Reject with a reason leaves no edge; End removes one', async () => {
  const a = s.ann;
  const pa = s.pa;
  const { a: A, c: C } = s.pods;
  await call(s.admin, 'PUT', '/orgs/default/binding-policy', { policy: 'explicit' });
  const b3 = await call(a, 'POST', '/bindings', { from_pod: C, to_pod: A, scopes: ['write'] });
  assert.equal(b3.state, 'pending', 'the same starter, but the explicit policy');
  await waitModel(a, 'the third (pending) edge', [{ id: b3.id, cls: 'pending' }]);
  const row = `#pod-bindings-list li[data-binding="${b3.id}"]`;
  await pa.waitForSelector(`${row} .binding-reject`);
  await pa.click(`${row} .binding-reject`);
  await pa.fill('#binding-reason', 'not this one');
  await pa.click('#binding-reason-ok');
  await pa.waitForSelector(`${row}[data-state="rejected"]`);
  await waitText(pa, row, 'Rejected: not this one');
  await waitModel(a, 'no edge for the rejected binding', [{ id: b3.id, empty: true }]);
  // End the first binding from A's page (A is its from side)
  const r1 = `#pod-bindings-list li[data-binding="${s.b.ab}"]`;
  await pa.click(`${r1} .binding-end`);
  await pa.waitForSelector(`${r1}[data-state="ended"]`);
  await waitModel(a, 'no edge for the ended binding', [{ id: s.b.ab, empty: true }, { id: s.b.ba, cls: 'active' }]);
  assert.equal((await call(a, 'GET', '/bindings')).bindings.find((x) => x.id === s.b.ab).state, 'ended');
});

step('an agent state change recolours its node live', async () => {
  const a = s.ann;
  const A = s.pods.a;
  const before = (await model(a)).nodes.find((n) => n.id === A);
  assert.equal(before.look, 'working');
  await call(a, 'POST', `/pods/${A}/prompt`, { text: 'go on' }); // the pod's `read` returns
  await waitModel(a, 'Alpha waiting', [{ id: A, look: 'waiting' }]);
  const after = (await model(a)).nodes.find((n) => n.id === A);
  assert.ok(after.classes.includes('look-waiting') && !after.classes.includes('look-working'));
  assert.notEqual(after.bg, before.bg, 'another colour');
  assert.match(after.label, /waiting for input/);
});

step('an @mention in a channel draws a traffic edge to the channel', async () => {
  const a = s.ann;
  const B = s.pods.b;
  await call(a, 'POST', '/channels', { name: 'ops' });
  await call(a, 'POST', '/channels/ops/messages', { text: `@${B} please look` });
  await waitModel(a, 'the #ops traffic edge', [{ id: `tr:${B}>ops` }, { id: 'ch:ops', cls: 'channel' }]);
  const m = await model(a);
  const e = edgeOf(m, `tr:${B}>ops`);
  assert.deepEqual([e.source, e.target, e.label, e.line], [B, 'ch:ops', '1', 'dotted']);
  assert.equal(m.nodes.find((n) => n.id === 'ch:ops').label, '#ops');
});

step('a click on a node opens the pod\'s page', async () => {
  const a = s.ann;
  const C = s.pods.c;
  const at = await a.evaluate((id) => {
    const g = document.getElementById('topology-graph');
    const p = g.cy.getElementById(id).renderedPosition();
    const r = g.getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  }, C);
  await a.mouse.click(at.x, at.y);
  await a.waitForFunction((id) => location.hash === '#/pods/' + id, C);
  await a.waitForSelector('#pod-bindings');
});

step('a pod that ends leaves the graph, and "Ended pods" shows it again, grey', async () => {
  const a = s.ann;
  const C = s.pods.c;
  await a.goto(s.url + '/#/topology');
  await waitModel(a, 'Charlie', [{ id: C, look: 'working' }]);
  await call(a, 'POST', `/pods/${C}/stop`);
  await waitModel(a, 'no Charlie', [{ id: C, empty: true }]);
  assert.equal(await a.locator(`#topology-pods li[data-pod="${C}"]`).count(), 0);
  await a.check('#topology-ended');
  await waitModel(a, 'Charlie ended', [{ id: C, look: 'ended', cls: 'look-ended' }]);
  await waitText(a, `#topology-pods li[data-pod="${C}"]`, 'ended');
});

step('390 px: the topology fits and the graph is there', async () => {
  const phone = await newUser({ width: 390, height: 844 });
  await login(phone, 'ann', 'ann-password-123');
  await waitModel(phone, 'its edges', [{ id: s.b.ba, cls: 'active' }]);
  await phone.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.deepEqual(await layoutProblems(phone), []);
  const g = await phone.locator('#topology-graph').boundingBox();
  assert.ok(g.width >= 300 && g.height >= 250, `the graph has room: ${JSON.stringify(g)}`);
  await phone.screenshot({ path: join(SCREENS, 'topology-390.png'), fullPage: true });
  // the dark theme: the labels take its text colour (read from the CSS variables), live
  const label = () => phone.evaluate(() => document.getElementById('topology-graph').cy.nodes('.pod').first().style('color'));
  const light = await label();
  await phone.emulateMedia({ colorScheme: 'dark' });
  await phone.waitForFunction((was) => document.getElementById('topology-graph').cy.nodes('.pod').first().style('color') !== was, light);
  assert.deepEqual(await layoutProblems(phone), []);
  await phone.screenshot({ path: join(SCREENS, 'topology-390-dark.png'), fullPage: true });
  await phone.goto(`${s.url}/#/pods/${s.pods.a}`);
  await phone.click('#pod-facts-toggle');
  await phone.waitForSelector(`#pod-bindings-list li[data-binding="${s.b.ba}"]`);
  assert.deepEqual(await layoutProblems(phone), []);
  await phone.screenshot({ path: join(SCREENS, 'pod-bindings-390.png'), fullPage: true });
  assert.deepEqual(problems, []);
});
