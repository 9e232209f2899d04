// harness.mjs — what the browser tests (echo_browser_test.mjs,
// serve_browser_test.mjs) share.
//
//  - commandLine(): SWITCHBOARD_BINARY [ARTIFACT_DIR] from argv.
//  - run(main): the watchdog (under ctest's TIMEOUT), main's exit code, and a
//    "0 passed, 1 failed" line when main throws or the watchdog fires.
//  - Every way out (normal end, a throw, the watchdog, SIGINT/SIGTERM, exit)
//    kills every server started with startServer(), closes the browser from
//    launchBrowser() and runs what was registered with onExit().
//  - startServer()/stopServer(): a switchboard child on a kernel-chosen (or
//    given) port, its URL from the listening line, its output kept for reports.
//  - loadChromium()/launchBrowser(): playwright-core and Debian's Chromium
//    (SWITCHBOARD_CHROMIUM overrides the path).
//  - withDeadline(), failRun(), summary(), escapeHtml().
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const chromiumPath = process.env.SWITCHBOARD_CHROMIUM ?? '/usr/bin/chromium';
const WATCHDOG_MS = 170_000; // under ctest's TIMEOUT 180 (tests/browser/CMakeLists.txt)

export function commandLine() {
  const [binary, artifactDirArg] = process.argv.slice(2);
  return { binary, artifactDir: path.resolve(artifactDirArg ?? 'browser-artifacts') };
}

// --- every way out --------------------------------------------------------------

const servers = new Set(); // live server processes, killed on any exit
const cleanups = new Set(); // more to undo on any exit (browser, page server, temp files)

function killEverything() {
  for (const child of servers) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  servers.clear();
  for (const cleanup of cleanups) {
    try { cleanup(); } catch { /* best effort */ }
  }
  cleanups.clear();
}
process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => { killEverything(); process.exit(1); });
}

// Runs `cleanup` on any way out; returns a function that forgets it again
// (for when the test has undone it itself).
export function onExit(cleanup) {
  cleanups.add(cleanup);
  return () => { cleanups.delete(cleanup); };
}

// Prints a failure that ends the run before any result, and the final line.
export function failRun(message) {
  console.log(`FAIL: ${message}`);
  summary(0, 1);
  return 1;
}

export function summary(passed, failed, skipped = 0) {
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
}

// Runs `main` (async, resolving to the exit code) under the watchdog; on
// every way out everything started here is killed.
export function run(main) {
  const watchdog = setTimeout(() => {
    failRun(`watchdog: the whole run took over ${WATCHDOG_MS / 1000} s`);
    killEverything();
    process.exit(1);
  }, WATCHDOG_MS);
  main().then((code) => {
    clearTimeout(watchdog);
    killEverything();
    process.exitCode = code;
  }, (e) => {
    clearTimeout(watchdog);
    failRun(e.stack ?? e);
    killEverything();
    process.exitCode = 1;
  });
}

export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// --- the server -------------------------------------------------------------------

// Starts `binary ...args`; `listening` matches its listening line (trimmed)
// with the URL as group 1. Returns {child, exited (resolves to {code, signal}),
// url (a promise, 10 s deadline), output() (the last 4,000 characters of
// stdout and stderr)}.
export function startServer(binary, args, listening) {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.add(child);
  let output = '';
  const keep = (d) => { output = (output + d).slice(-4000); };
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => { servers.delete(child); resolve({ code, signal }); });
  });
  const url = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      keep(`${line}\n`);
      const m = listening.exec(line.trim());
      if (m) resolve(m[1]);
    });
    child.on('error', reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`server exited (${code ?? signal}) before listening: ${output.trim()}`)));
  });
  return { child, exited, url: withDeadline(url, 10_000, 'server start'), output: () => output };
}

// SIGTERM and wait up to `ms` for the exit ({code, signal}); SIGKILL and throw
// when it overstays.
export async function stopServer(server, ms) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill('SIGTERM');
  try {
    return await withDeadline(server.exited, ms, 'server exit after SIGTERM');
  } catch (e) {
    server.child.kill('SIGKILL');
    throw e;
  }
}

// --- the browser ------------------------------------------------------------------

// playwright-core's `chromium`, or null (after failRun) when playwright-core
// or the browser is missing.
export async function loadChromium() {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    failRun(`playwright-core is not installed in tests/browser (run scripts/setup.sh): ${e.message}`);
    return null;
  }
  if (!existsSync(chromiumPath)) {
    failRun(`${chromiumPath} is missing (run scripts/setup.sh: Debian package chromium)`);
    return null;
  }
  return chromium;
}

// Headless Chromium, closed on every way out (until it is closed by the test).
export async function launchBrowser(chromium) {
  const browser = await withDeadline(chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // playwright gives every launch a fresh, temporary --user-data-dir.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  }), 60_000, 'Chromium launch');
  // playwright also kills the browser when this process exits; this is for
  // the watchdog path, where we exit without awaiting anything.
  const forget = onExit(() => { browser.close().catch(() => {}); });
  browser.on('disconnected', forget);
  return browser;
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}
