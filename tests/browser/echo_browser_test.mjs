// echo_browser_test.mjs — a real browser against `switchboard echo`.
//
// Headless Debian Chromium (/usr/bin/chromium), driven by playwright-core,
// loads a tiny page served on 127.0.0.1 by this script (Chromium's Local
// Network Access checks block ws://127.0.0.1 from about:blank, whose origin
// is not local), opens a WebSocket to `switchboard echo` and echoes text
// (multi-byte UTF-8) and binary messages of 0 B, 1 B, 125 B, 126 B, 64 KiB,
// 1 MiB and 4 MiB, checks every echo byte for byte, checks what
// `ws.extensions` reports, closes with 1000 and checks the close event. One
// case per compression mode of the server: off (Chromium always offers
// permessage-deflate; the server must decline), and `--deflate shared` and
// `--deflate dedicated` when `switchboard echo --help` lists --deflate.
// Each case also checks that the server exits 0 on SIGTERM.
//
// Usage: node echo_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]
// Writes ARTIFACT_DIR/echo.png (a status page of the results; default
// ./browser-artifacts). Prints one line per case and a final
// "N passed, N failed[, N skipped]" line; exits 1 on any failure.
// Bounded: every case has a deadline and a watchdog ends the whole run; the
// server and the browser are killed on every way out.
// Environment: SWITCHBOARD_CHROMIUM overrides the browser path.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import {
  commandLine, escapeHtml, launchBrowser, loadChromium, onExit, run, startServer as start,
  stopServer, summary, withDeadline,
} from './harness.mjs';

const { binary, artifactDir } = commandLine();
const CASE_TIMEOUT_MS = 60_000;
const SIZES = [0, 1, 125, 126, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024];

let browser = null;

const BLANK_PAGE = '<!doctype html><meta charset="utf-8"><title>switchboard echo</title><body></body>';

// --- the server ---------------------------------------------------------------

// `switchboard echo` on a free port; its url resolves to ws://HOST:PORT/.
function startServer(extraArgs) {
  const server = start(binary, ['echo', '--host', '127.0.0.1', '--port', '0', ...extraArgs],
    /^listening on (ws:\/\/\S+?)\/?$/);
  return { ...server, url: server.url.then((url) => `${url}/`) };
}

function serverHasDeflate() {
  const help = spawnSync(binary, ['echo', '--help'], { encoding: 'utf8', timeout: 10_000 });
  return /--deflate\b/.test(`${help.stdout}${help.stderr}`);
}

// --- what runs in the page ----------------------------------------------------

// Runs inside Chromium (serialized by page.evaluate): no closures over Node.
async function echoInPage({ url, sizes, timeoutMs }) {
  const encoder = new TextEncoder();
  function xorshift(seed) {
    let x = seed >>> 0 || 1;
    return () => {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      return x;
    };
  }
  // 1-, 2-, 3- and 4-byte UTF-8 sequences (the last two are surrogate pairs in JS).
  const pieces = ['a', 'q', 'Z', '7', ' ', '{', '"', ':', 'é', 'ж', 'ß', 'ع', '€', '中', '字', '✓',
    '😀', '🎉', '𝄞', '🦀'];
  const pieceBytes = pieces.map((p) => encoder.encode(p).length);
  // A string whose UTF-8 encoding is exactly `bytes` long.
  function makeText(bytes, seed) {
    const next = xorshift(seed);
    const out = [];
    let n = 0;
    while (n < bytes) {
      const i = next() % pieces.length;
      if (n + pieceBytes[i] > bytes) {
        out.push('x'.repeat(bytes - n));
        break;
      }
      out.push(pieces[i]);
      n += pieceBytes[i];
    }
    return out.join('');
  }
  function makeBinary(bytes, seed) {
    const next = xorshift(seed);
    const out = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) out[i] = next() & 0xff;
    return out;
  }
  function sameBytes(a, b) {
    if (a.length !== b.length) return -2;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
    return -1;
  }

  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  const waiting = [];
  let closeInfo = null;
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => {
      closeInfo = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      resolve(closeInfo);
      for (const w of waiting.splice(0)) w.reject(new Error(`closed with ${e.code} while waiting`));
    };
  });
  ws.onmessage = (e) => {
    const w = waiting.shift();
    if (w) w.resolve(e.data); else inbox.push(e.data);
  };
  function nextMessage() {
    if (inbox.length) return Promise.resolve(inbox.shift());
    if (closeInfo) return Promise.reject(new Error(`closed with ${closeInfo.code}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no echo within the deadline')), timeoutMs);
      waiting.push({
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  const result = { extensions: null, protocol: null, messages: [], close: null, error: null };
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('WebSocket error before open'));
      closed.then((c) => reject(new Error(`closed with ${c.code} before open`)));
    });
    ws.onerror = null;
    result.extensions = ws.extensions;
    result.protocol = ws.protocol;
    let seed = 1;
    for (const size of sizes) {
      for (const kind of ['text', 'binary']) {
        const started = performance.now();
        const entry = { kind, size, ok: false, detail: '' };
        result.messages.push(entry);
        try {
          if (kind === 'text') {
            const sent = makeText(size, seed++);
            if (encoder.encode(sent).length !== size) throw new Error('generator: wrong length');
            ws.send(sent);
            const got = await nextMessage();
            if (typeof got !== 'string') {
              entry.detail = 'echo is not a text message';
            } else if (got !== sent) {
              const where = sameBytes(encoder.encode(got), encoder.encode(sent));
              entry.detail = where === -2
                ? `echo has ${encoder.encode(got).length} bytes`
                : `echo differs at byte ${where}`;
            } else {
              entry.ok = true;
            }
          } else {
            const sent = makeBinary(size, seed++);
            ws.send(sent);
            const got = await nextMessage();
            if (!(got instanceof ArrayBuffer)) {
              entry.detail = 'echo is not a binary message';
            } else {
              const where = sameBytes(new Uint8Array(got), sent);
              if (where === -2) entry.detail = `echo has ${got.byteLength} bytes`;
              else if (where >= 0) entry.detail = `echo differs at byte ${where}`;
              else entry.ok = true;
            }
          }
        } catch (e) {
          entry.detail = String(e.message ?? e);
          entry.fatal = true;  // no echo came: the rest would be out of step
        }
        entry.ms = Math.round(performance.now() - started);
        if (closeInfo || entry.fatal) break;
      }
      if (closeInfo || result.messages.at(-1).fatal) break;
    }
    if (!closeInfo) ws.close(1000, 'done');
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs));
    result.close = await Promise.race([closed, timeout]);
  } catch (e) {
    result.error = String(e.message ?? e);
    result.close = closeInfo;
  }
  return result;
}

// --- the cases ----------------------------------------------------------------

// `switchboard echo --deflate dedicated` with its default windows (11 both
// ways, server/compression.hpp), as Chromium reports it.
const DEDICATED_EXTENSIONS =
  'permessage-deflate; server_max_window_bits=11; client_max_window_bits=11';

// What ws.extensions must say for each server mode; null when it is right.
function checkExtensions(mode, extensions) {
  const params = extensions.split(';').map((s) => s.trim()).filter(Boolean);
  const has = (p) => params.includes(p);
  if (mode === 'off') {
    return extensions === '' ? null : `expected no extension, got "${extensions}"`;
  }
  if (params[0] !== 'permessage-deflate' || extensions.includes(',')) {
    return `expected one permessage-deflate, got "${extensions}"`;
  }
  if (mode === 'shared' && !(has('client_no_context_takeover') && has('server_no_context_takeover'))) {
    return `shared must agree no context takeover both ways, got "${extensions}"`;
  }
  if (mode === 'dedicated' && extensions !== DEDICATED_EXTENSIONS) {
    return `dedicated keeps context takeover (Chromium does not ask to drop it) and, with the ` +
      `lean defaults, holds both directions to window 11 (Chromium offers a bare ` +
      `client_max_window_bits): expected "${DEDICATED_EXTENSIONS}", got "${extensions}"`;
  }
  return null;
}

// Serves BLANK_PAGE on 127.0.0.1 at a free port (closed on every way out);
// resolves to {url, close}.
function startPageServer() {
  const pageServer = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(BLANK_PAGE);
  });
  const forget = onExit(() => pageServer.close());
  const close = () => { forget(); pageServer.close(); };
  return new Promise((resolve, reject) => {
    pageServer.once('error', reject);
    pageServer.listen(0, '127.0.0.1',
      () => resolve({ url: `http://127.0.0.1:${pageServer.address().port}/`, close }));
  });
}

async function runCase(mode, pageUrl) {
  const failures = [];
  const server = startServer(mode === 'off' ? [] : ['--deflate', mode]);
  let result = null;
  let context = null;
  try {
    const url = await server.url;
    context = await browser.newContext();
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${mode} console] ${m.text()}`); });
    await withDeadline(page.goto(pageUrl), 20_000, 'loading the page');
    result = await withDeadline(
      page.evaluate(echoInPage, { url, sizes: SIZES, timeoutMs: 20_000 }),
      CASE_TIMEOUT_MS, `${mode}: echo in the page`);
    if (result.error) failures.push(result.error);
    if (result.extensions !== null) {
      const bad = checkExtensions(mode, result.extensions);
      if (bad) failures.push(bad);
    }
    const expected = SIZES.length * 2;
    const okCount = result.messages.filter((m) => m.ok).length;
    for (const m of result.messages.filter((x) => !x.ok)) {
      failures.push(`${m.kind} ${m.size} B: ${m.detail}`);
    }
    if (!result.error && result.messages.length !== expected) {
      failures.push(`only ${result.messages.length} of ${expected} messages were tried`);
    }
    if (!result.close) failures.push('no close event after close(1000)');
    else if (result.close.code !== 1000 || !result.close.wasClean) {
      failures.push(`close event: code ${result.close.code}, wasClean ${result.close.wasClean}`);
    }
    result.summary = `${okCount}/${expected} echoes exact`;
  } catch (e) {
    failures.push(String(e.message ?? e));
  } finally {
    if (context) await context.close().catch(() => {});
    try {
      const { code, signal } = await stopServer(server, 10_000);
      if (code !== 0) failures.push(`server exited with ${code ?? signal} on SIGTERM, expected 0`);
    } catch (e) {
      failures.push(String(e.message ?? e));
    }
  }
  if (failures.length && server.output().trim()) {
    failures.push(`server output: ${server.output().trim().split('\n').slice(-5).join(' | ')}`);
  }
  return { mode, failures, result };
}

function statusPage(outcomes, chromiumVersion) {
  const human = (n) => (n >= 1048576 ? `${n / 1048576} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`);
  const header = SIZES.map((s) => `<th>${human(s)}</th>`).join('');
  const rows = outcomes.map(({ mode, failures, result, skipped }) => {
    if (skipped) return `<tr><td>${mode}</td><td colspan="${SIZES.length + 3}">skipped: ${escapeHtml(skipped)}</td></tr>`;
    const cell = (size) => ['text', 'binary'].map((kind) => {
      const m = result?.messages.find((x) => x.size === size && x.kind === kind);
      const mark = !m ? '–' : m.ok ? '✓' : '✗';
      return `<span class="${m?.ok ? 'ok' : 'bad'}" title="${escapeHtml(m?.detail ?? '')}">${kind[0]}${mark}</span>`;
    }).join(' ');
    const close = result?.close ? `${result.close.code}${result.close.wasClean ? '' : ' (unclean)'}` : '–';
    return `<tr class="${failures.length ? 'failrow' : ''}"><td>${mode}</td>` +
      `<td><code>${escapeHtml(result?.extensions ?? '–') || '(none)'}</code></td>` +
      SIZES.map((s) => `<td>${cell(s)}</td>`).join('') +
      `<td>${close}</td><td>${failures.length ? '<b class="bad">FAIL</b>' : '<b class="ok">PASS</b>'}</td></tr>`;
  }).join('\n');
  const problems = outcomes.flatMap(({ mode, failures }) => failures.map((f) => `<li>${mode}: ${escapeHtml(f)}</li>`));
  return `<!doctype html><meta charset="utf-8"><title>switchboard echo — browser interop</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px; }
  table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: 4px 8px; text-align: left; white-space: nowrap; }
  .ok { color: #137333; } .bad { color: #c5221f; } .failrow { background: #fce8e6; }
  code { font-size: 12px; } small { color: #555; }
</style>
<h2>switchboard echo ↔ ${escapeHtml(chromiumVersion)}</h2>
<p><small>text (t, multi-byte UTF-8) and binary (b) echoes, checked byte for byte; close with 1000.</small></p>
<table><tr><th>server mode</th><th>ws.extensions</th>${header}<th>close</th><th>result</th></tr>
${rows}</table>
${problems.length ? `<ul class="bad">${problems.join('')}</ul>` : ''}`;
}

async function main() {
  if (!binary) {
    console.log('usage: node echo_browser_test.mjs SWITCHBOARD_BINARY [ARTIFACT_DIR]');
    return 2;
  }
  const chromium = await loadChromium();
  if (!chromium) return 1;
  browser = await launchBrowser(chromium);
  const version = `Chromium ${browser.version()}`;

  const pageServer = await startPageServer();
  const pageUrl = pageServer.url;
  const deflate = serverHasDeflate();
  const outcomes = [];
  for (const mode of ['off', 'shared', 'dedicated']) {
    if (mode !== 'off' && !deflate) {
      outcomes.push({ mode, failures: [], skipped: 'switchboard echo has no --deflate yet' });
      console.log(`SKIP ${mode}: switchboard echo --help lists no --deflate`);
      continue;
    }
    const outcome = await runCase(mode, pageUrl);
    outcomes.push(outcome);
    const r = outcome.result;
    const what = r ? `extensions "${r.extensions ?? ''}", ${r.summary ?? ''}, close ${r.close?.code ?? '–'}` : '';
    if (outcome.failures.length === 0) {
      console.log(`PASS ${mode}: ${what}`);
    } else {
      console.log(`FAIL ${mode}: ${what}`);
      for (const f of outcome.failures) console.log(`  - ${f}`);
    }
  }

  // The status page: rendered from the results, saved as a test artifact.
  try {
    mkdirSync(artifactDir, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 300 } });
    await page.setContent(statusPage(outcomes, version));
    const shot = path.join(artifactDir, 'echo.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  } catch (e) {
    console.log(`warning: no screenshot: ${e.message}`);
  }
  await browser.close();
  browser = null;
  pageServer.close();

  const passed = outcomes.filter((o) => !o.skipped && o.failures.length === 0).length;
  const failed = outcomes.filter((o) => !o.skipped && o.failures.length > 0).length;
  const skipped = outcomes.filter((o) => o.skipped).length;
  summary(passed, failed, skipped);
  return failed === 0 && passed > 0 ? 0 : 1;
}

run(main);
