// sdk_session_client.mjs — the browser SDK (web/switchboard.js) in node on one
// HTTP transport, driven by redis_cluster_test.py through a load balancer
// without stickiness: connect, subscribe, publish `count` messages, and get
// each of them once, in order, with presence and history answered too.
//
// Usage: NODE_PATH=/usr/share/nodejs node sdk_session_client.mjs <ws url> <sse|long-polling> <channel> <count>
// Prints "ok <transport>" and exits 0, or "FAIL: <why>" and exits 1.
import { createRequire } from 'node:module';

import { Client } from '../../web/switchboard.js';

const require = createRequire(import.meta.url);
const { WebSocket } = require('ws');

const [url, transport, channel, countText] = process.argv.slice(2);
const count = Number(countText);

function fail(why) {
  console.log(`FAIL: ${why}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const storage = { getItem: () => null, setItem: () => {} };

const timer = setTimeout(() => fail('timed out (20 s)'), 20_000);
const client = new Client(url, {
  WebSocket,
  storage,
  transports: [transport],
  heartbeat: { intervalMs: 0 },
});
const events = [];
client.on('disconnected', (p) => events.push(p));
try {
  await client.connect();
  if (client.transport !== transport) fail(`on ${client.transport}, not ${transport}`);
  const got = [];
  await client.subscribe(channel, { message: (p) => got.push(p) });
  for (let i = 1; i <= count; i++) await client.publish(channel, i);
  const deadline = Date.now() + 10_000;
  while (got.length < count && Date.now() < deadline) await sleep(10);
  await sleep(200); // nothing twice
  const data = got.map((p) => p.data);
  const want = Array.from({ length: count }, (_, i) => i + 1);
  if (JSON.stringify(data) !== JSON.stringify(want)) fail(`got ${JSON.stringify(data)}`);
  const offsets = got.map((p) => p.offset);
  if (offsets.some((o, i) => i > 0 && o !== offsets[i - 1] + 1)) fail(`offsets ${offsets}`);
  const presence = await client.presence(channel);
  if (presence.count !== 1 && presence.clients?.length !== 1) fail(`presence ${JSON.stringify(presence)}`);
  const history = await client.history(channel);
  if (history.publications.length !== count) fail(`history ${JSON.stringify(history)}`);
  if (events.length !== 0) fail(`disconnected: ${JSON.stringify(events)}`);
} catch (error) {
  fail(error.stack || String(error));
}
clearTimeout(timer);
client.disconnect();
console.log(`ok ${transport}`);
process.exit(0);
