// chat_page.mjs — driving the demo chat page (web/index.html, demo.js) from a
// browser test through its data-testid elements, and checking what it shows.
// Used by transport_browser_test.mjs.
import { withDeadline } from './harness.mjs';

export const STEP_MS = 20_000; // one wait inside a step

export async function openPage(browser, url, name, { initScript = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 720, height: 640 } });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${name} page error] ${e.message}`));
  await withDeadline(page.goto(url), STEP_MS, `${name}: loading the page`);
  return page;
}

export async function join(page, name, room) {
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('join-button').click();
}

export async function send(page, text) {
  await page.getByTestId('message-input').fill(text);
  await page.getByTestId('send-button').click();
}

export const statusOf = (page) => page.getByTestId('status').getAttribute('data-state');

// The transport the page's client is on ('websocket', 'sse', 'long-polling').
export const transportOf = (page) => page.evaluate(() => window.switchboardDemo.client?.transport ?? null);

export function waitState(page, state, ms = STEP_MS) {
  return page.waitForFunction(
    (s) => document.querySelector('[data-testid="status"]')?.dataset.state === s, state, { timeout: ms });
}

export function messagesOf(page) {
  return page.$$eval('[data-testid="message"]', (items) => items.map((li) => ({
    offset: Number(li.dataset.offset),
    name: li.querySelector('.name')?.textContent ?? '',
    text: li.querySelector('.text')?.textContent ?? '',
  })));
}

export function waitMessageCount(page, n, ms = STEP_MS) {
  return page.waitForFunction(
    (k) => document.querySelectorAll('[data-testid="message"]').length >= k, n, { timeout: ms });
}

export function presenceOf(page) {
  return page.$$eval('[data-testid="presence-item"]', (items) => items.map((li) => li.textContent).sort());
}

export function waitPresence(page, names, ms = STEP_MS) {
  return page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('[data-testid="presence-item"]')].map((li) => li.textContent).sort();
    return JSON.stringify(got) === JSON.stringify(want);
  }, [...names].sort(), { timeout: ms });
}

// After a reconnect: the demo page sets data-recovered on its message list
// from the subscription's `subscribed` event ("true", "false"; "" until then).
export async function waitRecovered(page, ms = STEP_MS) {
  const handle = await page.waitForFunction(
    () => document.querySelector('[data-testid="message-list"]')?.dataset.recovered || null, null, { timeout: ms });
  return handle.jsonValue();
}

const render = (list) => list.map((m) => `${m.offset}:${m.name}:${m.text}`).join(' | ');

// Every message exactly once, in order: `got` equals `want` and offsets rise.
export function checkTranscript(who, got, want) {
  const problems = [];
  const texts = got.map((m) => `${m.name}: ${m.text}`);
  if (JSON.stringify(texts) !== JSON.stringify(want)) {
    problems.push(`${who} shows [${texts.join(' | ')}], expected [${want.join(' | ')}]`);
  }
  for (let i = 1; i < got.length; i++) {
    if (!(got[i].offset > got[i - 1].offset)) problems.push(`${who}: offsets not rising: ${render(got)}`);
  }
  return problems;
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// Steps: run body, print PASS/FAIL with its detail, keep the outcome.
export function stepper() {
  const results = [];
  async function step(name, body) {
    try {
      const detail = await body();
      results.push({ step: name, ok: true, detail: detail ?? '' });
      console.log(`PASS ${name}${detail ? `: ${detail}` : ''}`);
      return true;
    } catch (e) {
      results.push({ step: name, ok: false, detail: String(e.message ?? e) });
      console.log(`FAIL ${name}: ${e.message ?? e}`);
      return false;
    }
  }
  return { results, step };
}
