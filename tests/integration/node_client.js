// Node `ws` client scenarios against `switchboard echo`, driven by interop_test.py.
//
// Usage: NODE_PATH=/usr/share/nodejs node node_client.js <scenario> <url> [args...]
// Exits 0 and prints "ok" (or the requested observation) when the scenario holds;
// prints "FAIL: <why>" and exits 1 otherwise.
'use strict';

const WebSocket = require('ws');

const [scenario, url, ...args] = process.argv.slice(2);

function fail(why) {
  console.log('FAIL: ' + why);
  process.exit(1);
}

function pattern(n, seed) {
  // Printable ASCII so the same bytes work as text and as binary.
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = 33 + ((i * 7 + seed) % 90);
  return b;
}

function open(options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, Object.assign({ maxPayload: 256 * 1024 * 1024 }, options));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error('closed with ' + code + ' while waiting'));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => {
      ws.off('close', onClose);
      resolve({ data, isBinary });
    });
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

async function roundTrip(ws, payload, binary) {
  const got = nextMessage(ws);
  ws.send(payload, { binary });
  const { data, isBinary } = await got;
  if (isBinary !== binary) fail(`opcode changed: sent binary=${binary}, got binary=${isBinary}`);
  if (!Buffer.from(data).equals(payload)) {
    fail(`payload of ${payload.length} bytes came back as ${data.length} different bytes`);
  }
}

const scenarios = {
  async sizes() {
    const ws = await open();
    const sizes = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20];
    for (const n of sizes) {
      await roundTrip(ws, pattern(n, 1), false);
      await roundTrip(ws, pattern(n, 2), true);
    }
    ws.close(1000);
    await closed(ws);
    console.log('ok');
  },

  async fragments() {
    const ws = await open({ perMessageDeflate: false });
    let got = nextMessage(ws);
    ws.send('Hel', { fin: false });
    ws.send('', { fin: false });
    ws.send('lo, ', { fin: false });
    ws.send('wörld', { fin: true });
    let m = await got;
    if (m.isBinary || m.data.toString() !== 'Hello, wörld') fail('text fragments: ' + m.data);
    got = nextMessage(ws);
    const parts = [pattern(70000, 3), pattern(1, 4), pattern(200000, 5)];
    parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
    m = await got;
    if (!m.isBinary || !Buffer.from(m.data).equals(Buffer.concat(parts))) fail('binary fragments');
    ws.close(1000);
    await closed(ws);
    console.log('ok');
  },

  async ping() {
    const ws = await open();
    for (const payload of [Buffer.alloc(0), Buffer.from('node-ping'), pattern(125, 6)]) {
      const pong = new Promise((resolve) => ws.once('pong', resolve));
      ws.ping(payload);
      const data = await pong;
      if (!data.equals(payload)) fail(`pong payload ${data.toString('hex')} != ${payload.toString('hex')}`);
    }
    ws.close(1000);
    await closed(ws);
    console.log('ok');
  },

  async close() {
    const code = Number(args[0]);
    const reason = args[1] || '';
    const ws = await open();
    const started = Date.now();
    const done = closed(ws);
    ws.close(code, reason);
    const c = await done;
    // The code must come back (RFC 6455 5.5.1); the reason may or may not.
    if (c.code !== code || (c.reason !== reason && c.reason !== '')) {
      fail(`close came back as ${c.code} "${c.reason}"`);
    }
    console.log(JSON.stringify({ code: c.code, reason: c.reason, ms: Date.now() - started }));
  },

  async many() {
    const n = Number(args[0] || 2000);
    const ws = await open();
    const seen = [];
    const all = new Promise((resolve) => {
      ws.on('message', (data) => {
        seen.push(data.toString());
        if (seen.length === n) resolve();
      });
    });
    for (let i = 0; i < n; i++) ws.send('msg-' + i + '-' + 'x'.repeat(i % 300));
    await all;
    for (let i = 0; i < n; i++) {
      if (seen[i] !== 'msg-' + i + '-' + 'x'.repeat(i % 300)) fail(`message ${i} out of order or corrupt`);
    }
    ws.close(1000);
    await closed(ws);
    console.log('ok');
  },

  async 'wait-close'() {
    // Report the close the server sends (e.g. on SIGTERM).
    const ws = await open();
    const done = closed(ws);
    await roundTrip(ws, Buffer.from('ready?'), false);
    console.log('open');
    const c = await done;
    console.log(JSON.stringify(c));
  },

  async 'protocol-error'() {
    // Write an unmasked frame straight to the socket: the server must fail with 1002.
    const ws = await open({ perMessageDeflate: false });
    const done = closed(ws);
    ws._socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    const c = await done;
    console.log(JSON.stringify(c));
  },
};

const run = scenarios[scenario];
if (!run) fail('unknown scenario ' + scenario);
const timer = setTimeout(() => fail('scenario timed out'), Number(process.env.NODE_SCENARIO_TIMEOUT_MS || 60000));
run().then(() => { clearTimeout(timer); process.exit(0); }, (e) => fail(e.stack || String(e)));
