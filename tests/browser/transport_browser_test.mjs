// transport_browser_test.mjs — the demo chat behind proxies that stop
// WebSockets: the browser SDK falls back to an HTTP transport and the chat
// works as over /ws, across a server restart.
//
// Starts `switchboard serve` on 127.0.0.1 (a free port; anonymous access,
// namespace `chat` with history and presence, a snapshot file) and Debian's
// nginx in front of it (tests/browser/nginx.mjs: own config and prefix in a
// temp dir, a free port), in one of two modes (the SCENARIO argument):
//   - `sse`: nginx drops the Upgrade header. Each page's WebSocket fails
//     before `open` twice and the SDK moves to SSE;
//   - `long-polling`: nginx also buffers responses whatever the server says
//     (proxy_ignore_headers X-Accel-Buffering). SSE delivers nothing, and
//     the SDK moves on to long-polling.
// Two headless Chromium pages (Alice and Bob, room `e2e`) open the demo
// through nginx and the test checks, through the page's data-testid elements:
//   1. both pages connect, over the expected transport, and remember it in
//      sessionStorage;
//   2. presence lists both names;
//   3. the pages chat: every message reaches both, in the same order;
//   4. a restart: Bob's page is held off the network (its requests to
//      /rt/session are aborted by the test), the server gets SIGTERM (exit 0,
//      snapshot written) and starts again on the same port; Alice reconnects
//      by herself over the same transport, recovers, and sends three
//      messages; then Bob is let through and ends with every message exactly
//      once, in order, recovered (not reset);
//   5. the server exits 0 on SIGTERM.
//
// Usage: node transport_browser_test.mjs SWITCHBOARD_BINARY ARTIFACT_DIR sse|long-polling
// Writes ARTIFACT_DIR/transport-<SCENARIO>.png. Prints one line per step and a
// final "N passed, N failed" line; exits 1 on any failure. Bounded: every
// wait has a deadline, harness.mjs's watchdog ends the run; the server,
// nginx and the browser are killed on every way out.
// Environment: SWITCHBOARD_CHROMIUM, SWITCHBOARD_NGINX override the paths.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkTranscript, assert, join, messagesOf, openPage, presenceOf, send, statusOf, stepper,
  transportOf, waitMessageCount, waitPresence, waitRecovered, waitState,
} from './chat_page.mjs';
import {
  commandLine, escapeHtml, launchBrowser, loadChromium, onExit, run,
  startServer as start, stopServer as stop, summary,
} from './harness.mjs';
import { startNginx } from './nginx.mjs';

const { binary, artifactDir } = commandLine();
const scenario = process.argv[4];
const MODES = { sse: 'drop-upgrade', 'long-polling': 'buffering' };
const CONNECT_MS = 30_000; // two WebSocket failures, maybe a 5 s SSE timeout, then a session
const RECONNECT_MS = 40_000; // a backoff (cap 15 s) plus a server start

let browser = null;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
  ].join('\n'));
  return { file, snapshot };
}

function startServer(configFile, port) {
  return start(binary,
    ['serve', '--host', '127.0.0.1', '--port', String(port), '--config', configFile],
    /listening on (http:\/\/127\.0\.0\.1:\d+)/);
}

const stopServer = (server) => stop(server, 15_000);

// Holding a page off the network: its HTTP session requests fail as if the
// network were down (and so would a WebSocket: the proxy lets none through).
const HELD = /\/rt\/session/;
const abortRoute = (route) => route.abort('internetdisconnected');

async function capture(pages) {
  const shots = [];
  for (const [label, page] of pages) {
    if (!page || page.isClosed()) continue;
    shots.push({ label, data: (await page.screenshot()).toString('base64') });
  }
  return shots;
}

async function writeScreenshot(shots, results) {
  mkdirSync(artifactDir, { recursive: true });
  const steps = results.map((r) => `<li class="${r.ok ? 'ok' : 'bad'}">${r.ok ? '✓' : '✗'} ${escapeHtml(r.step)}` +
    `${r.detail ? ` — <small>${escapeHtml(r.detail)}</small>` : ''}</li>`).join('');
  const page = await browser.newPage({ viewport: { width: 1480, height: 800 } });
  await page.setContent(`<!doctype html><meta charset="utf-8"><style>
    body { font: 14px system-ui, sans-serif; margin: 12px; }
    .row { display: flex; gap: 12px; } figure { margin: 0; } img { border: 1px solid #bbb; }
    .ok { color: #137333; } .bad { color: #c5221f; } ul { padding-left: 18px; }
  </style>
  <h3>demo chat behind nginx (${escapeHtml(MODES[scenario])}) over ${escapeHtml(scenario)} —
    Chromium ${escapeHtml(browser.version())}</h3>
  <div class="row">${shots.map((s) => `<figure><figcaption>${escapeHtml(s.label)}</figcaption>` +
    `<img src="data:image/png;base64,${s.data}"></figure>`).join('')}</div>
  <ul>${steps}</ul>`);
  const file = path.join(artifactDir, `transport-${scenario}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await page.close();
  return file;
}

async function main() {
  if (!binary || !MODES[scenario]) {
    console.log('usage: node transport_browser_test.mjs SWITCHBOARD_BINARY ARTIFACT_DIR sse|long-polling');
    return 2;
  }
  const chromium = await loadChromium();
  if (!chromium) return 1;

  const tmpDir = mkdtempSync(path.join(os.tmpdir(), `switchboard-${scenario}-`));
  onExit(() => rmSync(tmpDir, { recursive: true, force: true }));
  const config = writeConfig(tmpDir);
  const { results, step } = stepper();
  let server = startServer(config.file, 0);
  let proxy = null;
  let alice = null;
  let bob = null;
  let shots = null;
  const room = 'e2e';
  const transcript = [];

  try {
    const port = Number(new URL(await server.url).port);
    proxy = await startNginx(path.join(tmpDir, 'nginx'), { upstreamPort: port, mode: MODES[scenario] });
    browser = await launchBrowser(chromium);
    const wsUrl = `ws://127.0.0.1:${proxy.port}/ws`;

    let ok = await step(`two pages join through nginx (${MODES[scenario]}) and connect over ${scenario}`, async () => {
      alice = await openPage(browser, `${proxy.url}/`, 'Alice');
      bob = await openPage(browser, `${proxy.url}/`, 'Bob');
      await join(alice, 'Alice', room);
      await join(bob, 'Bob', room);
      await waitState(alice, 'connected', CONNECT_MS);
      await waitState(bob, 'connected', CONNECT_MS);
      for (const [name, page] of [['Alice', alice], ['Bob', bob]]) {
        const transport = await transportOf(page);
        assert(transport === scenario, `${name} is on ${transport}, expected ${scenario}`);
        const remembered = await page.evaluate((key) => sessionStorage.getItem(key), `switchboard.transport ${wsUrl}`);
        assert(remembered === scenario, `${name}'s sessionStorage remembers ${remembered}, expected ${scenario}`);
      }
      // The way there, from nginx's access log: each page's WebSocket was
      // refused twice (426: no Upgrade reached the server) and, for
      // long-polling, an SSE stream was tried first and given up.
      const log = proxy.accessLog();
      const refused = log.filter((l) => /"GET \/ws HTTP\/1\.1" 426 /.test(l)).length;
      assert(refused >= 4, `nginx logged ${refused} refused WebSocket handshakes, expected 2 per page`);
      if (scenario === 'long-polling') {
        const streams = log.filter((l) => /"GET \/rt\/session\/[^/ ]+\/stream /.test(l)).length;
        assert(streams >= 2, `nginx logged ${streams} SSE streams before long-polling, expected one per page`);
      }
      return `${await alice.getByTestId('status').textContent()}; ${await bob.getByTestId('status').textContent()}; ` +
        `${refused} WebSocket handshakes refused`;
    });

    ok = ok && await step('presence lists both names on both pages', async () => {
      await waitPresence(alice, ['Alice', 'Bob']);
      await waitPresence(bob, ['Alice', 'Bob']);
      return (await presenceOf(alice)).join(', ');
    });

    ok = ok && await step('the pages chat through the proxy', async () => {
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

    ok = ok && await step(`restart: Bob misses messages and gets each exactly once after reconnecting over ${scenario}`, async () => {
      await bob.context().route(HELD, abortRoute);
      const { code, signal } = await stopServer(server);
      assert(code === 0, `the server exited with ${code ?? signal} on SIGTERM, expected 0`);
      assert(existsSync(config.snapshot), `no snapshot at ${config.snapshot} after SIGTERM`);
      await waitState(bob, 'reconnecting', RECONNECT_MS);
      await waitState(alice, 'reconnecting', RECONNECT_MS);

      server = startServer(config.file, port);
      await server.url;
      await waitState(alice, 'connected', RECONNECT_MS);
      assert(await transportOf(alice) === scenario, `Alice came back over ${await transportOf(alice)}`);
      const aliceRecovered = await waitRecovered(alice);
      assert(aliceRecovered === 'true', `Alice's subscription: recovered "${aliceRecovered}", expected true`);
      for (const text of ['missed 1', 'missed 2', 'missed 3']) {
        await send(alice, text);
        transcript.push(`Alice: ${text}`);
        await waitMessageCount(alice, transcript.length);
      }
      assert(await statusOf(bob) !== 'connected', 'Bob reconnected while held');
      assert((await messagesOf(bob)).length === 3, 'Bob got messages while held');

      await bob.context().unroute(HELD, abortRoute);
      await bob.evaluate(() => window.switchboardDemo.client.connect()); // now, not after the backoff
      await waitState(bob, 'connected', RECONNECT_MS);
      assert(await transportOf(bob) === scenario, `Bob came back over ${await transportOf(bob)}`);
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
      await waitPresence(alice, ['Alice', 'Bob']);
      shots = await capture([['Alice', alice], [`Bob (after the restart, ${scenario})`, bob]]).catch(() => null);
      return `Bob shows ${transcript.length} messages, 3 of them recovered`;
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
    if (proxy) console.log(`  nginx: ${proxy.output().trim().split('\n').slice(-5).join(' | ')}`);
  }
  await proxy?.stop();
  if (browser) {
    try {
      shots ??= await capture([['Alice', alice], ['Bob', bob]]);
      console.log(`screenshot: ${await writeScreenshot(shots, results)}`);
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
