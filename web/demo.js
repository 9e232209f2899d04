// demo.js — the chat page that `switchboard serve` hosts at `/`.
//
// Pick a name and a room; the page connects anonymously to the server's /ws
// endpoint, or over HTTP where a proxy lets no WebSocket through (the status
// names the transport, also as its data-transport; presence shows the name),
// subscribes to `chat:<room>` with its recent history, and publishes
// {text, name}. It shows the connection state, who is in the room (presence,
// then join/leave pushes) and, after a reconnect, the messages it missed — or
// reloads the history when the server could not replay them (a `reset`).
//
// `window.switchboardDemo.client` is the page's Client, for poking at it from
// the developer console (and for tests).
import { Client, SwitchboardError } from './switchboard.js';

const ROOM = /^[A-Za-z0-9_\-.@=]{1,123}$/; // channel-name characters; 'chat:' + room ≤ 128 bytes

const $ = (id) => document.getElementById(id);
const ui = {
  joinForm: $('join-form'), name: $('name'), room: $('room'),
  chat: $('chat'), roomTitle: $('room-title'), status: $('status'), notice: $('notice'),
  messages: $('messages'), presence: $('presence'),
  sendForm: $('send-form'), text: $('text'), leave: $('leave'),
};

let client = null;
let channel = null;
let me = '';
const present = new Map(); // client id -> presence entry

window.switchboardDemo = {
  get client() { return client; },
  get channel() { return channel; },
};

function serverUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function notice(text) {
  ui.notice.textContent = text;
}

// --- messages ---------------------------------------------------------------------

function showMessage(pub) {
  const data = pub.data && typeof pub.data === 'object' ? pub.data : { text: String(pub.data) };
  const li = document.createElement('li');
  li.dataset.testid = 'message';
  li.dataset.offset = String(pub.offset);
  const name = document.createElement('span');
  name.className = 'name';
  // The name is the sender's own claim: shown as text, never as markup.
  name.textContent = typeof data.name === 'string' && data.name ? data.name : (pub.user ?? 'anonymous');
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = typeof data.text === 'string' ? data.text : JSON.stringify(data);
  li.append(name, text);
  if (pub.client && pub.client === client?.clientId) li.classList.add('mine');
  const atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
  ui.messages.append(li);
  if (atBottom) li.scrollIntoView({ block: 'end' });
}

// --- presence ---------------------------------------------------------------------

function displayName(entry) {
  return entry.info?.name ?? entry.user ?? `guest ${String(entry.client).slice(0, 6)}`;
}

let crowd = null; // the member count while the room is too big to list (counts only)

function renderPresence() {
  if (crowd !== null) {
    const li = document.createElement('li');
    li.dataset.testid = 'presence-count';
    li.textContent = `${crowd} here`;
    ui.presence.replaceChildren(li);
    return;
  }
  const entries = [...present.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
  ui.presence.replaceChildren(...entries.map((entry) => {
    const li = document.createElement('li');
    li.dataset.testid = 'presence-item';
    li.dataset.client = entry.client;
    li.textContent = displayName(entry);
    if (entry.client === client?.clientId) li.classList.add('mine');
    return li;
  }));
}

async function reloadPresence() {
  if (!client) return;
  try {
    present.clear();
    crowd = null;
    // Page by page (the server lists 100 per reply by default).
    for (let cursor; ;) {
      const page = await client.presence(channel, cursor === undefined ? {} : { cursor });
      if (!page.clients) { // more members than the server lists: the count only
        crowd = page.count;
        break;
      }
      for (const entry of page.clients) present.set(entry.client, entry);
      if (!page.cursor) break;
      cursor = page.cursor;
    }
    ui.presence.classList.remove('stale');
    renderPresence();
  } catch (e) {
    notice(`presence: ${e.message}`);
  }
}

// --- joining and leaving -------------------------------------------------------------

function join(name, room) {
  me = name;
  channel = `chat:${room}`;
  ui.messages.replaceChildren();
  present.clear();
  renderPresence();
  notice('');
  ui.joinForm.hidden = true;
  ui.chat.hidden = false;
  ui.roomTitle.textContent = `#${room}`;
  document.title = `#${room} — Switchboard chat`;

  const c = new Client(serverUrl(), { info: { name } });
  client = c;
  // Handlers of a client the page has left behind (Leave, then Join) do nothing.
  const live = (fn) => (...args) => { if (client === c) fn(...args); };
  c.on('connecting', live(({ attempt }) =>
    setStatus('connecting', attempt ? `connecting (attempt ${attempt})…` : 'connecting…')));
  c.on('connected', live(({ client: id }) => {
    setStatus('connected', `connected as ${me} (${c.transport})`);
    ui.status.dataset.transport = c.transport;
    notice('');
    ui.status.title = `client id ${id}`;
  }));
  c.on('disconnected', live(({ code, reason, willReconnect }) => {
    ui.presence.classList.add('stale');
    ui.messages.dataset.recovered = ''; // set again by the next subscribe
    const why = reason ? `${code}: ${reason}` : `${code}`;
    setStatus(willReconnect ? 'reconnecting' : 'disconnected', `disconnected (${why})`);
  }));
  c.on('reconnecting', live(({ attempt, delayMs }) =>
    setStatus('reconnecting', `reconnecting in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt})`)));
  // Server refusals (auth, connect errors) are worth showing; network failures
  // already show in the status.
  c.on('error', live((e) => { if (e instanceof SwitchboardError) notice(e.message); }));

  const handlers = {
    message: live(showMessage),
    join: live((entry) => { present.set(entry.client, entry); renderPresence(); }),
    leave: live((entry) => { present.delete(entry.client); renderPresence(); }),
    presence: live(({ count, countsOnly }) => {
      if (countsOnly) {
        present.clear();
        crowd = count;
        renderPresence();
      } else if (crowd !== null) {
        reloadPresence(); // listed again: the changes alone do not make the list
      }
    }),
    subscribed: live(({ recovered, resumed }) => {
      ui.messages.dataset.recovered = resumed ? String(recovered) : '';
      reloadPresence();
    }),
    reset: live(({ reason }) => {
      ui.messages.replaceChildren();
      notice(`The server could not replay what was missed (${reason}): showing the recent history.`);
    }),
    error: live((e) => notice(`${channel}: ${e.message}`)),
  };
  c.subscribe(channel, handlers, { history: true }).catch(live((e) => {
    notice(`cannot join ${channel}: ${e.message}`);
  }));
  c.connect().catch(() => { /* shown by the events */ });
}

function leave() {
  if (!client) return;
  const leaving = client;
  client = null;
  leaving.unsubscribe(channel).catch(() => {}).finally(() => leaving.disconnect());
  setStatus('disconnected', 'not connected');
  ui.chat.hidden = true;
  ui.joinForm.hidden = false;
  ui.roomTitle.textContent = '';
  document.title = 'Switchboard chat';
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  if (!name) return notice('Pick a name.');
  if (!ROOM.test(room)) return notice('A room name is 1–123 of: letters, digits, _ - . @ =');
  join(name, room);
  ui.text.focus();
  return undefined;
});

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !client) return;
  ui.text.value = '';
  client.publish(channel, { text, name: me }).catch((e) => notice(`not sent: ${e.message}`));
});

ui.leave.addEventListener('click', leave);
