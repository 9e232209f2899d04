// serve_browser_test.mjs — the demo chat page of `switchboard serve` in a real browser.
//
// Starts `switchboard serve` on 127.0.0.1 (a free port) with a configuration
// written here (anonymous access, namespace `chat` with history and presence,
// a snapshot file, fast keepalive), opens the page it serves at `/` in two
// headless Chromium contexts (Alice and Bob, room `e2e`) and checks, through
// the page's data-testid elements:
//   1. the server serves the page and its scripts;
//   2. both pages connect, and each lists both names as present;
//   3. the pages chat: every message reaches both, in the same order;
//   4. a restart: Bob's page is held off the network (its WebSocket
//      constructor throws while a flag is set: the SDK just sees failed
//      attempts and backs off), the server gets SIGTERM (closes with 1012,
//      writes its snapshot, exits 0) and starts again on the same port; Alice
//      reconnects by herself, recovers, and sends three messages; only then is
//      Bob let through; Bob ends with every message exactly once, in order,
//      recovered from the snapshot's history (not reset), like Alice's;
//   5. presence is right after the restart, and drops Bob when he leaves;
//   6. the server exits 0 on SIGTERM.
//
// Usage: node serve_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]
// Writes ARTIFACT_DIR/serve.png (both pages side by side; default
// ./browser-artifacts). Prints one line per step and a final
// "N passed, N failed" line; exits 1 on any failure. Bounded: every wait has
// a deadline and a watchdog ends the whole run; the server and the browser
// are killed on every way out.
// Environment: SWITCHBOARD_CHROMIUM overrides the browser path.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  commandLine, escapeHtml, failRun, launchBrowser, loadChromium, onExit, run,
  startServer as start, stopServer as stop, summary, withDeadline,
} from './harness.mjs';

const { binary, artifactDir } = commandLine();
const STEP_MS = 20_000; // one wait inside a step
const RECONNECT_MS = 40_000; // a backoff (cap 15 s) plus a server start

let browser = null;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the server ---------------------------------------------------------------

function writeConfig(dir) {
  const file = path.join(dir, 'serve.toml');
  const snapshot = path.join(dir, 'state');
  writeFileSync(file, [
    '[auth]',
    'allow_anonymous = true',
    '',
    '[namespaces.chat]',
    'history_size = 100',
    'presence = true',
    '',
    '[history]',
    `snapshot_file = ${JSON.stringify(snapshot)}`,
    '',
    '[keepalive]',
    'ping_interval = 2',
    'pong_timeout = 2',
    '',
  ].join('\n'));
  return { file, snapshot };
}

// `switchboard serve` with `configFile` on `port` (0: a free one); its url
// resolves to http://127.0.0.1:PORT.
function startServer(configFile, port) {
  return start(binary,
    ['serve', '--host', '127.0.0.1', '--port', String(port), '--config', configFile],
    /listening on (http:\/\/127\.0\.0\.1:\d+)/);
}

const stopServer = (server) => stop(server, 15_000);

// --- the pages ----------------------------------------------------------------

// Runs in Bob's page before its scripts: while window.__switchboardHold is
// true, opening a WebSocket fails at once, as when the network is down.
function holdableWebSocket() {
  const Real = window.WebSocket;
  window.__switchboardHold = false;
  window.WebSocket = class extends Real {
    constructor(url, protocols) {
      if (window.__switchboardHold) throw new DOMException('held by the test', 'NetworkError');
      super(url, protocols);
    }
  };
}

async function openPage(url, name, { holdable = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 720, height: 640 } });
  if (holdable) await context.addInitScript(holdableWebSocket);
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${name} page error] ${e.message}`));
  await withDeadline(page.goto(url), STEP_MS, `${name}: loading the page`);
  return page;
}

async function join(page, name, room) {
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('join-button').click();
}

async function send(page, text) {
  await page.getByTestId('message-input').fill(text);
  await page.getByTestId('send-button').click();
}

const statusOf = (page) => page.getByTestId('status').getAttribute('data-state');

function waitState(page, state, ms = STEP_MS) {
  return page.waitForFunction(
    (s) => document.querySelector('[data-testid="status"]')?.dataset.state === s, state, { timeout: ms });
}

function messagesOf(page) {
  return page.$$eval('[data-testid="message"]', (items) => items.map((li) => ({
    offset: Number(li.dataset.offset),
    name: li.querySelector('.name')?.textContent ?? '',
    text: li.querySelector('.text')?.textContent ?? '',
  })));
}

function waitMessageCount(page, n, ms = STEP_MS) {
  return page.waitForFunction(
    (k) => document.querySelectorAll('[data-testid="message"]').length >= k, n, { timeout: ms });
}

function presenceOf(page) {
  return page.$$eval('[data-testid="presence-item"]', (items) => items.map((li) => li.textContent).sort());
}

function waitPresence(page, names, ms = STEP_MS) {
  return page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('[data-testid="presence-item"]')].map((li) => li.textContent).sort();
    return JSON.stringify(got) === JSON.stringify(want);
  }, [...names].sort(), { timeout: ms });
}

// After a reconnect: the demo page sets data-recovered on its message list
// from the subscription's `subscribed` event ("true", "false"; "" until then).
async function waitRecovered(page, ms = STEP_MS) {
  const handle = await page.waitForFunction(
    () => document.querySelector('[data-testid="message-list"]')?.dataset.recovered || null, null, { timeout: ms });
  return handle.jsonValue();
}

const render = (list) => list.map((m) => `${m.offset}:${m.name}:${m.text}`).join(' | ');

// Every message exactly once, in order: `got` equals `want` and offsets rise.
function checkTranscript(who, got, want) {
  const problems = [];
  const texts = got.map((m) => `${m.name}: ${m.text}`);
  if (JSON.stringify(texts) !== JSON.stringify(want)) {
    problems.push(`${who} shows [${texts.join(' | ')}], expected [${want.join(' | ')}]`);
  }
  for (let i = 1; i < got.length; i++) {
    if (!(got[i].offset > got[i - 1].offset)) problems.push(`${who}: offsets not rising: ${render(got)}`);
  }
  return problems;
}

// --- the run ------------------------------------------------------------------

const results = []; // {step, ok, detail}
let shots = null; // what serve.png shows of the pages: [{label, data}]

async function step(name, body) {
  try {
    const detail = await body();
    results.push({ step: name, ok: true, detail: detail ?? '' });
    console.log(`PASS ${name}${detail ? `: ${detail}` : ''}`);
    return true;
  } catch (e) {
    results.push({ step: name, ok: false, detail: String(e.message ?? e) });
    console.log(`FAIL ${name}: ${e.message ?? e}`);
    return false;
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// PNGs of the pages as they are now: [{label, data (base64)}].
async function capture(pages) {
  const shots = [];
  for (const [label, page] of pages) {
    if (!page || page.isClosed()) continue;
    shots.push({ label, data: (await page.screenshot()).toString('base64') });
  }
  return shots;
}

// ARTIFACT_DIR/serve.png: the pages side by side above the steps' outcomes.
async function writeScreenshot(shots) {
  mkdirSync(artifactDir, { recursive: true });
  const steps = results.map((r) => `<li class="${r.ok ? 'ok' : 'bad'}">${r.ok ? '✓' : '✗'} ${escapeHtml(r.step)}` +
    `${r.detail ? ` — <small>${escapeHtml(r.detail)}</small>` : ''}</li>`).join('');
  const page = await browser.newPage({ viewport: { width: 1480, height: 800 } });
  await page.setContent(`<!doctype html><meta charset="utf-8"><style>
    body { font: 14px system-ui, sans-serif; margin: 12px; }
    .row { display: flex; gap: 12px; } figure { margin: 0; } img { border: 1px solid #bbb; }
    .ok { color: #137333; } .bad { color: #c5221f; } ul { padding-left: 18px; }
  </style>
  <h3>switchboard serve — demo chat in Chromium ${escapeHtml(browser.version())}</h3>
  <div class="row">${shots.map((s) => `<figure><figcaption>${escapeHtml(s.label)}</figcaption>` +
    `<img src="data:image/png;base64,${s.data}"></figure>`).join('')}</div>
  <ul>${steps}</ul>`);
  const file = path.join(artifactDir, 'serve.png');
  await page.screenshot({ path: file, fullPage: true });
  await page.close();
  return file;
}

async function main() {
  if (!binary) {
    console.log('usage: node serve_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]');
    return 2;
  }
  const help = spawnSync(binary, ['serve', '--help'], { encoding: 'utf8', timeout: 10_000 });
  if (help.status !== 0) {
    return failRun(`\`${binary} serve --help\` exits ${help.status ?? help.signal}: ` +
      `${(help.stderr || help.stdout || '').trim().split('\n')[0]}`);
  }
  const chromium = await loadChromium();
  if (!chromium) return 1;

  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-serve-'));
  onExit(() => rmSync(tmpDir, { recursive: true, force: true }));
  const config = writeConfig(tmpDir);
  let server = startServer(config.file, 0);
  let url;
  let alice = null;
  let bob = null;
  const room = 'e2e';
  const transcript = []; // "Name: text", in the order the server accepted them

  try {
    url = await server.url;
    const port = Number(new URL(url).port);
    browser = await launchBrowser(chromium);

    let ok = await step('the server serves the demo page', async () => {
      const files = { '/': 'text/html', '/switchboard.js': 'javascript', '/demo.js': 'javascript', '/demo.css': 'text/css' };
      for (const [file, type] of Object.entries(files)) {
        const res = await withDeadline(fetch(new URL(file, url)), STEP_MS, `GET ${file}`);
        assert(res.status === 200, `GET ${file}: ${res.status}`);
        const got = res.headers.get('content-type') ?? '';
        assert(got.includes(type), `GET ${file}: content-type "${got}", expected ${type}`);
        await res.arrayBuffer();
      }
      return url;
    });

    ok = ok && await step('two pages join the room and connect', async () => {
      alice = await openPage(url, 'Alice');
      bob = await openPage(url, 'Bob', { holdable: true });
      await join(alice, 'Alice', room);
      await join(bob, 'Bob', room);
      await waitState(alice, 'connected');
      await waitState(bob, 'connected');
      return `${await alice.getByTestId('status').textContent()}; ${await bob.getByTestId('status').textContent()}`;
    });

    ok = ok && await step('presence lists both names on both pages', async () => {
      await waitPresence(alice, ['Alice', 'Bob']);
      await waitPresence(bob, ['Alice', 'Bob']);
      return (await presenceOf(alice)).join(', ');
    });

    ok = ok && await step('the pages chat through the server', async () => {
      const lines = [[alice, 'Alice', 'hello from Alice'], [bob, 'Bob', 'hi Alice — ünïcødé ✓'],
        [alice, 'Alice', 'third <b>not bold</b>']];
      for (const [page, name, text] of lines) {
        await send(page, text);
        transcript.push(`${name}: ${text}`);
        await waitMessageCount(alice, transcript.length);
        await waitMessageCount(bob, transcript.length);
      }
      const problems = [...checkTranscript('Alice', await messagesOf(alice), transcript),
        ...checkTranscript('Bob', await messagesOf(bob), transcript)];
      assert(problems.length === 0, problems.join('; '));
      return `${transcript.length} messages on both pages`;
    });

    ok = ok && await step('restart: Bob misses messages and gets each exactly once after reconnecting', async () => {
      await bob.evaluate(() => { window.__switchboardHold = true; });
      const { code, signal } = await stopServer(server);
      assert(code === 0, `the server exited with ${code ?? signal} on SIGTERM, expected 0`);
      assert(existsSync(config.snapshot), `no snapshot at ${config.snapshot} after SIGTERM`);
      await waitState(bob, 'reconnecting');
      const aliceState = await statusOf(alice);
      assert(aliceState !== 'connected', `Alice's page still says connected after the server exited`);

      server = startServer(config.file, port);
      await server.url;
      await waitState(alice, 'connected', RECONNECT_MS);
      const aliceRecovered = await waitRecovered(alice);
      assert(aliceRecovered === 'true', `Alice's subscription: recovered "${aliceRecovered}", expected true`);
      for (const text of ['missed 1', 'missed 2', 'missed 3']) {
        await send(alice, text);
        transcript.push(`Alice: ${text}`);
        await waitMessageCount(alice, transcript.length);
      }
      assert(await statusOf(bob) !== 'connected', 'Bob reconnected while held');
      assert((await messagesOf(bob)).length === 3, 'Bob got messages while held');

      await bob.evaluate(() => {
        window.__switchboardHold = false;
        window.switchboardDemo.client.connect(); // retry now instead of after the backoff
      });
      await waitState(bob, 'connected', RECONNECT_MS);
      await waitMessageCount(bob, transcript.length);
      await sleep(500); // room for a duplicate to show up
      const bobRecovered = await waitRecovered(bob);
      assert(bobRecovered === 'true', `Bob's subscription: recovered "${bobRecovered}", expected true`);
      const problems = [...checkTranscript('Bob', await messagesOf(bob), transcript),
        ...checkTranscript('Alice', await messagesOf(alice), transcript)];
      assert(problems.length === 0, problems.join('; '));

      await send(bob, 'back again');
      transcript.push('Bob: back again');
      await waitMessageCount(alice, transcript.length);
      await waitMessageCount(bob, transcript.length);
      const after = [...checkTranscript('Alice', await messagesOf(alice), transcript),
        ...checkTranscript('Bob', await messagesOf(bob), transcript)];
      assert(after.length === 0, after.join('; '));
      return `Bob shows ${transcript.length} messages, 3 of them recovered`;
    });

    ok = ok && await step('presence after the restart, and after Bob leaves', async () => {
      await waitPresence(alice, ['Alice', 'Bob']);
      await waitPresence(bob, ['Alice', 'Bob']);
      // Both pages after the restart, before Bob leaves: the picture worth keeping.
      shots = await capture([['Alice', alice], ['Bob (after the restart)', bob]]).catch(() => null);
      await bob.getByTestId('leave-button').click();
      await waitPresence(alice, ['Alice']);
      return (await presenceOf(alice)).join(', ');
    });
  } catch (e) {
    results.push({ step: 'setup', ok: false, detail: String(e.message ?? e) });
    console.log(`FAIL: ${e.message ?? e}`);
  }

  await step('the server exits 0 on SIGTERM', async () => {
    const { code, signal } = await stopServer(server);
    assert(code === 0, `exited with ${code ?? signal}`);
  });

  if (results.some((r) => !r.ok)) {
    const out = server.output().trim();
    if (out) console.log(`  server output: ${out.split('\n').slice(-8).join(' | ')}`);
  }
  if (browser) {
    try {
      shots ??= await capture([['Alice', alice], ['Bob', bob]]);
      console.log(`screenshot: ${await writeScreenshot(shots)}`);
    } catch (e) {
      console.log(`warning: no screenshot: ${e.message}`);
    }
    await browser.close();
    browser = null;
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  summary(passed, failed);
  return failed === 0 ? 0 : 1;
}

run(main);
