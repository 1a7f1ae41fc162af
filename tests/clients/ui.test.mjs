// The hub's live view and its debugger, in headless Chromium
// (lib/browser.mjs) against real hubs (lib/hub.mjs), with subscribers and
// publishers driven from node (lib/traffic.mjs):
//
// - the demo page at "/" of `ssehub --dev`: the live figures (connections,
//   subscriptions, updates/s, deliveries/s, publish-to-delivery p50/p99,
//   totals) follow subscribers as they connect and leave and updates as
//   they are published — read from the page's DOM;
// - the debugger at /.well-known/mercure/debug/ of a production-style hub
//   (`--issuer … --jwt-key K --anonymous --debugger`): the same figures,
//   anonymous watching of public updates only, and no token anywhere — not
//   in its DOM, its form fields, its scripts, its network responses, its
//   cookies or storage; it never asks for the demo's token document;
// - the debugger is absent (404) unless enabled: off by default outside
//   development mode, and `--debugger=false` turns it off in development.
//
// Run alone: cd tests/clients && node --test --test-reporter=spec ui.test.mjs

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import {
  ISSUER, buildHub, newKey, publisherToken, startHub, stopAllHubs, subscriberToken,
} from './lib/hub.mjs';
import { openSubscriber, publish, publishLoop } from './lib/traffic.mjs';

/** Bound of each wait on the page (samples come once a second). */
const STEP = 20000;
const RUN = randomBytes(4).toString('hex');
/** A topic of this run. */
const T = (path) => `https://example.com/${RUN}/ui/${path}`;
const DEBUG_PATH = '/.well-known/mercure/debug/';
/** A compact JWS, as every token of the hub looks. */
const JWT = /eyJ[\w-]{6,}\.[\w-]{6,}\./;

let browser;

before(async () => {
  buildHub();
  browser = await launchChromium();
}, { timeout: 900000 });

after(async () => {
  await browser?.close();
  await stopAllHubs();
});

// ------------------------------------------------------------ reading the page

/**
 * `url` in a fresh browser context, closed when `t` ends. `responses`
 * collects {url, status, contentType, body} of every response but event
 * streams (whose body never ends); `errors` page errors and console errors.
 */
async function open(t, url) {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  const responses = [];
  const reading = [];
  page.on('response', (response) => {
    const contentType = response.headers()['content-type'] ?? '';
    const entry = { url: response.url(), status: response.status(), contentType, body: null };
    responses.push(entry);
    if (!contentType.startsWith('text/event-stream')) {
      reading.push(response.text().then((body) => { entry.body = body; }, () => {}));
    }
  });
  const response = await page.goto(url);
  return { context, page, errors, responses, response, bodies: () => Promise.all(reading) };
}

/** Comparisons `figure` can wait for (no eval: the debugger's CSP forbids it). */
const OPS = { '===': (n, v) => n === v, '>=': (n, v) => n >= v, '>': (n, v) => n > v };

/**
 * Waits until the live figure `id` (#live-ID's data-value) is a number
 * `n` with `n OP value` (OP one of ===, >=, >); returns it.
 */
async function figure(page, id, op, value) {
  assert.ok(op in OPS, op);
  try {
    const handle = await page.waitForFunction(([name, how, want]) => {
      const text = document.getElementById(`live-${name}`)?.dataset.value;
      if (text === undefined || text === '') return false;
      const n = Number(text);
      const ok = how === '===' ? n === want : how === '>=' ? n >= want : n > want;
      return ok ? { n } : false;
    }, [id, op, value], { timeout: STEP });
    return (await handle.jsonValue()).n;
  } catch (err) {
    const now = await page.getAttribute(`#live-${id}`, 'data-value').catch(() => '?');
    throw new Error(`live ${id}: wanted n ${op} ${value}, shows ${JSON.stringify(now)} (${err.message.split('\n')[0]})`);
  }
}

/** Waits until #live-ID shows no figure ("—", data-value ""). */
async function unknown(page, id) {
  await page.waitForSelector(`#live-${id}[data-value=""]`, { state: 'attached', timeout: STEP });
}

// ------------------------------------------------------------ the tests

test('dev page: the live figures follow subscribers, publishes and departures', { timeout: 120000 }, async (t) => {
  const hub = await startHub(['--dev']);
  const { page, errors, response } = await open(t, `${hub.base}/`);
  assert.equal(response.status(), 200);
  await page.waitForSelector('#live-status[data-state="open"]');
  assert.equal(await page.locator('[data-testid=live-chart]').count(), 5, 'a chart per tile');
  await figure(page, 'connections', '===', 0);
  await figure(page, 'subscriptions', '===', 0);

  // Three subscribers with one, two and three matchers.
  const [a, b, c] = [T('a'), T('b'), T('c')];
  const subscribers = [
    await openSubscriber(hub.hub, [a]),
    await openSubscriber(hub.hub, [a, b]),
    await openSubscriber(hub.hub, [a, b, c]),
  ];
  await figure(page, 'connections', '===', 3);
  await figure(page, 'subscriptions', '===', 6);

  // The page's own subscription counts like any other.
  await page.getByTestId('sub-row').first().getByTestId('sub-topic').fill(c);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');
  await figure(page, 'connections', '===', 4);
  await figure(page, 'subscriptions', '===', 7);

  const config = await (await fetch(`${hub.base}/demo/config.json`)).json();
  const loop = publishLoop(hub.hub, config.publisherToken, a, 40);
  try {
    const rate = await figure(page, 'updates-per-sec', '>=', 3);
    const deliveries = await figure(page, 'delivered-per-sec', '>=', 6);
    await figure(page, 'latency-p50', '>', 0);
    // Both of one sample.
    const [p50, p99] = await page.evaluate(() => ['p50', 'p99'].map((q) => Number(document.getElementById(`live-latency-${q}`).dataset.value)));
    assert.ok(p50 > 0 && p99 >= p50, `p50 ${p50} ms, p99 ${p99} ms`);
    t.diagnostic(`updates/s ${rate}, deliveries/s ${deliveries}, p50 ${p50} ms, p99 ${p99} ms`);
  } finally {
    await loop.stop();
  }
  const published = loop.count();
  // Totals: every publish (dev mode also publishes subscription events,
  // which reach no anonymous subscriber), three deliveries each.
  await figure(page, 'published', '>=', published);
  await figure(page, 'delivered', '>=', 3 * published);
  await figure(page, 'dropped', '===', 0);
  for (const subscriber of subscribers) {
    assert.ok(subscriber.events.length >= published, 'every subscriber of a got every update');
  }
  // A quiet second: no rate, no latency to show.
  await figure(page, 'updates-per-sec', '===', 0);
  await unknown(page, 'latency-p50');

  // Departures.
  subscribers[0].close();
  subscribers[1].close();
  await figure(page, 'connections', '===', 2);
  await figure(page, 'subscriptions', '===', 4);
  await page.click('#unsubscribe');
  await figure(page, 'connections', '===', 1);
  await figure(page, 'subscriptions', '===', 3);
  subscribers[2].close();
  await figure(page, 'connections', '===', 0);

  const points = Number(await page.getAttribute('[data-testid=live-tile-connections] svg', 'data-points'));
  assert.ok(points >= 5, `the chart holds the samples seen (${points})`);
  assert.ok(await page.locator('[data-testid=live-tile-connections] svg path.live-line').count() >= 1, 'a line is drawn');
  assert.deepEqual(errors, []);
});

test('debugger on a production hub: live figures, anonymous watching, no token anywhere', { timeout: 120000 }, async (t) => {
  const key = newKey();
  const hub = await startHub(['--issuer', ISSUER, '--jwt-key', key, '--anonymous', '--debugger']);
  const publisher = publisherToken(key, ['*'], { aud: hub.hub });
  const subscriber = subscriberToken(key, ['*'], { aud: hub.hub });
  const { context, page, errors, responses, response, bodies } = await open(t, `${hub.base}${DEBUG_PATH}`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  await page.waitForSelector('#facts[data-state="ok"]');
  assert.equal(await page.textContent('#fact-mode'), 'production');
  assert.equal(await page.textContent('#fact-anonymous'), 'on');
  assert.equal(await page.textContent('#hub-url'), hub.hub);
  await page.waitForSelector('#live-status[data-state="open"]');
  await figure(page, 'connections', '===', 0);

  // Two subscribers with tokens (they may read private updates).
  const subscribers = [
    await openSubscriber(hub.hub, [T('p'), T('q')], { token: subscriber }),
    await openSubscriber(hub.hub, [T('p')], { token: subscriber }),
  ];
  await figure(page, 'connections', '===', 2);
  await figure(page, 'subscriptions', '===', 3);

  // The page watches as an anonymous subscriber: public updates only.
  await page.fill('#watch-topic', T('p'));
  await page.click('#watch');
  await page.waitForSelector('#watch-status[data-state="open"]');
  await figure(page, 'connections', '===', 3);
  await publish(hub.hub, publisher, { topic: T('p'), data: `private ${RUN}`, private: 'on' });
  const sentinel = await publish(hub.hub, publisher, { topic: T('p'), data: `public ${RUN}` });
  await page.waitForSelector(`[data-testid=event][data-id="${sentinel}"]`);
  const seen = await page.locator('#watch-events .event-data').allTextContents();
  assert.deepEqual(seen, [`public ${RUN}`], 'the private update never reaches the anonymous watcher');
  await figure(page, 'published', '===', 2);
  // The private update to the two token holders, the public one to them and the page.
  await figure(page, 'delivered', '===', 5);
  for (const s of subscribers) s.close();
  await page.click('#watch-stop');
  await figure(page, 'connections', '===', 0);
  await figure(page, 'subscriptions', '===', 0);

  // No token anywhere.
  await bodies();
  const requested = responses.map((r) => new URL(r.url).pathname);
  assert.ok(!requested.includes('/demo/config.json'), 'the debugger never asks for the demo\'s tokens');
  const allowed = new Set([
    DEBUG_PATH, `${DEBUG_PATH}debugger.css`, `${DEBUG_PATH}live.css`, `${DEBUG_PATH}live.js`,
    `${DEBUG_PATH}debugger.js`, `${DEBUG_PATH}config.json`, '/stats/live', '/.well-known/mercure',
  ]);
  for (const r of responses) {
    assert.equal(new URL(r.url).origin, hub.base, `same origin only: ${r.url}`);
    assert.ok(allowed.has(new URL(r.url).pathname), `unexpected request ${r.url}`);
    if (r.body === null) continue;
    assert.doesNotMatch(r.body, JWT, `${r.url} carries a token`);
    assert.ok(!r.body.includes(key), `${r.url} carries the key`);
  }
  const scripts = responses.filter((r) => r.contentType.startsWith('text/javascript'));
  assert.equal(scripts.length, 2, 'live.js and debugger.js');
  for (const script of scripts) {
    assert.doesNotMatch(script.body, /token['"]?\s*[:=]|Authorization|document\.cookie/i, `${script.url} handles a token`);
  }
  const inline = await page.evaluate(() => [...document.scripts].filter((s) => !s.src).length);
  assert.equal(inline, 0, 'no inline script');
  const html = await page.content();
  assert.doesNotMatch(html, JWT);
  assert.ok(!html.includes(key));
  const values = await page.locator('input, textarea').evaluateAll((els) => els.map((e) => e.value));
  for (const value of values) assert.doesNotMatch(value, JWT);
  assert.equal(await page.locator('textarea, input[type=password], #publish, #pub-form').count(), 0, 'no token box, no publish form');
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  // The stats stream itself: counts only.
  const live = await fetch(`${hub.base}/stats/live`);
  const reader = live.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!/data:[^\n]*\n\n/.test(text)) text += (await reader.read()).value;
  await reader.cancel();
  assert.match(text, /event: stats\ndata: \{"timeMs":/);
  assert.doesNotMatch(text, JWT);
  assert.ok(!text.includes(RUN), 'no topic in the figures');
  assert.deepEqual(errors, [], 'no errors (a CSP violation would be one)');
});

test('the debugger is absent (404) unless enabled', { timeout: 60000 }, async (t) => {
  const key = newKey();
  const production = await startHub(['--issuer', ISSUER, '--jwt-key', key, '--anonymous']);
  const devOff = await startHub(['--dev', '--debugger=false']);
  const dev = await startHub(['--dev']);
  for (const [hub, want, name] of [[production, 404, 'production default'], [devOff, 404, '--dev --debugger=false'], [dev, 200, '--dev']]) {
    for (const file of ['', 'config.json', 'live.js', 'debugger.js']) {
      const status = (await fetch(`${hub.base}${DEBUG_PATH}${file}`)).status;
      assert.equal(status, want, `${name}: ${DEBUG_PATH}${file}`);
    }
  }
  const { page: debug } = await open(t, `${dev.base}${DEBUG_PATH}`);
  await debug.waitForSelector('#live-status[data-state="open"]');
  // The demo page keeps its live view either way.
  const { page } = await open(t, `${production.base}/`);
  await page.waitForSelector('#live-status[data-state="open"]');
  await figure(page, 'connections', '===', 0);
});
