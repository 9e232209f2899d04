// transports.js — the transport layer under web/switchboard.js's Client.
//
// The Client speaks `switchboard.v1` over a *socket*: an object shaped like a
// browser WebSocket — send(text), close(code, reason), and the callbacks
// onopen(), onmessage({data}), onclose({code, reason}) — plus two fields the
// fallback logic reads: `transport` (its name) and `proven` (it carried
// something from the server: the path through proxies works). Three kinds:
//
//  - 'websocket': the browser's WebSocket on /ws (proven at `open`);
//  - 'sse': an HTTP session (docs/protocol.md, "HTTP sessions"): POST
//    /rt/session, the commands POSTed to /rt/session/<id>/send (one per line,
//    batched: everything sent in one tick goes in one request, one request in
//    flight at a time, so the order holds), and every reply and push down
//    GET /rt/session/<id>/stream as Server-Sent Events. The stream is read
//    with fetch(), not EventSource: it can send Last-Event-ID itself and tell
//    "nothing arrives" (a buffering proxy) from "slow";
//  - 'long-polling': the same session, downstream by GET .../poll?after=<seq>.
//
// A dropped stream or poll is resumed on the same session (Last-Event-ID /
// after=): nothing is lost and requests in flight keep waiting for their
// replies. The socket closes (onclose) only when the session is gone: the
// server's `close` push (its code, as /ws would close), 404, too many failed
// resumes, or a stream that delivers no event within firstEventTimeoutMs
// after the first send (code 1006; a transport failure: see TransportPlan).
//
// TransportPlan is the fallback state machine: which kind the next attempt
// uses, given what failed and what worked (remembered in sessionStorage).
//
// Single-threaded like every page script; no dependencies.

/** Every transport the SDK knows, in the default order of preference. */
export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'long-polling']);

function noop() {}

/**
 * The fallback state machine: which transport the next connection attempt
 * uses. Rules:
 *  - it starts with the transport remembered for this URL (sessionStorage),
 *    if it is in the list, else with the first of the list;
 *  - an attempt that ends before its transport was proven (a WebSocket that
 *    never reached `open`; an HTTP session whose stream delivered nothing, or
 *    that could not be reached) is a failure of that transport; after
 *    `fallbackAfter` failures in a row of a WebSocket, or one of an HTTP
 *    transport, the plan moves to the next transport of the list (after the
 *    last: the first again — everything fails alike while a server is down);
 *  - once a transport worked in this plan's life it is kept: its later
 *    failures are the server's (a restart), not the path's;
 *  - every transport that works is remembered (sessionStorage, per URL), so a
 *    reload starts with it;
 *  - upgrade() (a WebSocket probe got through) makes 'websocket' current again.
 */
export class TransportPlan {
  #list;
  #index;
  #failures = 0;
  #worked = new Set();
  #fallbackAfter;
  #storage;
  #key;

  /**
   * @param {string[]} transports names from TRANSPORTS, in order of preference
   * @param {{fallbackAfter?: number, storage?: Storage|null, key?: string}} [options]
   *   fallbackAfter: WebSocket failures before falling back (default 2);
   *   storage: where what worked is remembered (default none); key: its key
   */
  constructor(transports = TRANSPORTS, { fallbackAfter = 2, storage = null, key = 'switchboard.transport' } = {}) {
    this.#list = checkTransports(transports);
    this.#fallbackAfter = Math.max(1, fallbackAfter);
    this.#storage = storage;
    this.#key = key;
    const remembered = readStorage(storage, key);
    this.#index = Math.max(0, this.#list.indexOf(remembered));
  }

  /** The transport of the next attempt. */
  get current() {
    return this.#list[this.#index];
  }

  /** Whether a WebSocket is worth probing for: in the list, and not current. */
  get canUpgrade() {
    return this.current !== 'websocket' && this.#list.includes('websocket');
  }

  /**
   * An attempt with `name` ended before the transport was proven. Returns
   * true when the plan moved to another transport.
   */
  failed(name) {
    if (name !== this.current || this.#worked.has(name)) return false;
    this.#failures++;
    const allowed = name === 'websocket' ? this.#fallbackAfter : 1;
    if (this.#failures < allowed || this.#list.length === 1) return false;
    this.#index = (this.#index + 1) % this.#list.length;
    this.#failures = 0;
    return true;
  }

  /** An attempt with `name` was proven: keep it, and remember it for reloads. */
  worked(name) {
    this.#worked.add(name);
    this.#failures = 0;
    const index = this.#list.indexOf(name);
    if (index >= 0) this.#index = index;
    writeStorage(this.#storage, this.#key, name);
  }

  /** A WebSocket got through while on a fallback: use it from now on. */
  upgrade() {
    const index = this.#list.indexOf('websocket');
    if (index < 0) return;
    this.#index = index;
    this.#failures = 0;
    this.#worked.add('websocket');
  }
}

function checkTransports(transports) {
  if (!Array.isArray(transports) || transports.length === 0) {
    throw new TypeError(`transports: a non-empty array of ${TRANSPORTS.join(', ')}`);
  }
  for (const name of transports) {
    if (!TRANSPORTS.includes(name)) {
      throw new TypeError(`transports: unknown transport "${name}" (known: ${TRANSPORTS.join(', ')})`);
    }
  }
  if (new Set(transports).size !== transports.length) throw new TypeError('transports: a name is listed twice');
  return [...transports];
}

// sessionStorage may be missing or throw (sandboxed frames, storage off):
// remembering is an optimisation, never an error.
function readStorage(storage, key) {
  try {
    return storage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function writeStorage(storage, key, value) {
  try {
    storage?.setItem(key, value);
  } catch { /* see readStorage */ }
}

/** The default storage: the page's sessionStorage, or null. */
export function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

/**
 * The HTTP session endpoint beside a /ws URL: ws→http, wss→https, the last
 * path segment replaced by `rt/session` (`wss://host/app/ws` →
 * `https://host/app/rt/session`); query and fragment dropped.
 */
export function sessionUrlFor(wsUrl) {
  const url = new URL(wsUrl, globalThis.location?.href);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = url.pathname.replace(/[^/]*$/, 'rt/session');
  url.search = '';
  url.hash = '';
  return url.href;
}

/**
 * Splits Server-Sent Events out of a text stream (the HTML standard's
 * parsing rules): feed(chunk) calls onEvent({event, data, id}) per
 * dispatched event (`event` defaults to 'message'; `id` is undefined when
 * the event had none). Comments and `retry:` are ignored: the SDK schedules
 * its own resumes.
 */
export class EventStreamParser {
  #pending = '';
  #event = '';
  #data = [];
  #id = undefined;
  #onEvent;

  constructor(onEvent) {
    this.#onEvent = onEvent;
  }

  feed(chunk) {
    const text = this.#pending + chunk;
    const eol = /\r\n|\r|\n/g; // scanned from where the last line ended: linear in the text
    let start = 0;
    for (let m = eol.exec(text); m !== null; m = eol.exec(text)) {
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === text.length - 1) break;
      this.#line(text.slice(start, m.index));
      start = eol.lastIndex;
    }
    this.#pending = text.slice(start);
  }

  #line(line) {
    if (line === '') {
      if (this.#data.length > 0) {
        this.#onEvent({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
      }
      this.#event = '';
      this.#data = [];
      this.#id = undefined;
      return;
    }
    if (line.startsWith(':')) return; // a comment: the heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
  }
}

// The session id of a `POST /rt/session` reply body, or null.
function safeSessionId(body) {
  try {
    const { session } = JSON.parse(body);
    return typeof session === 'string' && session !== '' ? session : null;
  } catch {
    return null;
  }
}

const SESSION_DEFAULTS = {
  firstEventTimeoutMs: 5000, // a stream that shows nothing this long after a send is buffered
  resumes: 3, // failed resumes of a stream or poll in a row before the socket gives up
  resumeDelayMs: 500, // times the attempt number
  batchBytes: 16384, // one POST /send carries at most this many bytes (and at least one command)
};

/**
 * A `switchboard.v1` connection over an HTTP session, shaped like a
 * WebSocket (see the top of this file). Created open-pending: it opens the
 * session at once; onopen() follows when commands can be sent.
 */
export class HttpSessionSocket {
  onopen = noop;
  onmessage = noop;
  onclose = noop;
  onerror = noop;
  /** 'sse' | 'long-polling'. */
  transport;
  /** True once the server's first message came down: the path works. */
  proven = false;

  #base;
  #fetch;
  #options;
  #id = null;
  #seq = 0; // the last message delivered
  #pollTimeoutMs = 25000;
  #open = false;
  #closed = false;
  #outbox = [];
  #sending = false;
  #sentOnce = false;
  #controllers = new Set();
  #firstEventTimer = null;
  // The page is going away (or into the back/forward cache): end the session
  // now rather than at its idle timeout, and tell the Client, which connects
  // again if the page comes back.
  #onPageHide = () => this.#end(1001, 'page hidden', false);

  /**
   * @param {string} sessionUrl the /rt/session URL (sessionUrlFor())
   * @param {'sse'|'long-polling'} transport
   * @param {object} [options] fetch (default globalThis.fetch), and the
   *   SESSION_DEFAULTS above
   */
  constructor(sessionUrl, transport, options = {}) {
    this.transport = transport;
    this.#base = sessionUrl;
    this.#fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this.#options = { ...SESSION_DEFAULTS };
    for (const key of Object.keys(SESSION_DEFAULTS)) {
      if (options[key] !== undefined) this.#options[key] = options[key];
    }
    Promise.resolve().then(() => this.#start());
  }

  /** Queues one text message; sent with the others of this tick in one POST. */
  send(text) {
    if (!this.#open || this.#closed) throw new Error(`${this.transport} session is not open`);
    this.#outbox.push(String(text));
    if (!this.#sentOnce) {
      this.#sentOnce = true;
      this.#watchFirstEvent();
    }
    if (!this.#sending) {
      this.#sending = true;
      Promise.resolve().then(() => this.#flush());
    }
  }

  /** Ends the session (DELETE, best effort) and stops its requests; no onclose. */
  close() {
    if (this.#closed) return;
    this.#shutDown();
    if (this.#id !== null) {
      // keepalive: the request outlives a page that is going away.
      this.#fetch(this.#url(''), { method: 'DELETE', keepalive: true }).catch(noop);
    }
  }

  // --- internals ------------------------------------------------------------------

  #url(suffix) {
    return `${this.#base}/${encodeURIComponent(this.#id)}${suffix}`;
  }

  async #start() {
    if (this.#closed) return;
    if (typeof this.#fetch !== 'function') {
      this.#end(1006, 'no fetch() for HTTP transports', true);
      return;
    }
    let res;
    let body;
    try {
      res = await this.#request(this.#base, { method: 'POST' });
      body = await res.text();
    } catch (error) {
      this.#end(1006, `session: ${error.message}`, true);
      return;
    }
    if (this.#closed) {
      // close() came first: end the session the server just made.
      const id = res.status === 201 ? safeSessionId(body) : null;
      if (id) this.#fetch(`${this.#base}/${encodeURIComponent(id)}`, { method: 'DELETE', keepalive: true }).catch(noop);
      return;
    }
    if (res.status !== 201 && res.status !== 200) {
      this.#refused(res.status, body);
      return;
    }
    const id = safeSessionId(body);
    if (!id) {
      this.#end(1006, 'session: the reply has no session id', true);
      return;
    }
    this.#id = id;
    const pollTimeout = JSON.parse(body).poll_timeout;
    if (pollTimeout > 0) this.#pollTimeoutMs = pollTimeout * 1000;
    globalThis.addEventListener?.('pagehide', this.#onPageHide);
    if (this.transport === 'sse') this.#stream(0);
    else this.#poll(0);
    this.#open = true;
    this.onopen();
  }

  // An HTTP error before the session exists. The statuses /ws would give
  // (401, 403, 429, 503) are the server's answer: the path works. 401 is an
  // authentication failure, as close 4001 is on /ws. Anything else (404,
  // 426, a proxy's 502) says this endpoint is not reachable: a transport failure.
  #refused(status, body) {
    let message = '';
    try {
      const parsed = JSON.parse(body);
      message = parsed?.error?.message ?? parsed?.error ?? '';
    } catch { /* not JSON */ }
    const reason = `session: HTTP ${status}${message ? `: ${message}` : ''}`;
    if (status === 401) this.#end(4001, message || 'authentication failed', false);
    else this.#end(1006, reason, ![403, 429, 503].includes(status));
  }

  #request(url, init, timeoutMs = 0) {
    const controller = new AbortController();
    this.#controllers.add(controller);
    const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(), timeoutMs) : null;
    return this.#fetch(url, { cache: 'no-store', ...init, signal: controller.signal }).finally(() => {
      if (timer !== null) clearTimeout(timer);
      this.#controllers.delete(controller);
    });
  }

  async #flush() {
    while (this.#outbox.length > 0 && !this.#closed) {
      let size = 0;
      let count = 0;
      while (count < this.#outbox.length && (count === 0 || size + this.#outbox[count].length < this.#options.batchBytes)) {
        size += this.#outbox[count].length + 1;
        count++;
      }
      const lines = this.#outbox.splice(0, count);
      let res;
      try {
        res = await this.#request(this.#url('/send'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-ndjson' },
          body: `${lines.join('\n')}\n`,
        });
        await res.text();
      } catch (error) {
        if (this.#closed) return;
        // Whether the server took the commands is unknown: the connection is lost.
        this.#end(1006, `send: ${error.message}`, !this.proven);
        return;
      }
      if (this.#closed) return;
      if (res.status === 404) {
        this.#end(1006, 'session expired', false, { gone: true });
        return;
      }
      if (res.status < 200 || res.status >= 300) {
        this.#end(1006, `send: HTTP ${res.status}`, !this.proven);
        return;
      }
    }
    this.#sending = false;
  }

  // The timer that tells a buffering proxy: the first send's reply (at the
  // latest) must come down within firstEventTimeoutMs.
  #watchFirstEvent() {
    if (this.proven || this.#firstEventTimer !== null) return;
    this.#firstEventTimer = setTimeout(() => {
      this.#firstEventTimer = null;
      if (!this.proven) {
        this.#end(1006, `${this.transport}: nothing arrived within ${this.#options.firstEventTimeoutMs} ms` +
          ' (a proxy that buffers responses?)', true);
      }
    }, this.#options.firstEventTimeoutMs);
  }

  // Delivers one message of the session, once, in sequence order.
  #deliver(seq, data) {
    if (this.#closed) return;
    if (Number.isInteger(seq)) {
      if (seq <= this.#seq) return; // already delivered (a resume that overlapped)
      this.#seq = seq;
    }
    if (!this.proven) {
      this.proven = true;
      clearTimeout(this.#firstEventTimer);
      this.#firstEventTimer = null;
    }
    let parsed = null;
    try {
      parsed = JSON.parse(data);
    } catch { /* handed on as it is: the Client reports it */ }
    if (parsed?.push === 'close') {
      // The server ended the session, with the code /ws would close with.
      const code = Number.isInteger(parsed.code) ? parsed.code : 1006;
      this.#end(code, String(parsed.reason ?? ''), false, { gone: true });
      return;
    }
    this.onmessage({ data });
  }

  async #stream(failures) {
    if (this.#closed) return;
    const headers = { Accept: 'text/event-stream' };
    if (this.#seq > 0) headers['Last-Event-ID'] = String(this.#seq);
    let ended = 'the stream ended';
    let events = 0;
    try {
      const res = await this.#request(this.#url('/stream'), { headers });
      if (this.#closed) return;
      if (res.status === 404) {
        this.#end(1006, 'session expired', false, { gone: true });
        return;
      }
      if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}`);
      const parser = new EventStreamParser(({ event, data, id }) => {
        events++;
        if (event === 'message') this.#deliver(Number(id), data);
        // `reconnect` (drain, or a newer stream took over): the stream ends next.
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.#closed) break;
        parser.feed(value);
      }
    } catch (error) {
      if (this.#closed) return;
      ended = `stream: ${error.message}`;
    }
    if (this.#closed) return;
    // A stream that carried events ended (a proxy's timeout, a newer stream):
    // resume at once; one that carried nothing counts as a failure.
    this.#resume(events > 0 ? 0 : failures + 1, ended, (n) => this.#stream(n));
  }

  async #poll(failures) {
    while (!this.#closed) {
      let res;
      let body;
      try {
        res = await this.#request(this.#url(`/poll?after=${this.#seq}`), {}, this.#pollTimeoutMs + 10000);
        body = await res.text();
      } catch (error) {
        if (this.#closed) return;
        this.#resume(failures + 1, `poll: ${error.message}`, (n) => this.#poll(n));
        return;
      }
      if (this.#closed) return;
      if (res.status === 404) {
        this.#end(1006, 'session expired', false, { gone: true });
        return;
      }
      let messages = null;
      try {
        messages = res.status === 200 ? JSON.parse(body).messages : null;
      } catch { /* below */ }
      if (!Array.isArray(messages)) {
        this.#resume(failures + 1, `poll: HTTP ${res.status}`, (n) => this.#poll(n));
        return;
      }
      failures = 0;
      for (const m of messages) {
        if (m && typeof m.data === 'string') this.#deliver(m.seq, m.data);
      }
    }
  }

  // A stream or poll ended while the session may live: try again on it,
  // after a short delay, a bounded number of times.
  #resume(failures, why, again) {
    if (this.#closed) return;
    if (failures > this.#options.resumes) {
      this.#end(1006, why, !this.proven);
      return;
    }
    setTimeout(() => again(failures), failures * this.#options.resumeDelayMs);
  }

  #shutDown() {
    this.#closed = true;
    this.#open = false;
    clearTimeout(this.#firstEventTimer);
    this.#firstEventTimer = null;
    globalThis.removeEventListener?.('pagehide', this.#onPageHide);
    for (const controller of this.#controllers) controller.abort();
    this.#controllers.clear();
    this.#outbox = [];
  }

  // The socket is over: tell once. transportFailed: the path did not work
  // (see TransportPlan); the Client reads it from the close event. gone: the
  // server ended the session itself.
  #end(code, reason, transportFailed, { gone = false } = {}) {
    if (this.#closed) return;
    const held = this.#id !== null && !gone;
    this.#shutDown();
    // A session the server may still hold (a failed stream, a page going
    // away): free it now rather than at its idle timeout.
    if (held) this.#fetch(this.#url(''), { method: 'DELETE', keepalive: true }).catch(noop);
    this.onclose({ code, reason, transportFailed });
  }
}
