// admin_browser_test.mjs — the /admin dashboard of `switchboard serve` in a real browser.
//
// Starts `switchboard serve` on 127.0.0.1 (a free port) with [admin] enabled
// (password "admin-pw"), opens /admin in headless Chromium with HTTP Basic
// credentials and checks:
//   1. without credentials /admin is 401 with WWW-Authenticate: Basic;
//   2. the page loads and its stats stream goes live (frames arrive);
//   3. under load (a second tab holds 20 subscribers of chat:load; 150
//      publications through the HTTP API) the charts move: connections reach
//      20, messages out / s and publications / s go above 0, and the
//      polylines change;
//   4. the channel panel shows chat:load's presence (21) and its history;
//   5. "publish a test message" reaches the subscribers;
//   6. "disconnect" closes one client (by id, code 4100) and a user's
//      connection (default code 4003);
//   7. the server exits 0 on SIGTERM.
// Usage: node admin_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]
// Writes ARTIFACT_DIR/admin.png (the dashboard under load). Prints one line
// per step and a final "N passed, N failed" line; exits 1 on any failure.
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  commandLine, launchBrowser, loadChromium, onExit, run, startServer, stopServer, summary,
  withDeadline,
} from './harness.mjs';

const { binary, artifactDir } = commandLine();
const PASSWORD = 'admin-pw';
const API_KEY = 'admin-test-api-key';
const SECRET = 'admin-browser-test-secret-0123456789abcdef';
const STEP_MS = 20_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function b64url(s) {
  return Buffer.from(s).toString('base64url');
}

function token(sub) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// Polls `probe` (async, truthy = done) until it holds or `ms` pass.
async function until(probe, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms / 1000} s (last: ${JSON.stringify(last)})`);
}

async function main() {
  const chromium = await loadChromium();
  if (!chromium) return 1;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-admin-browser-'));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'serve.toml');
  writeFileSync(config, [
    '[server]', 'demo = false', '',
    '[auth]', 'allow_anonymous = true', `jwt_secret = ${JSON.stringify(SECRET)}`, '',
    '[api]', `key = ${JSON.stringify(API_KEY)}`, '',
    '[admin]', 'enabled = true', `password = ${JSON.stringify(PASSWORD)}`, '',
    '[namespaces.chat]', 'history_size = 100', 'presence = true', 'publish = "any"', '',
    '[log]', 'level = "warn"', '',
  ].join('\n'));
  const server = startServer(binary,
    ['serve', '--host', '127.0.0.1', '--port', '0', '--config', config],
    /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const base = await server.url;

  const results = [];
  async function step(name, fn) {
    try {
      const detail = await withDeadline(fn(), STEP_MS * 2, name);
      results.push({ name, ok: true });
      console.log(`ok: ${name}${detail ? ` (${detail})` : ''}`);
      return true;
    } catch (e) {
      results.push({ name, ok: false });
      console.log(`FAIL: ${name}: ${e.message ?? e}`);
      return false;
    }
  }

  const browser = await launchBrowser(chromium);
  const context = await browser.newContext({
    viewport: { width: 1280, height: 1100 },
    httpCredentials: { username: 'operator', password: PASSWORD },
  });
  const page = await context.newPage();
  let load = null;

  await step('/admin without credentials is 401 with WWW-Authenticate', async () => {
    const r = await fetch(`${base}/admin`);
    assert(r.status === 401, `status ${r.status}`);
    const challenge = r.headers.get('www-authenticate') ?? '';
    assert(/^Basic realm=/.test(challenge), `WWW-Authenticate: ${challenge}`);
    const wrong = await fetch(`${base}/admin`, {
      headers: { Authorization: `Basic ${Buffer.from('x:nope').toString('base64')}` },
    });
    assert(wrong.status === 401, `wrong password: ${wrong.status}`);
  });

  let ok = await step('the dashboard loads and its stream goes live', async () => {
    const response = await page.goto(`${base}/admin`);
    assert(response.status() === 200, `status ${response.status()}`);
    await page.waitForSelector('#status[data-state="live"]', { timeout: STEP_MS });
    await until(() => page.evaluate(() => window.adminState.frames >= 2), STEP_MS, 'two frames');
    const charts = await page.locator('.chart svg').count();
    assert(charts === 6, `${charts} charts`);
    return `${charts} charts`;
  });

  ok = ok && await step('the charts move under load', async () => {
    const before = await page.evaluate(() => document.querySelector('#chart-messages_out polyline')?.getAttribute('points'));
    load = await context.newPage();
    await load.goto(`${base}/admin/`);
    await load.evaluate(async ({ userToken }) => {
      window.loadState = { sockets: [], messages: 0, dashboard: 0, closes: {}, clients: [] };
      const open = (i, tok) => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/ws`, 'switchboard.v1');
        ws.onopen = () => ws.send(JSON.stringify(tok ? { id: 1, cmd: 'connect', token: tok } : { id: 1, cmd: 'connect' }));
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.id === 1) {
            window.loadState.clients[i] = m.result.client;
            ws.send(JSON.stringify({ id: 2, cmd: 'subscribe', channel: 'chat:load' }));
          } else if (m.id === 2) {
            resolve();
          } else if (m.push === 'message') {
            window.loadState.messages += 1;
            if (m.data?.text === 'from the dashboard') window.loadState.dashboard += 1;
          }
        };
        ws.onclose = (e) => { window.loadState.closes[i] = e.code; };
        ws.onerror = () => reject(new Error(`socket ${i} failed`));
        window.loadState.sockets[i] = ws;
      });
      const all = [];
      for (let i = 0; i < 20; i += 1) all.push(open(i, i === 19 ? userToken : null));
      await Promise.all(all);
    }, { userToken: token('operator-test-user') });
    for (let i = 0; i < 150; i += 1) {
      const r = await fetch(`${base}/api/publish`, {
        method: 'POST', headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: 'chat:load', data: { n: i } }),
      });
      assert(r.ok, `publish ${i}: ${r.status}`);
      if (i % 25 === 24) await sleep(400);
    }
    const peak = await until(() => page.evaluate(() => {
      const s = window.adminState.series;
      const node = window.adminState.nodes[0];
      const max = (id) => Math.max(0, ...(s[id][node] ?? []));
      const r = { connections: max('connections'), out: max('messages_out'), pubs: max('publications') };
      return r.connections >= 20 && r.out > 0 && r.pubs > 0 ? r : null;
    }), STEP_MS, 'charts under load');
    const after = await page.evaluate(() => document.querySelector('#chart-messages_out polyline')?.getAttribute('points'));
    assert(after && after !== before, 'the messages-out polyline did not change');
    await page.screenshot({ path: path.join(artifactDir, 'admin.png'), fullPage: true });
    return `peak connections ${peak.connections}, out ${peak.out.toFixed(0)}/s, publications ${peak.pubs.toFixed(0)}/s; screenshot ${path.join(artifactDir, 'admin.png')}`;
  });

  ok = ok && await step("a channel's presence and recent history", async () => {
    await page.fill('#channel-name', 'chat:load');
    await page.click('#channel-form button');
    await until(async () => (await page.textContent('#presence-count')) === '(20)', STEP_MS, 'presence count');
    const items = await until(async () => {
      const n = await page.locator('#history-list li').count();
      return n === 20 ? n : null;
    }, STEP_MS, 'history items');
    const last = await page.locator('#history-list li').last().textContent();
    assert(last === '{"n":149}', `last history item ${last}`);
    return `20 present, ${items} recent publications`;
  });

  ok = ok && await step('publish a test message', async () => {
    await page.fill('#publish-channel', 'chat:load');
    await page.fill('#publish-data', '{"text": "from the dashboard"}');
    await page.click('#publish-form button');
    const text = await until(async () => {
      const t = await page.textContent('#publish-result');
      return /published: offset 151/.test(t) ? t : null;
    }, STEP_MS, 'publish result');
    await until(() => load.evaluate(() => window.loadState.dashboard === 20), STEP_MS, 'delivery to the 20 subscribers');
    return text;
  });

  ok = ok && await step('disconnect a client and a user', async () => {
    const client = await load.evaluate(() => window.loadState.clients[3]);
    await page.selectOption('#disconnect-kind', 'client');
    await page.fill('#disconnect-target', client);
    await page.fill('#disconnect-code', '4100');
    await page.click('#disconnect-form button');
    await until(() => load.evaluate(() => window.loadState.closes[3] === 4100), STEP_MS, 'client 3 closed with 4100');
    await page.selectOption('#disconnect-kind', 'user');
    await page.fill('#disconnect-target', 'operator-test-user');
    await page.fill('#disconnect-code', '');
    await page.click('#disconnect-form button');
    await until(() => load.evaluate(() => window.loadState.closes[19] === 4003), STEP_MS, 'the user closed with 4003');
    const others = await load.evaluate(() => Object.keys(window.loadState.closes).length);
    assert(others === 2, `${others} sockets closed, expected 2`);
    return `client ${client} 4100, user 4003`;
  });

  if (!ok) console.log(`  server output: ${server.output().trim().split('\n').slice(-8).join(' | ')}`);
  await browser.close();
  await step('the server exits 0 on SIGTERM', async () => {
    const { code, signal } = await stopServer(server, 15_000);
    assert(code === 0, `exited with ${code ?? signal}`);
  });
  const passed = results.filter((r) => r.ok).length;
  summary(passed, results.length - passed);
  return passed === results.length ? 0 : 1;
}

mkdirSync(artifactDir, { recursive: true });
run(main);
