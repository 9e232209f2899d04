// switchboard_sdk_test.mjs — unit tests of web/switchboard.js without a browser.
//
// The SDK runs in node against a fake server written here: a `ws` (Debian's
// node-ws, found through NODE_PATH=/usr/share/nodejs) WebSocketServer that
// speaks enough of the switchboard.v1 protocol (docs/protocol.md) — connect,
// ping, subscribe with since, publish, presence, history — and lets each test
// take over any command to script what the real server would do in a corner
// (refuse handshakes, drop the socket, ignore pings, lose an epoch, send
// duplicates, answer out of order).
//
// Run: NODE_PATH=/usr/share/nodejs node --test tests/web/
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { test as nodeTest } from 'node:test';

import {
  CLOSE_AUTH,
  CLOSE_DISCONNECTED,
  CLOSE_TOKEN_EXPIRED,
  Client,
  ERROR_NO_REPLY,
  PROTOCOL,
  PROTOCOL_COMPACT,
  SwitchboardError,
  backoffDelay,
} from '../../web/switchboard.js';

const require = createRequire(import.meta.url);
const { WebSocket, WebSocketServer } = require('ws');

// Every test is bounded: a hang fails it instead of the whole run.
const test = (name, body) => nodeTest(name, { timeout: 20_000 }, body);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `predicate` until it is truthy; fails the test after `ms`.
async function until(predicate, what, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// --- the fake server -----------------------------------------------------------

class FakeServer {
  connections = []; // {ws, id, protocol, received: [msg], subs: Set, closed: Promise<{code, reason}>}
  channels = new Map(); // name -> {epoch, offset, pubs: [{offset, data, client}]}
  refuse = false; // answer upgrades with 503
  silentPings = false; // never answer `ping`
  onCommand = null; // (conn, msg) => true when the test handled msg itself
  compact = false; // select PROTOCOL_COMPACT when offered, and push in its short form
  #nextClient = 1;

  async start() {
    this.wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols, request) => {
        request.offered = [...protocols];
        if (this.compact && protocols.has(PROTOCOL_COMPACT)) return PROTOCOL_COMPACT;
        return protocols.has(PROTOCOL) ? PROTOCOL : false;
      },
      verifyClient: (info, callback) => (this.refuse ? callback(false, 503, 'down') : callback(true)),
    });
    await once(this.wss, 'listening');
    this.url = `ws://127.0.0.1:${this.wss.address().port}/ws`;
    this.wss.on('connection', (ws, request) => this.#accept(ws, request));
    return this;
  }

  async stop() {
    for (const c of this.connections) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }

  get last() {
    return this.connections.at(-1);
  }

  channel(name) {
    if (!this.channels.has(name)) {
      this.channels.set(name, { epoch: `e${Math.random().toString(16).slice(2, 10)}`, offset: 0, pubs: [] });
    }
    return this.channels.get(name);
  }

  // A publication from elsewhere (another client, the HTTP API): kept and pushed.
  publish(name, data, client = 'other') {
    const ch = this.channel(name);
    const pub = { offset: ++ch.offset, data, client };
    ch.pubs.push(pub);
    for (const c of this.connections) {
      if (c.subs.has(name) && c.ws.readyState === WebSocket.OPEN) {
        this.send(c, c.protocol === PROTOCOL_COMPACT
          ? { m: name, ...FakeServer.short(pub) }
          : { push: 'message', channel: name, epoch: ch.epoch, ...pub });
      }
    }
    return pub;
  }

  // A publication in the compact form: {o, d, c} (docs/protocol.md).
  static short(pub) {
    return { o: pub.offset, d: pub.data, c: pub.client };
  }

  // A reply's publications in the form `conn` asked for.
  static listed(conn, pubs) {
    return conn.protocol === PROTOCOL_COMPACT ? pubs.map((p) => FakeServer.short(p)) : pubs;
  }

  send(conn, obj) {
    conn.ws.send(JSON.stringify(obj));
  }

  reply(conn, msg, result) {
    this.send(conn, { id: msg.id, result });
  }

  fail(conn, msg, code, message) {
    this.send(conn, { id: msg.id, error: { code, message } });
  }

  // Commands of one kind received by a connection.
  commands(conn, cmd) {
    return conn.received.filter((m) => m.cmd === cmd);
  }

  #accept(ws, request) {
    const conn = {
      ws, id: `c${this.#nextClient++}`, protocol: ws.protocol, offered: request.offered, received: [], subs: new Set(),
    };
    conn.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.connections.push(conn);
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'the SDK sends text messages only');
      const msg = JSON.parse(data.toString());
      conn.received.push(msg);
      if (this.onCommand?.(conn, msg)) return;
      this.#handle(conn, msg);
    });
  }

  #handle(conn, msg) {
    const ch = typeof msg.channel === 'string' ? this.channel(msg.channel) : null;
    switch (msg.cmd) {
      case 'connect':
        return this.reply(conn, msg, { client: conn.id });
      case 'ping':
        if (!this.silentPings) this.reply(conn, msg, {});
        return undefined;
      case 'subscribe': {
        if (!/^[A-Za-z0-9_\-.@=:]{1,128}$/.test(msg.channel ?? '')) {
          return this.fail(conn, msg, 422, `invalid channel name: ${msg.channel}`);
        }
        if (conn.subs.has(msg.channel)) return this.fail(conn, msg, 409, 'already subscribed');
        conn.subs.add(msg.channel);
        const result = this.subscribeResult(ch, msg);
        if (result.publications) result.publications = FakeServer.listed(conn, result.publications);
        return this.reply(conn, msg, result);
      }
      case 'unsubscribe':
        if (!conn.subs.delete(msg.channel)) return this.fail(conn, msg, 404, 'not subscribed');
        return this.reply(conn, msg, {});
      case 'publish': {
        if (!conn.subs.has(msg.channel)) return this.fail(conn, msg, 403, 'not subscribed');
        const pub = this.publish(msg.channel, msg.data, conn.id);
        return this.reply(conn, msg, { epoch: ch.epoch, offset: pub.offset });
      }
      case 'presence':
        return this.reply(conn, msg, {
          channel: msg.channel,
          clients: this.connections.filter((c) => c.subs.has(msg.channel)).map((c) => ({ client: c.id })),
        });
      case 'history': {
        let pubs = ch.pubs;
        if (msg.since) pubs = pubs.filter((p) => p.offset > msg.since.offset);
        if (msg.limit !== undefined) pubs = pubs.slice(-msg.limit);
        return this.reply(conn, msg, {
          channel: msg.channel, epoch: ch.epoch, offset: ch.offset, publications: FakeServer.listed(conn, pubs),
        });
      }
      default:
        return this.fail(conn, msg, 400, `unknown cmd: ${msg.cmd}`);
    }
  }

  subscribeResult(ch, msg) {
    const result = { channel: msg.channel, epoch: ch.epoch, offset: ch.offset };
    if (msg.since) {
      if (msg.since.epoch === ch.epoch) {
        Object.assign(result, { recovered: true, publications: ch.pubs.filter((p) => p.offset > msg.since.offset) });
      } else {
        Object.assign(result, { recovered: false, reason: 'epoch changed', publications: [] });
      }
    }
    return result;
  }
}

// Everything a client emits, in order, as [event, payload].
function record(client) {
  const events = [];
  for (const name of ['connecting', 'connected', 'disconnected', 'reconnecting', 'error', 'push']) {
    client.on(name, (payload) => events.push([name, payload]));
  }
  return events;
}

// Subscription handlers that log into `log` as [event, payload].
function logger(log) {
  const handlers = {};
  for (const name of ['message', 'join', 'leave', 'presence', 'reset', 'subscribed', 'error']) {
    handlers[name] = (payload) => log.push([name, payload]);
  }
  return handlers;
}

const messages = (log) => log.filter(([e]) => e === 'message').map(([, p]) => p);

// A client with fast timers; tests override what they exercise. WebSocket
// only: these tests are about the protocol over /ws (the fallback to the HTTP
// transports has its own tests in switchboard_transports_test.mjs).
function makeClient(server, options = {}) {
  return new Client(server.url, {
    WebSocket,
    transports: ['websocket'],
    storage: null,
    backoff: { baseMs: 5, capMs: 20 },
    heartbeat: { intervalMs: 0 },
    ...options,
  });
}

// Runs body(server) and always stops the clients and the server afterwards.
async function withServer(body) {
  const server = await new FakeServer().start();
  const clients = [];
  try {
    await body(server, (c) => { clients.push(c); return c; });
  } finally {
    for (const c of clients) c.disconnect();
    await server.stop();
  }
}

// --- connect ---------------------------------------------------------------------

test('connect: subprotocol, `connect` first with info, nothing else before its reply', () =>
  withServer(async (server, track) => {
    let held = null;
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'connect') return false;
      held = () => server.reply(conn, msg, { client: conn.id });
      return true;
    };
    const client = track(makeClient(server, { info: { name: 'Ann' } }));
    const events = record(client);
    const subscribed = client.subscribe('chat:a'); // kept until connected
    const connected = client.connect();
    assert.equal(client.state, 'connecting');
    const published = client.publish('chat:a', { text: 'queued' }); // queued until connected

    const conn = await until(() => server.last, 'a connection');
    await until(() => conn.received.length === 1, 'the connect command');
    await sleep(100); // nothing else may come while `connect` has no reply
    assert.equal(conn.received.length, 1);
    assert.equal(conn.protocol, PROTOCOL);
    const [first] = conn.received;
    assert.equal(first.cmd, 'connect');
    assert.deepEqual(first.info, { name: 'Ann' });
    assert.equal('token' in first, false);
    assert.notEqual(first.id, undefined);

    held();
    assert.deepEqual(await connected, { client: 'c1' });
    assert.equal(client.state, 'connected');
    assert.equal(client.clientId, 'c1');
    const sub = await subscribed;
    assert.equal(sub.channel, 'chat:a');
    assert.deepEqual(await published, { epoch: server.channel('chat:a').epoch, offset: 1 });
    // The subscription goes before the queued publish (publishing needs it).
    assert.deepEqual(conn.received.map((m) => m.cmd), ['connect', 'subscribe', 'publish']);
    const ids = conn.received.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique');
    assert.deepEqual(events.map(([e]) => e), ['connecting', 'connected']);
    assert.deepEqual(events[1][1], { client: 'c1' });
    assert.deepEqual(await client.connect(), { client: 'c1' }, 'connect() when connected');
  }));

test('connect: a token (string or function) is sent instead of info', () =>
  withServer(async (server, track) => {
    const a = track(makeClient(server, { token: 'T1', info: { name: 'ignored' } }));
    await a.connect();
    assert.deepEqual(server.last.received[0], { id: server.last.received[0].id, cmd: 'connect', token: 'T1' });
    let calls = 0;
    const b = track(makeClient(server, { token: async () => `T${++calls + 1}` }));
    await b.connect();
    assert.equal(server.last.received[0].token, 'T2');
    server.last.ws.close(1012, 'restart');
    await until(() => server.connections.length === 3 && server.last.received.length > 0, 'the reconnect');
    assert.equal(server.last.received[0].token, 'T3', 'the token function is called for every connect');
  }));

// --- commands and replies ---------------------------------------------------------

test('requests: results matched by id, errors carry the protocol code', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    await client.connect();
    const conn = server.last;
    await client.subscribe('chat:r');
    assert.deepEqual(await client.publish('chat:r', [1, 'two', { three: 3 }]),
      { epoch: server.channel('chat:r').epoch, offset: 1 });
    assert.deepEqual(await client.presence('chat:r'), { channel: 'chat:r', clients: [{ client: 'c1' }] });
    server.publish('chat:r', 'x');
    server.publish('chat:r', 'y');
    const history = await client.history('chat:r', { limit: 1, since: { epoch: 'E', offset: 1 } });
    assert.deepEqual(commandFields(server.commands(conn, 'history')[0]),
      { cmd: 'history', channel: 'chat:r', limit: 1, since: { epoch: 'E', offset: 1 } });
    assert.deepEqual(history.publications.map((p) => p.data), ['y']);
    assert.deepEqual(commandFields((await historyCommand(client, server, conn))), { cmd: 'history', channel: 'chat:r' });

    // Errors: an Error with the numeric code and the server's message.
    await assert.rejects(client.subscribe('chat:bad name!'), (e) => {
      assert.ok(e instanceof Error && e instanceof SwitchboardError);
      assert.equal(e.code, 422);
      assert.match(e.message, /invalid channel name/);
      return true;
    });
    assert.equal(client.subscription('chat:bad name!'), undefined, 'a failed subscribe is forgotten');
    await assert.rejects(client.publish('chat:other', {}), { code: 403 });
    await assert.rejects(client.subscribe('chat:r'), { code: 409 }, 'a channel the client has is a local 409');

    // Replies are matched by id, not by order.
    const held = [];
    server.onCommand = (c, msg) => {
      if (msg.cmd !== 'presence') return false;
      held.push(msg);
      if (held.length === 2) {
        server.reply(c, held[1], { channel: held[1].channel, clients: ['second'] });
        server.reply(c, held[0], { channel: held[0].channel, clients: ['first'] });
      }
      return true;
    };
    const [p1, p2] = await Promise.all([client.presence('chat:one'), client.presence('chat:two')]);
    assert.deepEqual([p1, p2], [{ channel: 'chat:one', clients: ['first'] }, { channel: 'chat:two', clients: ['second'] }]);
  }));

function commandFields(msg) {
  const { id, ...rest } = msg;
  assert.notEqual(id, undefined);
  return rest;
}

async function historyCommand(client, server, conn) {
  await client.history('chat:r');
  return server.commands(conn, 'history').at(-1);
}

test('requests: a command made before connect() rejects; unsubscribe stops the subscription', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    await assert.rejects(client.publish('chat:x', 1), { code: ERROR_NO_REPLY });
    const log = [];
    await Promise.all([client.subscribe('chat:u', logger(log)), client.connect()]);
    const conn = server.last;
    server.publish('chat:u', 'one');
    await until(() => messages(log).length === 1, 'the first message');
    assert.deepEqual(await client.unsubscribe('chat:u'), {});
    assert.equal(client.subscription('chat:u'), undefined);
    await assert.rejects(client.unsubscribe('chat:u'), { code: 404 });
    assert.equal(conn.subs.has('chat:u'), false);
    conn.ws.close(1012);
    await until(() => server.connections.length === 2 && client.state === 'connected', 'the reconnect');
    await sleep(30);
    assert.deepEqual(server.commands(server.last, 'subscribe'), [], 'not resubscribed');
  }));

// --- reconnection -------------------------------------------------------------------

test('backoff: full jitter within [0, min(cap, base * 2^attempt))', () => {
  const backoff = { baseMs: 100, capMs: 3000 };
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(3000, 100 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, backoff, () => 0), 0);
    assert.equal(backoffDelay(attempt, backoff, () => 0.999999999), ceiling - 1);
    assert.equal(backoffDelay(attempt, backoff, () => 0.5), Math.floor(ceiling / 2));
  }
  assert.ok(backoffDelay(0) < 500, 'the first retry waits under baseMs');
  assert.equal(backoffDelay(3, undefined, () => 0.999999999), 3999, 'defaults: base 500, cap 15000');
  assert.equal(backoffDelay(10, undefined, () => 0.999999999), 14999);
  // Full jitter: spread over the whole range, not bunched near the ceiling.
  const samples = Array.from({ length: 2000 }, () => backoffDelay(3, backoff));
  assert.ok(samples.every((d) => Number.isInteger(d) && d >= 0 && d < 800));
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(mean > 330 && mean < 470, `mean ${mean} is about 400`);
  assert.ok(Math.min(...samples) < 80 && Math.max(...samples) > 720);
});

test('backoff: the client waits min(cap, base * 2^(n-1)) at most before attempt n, reset after a connect', () =>
  withServer(async (server, track) => {
    server.refuse = true;
    const client = track(makeClient(server, { backoff: { baseMs: 4, capMs: 40 } }));
    const events = record(client);
    const connected = client.connect();
    const waits = () => events.filter(([e]) => e === 'reconnecting').map(([, p]) => p);
    await until(() => waits().length >= 8, 'eight reconnection attempts');
    waits().slice(0, 8).forEach(({ attempt, delayMs }, i) => {
      assert.equal(attempt, i + 1);
      assert.ok(Number.isInteger(delayMs) && delayMs >= 0 && delayMs < Math.min(40, 4 * 2 ** i),
        `attempt ${attempt} waited ${delayMs} ms`);
    });
    const disconnects = events.filter(([e]) => e === 'disconnected').map(([, p]) => p);
    assert.ok(disconnects.every((d) => d.willReconnect === true && d.code === 1006));
    server.refuse = false;
    await connected;
    events.length = 0;
    server.last.ws.close(1012, 'restart');
    await until(() => waits().length >= 1, 'the reconnect after a drop');
    assert.deepEqual(events.slice(0, 2).map(([e, p]) => [e, e === 'reconnecting' ? p.attempt : p]), [
      ['disconnected', { code: 1012, reason: 'restart', willReconnect: true }],
      ['reconnecting', 1],
    ]);
    assert.ok(waits()[0].delayMs < 4, 'the backoff starts over after a successful connect');
    await until(() => client.state === 'connected', 'connected again');
  }));

test('recovery: resubscribe with since after a drop; missed publications before live ones', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const events = record(client);
    const log = [];
    await client.connect();
    const sub = await client.subscribe('chat:r', logger(log));
    const ch = server.channel('chat:r');
    for (const text of ['m1', 'm2', 'm3']) server.publish('chat:r', text);
    await until(() => messages(log).length === 3, 'three live messages');
    assert.deepEqual({ epoch: sub.epoch, offset: sub.offset }, { epoch: ch.epoch, offset: 3 });

    server.refuse = true; // the server is down for a while
    server.last.ws.close(1012, 'restart');
    await until(() => events.some(([e]) => e === 'reconnecting'), 'a reconnection attempt');
    server.publish('chat:r', 'm4'); // missed: published while the client is away
    server.publish('chat:r', 'm5');
    const queued = client.publish('chat:r', 'm8 (queued while away)');

    // The real server may push a live publication before the subscribe reply
    // reaches the client: the SDK must still deliver the recovered ones first.
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'subscribe') return false;
      conn.subs.add(msg.channel);
      const result = server.subscribeResult(ch, msg);
      server.publish('chat:r', 'm6');
      result.publications = result.publications.filter((p) => p.offset <= 5); // as of before m6
      result.offset = 5;
      server.reply(conn, msg, result);
      server.publish('chat:r', 'm7');
      return true;
    };
    server.refuse = false;
    await until(() => messages(log).length === 8, 'eight messages');
    const conn = server.last;
    assert.deepEqual(commandFields(server.commands(conn, 'subscribe')[0]),
      { cmd: 'subscribe', channel: 'chat:r', since: { epoch: ch.epoch, offset: 3 } });
    assert.deepEqual(messages(log).map((m) => [m.offset, m.data]),
      [[1, 'm1'], [2, 'm2'], [3, 'm3'], [4, 'm4'], [5, 'm5'], [6, 'm6'], [7, 'm7'], [8, 'm8 (queued while away)']]);
    assert.ok(messages(log).every((m) => m.channel === 'chat:r' && m.epoch === ch.epoch));
    assert.deepEqual((await queued).offset, 8);
    assert.deepEqual(conn.received.map((m) => m.cmd), ['connect', 'subscribe', 'publish']);
    const subscribedEvents = log.filter(([e]) => e === 'subscribed').map(([, p]) => p);
    assert.deepEqual(subscribedEvents.map((p) => [p.recovered, p.resumed]), [[false, false], [true, true]]);
    assert.equal(log.some(([e]) => e === 'reset'), false);
    assert.deepEqual(events.find(([e]) => e === 'disconnected')[1], { code: 1012, reason: 'restart', willReconnect: true });
  }));

test('recovery: publications at or below the last seen offset are dropped', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const log = [];
    const ch = server.channel('chat:d');
    ch.offset = 10; // the stream is at 10 when the client subscribes
    await client.connect();
    await client.subscribe('chat:d', logger(log));
    const push = (offset, data) => server.send(server.last, { push: 'message', channel: 'chat:d', epoch: ch.epoch, offset, data });
    push(9, 'before the subscription');
    push(11, 'a');
    push(12, 'b');
    push(12, 'b again');
    push(11, 'a again');
    push(13, 'c');
    await until(() => messages(log).length >= 3, 'three messages');
    await sleep(20);
    assert.deepEqual(messages(log).map((m) => m.data), ['a', 'b', 'c']);

    // A recovery that overlaps what was seen (13): only 14 and 15 are new.
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'subscribe') return false;
      conn.subs.add(msg.channel);
      assert.deepEqual(msg.since, { epoch: ch.epoch, offset: 13 });
      const pubs = [12, 13, 14, 15].map((offset) => ({ offset, data: `r${offset}` }));
      server.reply(conn, msg, { channel: 'chat:d', epoch: ch.epoch, offset: 15, recovered: true, publications: pubs });
      push(15, 'r15 again');
      push(16, 'live');
      return true;
    };
    server.last.ws.terminate();
    await until(() => messages(log).length >= 6, 'six messages');
    await sleep(20);
    assert.deepEqual(messages(log).map((m) => m.data), ['a', 'b', 'c', 'r14', 'r15', 'live']);
  }));

test('recovery: recovered:false emits reset, then the history, then live publications', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    const sub = await client.subscribe('chat:x', logger(log));
    const old = server.channel('chat:x');
    server.publish('chat:x', 'old1');
    server.publish('chat:x', 'old2');
    await until(() => messages(log).length === 2, 'two messages');

    // The server restarts without its snapshot: a new epoch with 2 publications.
    server.last.subs.delete('chat:x'); // (the old connection is going away)
    const fresh = { epoch: 'e-new', offset: 0, pubs: [] };
    server.channels.set('chat:x', fresh);
    server.publish('chat:x', 'new1');
    server.publish('chat:x', 'new2');
    let historyAsked = null;
    server.onCommand = (conn, msg) => {
      if (msg.cmd === 'subscribe') {
        conn.subs.add(msg.channel);
        assert.deepEqual(msg.since, { epoch: old.epoch, offset: 2 });
        server.reply(conn, msg, server.subscribeResult(fresh, msg));
        server.publish('chat:x', 'new3'); // live, before the history reply
        return true;
      }
      if (msg.cmd === 'history') historyAsked = msg;
      return false;
    };
    server.last.ws.close(1012);
    await until(() => messages(log).length === 5, 'five messages');
    assert.deepEqual(commandFields(historyAsked), { cmd: 'history', channel: 'chat:x' });
    const after = log.slice(log.findIndex(([e]) => e === 'message') + 2);
    assert.deepEqual(after.map(([e, p]) => [e, e === 'message' ? `${p.epoch}/${p.offset}/${p.data}` : p]), [
      ['subscribed', { channel: 'chat:x', epoch: 'e-new', offset: 2, recovered: false, resumed: true, reason: 'epoch changed' }],
      ['reset', { channel: 'chat:x', reason: 'epoch changed', epoch: 'e-new' }],
      ['message', 'e-new/1/new1'],
      ['message', 'e-new/2/new2'],
      ['message', 'e-new/3/new3'],
    ]);
    assert.deepEqual({ epoch: sub.epoch, offset: sub.offset }, { epoch: 'e-new', offset: 3 });

    // The next reconnect resumes from the new stream.
    server.onCommand = null;
    server.last.ws.close(1012);
    await until(() => server.connections.length === 3 && server.commands(server.last, 'subscribe').length === 1,
      'the next resubscribe');
    assert.deepEqual(server.commands(server.last, 'subscribe')[0].since, { epoch: 'e-new', offset: 3 });
  }));

test('recovery: a live publication of another epoch emits reset and reloads the history', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    await client.subscribe('chat:m', logger(log));
    server.publish('chat:m', 'old1');
    await until(() => messages(log).length === 1, 'one message');
    // The channel's state was lost and made again under the subscriber (a new
    // epoch, numbering from 1 again) without the connection ending.
    server.channels.set('chat:m', { epoch: 'e-other', offset: 0, pubs: [] });
    server.channel('chat:m').pubs.push({ offset: 1, data: 'kept1', client: 'x' });
    server.channel('chat:m').offset = 1;
    server.publish('chat:m', 'new2');
    await until(() => messages(log).length === 3, 'three messages');
    await sleep(20);
    assert.deepEqual(log.filter(([e]) => e !== 'subscribed').map(([e, p]) => (e === 'message' ? `${p.epoch}/${p.offset}/${p.data}` : e)),
      [`${messages(log)[0].epoch}/1/old1`, 'reset', 'e-other/1/kept1', 'e-other/2/new2']);
    assert.equal(server.commands(server.last, 'history').length, 1);
    assert.equal(server.connections.length, 1);
  }));

test('recovery: subscribe with history delivers the kept publications before live ones', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    for (const text of ['h1', 'h2', 'h3']) server.publish('chat:h', text);
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'subscribe') return false;
      conn.subs.add(msg.channel);
      server.reply(conn, msg, server.subscribeResult(server.channel('chat:h'), msg));
      server.publish('chat:h', 'live4'); // pushed before the history reply
      return true;
    };
    const log = [];
    await client.connect();
    await client.subscribe('chat:h', logger(log), { history: true });
    await until(() => messages(log).length === 4, 'four messages');
    await sleep(20);
    assert.deepEqual(messages(log).map((m) => `${m.offset}/${m.data}`), ['1/h1', '2/h2', '3/h3', '4/live4']);
    assert.equal(log.some(([e]) => e === 'reset'), false);
  }));

test('presence pushes reach the subscription as join and leave', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    await client.subscribe('chat:p', logger(log));
    const entry = { client: 'c9', user: 'bob', info: { name: 'Bob' } };
    server.send(server.last, { push: 'join', channel: 'chat:p', info: entry });
    server.send(server.last, { push: 'leave', channel: 'chat:p', info: entry });
    server.send(server.last, { push: 'join', channel: 'chat:elsewhere', info: entry });
    await until(() => log.filter(([e]) => e === 'leave').length === 1, 'the leave');
    assert.deepEqual(log.filter(([e]) => e === 'join' || e === 'leave'), [['join', entry], ['leave', entry]]);
  }));

test('a presence push becomes a presence event and one join or leave per entry', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    await client.subscribe('chat:p', logger(log));
    const bob = { client: 'c9', user: 'bob' };
    const ann = { client: 'c1', user: 'ann' };
    const cid = { client: 'c5' };
    server.send(server.last, { push: 'presence', channel: 'chat:p', count: 2, joins: [bob, ann], leaves: [cid] });
    server.send(server.last, { push: 'presence', channel: 'chat:elsewhere', count: 1, joins: [bob], leaves: [] });
    server.send(server.last, { push: 'presence', channel: 'chat:p', count: 5000 });
    await until(() => log.filter(([e]) => e === 'presence').length === 2, 'two presence events');
    await sleep(20);
    assert.deepEqual(log.filter(([e]) => e === 'presence' || e === 'join' || e === 'leave'), [
      ['presence', { count: 2, joins: [bob, ann], leaves: [cid] }],
      ['leave', cid], ['join', bob], ['join', ann],
      ['presence', { count: 5000, countsOnly: true }],
    ]);
  }));

test('presence() passes limit and cursor for a page', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    await client.connect();
    const seen = [];
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'presence') return false;
      seen.push({ limit: msg.limit, cursor: msg.cursor });
      server.reply(conn, msg, { channel: msg.channel, count: 3, clients: [{ client: 'c3' }] });
      return true;
    };
    const page = await client.presence('chat:r', { limit: 2, cursor: 'c2' });
    assert.deepEqual(page, { channel: 'chat:r', count: 3, clients: [{ client: 'c3' }] });
    await client.presence('chat:r');
    assert.deepEqual(seen, [{ limit: 2, cursor: 'c2' }, { limit: undefined, cursor: undefined }]);
  }));

// --- heartbeat ---------------------------------------------------------------------

test('heartbeat: no ping reply within timeoutMs closes the socket and reconnects', () =>
  withServer(async (server, track) => {
    server.silentPings = true;
    const client = track(makeClient(server, { heartbeat: { intervalMs: 40, timeoutMs: 250 } }));
    const events = record(client);
    const log = [];
    await Promise.all([client.subscribe('chat:hb', logger(log)), client.connect()]);
    const first = server.last;
    await until(() => events.some(([e]) => e === 'disconnected'), 'the heartbeat timeout', 2000);
    assert.deepEqual(events.find(([e]) => e === 'disconnected')[1],
      { code: 1006, reason: 'heartbeat timeout', willReconnect: true });
    assert.ok(server.commands(first, 'ping').length >= 1);
    const closed = await first.closed;
    assert.equal(closed.code, 4000, 'the SDK closes the dead socket itself');

    server.silentPings = false; // the new connection is healthy
    await until(() => server.connections.length === 2 && client.state === 'connected', 'the reconnect');
    const second = server.last;
    await until(() => server.commands(second, 'subscribe').length === 1, 'the resubscribe');
    const disconnects = events.filter(([e]) => e === 'disconnected').length;
    await sleep(500);
    assert.equal(events.filter(([e]) => e === 'disconnected').length, disconnects, 'no drop while pings are answered');
    assert.ok(server.commands(second, 'ping').length >= 3, 'a ping every intervalMs');
    assert.equal(client.state, 'connected');
  }));

test('heartbeat: an error reply (429) still proves the connection alive', () =>
  withServer(async (server, track) => {
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'ping') return false;
      server.fail(conn, msg, 429, 'rate limit');
      return true;
    };
    const client = track(makeClient(server, { heartbeat: { intervalMs: 30, timeoutMs: 200 } }));
    const events = record(client);
    await client.connect();
    await sleep(400);
    assert.ok(server.commands(server.last, 'ping').length >= 3);
    assert.equal(events.some(([e]) => e === 'disconnected'), false);
    assert.equal(server.connections.length, 1);
  }));

// --- stopping -----------------------------------------------------------------------

test('disconnect(): closes with 1000, rejects what waits, never reconnects; connect() resumes', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const events = record(client);
    const log = [];
    await client.connect();
    await client.subscribe('chat:s', logger(log));
    server.publish('chat:s', 'one');
    await until(() => messages(log).length === 1, 'one message');
    const conn = server.last;
    server.onCommand = (c, msg) => msg.cmd === 'history'; // never answered
    const waiting = client.history('chat:s');
    await until(() => server.commands(conn, 'history').length === 1, 'the history command');
    client.disconnect();
    await assert.rejects(waiting, { code: ERROR_NO_REPLY });
    assert.equal(client.state, 'disconnected');
    assert.deepEqual(events.at(-1), ['disconnected', { code: 1000, reason: 'client disconnect', willReconnect: false }]);
    assert.equal((await conn.closed).code, 1000);
    await assert.rejects(client.publish('chat:s', 'x'), { code: ERROR_NO_REPLY });
    await sleep(100);
    assert.equal(server.connections.length, 1, 'no reconnect');
    assert.equal(events.some(([e]) => e === 'reconnecting'), false);

    // The subscription kept its position: a later connect() resumes it.
    server.onCommand = null;
    server.publish('chat:s', 'two (missed)');
    await client.connect();
    await until(() => messages(log).length === 2, 'the missed message');
    assert.deepEqual(server.commands(server.last, 'subscribe')[0].since.offset, 1);
  }));

test('disconnect() during a backoff wait cancels the next attempt', () =>
  withServer(async (server, track) => {
    server.refuse = true;
    const client = track(makeClient(server, { backoff: { baseMs: 200, capMs: 200 } }));
    const events = record(client);
    const connected = client.connect();
    await until(() => events.some(([e]) => e === 'reconnecting'), 'a backoff wait');
    client.disconnect();
    await assert.rejects(connected, { code: ERROR_NO_REPLY });
    assert.deepEqual(events.at(-1), ['disconnected', { code: 1000, reason: 'client disconnect', willReconnect: false }]);
    const attempts = events.filter(([e]) => e === 'connecting').length;
    await sleep(400);
    assert.equal(events.filter(([e]) => e === 'connecting').length, attempts);
  }));

test('4001: a refused token stops the client and is emitted, no reconnect', () =>
  withServer(async (server, track) => {
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'connect') return false;
      server.fail(conn, msg, 401, 'bad signature');
      conn.ws.close(CLOSE_AUTH, 'bad signature');
      return true;
    };
    const client = track(makeClient(server, { token: 'forged' }));
    const events = record(client);
    const connected = client.connect();
    const queued = client.publish('chat:a', 1).catch((e) => e);
    await assert.rejects(connected, (e) => e instanceof SwitchboardError && e.code === CLOSE_AUTH
      && e.message === 'bad signature');
    assert.equal((await queued).code, CLOSE_AUTH);
    await sleep(100);
    assert.equal(server.connections.length, 1);
    assert.deepEqual(events.map(([e, p]) => [e, e === 'error' ? p.code : p]).slice(1), [
      ['disconnected', { code: CLOSE_AUTH, reason: 'bad signature', willReconnect: false }],
      ['error', CLOSE_AUTH],
    ]);
    assert.equal(client.state, 'disconnected');
  }));

test('4001: a close with 4001 during a session stops the client too', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const events = record(client);
    await client.connect();
    server.last.ws.close(CLOSE_AUTH, 'token expired');
    await until(() => events.some(([e]) => e === 'error'), 'the auth error');
    assert.equal(events.find(([e]) => e === 'error')[1].message, 'token expired');
    await sleep(100);
    assert.equal(server.connections.length, 1);
    assert.equal(events.some(([e]) => e === 'reconnecting'), false);
  }));

test('4003: a disconnect by the server API stops the client; connect() starts it again', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    const events = record(client);
    await client.connect();
    server.last.ws.close(CLOSE_DISCONNECTED, 'banned for an hour');
    await until(() => events.some(([e]) => e === 'error'), 'the disconnect error');
    const error = events.find(([e]) => e === 'error')[1];
    assert.ok(error instanceof SwitchboardError);
    assert.equal(error.code, CLOSE_DISCONNECTED);
    assert.equal(error.message, 'banned for an hour');
    assert.deepEqual(events.find(([e]) => e === 'disconnected')[1],
      { code: CLOSE_DISCONNECTED, reason: 'banned for an hour', willReconnect: false });
    // Made while stopped: rejected, not held for a reconnect that will not come.
    await assert.rejects(client.publish('chat:a', 1), /not connected: call connect\(\) first/);
    await sleep(300);
    assert.equal(server.connections.length, 1);
    assert.equal(events.some(([e]) => e === 'reconnecting'), false);
    assert.equal(client.state, 'disconnected');
    await client.connect(); // the application decides to come back
    assert.equal(server.connections.length, 2);
  }));

test('connect: other errors and a silent server are retried', () =>
  withServer(async (server, track) => {
    let refusals = 0;
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'connect') return false;
      if (conn.id === 'c1') {
        server.fail(conn, msg, 500, 'internal error');
        refusals++;
        return true;
      }
      return conn.id === 'c2'; // c2: never answered (connect timeout)
    };
    const client = track(makeClient(server, { connectTimeoutMs: 300 }));
    const events = record(client);
    await client.connect();
    assert.equal(refusals, 1);
    assert.equal(server.connections.length, 3);
    assert.deepEqual(events.filter(([e]) => e === 'disconnected').map(([, p]) => p.reason),
      ['connect refused: 500', 'connect timeout']);
  }));

// --- token lifetime ------------------------------------------------------------

test('getToken: called for connect and on the refresh push, sent in a refresh command', () =>
  withServer(async (server, track) => {
    server.onCommand = (conn, msg) => {
      if (msg.cmd !== 'refresh') return false;
      server.reply(conn, msg, { exp: 2000000000 });
      return true;
    };
    let calls = 0;
    const client = track(makeClient(server, { getToken: async () => `T${++calls}` }));
    const refreshed = [];
    client.on('refreshed', (r) => refreshed.push(r));
    await client.connect();
    const conn = server.last;
    assert.equal(conn.received[0].token, 'T1');
    server.send(conn, { push: 'refresh', exp: 1999999999 });
    await until(() => refreshed.length === 1, 'the refreshed event');
    assert.deepEqual(server.commands(conn, 'refresh').map((m) => m.token), ['T2']);
    assert.deepEqual(refreshed, [{ exp: 2000000000 }]);
    // A refused refresh is an error event; the connection stays.
    const errors = [];
    client.on('error', (e) => errors.push(e));
    server.onCommand = (c, msg) => {
      if (msg.cmd !== 'refresh') return false;
      server.fail(c, msg, 403, 'the new token is for another user');
      return true;
    };
    server.send(conn, { push: 'refresh', exp: 1999999999 });
    await until(() => errors.length === 1, 'the error event');
    assert.equal(errors[0].code, 403);
    assert.equal(client.state, 'connected');
  }));

test('getToken: a 4002 close (token expired) reconnects with a fresh token', () =>
  withServer(async (server, track) => {
    let calls = 0;
    const client = track(makeClient(server, { getToken: () => `T${++calls}` }));
    await client.connect();
    server.last.ws.close(CLOSE_TOKEN_EXPIRED, 'token expired');
    await until(() => server.connections.length === 2 && server.last.received.length > 0,
      'the reconnect');
    assert.equal(server.last.received[0].token, 'T2');
    await until(() => client.state === 'connected', 'connected again');
  }));

test('unsubscribe push: the subscription ends with an unsubscribed event', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    await client.connect();
    const log = [];
    const sub = await client.subscribe('chat:secret', {
      unsubscribed: (p) => log.push(['unsubscribed', p]), message: (p) => log.push(['message', p]),
    });
    await client.subscribe('chat:open');
    server.last.subs.delete('chat:secret');
    server.send(server.last, { push: 'unsubscribe', channel: 'chat:secret',
      reason: 'channel no longer granted by the token' });
    await until(() => log.length === 1, 'the unsubscribed event');
    assert.deepEqual(log, [['unsubscribed', { channel: 'chat:secret',
      reason: 'channel no longer granted by the token' }]]);
    assert.equal(sub.state, 'unsubscribed');
    assert.equal(client.subscription('chat:secret'), undefined);
    assert.equal(client.subscription('chat:open').state, 'subscribed');
    // Not resubscribed after a reconnect.
    server.last.ws.close(1012, 'restart');
    await until(() => server.connections.length === 2 && client.state === 'connected', 'reconnect');
    await sleep(50);
    assert.deepEqual(server.commands(server.last, 'subscribe').map((m) => m.channel), ['chat:open']);
  }));

// --- compact pushes ----------------------------------------------------------------

test('compact: the SDK offers switchboard.v1.compact first, and only switchboard.v1 when told not to', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server));
    await client.connect();
    // This server does not offer compact pushes (as every test above): v1 it is.
    assert.deepEqual(server.last.offered, [PROTOCOL_COMPACT, PROTOCOL]);
    assert.equal(server.last.protocol, PROTOCOL);
    const plain = track(makeClient(server, { compact: false }));
    await plain.connect();
    assert.deepEqual(server.last.offered, [PROTOCOL]);
    server.compact = true;
    const compact = track(makeClient(server));
    await compact.connect();
    assert.equal(server.last.protocol, PROTOCOL_COMPACT);
  }));

test('compact: pushes, recovery and history in the short form make the same events', () =>
  withServer(async (server, track) => {
    server.compact = true;
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    const sub = await client.subscribe('chat:c', logger(log));
    const { epoch } = server.channel('chat:c');
    assert.equal(sub.epoch, epoch);
    server.publish('chat:c', { text: 'one' });
    server.publish('chat:c', null, 'c9'); // a published null stays null
    await until(() => messages(log).length === 2, 'two compact pushes');
    assert.deepEqual(messages(log), [
      { channel: 'chat:c', epoch, offset: 1, data: { text: 'one' }, client: 'other' },
      { channel: 'chat:c', epoch, offset: 2, data: null, client: 'c9' },
    ]);

    // Away: what is missed comes back in the subscribe reply's short list,
    // then live pushes go on, nothing twice.
    const first = server.last;
    first.ws.terminate();
    await until(() => client.state === 'connecting' || client.state === 'connected' && server.last !== first,
      'the reconnect');
    server.publish('chat:c', 3);
    server.publish('chat:c', 4);
    await until(() => server.last !== first && server.commands(server.last, 'subscribe').length === 1,
      'the resubscribe');
    assert.deepEqual(server.commands(server.last, 'subscribe')[0].since, { epoch, offset: 2 });
    await until(() => messages(log).length === 4, 'the recovered publications');
    server.publish('chat:c', 5);
    await until(() => messages(log).length === 5, 'a live push after the recovery');
    assert.deepEqual(messages(log).map((m) => [m.offset, m.data, m.epoch]),
      [[1, { text: 'one' }, epoch], [2, null, epoch], [3, 3, epoch], [4, 4, epoch], [5, 5, epoch]]);

    // history() came in the short form; the application sees the long one.
    const h = await client.history('chat:c', { limit: 2 });
    assert.deepEqual(h.publications, [{ offset: 4, data: 4, client: 'other' }, { offset: 5, data: 5, client: 'other' }]);
    const wire = server.commands(server.last, 'history').at(-1);
    assert.equal(wire.limit, 2);
  }));

test('compact: a reset reloads the history from short-form entries', () =>
  withServer(async (server, track) => {
    server.compact = true;
    const client = track(makeClient(server));
    const log = [];
    await client.connect();
    await client.subscribe('chat:r', logger(log));
    server.publish('chat:r', 'a');
    await until(() => messages(log).length === 1, 'the first push');
    // The stream starts over while the client is away: recovered false, then the history.
    const first = server.last;
    server.channels.set('chat:r', { epoch: 'e-new', offset: 0, pubs: [] });
    first.ws.terminate();
    await until(() => server.last !== first, 'the reconnect');
    server.publish('chat:r', 'b');
    await until(() => log.some(([e]) => e === 'reset'), 'the reset');
    await until(() => messages(log).length === 2, 'the reloaded publication');
    assert.deepEqual(messages(log)[1], { channel: 'chat:r', epoch: 'e-new', offset: 1, data: 'b', client: 'other' });
  }));
