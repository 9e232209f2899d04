// eventsource_browser_test.mjs — a bare EventSource (no SDK) on `GET /sse`
// in headless Chromium, across a server restart.
//
// Starts `switchboard serve` on 127.0.0.1 (a free port; anonymous access, an
// API key, namespace `chat` with history, a snapshot file) and a small
// pass-through proxy in node in front of it that notes the Last-Event-ID of
// every /sse request (Playwright does not show that header). The page
// (fixtures/eventsource.html, served on the proxy's origin by the test's
// request routing) opens `new EventSource('/sse?channel=chat:a&channel=chat:b')`.
// The test publishes with POST /api/publish and checks:
//   1. one `subscribed` event per channel, then every publication of both
//      channels, in order, each with an `id:`;
//   2. a restart: the page's /sse requests are held (aborted, as if the
//      network were down), the server gets SIGTERM (the page sees
//      `event: reconnect`; exit 0, snapshot written) and starts again on the
//      same port; three publications are made while the page is away; then
//      it is let through: the browser's own reconnect sends Last-Event-ID
//      (the id of the last event it saw), both channels come back
//      `recovered: true`, and the page ends with every publication of each
//      channel exactly once, in order, the live ones after it too.
//
// Usage: node eventsource_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]
// Writes ARTIFACT_DIR/eventsource.png. Prints one line per step and a final
// "N passed, N failed" line; exits 1 on any failure. Bounded (deadlines, the
// harness's watchdog); the server and browser are killed on every way out.
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, stepper, STEP_MS } from './chat_page.mjs';
import {
  commandLine, launchBrowser, loadChromium, onExit, run, startServer as start, stopServer as stop,
  summary, withDeadline,
} from './harness.mjs';

const { binary, artifactDir } = commandLine();
const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = readFileSync(path.join(here, 'fixtures', 'eventsource.html'), 'utf8');
const API_KEY = 'eventsource-test-key-0123456789abcdef';
const CHANNELS = ['chat:a', 'chat:b'];
const SSE_REQUEST = /\/sse\?/;
const RECONNECT_MS = 30_000; // the retry hint (2–4 s by default) plus a server start

function writeConfig(dir) {
  const file = path.join(dir, 'serve.toml');
  const snapshot = path.join(dir, 'state');
  writeFileSync(file, [
    '[auth]',
    'allow_anonymous = true',
    '',
    '[api]',
    `key = ${JSON.stringify(API_KEY)}`,
    '',
    '[namespaces.chat]',
    'history_size = 100',
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

async function publish(base, channel, data) {
  const res = await withDeadline(fetch(new URL('/api/publish', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify({ channel, data }),
  }), STEP_MS, 'POST /api/publish');
  const body = await res.json();
  assert(res.status === 200, `POST /api/publish: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// A pass-through HTTP proxy in front of the server on `port` that notes the
// Last-Event-ID header of every /sse request in `streams` ('' without):
// what the browser sent, seen from the wire (the browser tooling does not
// show this header). Resolves to its URL; the pages use it as the origin.
async function recordingProxy(port, streams) {
  const proxy = http.createServer((req, res) => {
    if (req.url.startsWith('/sse?')) streams.push(req.headers['last-event-id'] ?? '');
    const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  onExit(() => { proxy.closeAllConnections(); proxy.close(); });
  return `http://127.0.0.1:${proxy.address().port}`;
}

const seenOf = (page) => page.evaluate(() => window.seen);

function waitSeen(page, type, n, ms = STEP_MS) {
  return page.waitForFunction(([t, k]) => window.seen.filter((e) => e.type === t).length >= k,
    [type, n], { timeout: ms });
}

// Per channel: the publications' data in arrival order, and problems
// (offsets not rising by one from the first, data not as sent).
function checkPublications(seen, sent) {
  const problems = [];
  for (const channel of CHANNELS) {
    const got = seen.filter((e) => e.type === 'publication' && e.data.channel === channel);
    const want = sent.filter((s) => s.channel === channel);
    const gotData = got.map((e) => e.data.data);
    const wantData = want.map((s) => s.data);
    if (JSON.stringify(gotData) !== JSON.stringify(wantData)) {
      problems.push(`${channel}: got ${JSON.stringify(gotData)}, expected ${JSON.stringify(wantData)}`);
    }
    const offsets = got.map((e) => e.data.offset);
    if (offsets.some((o, i) => o !== i + 1)) problems.push(`${channel}: offsets ${offsets.join(',')}`);
    if (got.some((e) => !e.id)) problems.push(`${channel}: a publication without an id`);
  }
  return problems;
}

async function main() {
  if (!binary) {
    console.log('usage: node eventsource_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]');
    return 2;
  }
  const chromium = await loadChromium();
  if (!chromium) return 1;
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-eventsource-'));
  onExit(() => rmSync(tmpDir, { recursive: true, force: true }));
  const config = writeConfig(tmpDir);
  const { results, step } = stepper();
  let server = startServer(config.file, 0);
  let browser = null;
  let page = null;
  const sent = []; // {channel, data}, in publishing order
  const streams = []; // the Last-Event-ID header of every /sse request that reached the server ('' without)

  try {
    const port = Number(new URL(await server.url).port);
    const base = await recordingProxy(port, streams);
    browser = await launchBrowser(chromium);
    const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
    const pageUrl = `${base}/eventsource.html?${CHANNELS.map((c) => `channel=${c}`).join('&')}`;
    await context.route(`${base}/eventsource.html*`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: FIXTURE }));
    page = await context.newPage();
    page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
    // While `holding`, every /sse request fails as if the network were down.
    let holding = false;
    await context.route(SSE_REQUEST, (route) =>
      (holding ? route.abort('internetdisconnected') : route.continue()));

    let ok = await step('EventSource: subscribed per channel, then every publication in order, with ids', async () => {
      await withDeadline(page.goto(pageUrl), STEP_MS, 'loading the page');
      await waitSeen(page, 'subscribed', 2);
      const subscribed = (await seenOf(page)).filter((e) => e.type === 'subscribed').map((e) => e.data.channel);
      assert(JSON.stringify([...subscribed].sort()) === JSON.stringify(CHANNELS), `subscribed: ${subscribed}`);
      for (const [i, channel] of ['chat:a', 'chat:b', 'chat:a', 'chat:b'].entries()) {
        const data = { text: `live ${i + 1}` };
        await publish(base, channel, data);
        sent.push({ channel, data });
      }
      await waitSeen(page, 'publication', sent.length);
      const problems = checkPublications(await seenOf(page), sent);
      assert(problems.length === 0, problems.join('; '));
      return `${sent.length} publications; last id ${(await seenOf(page)).at(-1).id}`;
    });

    ok = ok && await step('restart: Last-Event-ID recovers every channel exactly once', async () => {
      const lastId = (await seenOf(page)).at(-1).id;
      holding = true;
      const { code, signal } = await stop(server, 15_000);
      assert(code === 0, `the server exited with ${code ?? signal} on SIGTERM, expected 0`);
      assert(existsSync(config.snapshot), 'no snapshot after SIGTERM');
      await waitSeen(page, 'reconnect', 1);
      server = startServer(config.file, port);
      await server.url;
      for (const [i, channel] of ['chat:b', 'chat:a', 'chat:b'].entries()) {
        const data = { text: `missed ${i + 1}` };
        await publish(base, channel, data);
        sent.push({ channel, data });
      }
      const before = streams.length;
      holding = false;
      await waitSeen(page, 'subscribed', 4, RECONNECT_MS);
      await waitSeen(page, 'publication', sent.length);
      const resumed = streams.slice(before).filter((h) => h !== '');
      assert(resumed.length > 0 && resumed[0] === lastId,
        `the reconnect sent Last-Event-ID ${JSON.stringify(resumed[0])}, expected ${lastId}`);
      const again = (await seenOf(page)).filter((e) => e.type === 'subscribed').slice(2);
      for (const e of again) {
        assert(e.data.recovered === true, `after the restart ${e.data.channel}: ${JSON.stringify(e.data)}`);
      }
      const data = { text: 'live after' };
      await publish(base, 'chat:a', data);
      sent.push({ channel: 'chat:a', data });
      await waitSeen(page, 'publication', sent.length);
      await new Promise((resolve) => setTimeout(resolve, 500)); // room for a duplicate
      const problems = checkPublications(await seenOf(page), sent);
      assert(problems.length === 0, problems.join('; '));
      return `Last-Event-ID ${lastId}; ${sent.length} publications, 3 recovered`;
    });
  } catch (e) {
    results.push({ step: 'setup', ok: false, detail: String(e.message ?? e) });
    console.log(`FAIL: ${e.message ?? e}`);
  }

  await step('the server exits 0 on SIGTERM', async () => {
    const { code, signal } = await stop(server, 15_000);
    assert(code === 0, `exited with ${code ?? signal}`);
  });
  if (results.some((r) => !r.ok)) {
    console.log(`  server output: ${server.output().trim().split('\n').slice(-8).join(' | ')}`);
  }
  if (page && !page.isClosed()) {
    try {
      mkdirSync(artifactDir, { recursive: true });
      const file = path.join(artifactDir, 'eventsource.png');
      await page.screenshot({ path: file, fullPage: true });
      console.log(`screenshot: ${file}`);
    } catch (e) {
      console.log(`warning: no screenshot: ${e.message}`);
    }
  }
  await browser?.close();
  const passed = results.filter((r) => r.ok).length;
  summary(passed, results.length - passed);
  return results.length === passed ? 0 : 1;
}

run(main);
