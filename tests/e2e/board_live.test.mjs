// End-to-end test of the live Board and the ticket editors (issue 13) against a real airmeshd in
// Debian's Chromium:
//   - ann has the board open; tickets ben creates and moves through the API (his own browser
//     context and session) appear and move on her board without a reload (the events stream);
//   - a ticket ben creates while ann is in the middle of a drag does not disturb the drag: the
//     board holds the news (data-stale) with the dragged card still the same element, the drop
//     lands, and then the new ticket shows;
//   - on a ticket, ann sets the assignee (a user, then a pod-less choice: unassigned and back),
//     labels, the parent, blocks and blocked by from the editors; all of it is still there after
//     a reload and in the API;
//   - a blocks cycle and a parent cycle are refused with the appliance's reason on the page and
//     change nothing;
//   - at 390 px the board and the editors fit and work; no CSP violation or page error.
//
//   node --test tests/e2e/board_live.test.mjs   (after `make ui` and a Bazel build of airmeshd)
//
// AIRMESHD, UI_DIR, CHROMIUM as in harness.mjs; screenshots (75-…) go to E2E_SCREENS.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, ARTIFACTS, CHROMIUM, T, UI_DIR, bin, launchChromium, layoutProblems, startDaemon, stepper, waitText, signIn, apiFetch, stopAll, saveLogs } from './harness.mjs';

const SCREENS = bin('E2E_SCREENS', 'test-artifacts/screens');
const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-board-live-'));
const s = { daemon: null, browser: null, admin: null, ann: null, ben: null, url: '', password: '', t: {} };
const problems = [];
const step = stepper();

async function newUser(viewport = { width: 1280, height: 800 }) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`csp-violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.text().startsWith('csp-violation:')) problems.push(m.text() + ' at ' + page.url()); });
  return page;
}

const login = (page, user, password, hash = '#/board') => signIn(page, user, password, s.url + '/' + hash);

// A REST call with that page's session (its own cookie: "another context").
const call = (page, method, path, body, ok = true) => apiFetch(page, s.url, method, path, body, ok);
const ticket = async (key) => (await call(s.ann, 'GET', '/tickets/' + key)).doc;
const card = (status, key) => `.board-cards[data-status="${status}"] .ticket-card[data-key="${key}"]`;
const shot = (page, name) => page.screenshot({ path: join(SCREENS, name + '.png'), fullPage: true });

before(async () => {
  for (const f of [AIRMESHD, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build airmeshd and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  mkdirSync(SCREENS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.browser = await launchChromium();
  s.admin = await newUser();
  await login(s.admin, 'admin', s.password);
  for (const [name, dn] of [['ann', 'Ann'], ['ben', 'Ben Ütz']]) {
    await call(s.admin, 'POST', '/users', { name, role: 'member', password: name + '-password-123', display_name: dn });
  }
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.daemon]);
  saveLogs(tmp, ['airmeshd.log'], () => 'airmeshd-board-live.log');
  rmSync(tmp, { recursive: true, force: true });
});

step('a ticket created and moved by someone else shows on an open board without a reload', async () => {
  s.ann = await newUser();
  s.ben = await newUser();
  await login(s.ann, 'ann', 'ann-password-123');
  await login(s.ben, 'ben', 'ben-password-123');
  const a = s.ann;
  await waitText(a, '.page-title', 'Board');
  await a.waitForSelector('#board[data-live="1"]');
  // mark the page: a reload would lose it
  await a.evaluate(() => { window.__same = 'no reload'; });
  const made = (await call(s.ben, 'POST', '/tickets', { title: 'Made by Ben elsewhere', status: 'todo' })).doc;
  s.t.ben = made.key;
  await a.waitForSelector(card('todo', made.key));
  assert.match(await a.textContent(card('todo', made.key)), /Made by Ben elsewhere/);
  await call(s.ben, 'PATCH', '/tickets/' + made.key, { status: 'in_progress' });
  await a.waitForSelector(card('in_progress', made.key));
  assert.equal(await a.locator(card('todo', made.key)).count(), 0, 'moved, not copied');
  assert.equal(await a.evaluate(() => window.__same), 'no reload');
});

step('news during a drag waits for the drop; the drag is not lost', async () => {
  const a = s.ann;
  const x = (await call(a, 'POST', '/tickets', { title: 'Drag me while others work', status: 'todo' })).doc;
  s.t.x = x.key;
  await a.waitForSelector(card('todo', x.key));
  await a.evaluate((sel) => { document.querySelector(sel).__mark = 'the dragged card'; }, card('todo', x.key));
  // positive control: the board is still following the stream right before the drag
  const loads = Number(await a.getAttribute('#board', 'data-loads'));
  // a drag as a mouse does it: press on the card, move over In progress, keep the button down
  const from = await a.locator(card('todo', x.key)).boundingBox();
  const to = await a.locator('.board-col[data-status="in_progress"]').boundingBox();
  await a.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await a.mouse.down();
  await a.mouse.move(from.x + from.width / 2 + 10, from.y + from.height / 2 + 10, { steps: 3 });
  await a.mouse.move(to.x + to.width / 2, to.y + 40, { steps: 8 });
  await a.waitForSelector('.ticket-card.dragging');
  const during = (await call(s.ben, 'POST', '/tickets', { title: 'Created during the drag', status: 'todo' })).doc;
  await a.waitForSelector('#board[data-stale="1"]'); // the news arrived and is being held
  assert.equal(await a.locator(`.ticket-card[data-key="${during.key}"]`).count(), 0, 'not drawn under the drag');
  assert.equal(await a.evaluate((k) => document.querySelector(`.ticket-card[data-key="${k}"]`)?.__mark, x.key), 'the dragged card', 'the dragged card is the same element');
  await a.mouse.up();
  await a.waitForSelector(card('in_progress', x.key));
  await a.waitForSelector(card('todo', during.key)); // drawn once the drop is done
  await a.waitForFunction(() => !document.querySelector('#board').dataset.stale);
  assert.ok(Number(await a.getAttribute('#board', 'data-loads')) > loads);
  assert.equal((await ticket(x.key)).status, 'in_progress', 'the drop was saved');
  await a.reload();
  await a.waitForSelector(card('in_progress', x.key));
  await shot(a, '75-board-live');
});

step('the editors set assignee, labels, parent, blocks and blocked by; all of it survives a reload', async () => {
  const a = s.ann;
  const parent = (await call(a, 'POST', '/tickets', { title: 'The epic' })).doc.key;
  const blocked = (await call(a, 'POST', '/tickets', { title: 'Waits for x' })).doc.key;
  const blocker = (await call(a, 'POST', '/tickets', { title: 'Must go first' })).doc.key;
  Object.assign(s.t, { parent, blocked, blocker });
  const x = s.t.x;
  await a.goto(s.url + '/#/board/' + x);
  await a.waitForSelector('#ticket-assignee');
  // assignee: a user by display name
  await a.selectOption('#ticket-assignee', 'user:ben');
  await waitText(a, '#ticket-saved', 'Assigned to ben');
  // labels: two added (Enter and the button), one removed
  await a.fill('#ticket-label-add', 'frontend');
  await a.press('#ticket-label-add', 'Enter');
  await a.waitForSelector('#ticket-label-chips [data-value="frontend"]');
  await a.fill('#ticket-label-add', 'needs-review');
  await a.click('#ticket-label-add-btn');
  await a.waitForSelector('#ticket-label-chips [data-value="needs-review"]');
  await a.fill('#ticket-label-add', 'oops');
  await a.press('#ticket-label-add', 'Enter');
  await a.waitForSelector('#ticket-label-chips [data-value="oops"]');
  await a.click('#ticket-label-chips [data-value="oops"] .chip-remove');
  await a.waitForFunction(() => !document.querySelector('#ticket-label-chips [data-value="oops"]'));
  // parent, typed in lower case (keys are case-insensitive)
  await a.fill('#ticket-parent', parent.toLowerCase());
  await a.click('#ticket-parent-save');
  await a.waitForSelector('#ticket-parent-link');
  assert.equal(await a.textContent('#ticket-parent-link'), parent);
  // blocks and blocked by
  await a.fill('#ticket-block-add', blocked);
  await a.press('#ticket-block-add', 'Enter');
  await a.waitForSelector(`#ticket-block-chips [data-value="${blocked}"]`);
  await a.fill('#ticket-blocked-add', blocker);
  await a.press('#ticket-blocked-add', 'Enter');
  await a.waitForSelector(`#ticket-blocked-chips [data-value="${blocker}"]`);
  await a.reload();
  await a.waitForSelector('#ticket-assignee');
  assert.equal(await a.inputValue('#ticket-assignee'), 'user:ben');
  assert.deepEqual(await a.$$eval('#ticket-label-chips [data-value]', (els) => els.map((e) => e.dataset.value)), ['frontend', 'needs-review']);
  assert.equal(await a.textContent('#ticket-parent-link'), parent);
  assert.deepEqual(await a.$$eval('#ticket-block-chips [data-value]', (els) => els.map((e) => e.dataset.value)), [blocked]);
  assert.deepEqual(await a.$$eval('#ticket-blocked-chips [data-value]', (els) => els.map((e) => e.dataset.value)), [blocker]);
  const t = await ticket(x);
  assert.equal(t.assignee, 'user:ben');
  assert.deepEqual(t.labels, ['frontend', 'needs-review']);
  assert.equal(t.parent, parent);
  assert.deepEqual(t.blocks, [blocked]);
  assert.deepEqual(t.blocked_by, [blocker]);
  assert.deepEqual((await ticket(blocker)).blocks, [x], 'blocked by is the other ticket\'s blocks');
  assert.deepEqual((await ticket(blocked)).blocked_by, [x]);
  // unassign and assign back: the empty choice is "none" in the API
  await a.selectOption('#ticket-assignee', '');
  await waitText(a, '#ticket-saved', 'Unassigned');
  assert.equal((await ticket(x)).assignee, '');
  await a.selectOption('#ticket-assignee', 'user:ann');
  await waitText(a, '#ticket-saved', 'Assigned to ann');
  await shot(a, '76-ticket-editors');
});

step('a cycle is refused with the appliance\'s reason and changes nothing', async () => {
  const a = s.ann;
  const { x, blocked, parent } = s.t;
  // x blocks `blocked`; making `blocked` block x would close a loop
  await a.goto(s.url + '/#/board/' + blocked);
  await a.waitForSelector('#ticket-block-add');
  await a.fill('#ticket-block-add', x);
  await a.press('#ticket-block-add', 'Enter');
  await a.waitForSelector('#ticket-error');
  const msg = await a.textContent('#ticket-error');
  assert.match(msg, new RegExp(`${x} already blocks ${blocked}.*cycle`), msg);
  assert.equal(await a.locator(`#ticket-block-chips [data-value="${x}"]`).count(), 0, 'the editor shows what is stored');
  assert.deepEqual((await ticket(blocked)).blocks, []);
  // the same loop from the other editor: x blocked by `blocked`
  await a.goto(s.url + '/#/board/' + x);
  await a.waitForSelector('#ticket-blocked-add');
  await a.fill('#ticket-blocked-add', blocked);
  await a.press('#ticket-blocked-add', 'Enter');
  await a.waitForSelector('#ticket-error');
  assert.match(await a.textContent('#ticket-error'), /cycle/);
  assert.deepEqual((await ticket(x)).blocked_by, [s.t.blocker]);
  // parents: the epic under its own child
  await a.goto(s.url + '/#/board/' + parent);
  await a.waitForSelector('#ticket-parent');
  await a.fill('#ticket-parent', x);
  await a.click('#ticket-parent-save');
  await a.waitForSelector('#ticket-error');
  assert.match(await a.textContent('#ticket-error'), new RegExp(`parent: ${x} descends from ${parent} \\(a cycle\\)`, "i"));
  assert.equal((await ticket(parent)).parent, '');
  assert.equal(await a.inputValue('#ticket-parent'), '', 'the field shows what is stored again');
});

step('390 px: the live board and the editors fit and work', async () => {
  const phone = await newUser({ width: 390, height: 844 });
  await login(phone, 'ann', 'ann-password-123');
  await phone.waitForSelector(card('in_progress', s.t.x));
  await phone.waitForSelector('#board[data-live="1"]');
  const late = (await call(s.ben, 'POST', '/tickets', { title: 'Seen on a phone', status: 'todo' })).doc.key;
  await phone.waitForSelector(card('todo', late));
  assert.deepEqual(await layoutProblems(phone), []);
  await shot(phone, '77-board-live-390');
  await phone.goto(s.url + '/#/board/' + s.t.x);
  await phone.waitForSelector('#ticket-label-add');
  assert.deepEqual(await layoutProblems(phone), []);
  for (const sel of ['#ticket-assignee', '#ticket-label-add', '#ticket-parent', '#ticket-block-add', '#ticket-blocked-add']) {
    const b = await phone.locator(sel).boundingBox();
    assert.ok(b && b.x >= 0 && b.x + b.width <= 390 && b.width >= 80, `${sel} is on screen and wide enough to use: ${JSON.stringify(b)}`);
  }
  await phone.fill('#ticket-label-add', 'phone');
  await phone.press('#ticket-label-add', 'Enter');
  await phone.waitForSelector('#ticket-label-chips [data-value="phone"]');
  assert.deepEqual((await ticket(s.t.x)).labels, ['frontend', 'needs-review', 'phone']);
  await shot(phone, '78-ticket-editors-390');
  assert.deepEqual(problems, []);
});
