// End-to-end test of the console's Board (issue 13) against a real airmeshd: a card dragged from
// To do to In progress (HTML5 drag and drop, as a mouse does it) moves, and keeps its column
// after a reload (the appliance stored it); a drop the appliance refuses (In progress → Done:
// done only from review) snaps back with the appliance's reason; a description carrying
// <script>, an <img onerror> and a javascript: link renders inert (markdown is still markdown:
// the bold text is bold); on a 390 px phone neither the board nor the ticket sticks out
// sideways.
//
//   node --test tests/e2e/            (after `make ui` and a Bazel build of airmeshd)
//
// AIRMESHD, UI_DIR, CHROMIUM as in harness.mjs; screenshots (70-…) go to E2E_ARTIFACTS.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AIRMESHD, ARTIFACTS, CHROMIUM, T, UI_DIR, launchChromium, layoutProblems, startDaemon, stepper, waitText, signIn, stopAll, saveLogs } from './harness.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'airmesh-e2e-board-'));
const s = { daemon: null, browser: null, page: null, url: '', password: '', a: '', b: '' };
const problems = [];
const EVIL = 'Has **bold** text.\n\n<script>window.__pwned = "script"</script>\n\n' +
  '<img src="x" onerror="window.__pwned = \'img\'">\n\n[click me](javascript:window.__pwned=\'link\')\n';

async function newUser(viewport = { width: 1280, height: 800 }) {
  const ctx = await s.browser.newContext({ ignoreHTTPSErrors: true, viewport });
  ctx.setDefaultTimeout(T);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && /csp|Content Security/i.test(m.text())) problems.push(m.text() + ' at ' + page.url()); });
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, name + '.png'), fullPage: true });


// One REST call with the page's session (as the console makes them).
const call = (page, method, path, body) => page.evaluate(async ([m, p, b]) => {
  const r = await fetch('/api/v1' + p, {
    method: m, headers: { 'Content-Type': 'application/json', 'X-Airmesh-CSRF': '1' },
    body: b === undefined ? undefined : JSON.stringify(b),
  });
  return { status: r.status, doc: await r.json() };
}, [method, path, body]);

const card = (status, key) => `.board-cards[data-status="${status}"] .ticket-card[data-key="${key}"]`;

const step = stepper();

before(async () => {
  for (const f of [AIRMESHD, join(UI_DIR, 'index.html'), CHROMIUM]) {
    assert.ok(existsSync(f), `${f} is missing (build airmeshd and run make ui first)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  Object.assign(s, await startDaemon(tmp));
  s.browser = await launchChromium();
  s.page = await newUser();
});

after(async () => {
  await s.browser?.close().catch(() => {});
  await stopAll([s.daemon]);
  saveLogs(tmp, ['airmeshd.log'], () => 'airmeshd-board.log');
  rmSync(tmp, { recursive: true, force: true });
});

step('the board shows tickets in their columns', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/board');
  await signIn(p, 'admin', s.password);
  await waitText(p, '.page-title', 'Board');
  assert.equal(await p.locator('.nav-links a[href="#/board"]').count(), 1, 'Board is in the sidebar');
  // one made in the page's own form, one through the API with the evil description
  await p.fill('#new-ticket-title', 'Drag me along');
  await p.click('#new-ticket button[type="submit"]');
  await waitText(p, '#board-messages', 'added');
  s.a = await p.getAttribute('.board-cards[data-status="todo"] .ticket-card', 'data-key');
  assert.match(s.a, /^DEFAULT-\d+$/);
  const r = await call(p, 'POST', '/tickets', { title: 'Render me safely', description: EVIL, priority: 'high' });
  assert.equal(r.status, 201, JSON.stringify(r.doc));
  s.b = r.doc.key;
  await p.reload();
  await p.waitForSelector(card('backlog', s.b));
  assert.match(await p.textContent(card('backlog', s.b)), /high/);
  await p.waitForSelector(card('todo', s.a));
});

step('drag To do → In progress moves the card, and it stays there after a reload', async () => {
  const p = s.page;
  await p.dragAndDrop(card('todo', s.a), '.board-col[data-status="in_progress"]');
  await p.waitForSelector(card('in_progress', s.a));
  await waitText(p, '#board-messages', 'moved to In progress');
  assert.equal((await call(p, 'GET', '/tickets/' + s.a)).doc.status, 'in_progress');
  await p.reload();
  await p.waitForSelector(card('in_progress', s.a));
  assert.equal(await p.locator(card('todo', s.a)).count(), 0);
  await shot(p, '70-board');
});

step('a refused drop (In progress → Done) snaps back with the reason', async () => {
  const p = s.page;
  await p.dragAndDrop(card('in_progress', s.a), '.board-col[data-status="done"]');
  await p.waitForSelector('#board-refused');
  const msg = await p.textContent('#board-refused');
  assert.match(msg, /in_progress → done is not allowed/);
  assert.match(msg, /stays in In progress/);
  assert.equal(await p.locator(card('done', s.a)).count(), 0, 'not left in Done');
  await p.waitForSelector(card('in_progress', s.a));
  assert.equal((await call(p, 'GET', '/tickets/' + s.a)).doc.status, 'in_progress');
});

step('a description with <script>, onerror and javascript: renders inert', async () => {
  const p = s.page;
  await p.goto(s.url + '/#/board/' + s.b);
  await p.waitForSelector('#ticket-description .markdown');
  assert.equal(await p.textContent('#ticket-description .markdown strong'), 'bold', 'markdown is rendered');
  // positive control: the hostile parts reached the page's ticket
  assert.ok((await call(p, 'GET', '/tickets/' + s.b)).doc.description.includes('<script>'));
  assert.equal(await p.locator('#ticket-description script').count(), 0);
  // the raw HTML is shown as the text it is
  assert.match(await p.textContent('#ticket-description .markdown'), /<script>window.__pwned = "script"<\/script>/);
  assert.match(await p.textContent('#ticket-description .markdown'), /<img src="x" onerror=/);
  assert.equal(await p.locator('#ticket-description [onerror]').count(), 0);
  const hrefs = await p.$$eval('#ticket-description a', (as) => as.map((a) => a.getAttribute('href') || ''));
  assert.ok(hrefs.every((h) => !/^javascript:/i.test(h)), 'no javascript: link: ' + hrefs.join(', '));
  assert.equal(await p.evaluate(() => window.__pwned), undefined, 'nothing ran');
  // a comment goes through the same renderer
  await p.fill('#comment-body', 'a <b>comment</b> <img src=x onerror="window.__pwned=1">');
  await p.click('#ticket-comments button[type="submit"]');
  await waitText(p, '#ticket-comments', 'Comments (1)');
  assert.equal(await p.locator('#ticket-comments [onerror]').count(), 0);
  assert.equal(await p.evaluate(() => window.__pwned), undefined);
});

step('390 px: the board and a ticket do not stick out sideways', async () => {
  const phone = await newUser({ width: 390, height: 844 });
  await phone.goto(s.url + '/#/board');
  await signIn(phone, 'admin', s.password);
  await phone.waitForSelector(card('in_progress', s.a));
  assert.deepEqual(await layoutProblems(phone), []);
  await phone.goto(s.url + '/#/board/' + s.b);
  await phone.waitForSelector('#ticket-description .markdown');
  assert.deepEqual(await layoutProblems(phone), []);
  await shot(phone, '71-board-phone');
  assert.deepEqual(problems, []);
});
