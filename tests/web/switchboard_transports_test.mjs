// switchboard_transports_test.mjs — the SDK's transports and their fallback
// (web/transports.js, and the Client of web/switchboard.js on top of it),
// in node without a browser.
//
//  - TransportPlan (the fallback state machine) and EventStreamParser alone;
//  - the Client against a fake server written here that speaks enough of
//    switchboard.v1 over /ws (Debian's node-ws, NODE_PATH=/usr/share/nodejs)
//    and over the HTTP sessions of docs/protocol.md (/rt/session, stream,
//    poll, send, DELETE), with switches for what proxies do: refuse the
//    WebSocket upgrade (a proxy that drops Upgrade), hold stream events back
//    (a proxy that buffers), drop every session and connection (a restart,
//    channels kept as a snapshot would keep them).
//
// Run: NODE_PATH=/usr/share/nodejs node --test tests/web/
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import { test as nodeTest } from 'node:test';

import {
  CLOSE_AUTH,
  Client,
  EventStreamParser,
  HttpSessionSocket,
  PROTOCOL,
  TRANSPORTS,
  TransportPlan,
  sessionUrlFor,
} from '../../web/switchboard.js';

const require = createRequire(import.meta.url);
const { WebSocket, WebSocketServer } = require('ws');

const test = (name, body) => nodeTest(name, { timeout: 20_000 }, body);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// A Storage stand-in (sessionStorage's getItem/setItem).
function memoryStorage(initial = {}) {
  const map = new Map(Object.entries(initial));
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => { map.set(k, String(v)); },
  };
}

// --- TransportPlan --------------------------------------------------------------------

test('plan: WebSocket falls back after fallbackAfter failures, HTTP transports after one, then wraps', () => {
  const plan = new TransportPlan(TRANSPORTS, { fallbackAfter: 3 });
  assert.equal(plan.current, 'websocket');
  assert.equal(plan.failed('websocket'), false);
  assert.equal(plan.failed('websocket'), false);
  assert.equal(plan.current, 'websocket');
  assert.equal(plan.failed('websocket'), true);
  assert.equal(plan.current, 'sse');
  assert.equal(plan.failed('websocket'), false, 'a late report of a transport no longer current is ignored');
  assert.equal(plan.failed('sse'), true);
  assert.equal(plan.current, 'long-polling');
  assert.equal(plan.failed('long-polling'), true);
  assert.equal(plan.current, 'websocket', 'after the last: the first again');
});

test('plan: a transport that worked is kept through failures, and remembered', () => {
  const storage = memoryStorage();
  const plan = new TransportPlan(TRANSPORTS, { fallbackAfter: 1, storage, key: 'k' });
  plan.failed('websocket');
  assert.equal(plan.current, 'sse');
  plan.worked('sse');
  assert.equal(storage.getItem('k'), 'sse');
  for (let i = 0; i < 10; i++) assert.equal(plan.failed('sse'), false);
  assert.equal(plan.current, 'sse', 'a restart is not a reason to leave a transport that worked');
  assert.equal(plan.canUpgrade, true);
  plan.upgrade();
  assert.equal(plan.current, 'websocket');
  assert.equal(plan.canUpgrade, false);
  assert.equal(plan.failed('websocket'), false, 'upgraded: WebSocket got through once');

  // A new plan (a reload) starts with what worked.
  const reloaded = new TransportPlan(TRANSPORTS, { storage, key: 'k' });
  assert.equal(reloaded.current, 'sse');
  assert.equal(new TransportPlan(['websocket', 'long-polling'], { storage, key: 'k' }).current, 'websocket',
    'a remembered transport that is not in the list is ignored');
  const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('denied'); } };
  const quiet = new TransportPlan(TRANSPORTS, { storage: broken });
  quiet.worked('sse');
  assert.equal(quiet.current, 'sse', 'a storage that throws is ignored');
});

test('plan: one transport never moves; bad lists are refused with a clear error', () => {
  const plan = new TransportPlan(['long-polling']);
  assert.equal(plan.failed('long-polling'), false);
  assert.equal(plan.current, 'long-polling');
  assert.equal(plan.canUpgrade, false);
  assert.throws(() => new TransportPlan([]), /non-empty array/);
  assert.throws(() => new TransportPlan(['websocket', 'smoke-signals']), /unknown transport "smoke-signals"/);
  assert.throws(() => new TransportPlan(['sse', 'sse']), /listed twice/);
  assert.throws(() => new Client('ws://127.0.0.1:1/ws', { transports: ['xhr'] }), /unknown transport "xhr"/);
});

test('sessionUrlFor: the /rt/session endpoint beside /ws', () => {
  assert.equal(sessionUrlFor('ws://127.0.0.1:8080/ws'), 'http://127.0.0.1:8080/rt/session');
  assert.equal(sessionUrlFor('wss://example.com/app/ws?x=1#y'), 'https://example.com/app/rt/session');
});

// --- EventStreamParser ----------------------------------------------------------------

test('event stream: fields, comments, CRLF and chunks split anywhere', () => {
  const text = 'retry: 2000\r\n\r\n: hb\n\nid: 1\nevent: message\ndata: {"a":1}\n\n' +
    'data: two\ndata: lines\r\rid: 3\r\nevent: reconnect\r\ndata: {}\r\n\r\nevent: empty\n\n';
  const want = [
    { event: 'message', data: '{"a":1}', id: '1' },
    { event: 'message', data: 'two\nlines', id: undefined },
    { event: 'reconnect', data: '{}', id: '3' },
  ];
  for (let size = 1; size <= text.length; size++) {
    const got = [];
    const parser = new EventStreamParser((e) => got.push(e));
    for (let i = 0; i < text.length; i += size) parser.feed(text.slice(i, i + size));
    assert.deepEqual(got, want, `chunks of ${size}`);
  }
  // A burst (a recovery) in one chunk: every event, in order.
  const got = [];
  const parser = new EventStreamParser((e) => got.push(Number(e.id)));
  parser.feed(Array.from({ length: 5000 }, (_, i) => `event: message\nid: ${i + 1}\ndata: {"n":${i + 1}}\n\n`).join(''));
  assert.equal(got.length, 5000);
  assert.ok(got.every((id, i) => id === i + 1));
});

// --- the fake server ------------------------------------------------------------------

class FakeServer {
  channels = new Map(); // name -> {epoch, offset, pubs}
  sessions = new Map(); // id -> {conn, buffer: [{seq, data}], seq, stream, poll}
  conns = new Set();
  refuseUpgrade = false; // a proxy that drops Upgrade: the handshake gets 400
  bufferStreams = false; // a proxy that buffers: stream headers, then nothing
  sessionStatus = 0; // answer POST /rt/session with this status (0: normally)
  posts = []; // bodies of POST /send
  streams = []; // Last-Event-ID of each stream request ('' without)
  deleted = 0;
  pollMs = 1000;
  overlap = 0; // a resumed stream repeats this many messages before Last-Event-ID
  #next = 1;

  async start() {
    this.http = http.createServer((req, res) => this.#route(req, res));
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has(PROTOCOL) ? PROTOCOL : false) });
    this.http.on('upgrade', (req, socket, head) => {
      if (this.refuseUpgrade) {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.#acceptWebSocket(ws));
    });
    this.http.listen(0, '127.0.0.1');
    await once(this.http, 'listening');
    this.url = `ws://127.0.0.1:${this.http.address().port}/ws`;
    return this;
  }

  // A restart: every connection and session is gone; channels stay.
  restart() {
    for (const s of this.sessions.values()) this.#dropSession(s);
    this.sessions.clear();
    for (const c of this.conns) c.ws?.terminate();
    this.conns.clear();
  }

  async stop() {
    this.restart();
    this.http.closeAllConnections();
    await new Promise((resolve) => this.http.close(resolve));
  }

  channel(name) {
    if (!this.channels.has(name)) this.channels.set(name, { epoch: `e${this.#next++}`, offset: 0, pubs: [] });
    return this.channels.get(name);
  }

  publish(name, data, client = 'other') {
    const ch = this.channel(name);
    const pub = { offset: ++ch.offset, data, client };
    ch.pubs.push(pub);
    for (const c of this.conns) {
      if (c.subs.has(name)) c.push({ push: 'message', channel: name, epoch: ch.epoch, ...pub });
    }
    return pub;
  }

  #conn(transport, push) {
    const conn = { id: `c${this.#next++}`, transport, subs: new Set(), push, commands: [] };
    this.conns.add(conn);
    return conn;
  }

  #acceptWebSocket(ws) {
    const conn = this.#conn('websocket', (obj) => ws.send(JSON.stringify(obj)));
    conn.ws = ws;
    ws.on('message', (data) => this.#command(conn, data.toString()));
    ws.on('close', () => this.conns.delete(conn));
  }

  #command(conn, text) {
    const msg = JSON.parse(text);
    conn.commands.push(msg);
    const reply = (result) => conn.push({ id: msg.id, result });
    const ch = typeof msg.channel === 'string' ? this.channel(msg.channel) : null;
    switch (msg.cmd) {
      case 'connect': return reply({ client: conn.id });
      case 'ping': return reply({});
      case 'subscribe': {
        conn.subs.add(msg.channel);
        const result = { channel: msg.channel, epoch: ch.epoch, offset: ch.offset };
        if (msg.since) {
          result.recovered = msg.since.epoch === ch.epoch;
          result.publications = result.recovered ? ch.pubs.filter((p) => p.offset > msg.since.offset) : [];
        }
        return reply(result);
      }
      case 'publish': {
        const pub = this.publish(msg.channel, msg.data, conn.id);
        return reply({ epoch: ch.epoch, offset: pub.offset });
      }
      case 'presence':
        return reply({ channel: msg.channel, count: [...this.conns].filter((c) => c.subs.has(msg.channel)).length });
      case 'history':
        return reply({ channel: msg.channel, epoch: ch.epoch, offset: ch.offset, publications: ch.pubs });
      default:
        return conn.push({ id: msg.id, error: { code: 400, message: `unknown cmd: ${msg.cmd}` } });
    }
  }

  // --- HTTP sessions (docs/protocol.md, "HTTP sessions") ---

  #route(req, res) {
    const url = new URL(req.url, 'http://x');
    const m = /^\/rt\/session(?:\/([^/]+)(\/stream|\/poll|\/send)?)?$/.exec(url.pathname);
    const json = (status, obj) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (!m) return json(404, { error: { code: 404, message: 'not found' } });
    const [, id, what] = m;
    if (!id) {
      if (req.method !== 'POST') return json(405, {});
      if (this.sessionStatus) return json(this.sessionStatus, { error: { code: this.sessionStatus, message: 'refused here' } });
      const session = { id: `s${this.#next++}`, buffer: [], seq: 0, stream: null, poll: null };
      session.conn = this.#conn('http', (obj) => this.#queue(session, JSON.stringify(obj)));
      this.sessions.set(session.id, session);
      return json(201, { session: session.id, idle_timeout: 60, poll_timeout: this.pollMs / 1000 });
    }
    const session = this.sessions.get(id);
    if (!session) return json(404, { error: { code: 404, message: 'session_not_found' } });
    if (!what && req.method === 'DELETE') {
      this.deleted++;
      this.#dropSession(session);
      this.sessions.delete(id);
      res.writeHead(204);
      return res.end();
    }
    if (what === '/send') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        this.posts.push(body);
        const lines = body.split('\n').filter((l) => l !== '');
        json(202, { accepted: lines.length });
        for (const line of lines) this.#command(session.conn, line);
      });
      return undefined;
    }
    if (what === '/stream') {
      const last = Number(req.headers['last-event-id'] ?? 0);
      this.streams.push(req.headers['last-event-id'] ?? '');
      session.stream?.end();
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write('retry: 2000\n\n');
      session.stream = res;
      res.on('close', () => { if (session.stream === res) session.stream = null; });
      for (const m2 of session.buffer) if (m2.seq > last - this.overlap) this.#write(session, m2);
      return undefined;
    }
    if (what === '/poll') {
      const after = Number(url.searchParams.get('after') ?? 0);
      session.buffer = session.buffer.filter((m2) => m2.seq > after);
      if (session.poll) this.#answerPoll(session);
      session.poll = { res, timer: setTimeout(() => this.#answerPoll(session), this.pollMs) };
      if (session.buffer.length > 0) this.#answerPoll(session);
      return undefined;
    }
    return json(405, {});
  }

  #queue(session, data) {
    const message = { seq: ++session.seq, data };
    session.buffer.push(message);
    if (session.stream) this.#write(session, message);
    if (session.poll) this.#answerPoll(session);
  }

  #write(session, message) {
    if (this.bufferStreams) return; // held by "the proxy"
    session.stream.write(`event: message\nid: ${message.seq}\ndata: ${message.data}\n\n`);
  }

  #answerPoll(session) {
    const { res, timer } = session.poll;
    session.poll = null;
    clearTimeout(timer);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ messages: session.buffer }));
  }

  #dropSession(session) {
    this.conns.delete(session.conn);
    session.stream?.destroy();
    if (session.poll) {
      clearTimeout(session.poll.timer);
      session.poll.res.destroy();
    }
  }
}

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

function makeClient(server, options = {}) {
  return new Client(server.url, {
    WebSocket,
    storage: memoryStorage(),
    backoff: { baseMs: 5, capMs: 20 },
    heartbeat: { intervalMs: 0 },
    websocketRetryMs: 0,
    http: { firstEventTimeoutMs: 400, resumeDelayMs: 20 },
    ...options,
  });
}

function record(client) {
  const events = [];
  for (const name of ['connecting', 'connected', 'disconnected', 'transport', 'error']) {
    client.on(name, (payload) => events.push([name, payload]));
  }
  return events;
}

const dataOf = (log) => log.map((p) => p.data);

// Everything the application API does, over whatever transport the client is on.
async function exerciseApi(client, server, channel) {
  const got = [];
  const sub = await client.subscribe(channel, { message: (p) => got.push(p) });
  assert.equal(sub.state, 'subscribed');
  assert.deepEqual(await client.publish(channel, { text: 'mine' }), { epoch: server.channel(channel).epoch, offset: 1 });
  server.publish(channel, 'theirs');
  await until(() => got.length === 2, 'both publications');
  assert.deepEqual(dataOf(got), [{ text: 'mine' }, 'theirs']);
  assert.deepEqual(await client.presence(channel), { channel, count: 1 });
  assert.deepEqual((await client.history(channel)).publications.map((p) => p.offset), [1, 2]);
  return got;
}

// --- fallback -------------------------------------------------------------------------

test('fallback: a WebSocket that never opens (Upgrade dropped) → SSE after 2 attempts; everything works; remembered', () =>
  withServer(async (server, track) => {
    server.refuseUpgrade = true;
    const storage = memoryStorage();
    const client = track(makeClient(server, { storage }));
    const events = record(client);
    await client.connect();
    assert.equal(client.transport, 'sse');
    const attempts = events.filter(([e]) => e === 'connecting').map(([, p]) => p.transport);
    assert.deepEqual(attempts, ['websocket', 'websocket', 'sse']);
    assert.deepEqual(events.filter(([e]) => e === 'transport').map(([, p]) => p),
      [{ transport: 'sse', previous: 'websocket', reason: 'fallback' }]);
    assert.equal(storage.getItem(`switchboard.transport ${server.url}`), 'sse');
    const [conn] = [...server.conns];
    assert.equal(conn.transport, 'http');
    assert.equal(conn.commands[0].cmd, 'connect', '`connect` first, as on /ws');
    await exerciseApi(client, server, 'chat:sse');
    assert.deepEqual(server.streams, [''], 'one stream for everything');
  }));

test('fallback: an SSE stream that delivers nothing (a buffering proxy) → long-polling; everything works', () =>
  withServer(async (server, track) => {
    server.refuseUpgrade = true;
    server.bufferStreams = true;
    const client = track(makeClient(server));
    const events = record(client);
    await client.connect();
    assert.equal(client.transport, 'long-polling');
    assert.deepEqual(events.filter(([e]) => e === 'connecting').map(([, p]) => p.transport),
      ['websocket', 'websocket', 'sse', 'long-polling']);
    const lost = events.find(([e, p]) => e === 'disconnected' && /nothing arrived within 400 ms/.test(p.reason));
    assert.ok(lost, `a disconnected event says why: ${JSON.stringify(events)}`);
    assert.equal(server.deleted, 1, 'the useless SSE session was ended at once');
    await exerciseApi(client, server, 'chat:lp');
  }));

test('fallback: a remembered transport is where a new client starts; one that worked is kept across restarts', () =>
  withServer(async (server, track) => {
    const storage = memoryStorage({ [`switchboard.transport ${server.url}`]: 'long-polling' });
    const client = track(makeClient(server, { storage }));
    const events = record(client);
    await client.connect();
    assert.equal(client.transport, 'long-polling');
    assert.equal(events[0][1].transport, 'long-polling');
    server.sessionStatus = 502; // a proxy in front of a server that is down
    server.restart();
    await until(() => events.filter(([e]) => e === 'connecting').length >= 5, 'attempts while down');
    assert.ok(events.filter(([e]) => e === 'connecting').every(([, p]) => p.transport === 'long-polling'));
    assert.equal(events.some(([e]) => e === 'transport'), false);
    server.sessionStatus = 0;
    await until(() => client.state === 'connected', 'the reconnect');
    assert.equal(client.transport, 'long-polling');
  }));

test('fallback: 401 on the session is an authentication failure: the client stops', () =>
  withServer(async (server, track) => {
    server.sessionStatus = 401;
    const client = track(makeClient(server, { transports: ['sse'] }));
    const events = record(client);
    await assert.rejects(client.connect(), { code: CLOSE_AUTH });
    assert.deepEqual(events.find(([e]) => e === 'disconnected')[1],
      { code: CLOSE_AUTH, reason: 'refused here', willReconnect: false });
  }));

// --- sessions: resume, recovery, batching, close ----------------------------------------

for (const transport of ['sse', 'long-polling']) {
  test(`${transport}: a restart drops the session; the client reconnects on ${transport} and recovers exactly once, in order`, () =>
    withServer(async (server, track) => {
      const client = track(makeClient(server, { transports: [transport] }));
      const events = record(client);
      const got = [];
      const subscribed = [];
      await client.connect();
      await client.subscribe('chat:r', { message: (p) => got.push(p), subscribed: (e) => subscribed.push(e) });
      for (let i = 1; i <= 3; i++) await client.publish('chat:r', i);
      await until(() => got.length === 3, 'three messages');
      server.sessionStatus = 503;
      server.restart();
      await until(() => events.some(([e]) => e === 'disconnected'), 'the loss');
      for (let i = 4; i <= 6; i++) server.publish('chat:r', i); // missed while down
      server.sessionStatus = 0;
      await until(() => got.length === 6 && client.state === 'connected', 'the recovery');
      server.publish('chat:r', 7);
      await until(() => got.length === 7, 'a live message after the recovery');
      await sleep(50);
      assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(dataOf(got), [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(subscribed.at(-1).recovered, true);
      assert.equal(client.transport, transport);
    }));
}

test('sse: a dropped stream resumes on the same session with Last-Event-ID; nothing lost, requests answered', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server, { transports: ['sse'] }));
    const events = record(client);
    const got = [];
    await client.connect();
    await client.subscribe('chat:d', { message: (p) => got.push(p) });
    const [session] = server.sessions.values();
    const before = session.seq;
    session.stream.destroy(); // the proxy cut it
    server.publish('chat:d', 'during');
    const presence = client.presence('chat:d'); // asked while the stream is down
    await until(() => got.length === 1, 'the message sent while the stream was down');
    assert.deepEqual(await presence, { channel: 'chat:d', count: 1 });
    assert.deepEqual(server.streams, ['', String(before)]);
    assert.equal(events.some(([e]) => e === 'disconnected'), false, 'the application sees nothing');
    assert.equal(server.sessions.size, 1);
  }));

test('sse: the socket alone: a resume that repeats messages delivers each once, in order', () =>
  withServer(async (server) => {
    server.overlap = 2;
    const socket = new HttpSessionSocket(sessionUrlFor(server.url), 'sse', { resumeDelayMs: 10 });
    const got = [];
    socket.onmessage = ({ data }) => got.push(JSON.parse(data));
    await new Promise((resolve) => { socket.onopen = resolve; });
    socket.send(JSON.stringify({ id: 1, cmd: 'connect' }));
    socket.send(JSON.stringify({ id: 2, cmd: 'subscribe', channel: 'chat:o' }));
    await until(() => got.length === 2, 'two replies');
    assert.equal(socket.proven, true);
    const [session] = server.sessions.values();
    server.publish('chat:o', 'one');
    await until(() => got.length === 3, 'a push');
    session.stream.destroy();
    server.publish('chat:o', 'two');
    await until(() => got.length >= 4, 'the push after the resume');
    await sleep(50);
    assert.deepEqual(server.streams, ['', '3']);
    assert.deepEqual(got.map((m) => m.id ?? m.data), [1, 2, 'one', 'two']);
    socket.close();
    await until(() => server.deleted === 1, 'the DELETE');
  }));

test('sse: commands of one tick go in one POST, one per line, in order', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server, { transports: ['sse'] }));
    await client.connect();
    server.posts.length = 0;
    const channels = ['a', 'b', 'c', 'd'].map((x) => `chat:${x}`);
    await Promise.all(channels.map((ch) => client.subscribe(ch)));
    assert.equal(server.posts.length, 1, `one request: ${JSON.stringify(server.posts)}`);
    const lines = server.posts[0].trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.cmd, l.channel]), channels.map((ch) => ['subscribe', ch]));
  }));

test('long-polling: the server\'s close push ends the session with its code; 1012 reconnects', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server, { transports: ['long-polling'] }));
    const events = record(client);
    await client.connect();
    const [session] = server.sessions.values();
    session.conn.push({ push: 'close', code: 1012, reason: 'server restart' });
    await until(() => events.some(([e]) => e === 'disconnected'), 'the close');
    assert.deepEqual(events.find(([e]) => e === 'disconnected')[1], { code: 1012, reason: 'server restart', willReconnect: true });
    await until(() => client.state === 'connected' && server.sessions.size === 2, 'a new session');
  }));

test('disconnect() ends the HTTP session with DELETE', () =>
  withServer(async (server, track) => {
    const client = track(makeClient(server, { transports: ['long-polling'] }));
    await client.connect();
    client.disconnect();
    await until(() => server.deleted === 1 && server.sessions.size === 0, 'the DELETE');
    assert.equal(client.transport, null);
  }));

// --- upgrade --------------------------------------------------------------------------

test('upgrade: on SSE, a WebSocket probe that gets through moves the client to it; subscriptions recover', () =>
  withServer(async (server, track) => {
    server.refuseUpgrade = true;
    const storage = memoryStorage();
    const client = track(makeClient(server, { storage, websocketRetryMs: 100 }));
    const events = record(client);
    const got = [];
    await client.connect();
    assert.equal(client.transport, 'sse');
    await client.subscribe('chat:u', { message: (p) => got.push(p) });
    await client.publish('chat:u', 'over sse');
    await sleep(300); // probes fail while Upgrade is dropped
    assert.equal(client.transport, 'sse');
    server.refuseUpgrade = false;
    await until(() => client.transport === 'websocket' && client.state === 'connected', 'the upgrade');
    assert.deepEqual(events.filter(([e]) => e === 'transport').at(-1)[1],
      { transport: 'websocket', previous: 'sse', reason: 'upgrade' });
    const switched = events.filter(([e]) => e === 'disconnected').at(-1)[1];
    assert.deepEqual(switched, { code: 1000, reason: 'switching to websocket', willReconnect: true });
    await until(() => server.sessions.size === 0, 'the HTTP session ended');
    assert.equal(storage.getItem(`switchboard.transport ${server.url}`), 'websocket');
    server.publish('chat:u', 'over websocket');
    await until(() => got.length === 2, 'a message over the WebSocket');
    assert.deepEqual(dataOf(got), ['over sse', 'over websocket']);
    const ws = [...server.conns].find((c) => c.transport === 'websocket');
    assert.deepEqual(ws.commands.map((c) => c.cmd), ['connect', 'subscribe']);
    assert.deepEqual(ws.commands[1].since, { epoch: server.channel('chat:u').epoch, offset: 1 });
  }));

test('upgrade: waits for the replies in flight, then moves', () =>
  withServer(async (server, track) => {
    server.refuseUpgrade = true;
    const client = track(makeClient(server, { websocketRetryMs: 50 }));
    await client.connect();
    assert.equal(client.transport, 'sse');
    const [session] = server.sessions.values();
    // The session's next command is held by "the server" until released.
    let release = null;
    const realPush = session.conn.push;
    session.conn.push = (obj) => {
      if (obj.result?.channel === 'chat:slow') release = () => realPush(obj);
      else realPush(obj);
    };
    const answer = client.presence('chat:slow');
    await until(() => release !== null, 'the held reply');
    server.refuseUpgrade = false;
    await until(() => [...server.conns].some((c) => c.transport === 'websocket'), 'the probe');
    await sleep(150);
    assert.equal(client.transport, 'sse', 'not while a reply is awaited');
    release();
    assert.deepEqual(await answer, { channel: 'chat:slow', count: 0 });
    await until(() => client.transport === 'websocket' && client.state === 'connected', 'the upgrade');
  }));

test('pagehide ends the HTTP session at once (DELETE); the client connects again if the page stays', () =>
  withServer(async (server, track) => {
    const page = new EventTarget(); // stands in for the window
    globalThis.addEventListener = page.addEventListener.bind(page);
    globalThis.removeEventListener = page.removeEventListener.bind(page);
    try {
      const client = track(makeClient(server, { transports: ['sse'] }));
      const events = record(client);
      await client.connect();
      page.dispatchEvent(new Event('pagehide'));
      await until(() => server.deleted === 1, 'the DELETE');
      assert.deepEqual(events.find(([e]) => e === 'disconnected')[1], { code: 1001, reason: 'page hidden', willReconnect: true });
      await until(() => client.state === 'connected' && server.sessions.size === 1, 'a new session');
    } finally {
      delete globalThis.addEventListener;
      delete globalThis.removeEventListener;
    }
  }));
