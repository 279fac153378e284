// Shared pieces of the browser tests (not a test file itself): where the binaries are, a real
// airmeshd on free loopback ports, a runner enrolled into it, Debian's Chromium through
// playwright-core, and the step()/waitText()/until()/api()/signIn()/git() helpers. Each
// *.test.mjs starts its own appliance in its own temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(ROOT, 'ui', 'package.json'));
export const { chromium } = require('playwright-core');

export const bin = (env, rel) => resolve(ROOT, process.env[env] || rel);
export const AIRMESHD = bin('AIRMESHD', 'bazel-bin/appliance/airmeshd');
export const RUNNER = bin('AIRMESH_RUNNER', 'bazel-bin/runner/airmesh-runner');
export const UI_DIR = bin('UI_DIR', 'ui/dist');
export const ARTIFACTS = bin('E2E_ARTIFACTS', 'test-artifacts/e2e');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const T = 20000; // per-wait timeout (ASan builds on 2 cores)

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => res(p));
    });
    srv.on('error', rej);
  });
}

// Start airmeshd with its data in tmp; resolves with { daemon, url, grpc, password } once the
// first-start banner printed the admin password.
export function startDaemon(tmp) {
  return new Promise(async (res, rej) => {
    const port = await freePort();
    const gport = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const grpc = `127.0.0.1:${gport}`;
    const log = openSync(join(tmp, 'airmeshd.log'), 'a');
    const daemon = spawn(AIRMESHD, ['--data', join(tmp, 'airmesh'), '--listen', `127.0.0.1:${port}`, '--grpc-listen', grpc, '--ui', UI_DIR],
      { stdio: ['ignore', 'pipe', log] });
    let out = '';
    const timer = setTimeout(() => rej(new Error('airmeshd printed no admin password in 30 s:\n' + out)), 30000);
    daemon.stdout.on('data', (b) => {
      out += b;
      const m = out.match(/^admin password: (\S+)$/m);
      if (m) {
        clearTimeout(timer);
        res({ daemon, url, grpc, password: m[1] });
      }
    });
    daemon.on('exit', (code) => rej(new Error(`airmeshd exited (${code}): ` + readFileSync(join(tmp, 'airmeshd.log'), 'utf8'))));
  });
}

// What a sanitizer prints when it finds something (ASan/LSan errors, UBSan's runtime error).
const SANITIZER_RE = /ERROR: (Address|Leak|Memory|Thread)Sanitizer|: runtime error: |SUMMARY: \w*Sanitizer/;

// SIGTERM a product process (airmeshd, airmesh-runner) and check how it ended: exit status 0
// and no sanitizer report in its log. Rejects with the log's tail otherwise.
export async function stopChecked(proc, logPath, what, timeout = 30000) {
  if (!proc) throw new Error(`${what} was never started`);
  const exited = proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => proc.once('exit', r));
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  let timer;
  await Promise.race([exited, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what} did not stop in ${timeout} ms`)), timeout); })]);
  clearTimeout(timer);
  const log = readFileSync(logPath, 'utf8');
  const m = log.match(SANITIZER_RE);
  if (proc.exitCode !== 0 || m) {
    const at = m ? Math.max(0, m.index - 2000) : Math.max(0, log.length - 8000);
    throw new Error(`${what} ended with status ${proc.exitCode} signal ${proc.signalCode}${m ? ' and a sanitizer report' : ''}:\n${log.slice(at, at + 8000)}`);
  }
}

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

export async function waitText(page, selector, text, timeout = T) {
  await page.waitForFunction(([sel, t]) => {
    const el = document.querySelector(sel);
    return !!el && el.textContent.includes(t);
  }, [selector, text], { timeout }).catch(async (e) => {
    const now = await page.$eval(selector, (el) => el.textContent).catch(() => '(no such element)');
    throw new Error(`waiting for "${text}" in ${selector}, which says: ${now}\n${e.message}`);
  });
}

// Steps that build on each other (one appliance per file): after a failure the rest are skipped
// at once instead of each waiting out its timeouts; the failure itself fails the run.
export function stepper() {
  let broken = '';
  return function step(name, fn) {
    test(name, async (t) => {
      if (broken) return t.skip(`an earlier step failed: ${broken}`);
      try {
        await fn(t);
      } catch (e) {
        broken = name;
        throw e;
      }
    });
  };
}

// Wait for fn() to return something truthy (returned), polling every 250 ms; past timeout ms,
// throws naming what. A caller may set until.seen inside fn (the last thing it saw): the error
// then shows it.
export async function until(what, fn, timeout = 60000) {
  const end = Date.now() + timeout;
  until.seen = undefined;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + (until.seen === undefined ? '' : ': ' + JSON.stringify(until.seen)));
    await new Promise((r) => setTimeout(r, 250));
  }
}

// An API call with the session (cookies) of page's browser context and the CSRF header the
// console sends: url is the appliance (https://127.0.0.1:port), path under /api/v1, body sent
// as JSON when given. Returns { status, doc } (doc = the parsed answer, {} when empty); with ok
// (the default) a non-2xx status fails the test with the method, path, status and answer.
export async function apiFetch(page, url, method, path, body, ok = true) {
  const r = await page.request.fetch(url + '/api/v1' + path, {
    method, headers: { 'X-Airmesh-CSRF': '1', 'Content-Type': 'application/json' }, data: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (ok) assert.ok(r.ok(), `${method} ${path}: ${r.status()} ${text}`);
  return { status: r.status(), doc: text ? JSON.parse(text) : {} };
}

// apiFetch that must succeed; returns the parsed answer.
export async function api(page, url, method, path, body) {
  return (await apiFetch(page, url, method, path, body)).doc;
}

// Log in through the console's login form: open `at` first when given (else the form must be
// on the page already), fill user and password, Enter, and wait for the shell.
export async function signIn(page, user, password, at) {
  if (at !== undefined) await page.goto(at);
  await page.waitForSelector('#login-user');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.press('#login-password', 'Enter');
  await page.waitForSelector('.shell .page-title');
}

// git in repo as a fixed e2e author; returns its output.
export function git(repo, ...args) {
  return execFileSync('git', ['-C', repo, '-c', 'user.email=e2e@example.com', '-c', 'user.name=e2e', ...args], { encoding: 'utf8' });
}

// A runner: enrollRunner runs the enroll command a runner token gave (`airmesh-runner enroll
// ...`, its words after the program name) with its data in dir; runRunner starts
// `airmesh-runner run` there (extra: more arguments) with stdout and stderr appended to logPath,
// and returns the process (the caller stops it). startRunner is both.
export function enrollRunner(command, dir) {
  execFileSync(RUNNER, [...command.split(/\s+/).slice(1), '--data', dir], { stdio: 'pipe' });
}
export function runRunner(dir, logPath, extra = []) {
  const log = openSync(logPath, 'a');
  return spawn(RUNNER, ['run', '--data', dir, ...extra], { stdio: ['ignore', log, log] });
}
export function startRunner(command, dir, logPath) {
  enrollRunner(command, dir);
  return runRunner(dir, logPath);
}

// Until GET /runners (through call(method, path)) lists a runner online.
export function runnerOnline(call) {
  return until('the runner online', async () => (await call('GET', '/runners')).runners.some((r) => r.state === 'online'));
}

// For after(): SIGTERM each process in procs that is still running (null entries skipped), one
// after the other, waiting for each to exit.
export async function stopAll(procs) {
  for (const p of procs) {
    if (p && p.exitCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
}

// For after(): copy each of files from tmp to ARTIFACTS/name(file); a file that is not there is
// skipped.
export function saveLogs(tmp, files, name = (f) => f) {
  for (const f of files) {
    try { writeFileSync(join(ARTIFACTS, name(f)), readFileSync(join(tmp, f))); } catch { /* not there */ }
  }
}

// --- layout checks (cockpit.test.mjs) ---------------------------------------------------------
// What on this page sticks out sideways, as a list of sentences (empty: nothing). Checked: the
// page itself scrolls horizontally; an element's box reaches past the left or right edge of the
// viewport; an element with overflow-x auto/scroll has hidden content to the side (a table behind
// a scroll bar). Not checked: inside the terminal and the recording player (their content is
// the pod's screen, which has its own width), the off-screen "skip to content" link, and boxes
// clipped by an ancestor with overflow hidden (the ancestor is checked instead).
export async function layoutProblems(page) {
  return page.evaluate(() => {
    const out = [];
    const vw = document.documentElement.clientWidth;
    const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : '');
    const path = (el) => { const p = []; for (let e = el; e && e !== document.body && p.length < 4; e = e.parentElement) p.unshift(name(e)); return p.join(' > '); };
    if (document.documentElement.scrollWidth > vw + 1) out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px of content in ${vw} px`);
    const clipped = (el) => {
      for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
        const ox = getComputedStyle(e).overflowX;
        if (ox === 'hidden' || ox === 'clip') return true;
      }
      return false;
    };
    for (const el of document.body.querySelectorAll('*')) {
      if (el.closest('.xterm, .term-box, .player-box, .skip, dialog:not([open]), [hidden], template, script, style, datalist, option')) continue;
      const cs = getComputedStyle(el);
      if (cs.display === 'none' || cs.visibility === 'hidden' || cs.position === 'fixed' && el.tagName === 'DIALOG' && !el.open) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if ((r.left < -1 || r.right > vw + 1) && !clipped(el)) out.push(`${path(el)} spans x ${Math.round(r.left)}..${Math.round(r.right)} in a ${vw} px viewport`);
      if ((cs.overflowX === 'auto' || cs.overflowX === 'scroll') && el.scrollWidth > el.clientWidth + 1 && el !== document.documentElement)
        out.push(`${path(el)} hides ${el.scrollWidth - el.clientWidth} px behind a sideways scroll`);
    }
    return out.slice(0, 12);
  });
}
