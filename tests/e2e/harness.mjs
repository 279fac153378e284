// Shared pieces of the browser tests (not a test file itself): where the binaries are, a real
// airmeshd on free loopback ports, Debian's Chromium through playwright-core, and the
// step()/waitText() helpers. Each *.test.mjs starts its own appliance in its own temp dir.
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(ROOT, 'ui', 'package.json'));
export const { chromium } = require('playwright-core');

export const bin = (env, rel) => resolve(ROOT, process.env[env] || rel);
export const AIRMESHD = bin('AIRMESHD', 'bazel-bin/appliance/airmeshd');
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
