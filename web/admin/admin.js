// admin.js — the Switchboard dashboard (docs/admin.md). Reads one stats frame
// a second from /admin/ws (after a one-use ticket from /admin/ticket) and
// draws every chart as hand-written SVG; actions go through /admin/api/*.
// The page itself was loaded with HTTP Basic, which the browser sends again
// with every same-origin fetch.
'use strict';

const POINTS = 120; // seconds of history per chart
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

// Each chart: a title and how a value comes from a node's sample and the
// previous one (`dt` seconds apart). Counters become rates.
const CHARTS = [
  { id: 'connections', title: 'Connections', value: (n) => n.connections },
  { id: 'messages_in', title: 'Messages in / s', rate: 'messages_in' },
  { id: 'messages_out', title: 'Messages out / s (deliveries)', rate: 'messages_out' },
  { id: 'publications', title: 'Publications / s', rate: 'publications' },
  {
    id: 'latency', title: 'Publish latency (ms, mean)',
    value: (n, p) => {
      if (!p) return 0;
      const count = n.publish_latency_count - p.publish_latency_count;
      return count > 0 ? (n.publish_latency_us - p.publish_latency_us) / count / 1000 : 0;
    },
  },
  {
    id: 'drops', title: 'Backpressure drops / s',
    value: (n, p, dt) => (p ? Math.max(0, (n.backpressure_drops + n.outbound_memory_drops)
      - (p.backpressure_drops + p.outbound_memory_drops)) / dt : 0),
  },
];

// What the page knows; tests read it (window.adminState).
const state = {
  frames: 0,
  nodes: [], // node ids in colour order
  series: {}, // chart id → node id → [values]
  previous: {}, // node id → last sample
  previousTime: 0,
  channelOffsets: new Map(), // channel → offset in the previous frame
};
window.adminState = state;

const $ = (id) => document.getElementById(id);
const svgNS = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, text) {
  const e = tag.startsWith('svg:') ? document.createElementNS(svgNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function buildCharts() {
  const root = $('charts');
  for (const c of CHARTS) {
    state.series[c.id] = {};
    const box = el('div', { class: 'chart', id: `chart-${c.id}` });
    const h = el('h2');
    h.append(el('span', {}, c.title), el('span', { class: 'now' }, '–'));
    const svg = el('svg:svg', { viewBox: '0 0 600 120', preserveAspectRatio: 'none', role: 'img', 'aria-label': c.title });
    const foot = el('div', { class: 'legend' });
    box.append(h, svg, el('div', { class: 'foot' }, ''), foot);
    box.querySelector('.foot').append(el('span', { class: 'top' }, ''));
    root.append(box);
  }
}

function nice(v) {
  if (v >= 100) return Math.round(v).toString();
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function drawChart(c) {
  const box = $(`chart-${c.id}`);
  const svg = box.querySelector('svg');
  const perNode = state.series[c.id];
  let max = 0;
  for (const id of state.nodes) for (const v of perNode[id] ?? []) max = Math.max(max, v);
  const top = max > 0 ? max * 1.15 : 1;
  svg.replaceChildren();
  for (const f of [0.25, 0.5, 0.75]) {
    svg.append(el('svg:line', { class: 'grid', x1: 0, x2: 600, y1: 120 * f, y2: 120 * f }));
  }
  box.querySelector('.top').textContent = `max ${nice(top)}`;
  let now = 0;
  state.nodes.forEach((id, i) => {
    const values = perNode[id] ?? [];
    if (values.length === 0) return;
    const x0 = 600 - (values.length - 1) * (600 / (POINTS - 1));
    const points = values.map((v, k) => `${(x0 + k * (600 / (POINTS - 1))).toFixed(1)},${(120 - (v / top) * 116).toFixed(1)}`);
    svg.append(el('svg:polyline', { points: points.join(' '), stroke: COLORS[i % COLORS.length], 'data-node': id }));
    now += values[values.length - 1];
  });
  box.querySelector('.now').textContent = c.id === 'latency' ? nice(now / Math.max(1, state.nodes.length)) : nice(now);
  const legend = box.querySelector('.legend');
  legend.replaceChildren(...state.nodes.map((id, i) => {
    const s = el('span', {}, `● ${id.slice(0, 8)}`);
    s.style.color = COLORS[i % COLORS.length];
    return s;
  }));
}

function onStats(frame) {
  const dt = state.previousTime ? Math.max(0.2, (frame.time_ms - state.previousTime) / 1000) : 1;
  const nodes = frame.info.nodes ?? [];
  for (const n of nodes) if (!state.nodes.includes(n.node)) state.nodes.push(n.node);
  for (const c of CHARTS) {
    for (const n of nodes) {
      const p = state.previous[n.node];
      let v;
      if (c.rate) v = p ? Math.max(0, n[c.rate] - p[c.rate]) / dt : 0;
      else v = c.value(n, p, dt);
      const list = (state.series[c.id][n.node] ??= []);
      list.push(v);
      if (list.length > POINTS) list.shift();
    }
    drawChart(c);
  }
  for (const n of nodes) state.previous[n.node] = n;
  state.previousTime = frame.time_ms;
  $('nodes').textContent = `${nodes.length} node${nodes.length === 1 ? '' : 's'}`;

  const rows = frame.channels ?? [];
  const rate = rows.map((ch) => {
    const before = state.channelOffsets.get(ch.channel);
    return { ...ch, rate: before === undefined ? 0 : Math.max(0, ch.offset - before) / dt };
  });
  state.channelOffsets = new Map(rows.map((ch) => [ch.channel, ch.offset]));
  fillTable('top-subscribers', rows.slice(0, 10).map((ch) => [ch.channel, ch.subscribers, ch.offset]));
  fillTable('top-rate', rate.filter((ch) => ch.rate > 0).sort((a, b) => b.rate - a.rate).slice(0, 10)
    .map((ch) => [ch.channel, nice(ch.rate), ch.offset]));
  state.frames += 1;
  $('status').dataset.frames = String(state.frames);
}

function fillTable(id, rows) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren(...rows.map((cells) => {
    const tr = el('tr');
    for (const c of cells) tr.append(el('td', {}, String(c)));
    tr.firstChild.addEventListener('click', () => { $('channel-name').value = cells[0]; showChannel(); });
    return tr;
  }));
}

// --- the stream, reconnecting with backoff ---------------------------------------

let retry = 500;
async function connect() {
  const status = $('status');
  try {
    const r = await fetch('/admin/ticket', { cache: 'no-store' });
    if (!r.ok) throw new Error(`ticket: ${r.status}`);
    const { ticket } = await r.json();
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/admin/ws?ticket=${encodeURIComponent(ticket)}`);
    ws.onopen = () => { retry = 500; status.dataset.state = 'live'; status.textContent = 'live'; };
    ws.onmessage = (e) => {
      const frame = JSON.parse(e.data);
      if (frame.type === 'stats') onStats(frame);
    };
    ws.onclose = () => { status.dataset.state = 'down'; status.textContent = 'reconnecting…'; later(); };
  } catch (e) {
    status.dataset.state = 'down';
    status.textContent = `down (${e.message})`;
    later();
  }
}
function later() {
  setTimeout(connect, retry * (0.5 + Math.random()));
  retry = Math.min(retry * 2, 10_000);
}

// --- actions ----------------------------------------------------------------------

async function call(method, params) {
  const r = await fetch(`/admin/api/${method}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(params),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error?.message ?? `HTTP ${r.status}`);
  return body;
}

function show(id, text, error = false) {
  const p = $(id);
  p.textContent = text;
  p.classList.toggle('error', error);
}

async function showChannel() {
  const channel = $('channel-name').value.trim();
  const presence = $('presence-list');
  const history = $('history-list');
  try {
    const p = await call('presence', { channel });
    $('presence-count').textContent = `(${p.count})`;
    presence.replaceChildren(...(p.clients ?? []).map((c) => el('li', {}, `${c.user ?? '(anonymous)'} ${c.client}`)));
  } catch (e) {
    $('presence-count').textContent = '';
    presence.replaceChildren(el('li', {}, e.message));
  }
  try {
    const h = await call('history', { channel, limit: 20 });
    history.replaceChildren(...h.publications.map((m) => el('li', { value: m.offset }, JSON.stringify(m.data))));
  } catch (e) {
    history.replaceChildren(el('li', {}, e.message));
  }
}

$('channel-form').addEventListener('submit', (e) => { e.preventDefault(); showChannel(); });

$('publish-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  let data;
  try {
    data = JSON.parse($('publish-data').value);
  } catch {
    show('publish-result', 'data is not JSON', true);
    return;
  }
  try {
    const r = await call('publish', { channel: $('publish-channel').value.trim(), data });
    show('publish-result', `published: offset ${r.offset} (epoch ${r.epoch})`);
  } catch (err) {
    show('publish-result', err.message, true);
  }
});

$('disconnect-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const params = { [$('disconnect-kind').value]: $('disconnect-target').value.trim() };
  const code = Number($('disconnect-code').value);
  if (code) params.code = code;
  const reason = $('disconnect-reason').value;
  if (reason) params.reason = reason;
  try {
    await call('disconnect', params);
    show('disconnect-result', `disconnect sent (${Object.values(params)[0]}, code ${code || 4003})`);
  } catch (err) {
    show('disconnect-result', err.message, true);
  }
});

buildCharts();
connect();
