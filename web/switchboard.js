// switchboard.js — client SDK for the `switchboard.v1` protocol of `switchboard serve`.
//
// A dependency-free ES module for browsers (and node ≥ 18, given a WebSocket
// constructor such as the `ws` package's), with its transport layer in
// ./transports.js (served beside it). The protocol is described in
// docs/protocol.md; this file implements its client side:
//
//   - the `connect` command first (a token, or anonymous `info`), nothing else
//     before its reply; requests and replies matched by `id`, as promises that
//     reject with a SwitchboardError carrying the protocol's numeric `code`;
//   - automatic reconnection with exponential backoff and full jitter, reset
//     after a successful connect; none after disconnect(), close code 4001
//     (authentication) or 4003 (disconnected by the server API);
//   - per channel, the epoch and highest offset seen: on reconnect every
//     channel is subscribed again with `since`, the publications it missed are
//     delivered in order before live ones, offsets already seen are dropped,
//     and when recovery is impossible the subscription emits `reset` and
//     delivers the channel's history instead;
//   - an application-level heartbeat (`ping` command): browsers cannot see
//     WebSocket pings, so a dead connection is found by a missing reply;
//   - token lifetime: with a `getToken()` option, a fresh token is fetched for
//     every `connect` and when the server pushes `refresh` before the token
//     expires (sent back in a `refresh` command); a channel the new token no
//     longer grants ends its subscription with an `unsubscribed` event; a
//     close with 4002 (token expired) reconnects with a new token;
//   - transports (transports.js): WebSocket on /ws, else an HTTP session
//     (/rt/session) read as Server-Sent Events ('sse') or by long-polling
//     ('long-polling'), with the same commands, replies, pushes and events.
//     Option `transports` (default ['websocket', 'sse', 'long-polling']) is
//     the order of preference. Fallback: after `fallbackAfter` (2) WebSocket
//     attempts in a row that end before `open` (a proxy that drops Upgrade)
//     the next transport is tried; an SSE stream that delivers nothing within
//     `http.firstEventTimeoutMs` (5 s) of the first command (a proxy that
//     buffers) falls back to long-polling. A transport that worked is kept
//     for the client's life (later failures are the server's) and remembered
//     in sessionStorage, so a reload starts with it. On an HTTP transport a
//     WebSocket is tried again every `websocketRetryMs` (60 s); when it
//     opens, the client moves to it like a reconnect (subscriptions resume
//     with `since`). All channels share the client's one connection: one
//     Client per tab means one stream per tab (browsers allow about six
//     HTTP/1.1 connections per origin). The HTTP transports need fetch()
//     with streaming bodies and, across origins, CORS at the server's proxy.
//
//   import { Client } from './switchboard.js';
//   const client = new Client(`wss://${location.host}/ws`, { token });
//   client.on('disconnected', ({ code, willReconnect }) => { ... });
//   client.on('transport', ({ transport, reason }) => { ... }); // 'fallback' | 'upgrade'
//   client.connect(); // resolves when connected; subscribe() and publish() wait for it
//   await client.subscribe('chat:lobby', {
//     message: ({ offset, data, user }) => show(data),
//     reset: () => clearView(), // the history follows as `message` events
//   });
//   await client.publish('chat:lobby', { text: 'hello' });
//
// Single-threaded like every page script: all callbacks run on the event loop
// that created the Client. Event handlers may call any method, including
// disconnect(); an exception thrown by a handler is re-thrown asynchronously
// (it shows up as an uncaught error) and does not disturb the client.

import { HttpSessionSocket, TRANSPORTS, TransportPlan, defaultStorage, sessionUrlFor } from './transports.js';

export { EventStreamParser, HttpSessionSocket, TRANSPORTS, TransportPlan, sessionUrlFor } from './transports.js';

/** The WebSocket subprotocol every switchboard.v1 server speaks. */
export const PROTOCOL = 'switchboard.v1';

/**
 * The same protocol with compact publication pushes (docs/protocol.md, "Compact
 * pushes"). The SDK offers it first unless `options.compact` is false; a server
 * without it picks PROTOCOL, and the SDK reads its full pushes the same way.
 */
export const PROTOCOL_COMPACT = 'switchboard.v1.compact';

/** Close code of an authentication failure: the SDK does not reconnect after it. */
export const CLOSE_AUTH = 4001;

/** Close code of a token that expired without `refresh`: the SDK reconnects (with getToken()). */
export const CLOSE_TOKEN_EXPIRED = 4002;

/**
 * Close code of a connection the application's backend ended through the server
 * API's `disconnect`: the SDK does not reconnect by itself (connect() starts again).
 */
export const CLOSE_DISCONNECTED = 4003;

/**
 * Error code of a request that got no reply because the connection ended (or
 * the client was disconnected) first. Server errors carry the protocol's codes
 * (400, 401, 403, …); an authentication failure that stops the client has
 * CLOSE_AUTH.
 */
export const ERROR_NO_REPLY = 0;

/** An error reply of the server, or a request that could not get one. */
export class SwitchboardError extends Error {
  /**
   * @param {number} code the protocol's error code, ERROR_NO_REPLY or CLOSE_AUTH
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

/**
 * The delay before a reconnection attempt, with exponential backoff and full
 * jitter: a uniformly random whole number of milliseconds in
 * [0, min(capMs, baseMs · 2^attempt)).
 *
 * @param {number} attempt failed attempts since the last successful connect
 *   (0 before the first retry)
 * @param {{baseMs?: number, capMs?: number}} backoff
 * @param {() => number} random a source of numbers in [0, 1)
 * @returns {number}
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 15000 } = {}, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

function rethrowLater(error) {
  setTimeout(() => { throw error; }, 0);
}

function noop() {}

/** A minimal event emitter: on(event, fn), off(event, fn), once(event, fn). */
export class Emitter {
  #handlers = new Map();

  /** Calls fn(...args) on every `event`; returns this. */
  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return this;
  }

  /** Stops calling fn on `event`; without fn, removes every handler of `event`. */
  off(event, fn) {
    if (fn === undefined) this.#handlers.delete(event);
    else this.#handlers.get(event)?.delete(fn);
    return this;
  }

  /** Calls fn on the next `event` only. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  /** Calls the handlers of `event` in the order they were added. */
  emit(event, ...args) {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        // A broken handler must not break the client's state machine.
        rethrowLater(e);
      }
    }
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  // Marked handled: a caller that ignores the promise gets no unhandled rejection.
  promise.catch(noop);
  return { promise, resolve, reject };
}

/**
 * One channel the client wants to be subscribed to, across reconnections.
 * Made by Client.subscribe(). Events:
 *  - `message` (publication): {channel, epoch, offset, data, client?, user?},
 *    in offset order, each offset once;
 *  - `join`, `leave` (presence entry): {client, user?, info?}, one per
 *    change of a presence push;
 *  - `presence`: each presence push: {count, joins, leaves}, or {count,
 *    countsOnly: true} while the channel has more members than the server
 *    lists (no join/leave events then; after counts-only pushes, reload the
 *    list with client.presence() when `joins` come back);
 *  - `subscribed`: {channel, epoch, offset, recovered, resumed, reason?} after
 *    every successful subscribe (resumed: `since` was sent; recovered: the
 *    server filled the gap);
 *  - `reset`: {channel, reason, epoch}: what was missed cannot be replayed;
 *    drop the state built from earlier messages: the channel's history follows
 *    as `message` events;
 *  - `error` (SwitchboardError): a subscribe after a reconnect, or the history
 *    fetch after a reset, failed; after a failed subscribe the subscription
 *    is removed.
 */
export class Subscription extends Emitter {
  /** The channel name. */
  channel;
  /** The epoch of the channel's stream, null before the first subscribe. */
  epoch = null;
  /** The highest offset delivered (or the stream position when subscribed). */
  offset = 0;
  /** 'subscribing' | 'subscribed' | 'unsubscribed'. */
  state = 'subscribing';

  #client;
  #history;
  #ready = deferred();
  #buffer = []; // live publications held while the subscribe or a history fetch is in flight
  #filling = false;
  #generation = 0; // bumped by each (re)subscribe and unsubscribe: stale replies are ignored

  /** @internal Made by Client.subscribe(). */
  constructor(client, channel, { history = false } = {}) {
    super();
    this.#client = client;
    this.channel = channel;
    this.#history = history;
  }

  /** Unsubscribes; same as client.unsubscribe(this.channel). */
  unsubscribe() {
    return this.#client.unsubscribe(this.channel);
  }

  /** @internal The subscribe command's fields; starts a new generation. */
  _begin() {
    this.#generation++;
    this.state = 'subscribing';
    this.#buffer = [];
    this.#filling = false;
    const fields = { channel: this.channel };
    if (this.epoch !== null) fields.since = { epoch: this.epoch, offset: this.offset };
    return fields;
  }

  /** @internal The connection ended: what was buffered is recovered later with `since`. */
  _suspend() {
    this.#generation++;
    if (this.state === 'subscribed') this.state = 'subscribing';
    this.#buffer = [];
    this.#filling = false;
  }

  /** @internal Unsubscribed or failed for good. */
  _end(error) {
    this.#generation++;
    this.state = 'unsubscribed';
    this.#buffer = [];
    this.#filling = false;
    this.#ready.reject(error);
  }

  /** @internal Resolves with this subscription after its first successful subscribe. */
  get _ready() {
    return this.#ready.promise;
  }

  /** @internal A subscribe failed with a server error. */
  _failed(error) {
    const first = this.epoch === null;
    this._end(error);
    if (!first) this.emit('error', error);
  }

  /** @internal The subscribe reply, for the command made by _begin(). */
  _subscribed(result, since) {
    this.state = 'subscribed';
    const epoch = result.epoch ?? null;
    const offset = typeof result.offset === 'number' ? result.offset : 0;
    const event = { channel: this.channel, epoch, offset, recovered: false, resumed: !!since };
    if (since && result.recovered === true) {
      // Same stream: what was missed is listed, in order; pushes continue after it.
      this.epoch = epoch ?? this.epoch;
      event.recovered = true;
      this.emit('subscribed', event);
      for (const p of result.publications ?? []) this.#deliver(this.#publication(p, this.epoch));
      this.#flush();
    } else if (since) {
      // The gap cannot be filled: start over from the channel's history.
      event.reason = result.reason ?? 'not recovered';
      this.emit('subscribed', event);
      this.#reset(event.reason, epoch);
      this.#fill(offset);
    } else {
      this.epoch = epoch;
      this.offset = offset;
      this.emit('subscribed', event);
      if (this.#history) this.#fill(offset);
      else this.#flush();
    }
    this.#ready.resolve(this);
  }

  /** @internal A `message` push for this channel. */
  _push(message) {
    const pub = this.#publication(message, message.epoch ?? this.epoch);
    if (this.state !== 'subscribed' || this.#filling) {
      this.#buffer.push(pub);
      return;
    }
    if (message.epoch && this.epoch && message.epoch !== this.epoch) {
      // The stream started over under us: offsets of the old epoch mean nothing.
      this.#buffer.push(pub);
      this.#reset('epoch changed', message.epoch);
      this.#fill(0);
      return;
    }
    this.#deliver(pub);
  }

  #publication(p, epoch) {
    return { channel: this.channel, epoch, ...longPublication(p) };
  }

  #deliver(pub) {
    if (this.state === 'unsubscribed') return; // a handler unsubscribed
    // Belt and braces: the server promises no duplicates, the SDK checks anyway.
    if (typeof pub.offset === 'number') {
      if (pub.offset <= this.offset) return;
      this.offset = pub.offset;
    }
    this.emit('message', pub);
  }

  #flush() {
    const held = this.#buffer;
    this.#buffer = [];
    for (const pub of held) {
      if (this.state !== 'subscribed' || this.#filling) {
        this.#buffer.push(pub); // a handler started a reset or a resubscribe
      } else if (pub.epoch && this.epoch && pub.epoch !== this.epoch) {
        continue; // from a stream this subscription no longer follows
      } else {
        this.#deliver(pub);
      }
    }
  }

  #reset(reason, epoch) {
    this.epoch = epoch;
    this.offset = 0;
    this.emit('reset', { channel: this.channel, reason, epoch });
  }

  // Fetches the history and delivers it before any live publication; `position`
  // is the stream offset the subscribe reported (where live pushes start).
  #fill(position) {
    const generation = this.#generation;
    this.#filling = true;
    this.offset = 0;
    this.#client.history(this.channel).then((result) => {
      if (generation !== this.#generation) return;
      const epoch = result.epoch ?? this.epoch;
      if (epoch === this.epoch) {
        for (const p of result.publications ?? []) this.#deliver(this.#publication(p, epoch));
      }
      this.#filled(position);
    }, (error) => {
      if (generation !== this.#generation) return;
      if (error.code === ERROR_NO_REPLY) return; // the reconnect resubscribes with `since`
      if (error.code !== 405) this.emit('error', error); // 405: history is off, nothing to load
      this.#filled(position);
    });
  }

  #filled(position) {
    if (position > this.offset) this.offset = position;
    this.#filling = false;
    this.#flush();
  }
}

// {offset, data, client?, user?} of a publication of a push or a `publications`
// list, full or compact (short keys o, d, c, u: each read under its short key,
// else its long one; `in`, not ??, since a published null is data too).
function longPublication(p) {
  const pick = (short, long) => (short in p ? p[short] : p[long]);
  const pub = { offset: pick('o', 'offset'), data: pick('d', 'data') };
  const client = pick('c', 'client');
  const user = pick('u', 'user');
  if (client !== undefined) pub.client = client;
  if (user !== undefined) pub.user = user;
  return pub;
}

const DEFAULTS = {
  backoff: { baseMs: 500, capMs: 15000 },
  heartbeat: { intervalMs: 10000, timeoutMs: 5000 },
  connectTimeoutMs: 10000,
  fallbackAfter: 2, // WebSocket attempts that fail before `open` before falling back
  websocketRetryMs: 60000, // on a fallback transport, probe for a WebSocket this often
};

/**
 * A connection to `switchboard serve` that stays up: it reconnects by itself
 * and keeps its subscriptions. Events:
 *  - `connecting` {attempt, transport}: a connection is being opened
 *    ('websocket', 'sse' or 'long-polling');
 *  - `connected` {client, user?}: the `connect` command succeeded;
 *  - `disconnected` {code, reason, willReconnect}: the connection (or the
 *    attempt) ended; code 1006 when it ended without a close frame, also when
 *    the SDK gave up on it (heartbeat or connect timeout: see `reason`);
 *  - `reconnecting` {attempt, delayMs}: the next attempt (1, 2, …) starts after
 *    delayMs;
 *  - `error` (Error): a connection failure, a bad message from the server,
 *    (code CLOSE_AUTH) an authentication failure after which the client stops,
 *    or (code CLOSE_DISCONNECTED) a disconnect by the server API, after which
 *    it stops too;
 *  - `push` (object): a push the SDK does not handle itself;
 *  - `transport` {transport, previous, reason}: the client moved to another
 *    transport: reason 'fallback' (the previous one could not get through)
 *    or 'upgrade' (a WebSocket got through again).
 *
 * Transports (option `transports`, default ['websocket', 'sse',
 * 'long-polling']): every event, command and guarantee is the same on each;
 * all channels share the client's one connection (one stream per tab with
 * one Client). See transports.js and the top of this file for the rules.
 *
 * Commands (publish, presence, history, unsubscribe) made while connecting or
 * reconnecting wait and are sent after `connect` succeeds; made before
 * connect() or after disconnect(), they reject with ERROR_NO_REPLY. A command
 * in flight when the connection ends rejects with ERROR_NO_REPLY: it may or
 * may not have been executed. Subscriptions are state, not commands: made at
 * any time, they are (re)sent on every connect.
 */
export class Client extends Emitter {
  #url;
  #options;
  #ws = null;
  #state = 'disconnected'; // 'disconnected' | 'connecting' | 'connected'
  #wanted = false; // connect() called and not disconnect() since
  #authError = null; // a 401 reply to `connect`: the close that follows is final
  #attempt = 0; // reconnection attempts since the last successful connect
  #timers = { reconnect: null, connect: null, ping: null, pong: null, probe: null };
  #nextId = 1;
  #pending = new Map(); // id -> {done(error, result)}
  #queue = []; // commands made while not connected, sent after `connect` succeeds
  #subs = new Map(); // channel -> Subscription
  #session = null; // the `connect` result
  #ready = null; // deferred of connect(), settled by the next connect or a final stop
  #plan; // TransportPlan: which transport the next attempt uses
  #sessionUrl; // the /rt/session URL of the HTTP transports
  #transport = null; // the transport of #ws
  #wsOpened = false; // #ws is a WebSocket that reached `open`
  #probe = null; // {ws, ready}: a WebSocket opened to upgrade a fallback connection

  /**
   * @param {string} url ws:// or wss:// URL of the server's /ws endpoint
   * @param {object} [options]
   * @param {string | (() => string | Promise<string>)} [options.token] a JWT
   *   sent in `connect` (a function is called before every connect, so a
   *   fresh token can be fetched)
   * @param {() => string | Promise<string>} [options.getToken] fetches a
   *   token: called before every `connect` and when the server pushes
   *   `refresh` (then sent in a `refresh` command); takes precedence over
   *   `token`. The client emits `refreshed` ({exp}) or `error`.
   * @param {object} [options.info] anonymous self-description for presence,
   *   sent in `connect` when there is no token
   * @param {boolean} [options.compact] ask for compact publication pushes
   *   (PROTOCOL_COMPACT; default true). Events are the same either way.
   * @param {Function} [options.WebSocket] the WebSocket constructor
   *   (default: globalThis.WebSocket, looked up at each attempt)
   * @param {{baseMs?: number, capMs?: number}} [options.backoff]
   * @param {{intervalMs?: number, timeoutMs?: number}} [options.heartbeat]
   *   intervalMs 0 turns the heartbeat off
   * @param {number} [options.connectTimeoutMs] time allowed from opening the
   *   socket to the `connect` reply
   * @param {string[]} [options.transports] the transports to use, in order of
   *   preference (default ['websocket', 'sse', 'long-polling'])
   * @param {number} [options.fallbackAfter] WebSocket attempts that end
   *   before `open` (a proxy that drops Upgrade) before the next transport is
   *   tried (default 2; an HTTP transport falls back after one failure)
   * @param {number} [options.websocketRetryMs] while on an HTTP transport,
   *   a WebSocket is tried again this often (default 60000; 0: never); when
   *   one opens, the client moves to it (after the replies it waits for)
   * @param {string} [options.sessionUrl] the HTTP session endpoint (default:
   *   beside `url`: wss://host/ws → https://host/rt/session)
   * @param {Function} [options.fetch] fetch() for the HTTP transports
   *   (default globalThis.fetch)
   * @param {Storage|null} [options.storage] where the transport that worked
   *   is remembered for the next page load (default sessionStorage)
   * @param {object} [options.http] HTTP transport tuning: firstEventTimeoutMs
   *   (5000: a stream that shows nothing this long after the first command
   *   is taken for a buffering proxy), resumes (3), resumeDelayMs (500),
   *   batchBytes (16384)
   */
  constructor(url, options = {}) {
    super();
    this.#url = url;
    this.#options = {
      token: options.getToken ?? options.token,
      info: options.info,
      WebSocket: options.WebSocket,
      compact: options.compact ?? true,
      backoff: { ...DEFAULTS.backoff, ...options.backoff },
      heartbeat: { ...DEFAULTS.heartbeat, ...options.heartbeat },
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      websocketRetryMs: options.websocketRetryMs ?? DEFAULTS.websocketRetryMs,
      fetch: options.fetch,
      http: { ...options.http },
    };
    this.#plan = new TransportPlan(options.transports ?? TRANSPORTS, {
      fallbackAfter: options.fallbackAfter ?? DEFAULTS.fallbackAfter,
      storage: options.storage === undefined ? defaultStorage() : options.storage,
      key: `switchboard.transport ${url}`,
    });
    this.#sessionUrl = options.sessionUrl ?? sessionUrlFor(url);
  }

  /**
   * The transport of the connection (or the attempt): 'websocket', 'sse' or
   * 'long-polling'; null when there is none.
   */
  get transport() {
    return this.#ws ? this.#transport : null;
  }

  /** 'disconnected' | 'connecting' | 'connected'. */
  get state() {
    return this.#state;
  }

  /** The connection's id from the last `connect` reply, or null. */
  get clientId() {
    return this.#session?.client ?? null;
  }

  /** The Subscription of `channel`, or undefined. */
  subscription(channel) {
    return this.#subs.get(channel);
  }

  /**
   * Starts connecting (and reconnecting) if it was not; during a backoff
   * wait, tries again at once. Resolves with the `connect` result {client,
   * user?} at the next successful connect (at once when connected); rejects
   * when disconnect() is called first, authentication fails (CLOSE_AUTH) or
   * the server API disconnects the client (CLOSE_DISCONNECTED).
   */
  connect() {
    if (this.#state === 'connected') return Promise.resolve({ ...this.#session });
    this.#ready ??= deferred();
    const { promise } = this.#ready;
    if (!this.#wanted) {
      this.#wanted = true;
      this.#authError = null;
      this.#attempt = 0;
      this.#watchOnline(true);
      this.#open();
    } else if (this.#timers.reconnect !== null) {
      this.#retryNow();
    }
    return promise;
  }

  /**
   * Closes the connection (1000) and stops reconnecting. Requests without a
   * reply reject with ERROR_NO_REPLY. Subscriptions are kept with their
   * positions: a later connect() resumes them with `since`.
   */
  disconnect() {
    const wasActive = this.#wanted;
    this.#wanted = false;
    this.#watchOnline(false);
    this.#clearTimer('reconnect');
    const error = new SwitchboardError(ERROR_NO_REPLY, 'client disconnected');
    this.#failQueue(error);
    if (this.#ws) {
      this.#lost(1000, 'client disconnect', { closeCode: 1000, error });
    } else if (wasActive) {
      this.#state = 'disconnected';
      this.emit('disconnected', { code: 1000, reason: 'client disconnect', willReconnect: false });
    }
  }

  /**
   * Subscribes to `channel` now (or when connected) and after every reconnect.
   * @param {string} channel
   * @param {Object<string, Function>} [handlers] event name -> handler, added
   *   with on() before anything is sent (message, join, leave, reset,
   *   subscribed, error)
   * @param {{history?: boolean}} [options] history: on the first subscribe,
   *   also deliver the channel's kept history (oldest first) before live
   *   publications
   * @returns {Promise<Subscription>} resolves after the first successful
   *   subscribe; rejects with the server's error (403, 404, 422, 429, …) or
   *   409 when this client already has the channel
   */
  subscribe(channel, handlers = {}, options = {}) {
    if (this.#subs.has(channel)) {
      return Promise.reject(new SwitchboardError(409, `already subscribed: ${channel}`));
    }
    const sub = new Subscription(this, channel, options);
    for (const [event, fn] of Object.entries(handlers)) {
      if (typeof fn === 'function') sub.on(event, fn);
    }
    this.#subs.set(channel, sub);
    if (this.#state === 'connected') this.#sendSubscribe(sub);
    return sub._ready;
  }

  /**
   * Unsubscribes from `channel` and forgets its position. Resolves when the
   * server has answered (at once when not connected); rejects with 404 when
   * this client has no such subscription.
   */
  unsubscribe(channel) {
    const sub = this.#subs.get(channel);
    if (!sub) return Promise.reject(new SwitchboardError(404, `not subscribed: ${channel}`));
    this.#subs.delete(channel);
    sub._end(new SwitchboardError(ERROR_NO_REPLY, `unsubscribed: ${channel}`));
    if (this.#state !== 'connected') return Promise.resolve({});
    return this.#request('unsubscribe', { channel }).catch((error) => {
      // Not subscribed on the server (or no connection left): the goal is met.
      if (error.code === 404 || error.code === ERROR_NO_REPLY) return {};
      throw error;
    });
  }

  /** Publishes `data` (any JSON value); resolves with {epoch, offset}. */
  publish(channel, data) {
    return this.#request('publish', { channel, data });
  }

  /**
   * One page of the channel's presence. Resolves with {channel, count,
   * clients?: [{client, user?, info?}, …], cursor?}: `clients` in client-id
   * order, absent when the channel has more members than the server lists
   * (counts only); `cursor`, when more follow, is passed back for the next page.
   * @param {string} channel
   * @param {{limit?: number, cursor?: string}} [options] limit: entries per
   *   page (server default 100, at most 1000)
   */
  presence(channel, { limit, cursor } = {}) {
    const fields = { channel };
    if (limit !== undefined) fields.limit = limit;
    if (cursor !== undefined) fields.cursor = cursor;
    return this.#request('presence', fields);
  }

  /**
   * Resolves with {channel, epoch, offset, publications, recovered?, reason?}.
   * @param {string} channel
   * @param {{limit?: number, since?: {epoch: string, offset: number}}} [options]
   */
  history(channel, { limit, since } = {}) {
    const fields = { channel };
    if (limit !== undefined) fields.limit = limit;
    if (since !== undefined) fields.since = since;
    // The entries as {offset, data, client?, user?} whichever form came.
    return this.#request('history', fields).then((result) => (Array.isArray(result.publications)
      ? { ...result, publications: result.publications.map(longPublication) }
      : result));
  }

  // --- connection lifecycle ---------------------------------------------------

  #open() {
    this.#timers.reconnect = null;
    this.#state = 'connecting';
    const transport = this.#plan.current;
    this.emit('connecting', { attempt: this.#attempt, transport });
    if (!this.#wanted || this.#ws) return; // a handler called disconnect() or connect()
    let ws;
    try {
      ws = transport === 'websocket'
        ? this.#newWebSocket()
        : new HttpSessionSocket(this.#sessionUrl, transport, { ...this.#options.http, fetch: this.#options.fetch });
    } catch (error) {
      this.emit('error', error);
      this.#transport = transport;
      this.#lost(1006, `cannot open: ${error.message}`, { transportFailed: true });
      return;
    }
    this.#attach(ws, transport);
    this.#timers.connect = setTimeout(() => this.#giveUp(ws, 'connect timeout'),
      this.#options.connectTimeoutMs);
  }

  #newWebSocket() {
    const WebSocketImpl = this.#options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket');
    }
    return new WebSocketImpl(this.#url,
      this.#options.compact ? [PROTOCOL_COMPACT, PROTOCOL] : PROTOCOL);
  }

  // Makes `ws` (a WebSocket or an HttpSessionSocket) the connection.
  #attach(ws, transport) {
    this.#ws = ws;
    this.#transport = transport;
    this.#wsOpened = false;
    ws.onopen = () => {
      if (transport === 'websocket') this.#wsOpened = true;
      this.#opened(ws);
    };
    ws.onmessage = (event) => this.#received(ws, event.data);
    ws.onerror = noop; // the close event follows and says what matters
    ws.onclose = (event) => {
      if (ws === this.#ws) this.#lost(event.code, event.reason ?? '', { transportFailed: event.transportFailed });
    };
  }

  async #opened(ws) {
    if (ws !== this.#ws) return;
    const fields = {};
    try {
      const { token, info } = this.#options;
      const value = typeof token === 'function' ? await token() : token;
      if (ws !== this.#ws) return;
      if (value !== undefined && value !== null) fields.token = value;
      else if (info !== undefined) fields.info = info;
    } catch (error) {
      if (ws !== this.#ws) return;
      this.emit('error', error);
      this.#giveUp(ws, 'token callback failed');
      return;
    }
    // Sent straight away, ahead of the queue: nothing goes before its reply.
    this.#send({ cmd: 'connect', ...fields }, (error, result) => {
      if (ws !== this.#ws) return;
      if (error) this.#connectRefused(ws, error);
      else this.#connected(result);
    });
  }

  #connected(result) {
    this.#clearTimer('connect');
    this.#attempt = 0;
    this.#plan.worked(this.#transport);
    this.#session = { ...result };
    this.#state = 'connected';
    // Subscriptions first, then what was queued: a queued publish may need its
    // subscription, and the server answers in order.
    const ws = this.#ws;
    for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
    for (const entry of this.#queue.splice(0)) this.#send(entry.msg, entry.done);
    if (ws !== this.#ws) return; // a send failed: the connection is already gone
    this.#schedulePing(ws);
    this.#scheduleProbe();
    this.emit('connected', { ...result });
    const ready = this.#ready;
    this.#ready = null;
    ready?.resolve({ ...result });
  }

  #connectRefused(ws, error) {
    if (error.code === 401) {
      // The server closes with 4001 next; the connect timer covers a server
      // that does not. Either way the same credentials would fail again.
      this.#authError = error;
      return;
    }
    this.emit('error', error);
    this.#giveUp(ws, `connect refused: ${error.code}`);
  }

  // The SDK ends a connection it considers dead or useless.
  #giveUp(ws, reason) {
    if (!ws || ws !== this.#ws) return;
    this.#lost(1006, reason, { closeCode: 4000 });
  }

  // The connection (or the attempt) is over: clean up, tell, and maybe retry.
  #lost(code, reason, { closeCode = null, error = null, transportFailed, adopt = null } = {}) {
    const ws = this.#ws;
    const transport = this.#transport;
    // Did the path fail (rather than the server)? Sockets that know say so;
    // otherwise: whether it ever carried anything.
    const failed = transportFailed ?? !(this.#wsOpened || ws?.proven === true);
    this.#ws = null;
    this.#wsOpened = false;
    if (adopt === null) this.#endProbe();
    if (ws) {
      ws.onopen = noop;
      ws.onmessage = noop;
      ws.onerror = noop;
      ws.onclose = noop;
      if (closeCode !== null) {
        try {
          ws.close(closeCode, reason.slice(0, 120));
        } catch { /* already closing */ }
      }
    }
    for (const name of ['connect', 'ping', 'pong', 'probe']) this.#clearTimer(name);
    this.#state = 'disconnected';
    this.#session = null;
    const noReply = error ?? new SwitchboardError(ERROR_NO_REPLY, 'connection lost before the reply');
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) entry.done(noReply);
    for (const sub of this.#subs.values()) sub._suspend();

    const authFailed = code === CLOSE_AUTH || this.#authError !== null;
    // Both stop the client: a refused token would be refused again, and a
    // backend that disconnected a user does not want it back on its own.
    const stopped = authFailed || code === CLOSE_DISCONNECTED;
    let authError = null;
    if (stopped && this.#wanted) {
      authError = authFailed
        ? new SwitchboardError(CLOSE_AUTH, this.#authError?.message || reason || 'authentication failed')
        : new SwitchboardError(CLOSE_DISCONNECTED, reason || 'disconnected by the server');
      this.#wanted = false;
      this.#watchOnline(false);
      this.#failQueue(authError);
    }
    const moved = failed && this.#wanted && !stopped && this.#plan.failed(transport);
    this.emit('disconnected', { code, reason, willReconnect: this.#wanted });
    if (authError) this.emit('error', authError);
    if (moved) this.emit('transport', { transport: this.#plan.current, previous: transport, reason: 'fallback' });
    if (adopt !== null) {
      // An upgrade: the probe's open WebSocket is the next connection.
      if (this.#wanted && !this.#ws) this.#adopt(adopt);
      else adopt.close(1000, 'not needed');
      return;
    }
    // A handler may have called disconnect() or connect() meanwhile.
    if (this.#wanted && !this.#ws && this.#timers.reconnect === null) this.#scheduleReconnect();
  }

  // --- WebSocket upgrade ----------------------------------------------------------
  //
  // On an HTTP transport, every websocketRetryMs a WebSocket is opened on the
  // side (a probe). When it reaches `open` and no reply is awaited, the HTTP
  // session ends ('disconnected' {code 1000, willReconnect: true}) and the
  // probe becomes the connection: `connect`, then every subscription with
  // `since`, as after any reconnect (nothing missed, nothing twice).

  #scheduleProbe() {
    const every = this.#options.websocketRetryMs;
    if (!(every > 0) || !this.#plan.canUpgrade || this.#probe || this.#timers.probe !== null) return;
    this.#timers.probe = setTimeout(() => this.#startProbe(), every);
  }

  #startProbe() {
    this.#timers.probe = null;
    if (this.#state !== 'connected' || !this.#plan.canUpgrade) return;
    let ws;
    try {
      ws = this.#newWebSocket();
    } catch {
      this.#scheduleProbe();
      return;
    }
    const probe = { ws, ready: false, timer: null };
    this.#probe = probe;
    const failed = () => {
      if (this.#probe !== probe) return;
      this.#endProbe();
      if (this.#state === 'connected') this.#scheduleProbe();
    };
    probe.timer = setTimeout(failed, this.#options.connectTimeoutMs);
    ws.onopen = () => {
      if (this.#probe !== probe) return;
      clearTimeout(probe.timer);
      probe.ready = true;
      this.#upgradeWhenIdle();
    };
    ws.onmessage = noop;
    ws.onerror = noop;
    ws.onclose = failed;
  }

  #endProbe() {
    const probe = this.#probe;
    if (!probe) return;
    this.#probe = null;
    clearTimeout(probe.timer);
    probe.ws.onopen = noop;
    probe.ws.onclose = noop;
    try {
      probe.ws.close(1000, 'probe');
    } catch { /* already closing */ }
  }

  // Called when the probe opens and after every reply: moves over once no
  // reply is awaited (a request in flight would otherwise be lost).
  #upgradeWhenIdle() {
    const probe = this.#probe;
    if (!probe?.ready || this.#pending.size > 0 || this.#state !== 'connected') return;
    this.#probe = null;
    const previous = this.#transport;
    this.#plan.upgrade();
    this.emit('transport', { transport: 'websocket', previous, reason: 'upgrade' });
    this.#lost(1000, 'switching to websocket', { closeCode: 1000, transportFailed: false, adopt: probe.ws });
  }

  #adopt(ws) {
    this.#state = 'connecting';
    this.emit('connecting', { attempt: 0, transport: 'websocket' });
    if (!this.#wanted || this.#ws) {
      ws.close(1000, 'not needed');
      return;
    }
    this.#attach(ws, 'websocket');
    this.#wsOpened = true;
    this.#timers.connect = setTimeout(() => this.#giveUp(ws, 'connect timeout'),
      this.#options.connectTimeoutMs);
    this.#opened(ws);
  }

  // The server pushed `refresh`: the token expires soon. Without a token
  // function there is nothing to send; the server closes with 4002 at exp and
  // the reconnect fails or succeeds as the token does.
  async #refreshToken() {
    const source = this.#options.token;
    const ws = this.#ws;
    if (typeof source !== 'function' || !ws) {
      this.emit('push', { push: 'refresh' });
      return;
    }
    let token;
    try {
      token = await source();
    } catch (error) {
      this.emit('error', error);
      return;
    }
    if (ws !== this.#ws || this.#state !== 'connected') return;
    this.#request('refresh', { token }).then(
      (result) => this.emit('refreshed', { ...result }),
      (error) => {
        if (error.code !== ERROR_NO_REPLY) this.emit('error', error); // lost: reconnect refetches
      });
  }

  #scheduleReconnect() {
    const delayMs = backoffDelay(this.#attempt, this.#options.backoff);
    this.#attempt++;
    this.#timers.reconnect = setTimeout(() => this.#open(), delayMs);
    this.emit('reconnecting', { attempt: this.#attempt, delayMs });
  }

  #retryNow() {
    this.#clearTimer('reconnect');
    this.#open();
  }

  #failQueue(error) {
    for (const entry of this.#queue.splice(0)) entry.done(error);
    const ready = this.#ready;
    this.#ready = null;
    ready?.reject(error);
  }

  #clearTimer(name) {
    if (this.#timers[name] !== null) {
      clearTimeout(this.#timers[name]);
      this.#timers[name] = null;
    }
  }

  // Browsers: when the network comes back, retry now instead of after the backoff.
  #onOnline = () => {
    if (this.#wanted && this.#timers.reconnect !== null) this.#retryNow();
  };

  #watchOnline(on) {
    const target = globalThis.window;
    if (!target || typeof target.addEventListener !== 'function') return;
    if (on) target.addEventListener('online', this.#onOnline);
    else target.removeEventListener('online', this.#onOnline);
  }

  // --- heartbeat ----------------------------------------------------------------

  #schedulePing(ws) {
    const { intervalMs } = this.#options.heartbeat;
    if (!(intervalMs > 0)) return;
    this.#timers.ping = setTimeout(() => this.#ping(ws), intervalMs);
  }

  #ping(ws) {
    this.#timers.ping = null;
    if (ws !== this.#ws) return;
    this.#timers.pong = setTimeout(() => this.#giveUp(ws, 'heartbeat timeout'),
      this.#options.heartbeat.timeoutMs);
    this.#send({ cmd: 'ping' }, (error) => {
      // Any reply proves the connection alive, even an error (a 429 from the rate limit).
      if (error?.code === ERROR_NO_REPLY || ws !== this.#ws) return;
      this.#clearTimer('pong');
      this.#schedulePing(ws);
    });
  }

  // --- commands and replies -----------------------------------------------------

  #request(cmd, fields) {
    return new Promise((resolve, reject) => {
      const msg = { cmd, ...fields };
      const done = (error, result) => (error ? reject(error) : resolve(result));
      if (this.#state === 'connected') this.#send(msg, done);
      else if (this.#wanted) this.#queue.push({ msg, done });
      else reject(new SwitchboardError(ERROR_NO_REPLY, 'not connected: call connect() first'));
    });
  }

  #sendSubscribe(sub) {
    const fields = sub._begin();
    this.#send({ cmd: 'subscribe', ...fields }, (error, result) => {
      if (this.#subs.get(sub.channel) !== sub) return; // unsubscribed meanwhile
      if (error) {
        if (error.code === ERROR_NO_REPLY) return; // resubscribed after the reconnect
        this.#subs.delete(sub.channel);
        sub._failed(error);
        return;
      }
      sub._subscribed(result ?? {}, fields.since);
    });
  }

  // Sends one command on the current socket; done(error, result) is called
  // synchronously with the reply, before any later message is looked at.
  #send(msg, done) {
    const ws = this.#ws;
    if (!ws) {
      done(new SwitchboardError(ERROR_NO_REPLY, 'connection lost before the reply'));
      return;
    }
    const id = this.#nextId++;
    this.#pending.set(id, { done });
    try {
      ws.send(JSON.stringify({ id, ...msg }));
    } catch (error) {
      this.#pending.delete(id);
      done(new SwitchboardError(ERROR_NO_REPLY, `send failed: ${error.message}`));
      this.#giveUp(ws, 'send failed');
    }
  }

  #received(ws, data) {
    if (ws !== this.#ws) return;
    if (typeof data !== 'string') {
      this.emit('error', new Error('binary message from the server ignored'));
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.emit('error', new Error('a message from the server is not JSON'));
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (msg.push !== undefined) {
      this.#pushed(msg);
      return;
    }
    if (msg.m !== undefined) {
      // A compact publication push: {m: channel, o, d, c?, u?}, no epoch (the
      // subscription's). In flight after an unsubscribe: dropped.
      const sub = typeof msg.m === 'string' ? this.#subs.get(msg.m) : undefined;
      if (sub) sub._push(msg);
      return;
    }
    const entry = this.#pending.get(msg.id);
    if (!entry) return;
    this.#pending.delete(msg.id);
    if (msg.error) {
      const code = typeof msg.error.code === 'number' ? msg.error.code : 500;
      entry.done(new SwitchboardError(code, String(msg.error.message ?? 'error')));
    } else {
      entry.done(null, msg.result ?? {});
    }
    if (this.#probe?.ready) this.#upgradeWhenIdle();
  }

  #pushed(msg) {
    const kind = msg.push;
    if (kind === 'refresh') {
      this.#refreshToken();
      return;
    }
    if (kind === 'unsubscribe') {
      // The server ended it (a refreshed token no longer grants the channel).
      const sub = typeof msg.channel === 'string' ? this.#subs.get(msg.channel) : undefined;
      if (!sub) return;
      this.#subs.delete(msg.channel);
      const reason = String(msg.reason ?? 'unsubscribed by the server');
      sub._end(new SwitchboardError(403, reason));
      sub.emit('unsubscribed', { channel: msg.channel, reason });
      return;
    }
    if (kind === 'message' || kind === 'presence' || kind === 'join' || kind === 'leave') {
      // Pushes still in flight after an unsubscribe find no subscription: dropped.
      const sub = typeof msg.channel === 'string' ? this.#subs.get(msg.channel) : undefined;
      if (!sub) return;
      if (kind === 'message') {
        sub._push(msg);
      } else if (kind === 'presence') {
        // One push per channel per server tick: the count and, unless the
        // channel reports counts only, who joined and left since the last one.
        const listed = Array.isArray(msg.joins) && Array.isArray(msg.leaves);
        const count = typeof msg.count === 'number' ? msg.count : null;
        sub.emit('presence', listed
          ? { count, joins: msg.joins, leaves: msg.leaves }
          : { count, countsOnly: true });
        if (listed) {
          for (const entry of msg.leaves) sub.emit('leave', entry ?? {});
          for (const entry of msg.joins) sub.emit('join', entry ?? {});
        }
      } else {
        sub.emit(kind, msg.info ?? {}); // one change per push (servers before presence batching)
      }
      return;
    }
    this.emit('push', msg);
  }
}
