// The hub's demo page (`/`, crates/ssehub-server/assets/index.html) driven
// through its UI in headless Chromium (lib/browser.mjs), against real hubs
// (lib/hub.mjs):
//
// - `ssehub --dev`: /demo/config.json hands out tokens and the page fills
//   them in; anonymous subscribing with `match` / `match_urlpattern` rows,
//   publishing through the form (multi-line data shown as text, typed
//   events, alternate topics), private updates only once the page presents
//   the subscriber token as the mercure_access_token cookie, resuming with
//   last_event_id, the curl box, the active subscriptions panel.
// - `ssehub --issuer ... --jwt-key K --anonymous`: no tokens handed out,
//   publishing without one is refused with 401, a pasted token publishes.
//
// Negative checks ("X never arrives") wait for a sentinel published after X.
// Every topic carries this run's random prefix.
//
// Run alone: cd tests/clients && node --test --test-reporter=spec demo.test.mjs

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import { ISSUER, buildHub, newKey, publisherToken, startHub, stopAllHubs } from './lib/hub.mjs';

/** Per-step wait in the browser; each test has its own overall bound. */
const STEP = 10000;
const RUN = randomBytes(4).toString('hex');
/** A topic of this run. */
const T = (path) => `https://example.com/${RUN}/demo/${path}`;

const KEY = newKey();

let browser;
/** `ssehub --dev`. */
let dev;
/** `ssehub --issuer ISSUER --jwt-key KEY --anonymous`: not development mode. */
let plain;

before(async () => {
  buildHub();
  dev = await startHub(['--dev']);
  plain = await startHub(['--issuer', ISSUER, '--jwt-key', KEY, '--anonymous']);
  browser = await launchChromium();
}, { timeout: 900000 });

after(async () => {
  await browser?.close();
  await stopAllHubs();
});

// ------------------------------------------------------------ helpers

/**
 * The demo page of `hub` in a fresh browser context (own cookies), closed
 * when `t` ends. `config` is the /demo/config.json the page itself read
 * (tokens are minted afresh per request); `errors` collects uncaught
 * exceptions and console errors.
 */
async function openDemo(t, hub) {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const errors = { page: [], console: [] };
  page.on('pageerror', (err) => errors.page.push(String(err)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.console.push(message.text());
  });
  const configResponse = page.waitForResponse((r) => new URL(r.url()).pathname === '/demo/config.json');
  const response = await page.goto(`${hub.base}/`);
  assert.equal(response.status(), 200, `GET ${hub.base}/`);
  assert.match(response.headers()['content-type'] ?? '', /^text\/html/);
  const config = await (await configResponse).json();
  return { context, page, config, errors };
}

/** The event list item of update `id`. */
const eventFor = (page, id) => page.locator(`[data-testid="event"][data-id=${JSON.stringify(id)}]`);

/**
 * Fills the matcher rows (`[type, value]` each, type `exact` or
 * `urlpattern`), the private box and the last_event_id field, subscribes
 * and waits for the `open` state.
 */
async function subscribeUi(page, matchers, { isPrivate = false, lastEventId = '' } = {}) {
  const rows = page.getByTestId('sub-row');
  while (await rows.count() < matchers.length) await page.click('#sub-add');
  while (await rows.count() > matchers.length) await rows.last().getByTestId('sub-remove').click();
  for (const [i, [type, value]] of matchers.entries()) {
    await rows.nth(i).getByTestId('sub-match-type').selectOption(type);
    await rows.nth(i).getByTestId('sub-topic').fill(value);
  }
  await page.setChecked('#sub-private', isPrivate);
  await page.fill('#sub-last-event-id', lastEventId);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');
}

/**
 * Publishes through the form; returns the #pub-result state and its
 * data-id / data-status.
 */
async function publishUi(page, { topic, alternates = [], data, type = '', isPrivate = false }) {
  await page.fill('#pub-topic', topic);
  await page.fill('#pub-alt-topics', alternates.join('\n'));
  await page.fill('#pub-data', data);
  await page.fill('#pub-type', type);
  await page.setChecked('#pub-private', isPrivate);
  await page.click('#publish');
  const result = page.locator('#pub-result:is([data-state="ok"], [data-state="error"])');
  await result.waitFor();
  return {
    state: await result.getAttribute('data-state'),
    id: await result.getAttribute('data-id'),
    status: await result.getAttribute('data-status'),
    text: await result.textContent(),
  };
}

/** publishUi that must succeed; returns the id. */
async function published(page, fields) {
  const result = await publishUi(page, fields);
  assert.equal(result.state, 'ok', `publish through the UI: ${result.text}`);
  assert.ok(result.id, 'no id shown');
  return result.id;
}

/** The token cookie the page set in `context`, or undefined. */
async function tokenCookie(context, name) {
  return (await context.cookies()).find((cookie) => cookie.name === name);
}

// ------------------------------------------------------------ the tests

test('dev mode: tokens filled in, anonymous and private subscriptions, publishing, resuming, URL patterns, curl', { timeout: 90000 }, async (t) => {
  const { context, page, config, errors } = await openDemo(t, dev);

  assert.equal(config.hub, '/.well-known/mercure');
  assert.equal(config.dev, true);
  assert.equal(config.cookieName, 'mercure_access_token');
  assert.equal(typeof config.publisherToken, 'string');
  assert.equal(typeof config.subscriberToken, 'string');
  await page.waitForSelector('#config-status[data-state="dev"]');
  assert.equal(await page.inputValue('#pub-token'), config.publisherToken);
  assert.equal(await page.inputValue('#sub-token'), config.subscriberToken);
  assert.equal(await page.textContent('#hub-url'), dev.hub);

  const topic = T('1');
  const events = page.locator('[data-testid="event"]');

  // Anonymous: no cookie.
  await subscribeUi(page, [['exact', topic]]);
  assert.equal(await tokenCookie(context, config.cookieName), undefined, 'an anonymous subscription sent a token cookie');

  const data = 'hello\n\n  indented <b>not bold</b> <img src=x onerror="window.pwned=1">\n';
  const id1 = await published(page, { topic, data });
  await eventFor(page, id1).waitFor();
  assert.equal(await eventFor(page, id1).locator('.event-data').textContent(), data);
  assert.equal(await eventFor(page, id1).locator('.event-type').textContent(), 'message');
  assert.equal(await eventFor(page, id1).getAttribute('data-type'), 'message');
  assert.equal(await page.locator('#events b, #events img').count(), 0, 'event data must be inserted as text');

  const id2 = await published(page, { topic, data: 'typed', type: 'note' });
  await eventFor(page, id2).waitFor();
  assert.equal(await eventFor(page, id2).getAttribute('data-type'), 'note');
  assert.equal(await eventFor(page, id2).locator('.event-type').textContent(), 'note');

  // An update on another topic reaches this subscription through its
  // alternate topic.
  const idAlt = await published(page, { topic: T('elsewhere'), alternates: [topic], data: 'by alternate' });
  await eventFor(page, idAlt).waitFor();

  // A private update does not reach the anonymous subscription…
  const secret1 = await published(page, { topic, data: 'secret 1', isPrivate: true });
  const after1 = await published(page, { topic, data: 'public after secret 1' });
  await eventFor(page, after1).waitFor();
  assert.equal(await eventFor(page, secret1).count(), 0, 'private update shown on an anonymous subscription');

  // …and reaches it once the page presents the subscriber token as the cookie.
  await subscribeUi(page, [['exact', topic]], { isPrivate: true });
  const cookie = await tokenCookie(context, config.cookieName);
  assert.ok(cookie, 'no token cookie for the private subscription');
  assert.equal(decodeURIComponent(cookie.value), config.subscriberToken);
  assert.equal(cookie.path, '/.well-known/mercure');
  assert.equal(cookie.sameSite, 'Strict');
  const secret2 = await published(page, { topic, data: 'secret 2', isPrivate: true });
  await eventFor(page, secret2).waitFor();
  assert.equal(await eventFor(page, secret2).locator('.event-data').textContent(), 'secret 2');

  // Resuming anonymously after id1: the public updates since, in order,
  // none of the private ones; the cookie is gone.
  await page.click('#events-clear');
  assert.equal(await events.count(), 0);
  await subscribeUi(page, [['exact', topic]], { lastEventId: id1 });
  assert.equal(await tokenCookie(context, config.cookieName), undefined, 'the anonymous subscription kept the token cookie');
  const sentinel = await published(page, { topic, data: 'sentinel' });
  await eventFor(page, sentinel).waitFor();
  const ids = await events.evaluateAll((items) => items.map((item) => item.dataset.id).reverse());
  assert.deepEqual(ids, [id2, idAlt, after1, sentinel], 'replayed after id1, then live');

  // A URL-pattern row beside the exact one.
  await page.fill('#sub-last-event-id', '');
  await subscribeUi(page, [['exact', topic], ['urlpattern', T('pattern/:n')]]);
  const byPattern = await published(page, { topic: T('pattern/5'), data: 'by pattern' });
  const notMatching = await published(page, { topic: T('pattern/5/more'), data: 'not matching' });
  const exactAgain = await published(page, { topic, data: 'exact again' });
  await eventFor(page, byPattern).waitFor();
  await eventFor(page, exactAgain).waitFor();
  assert.equal(await eventFor(page, notMatching).count(), 0, ':n matched across a slash');

  // The curl box follows the forms.
  const curl = await page.textContent('#curl');
  const subscribeUrl = new URL(dev.hub);
  subscribeUrl.searchParams.append('match', topic);
  subscribeUrl.searchParams.append('match_urlpattern', T('pattern/:n'));
  assert.ok(curl.includes(`curl -N '${subscribeUrl.href}'`), curl);
  assert.ok(curl.includes(`curl '${dev.hub}'`), curl);
  assert.ok(curl.includes('-H "Authorization: Bearer $PUBLISHER_TOKEN"'), curl);
  assert.ok(curl.includes(`--data-urlencode 'topic=${topic}'`), curl);
  assert.ok(curl.includes("--data-urlencode 'data=exact again'"), curl);
  assert.ok(!curl.includes(config.publisherToken), 'the curl box shows the token itself');

  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(errors.page, []);
  assert.deepEqual(errors.console, []);
});

test('dev mode: the active subscriptions panel lists the page’s matchers', { timeout: 30000 }, async (t) => {
  const { page, errors } = await openDemo(t, dev);
  await page.waitForSelector('#config-status[data-state="dev"]');
  const topic = T('listed');
  const pattern = T('listed/:id');
  await subscribeUi(page, [['exact', topic], ['urlpattern', pattern]]);
  // Opening the subscription refreshes the panel with the subscriber token.
  const listed = (match, type) =>
    page.locator(`[data-testid="subscription"][data-match=${JSON.stringify(match)}][data-match-type="${type}"]`);
  await listed(topic, 'exact').waitFor();
  await listed(pattern, 'urlpattern').waitFor();
  assert.equal(await page.getAttribute('#subs-status', 'data-state'), 'ok');

  // Without a token the panel says so instead of asking the hub.
  await page.fill('#sub-token', '');
  await page.click('#subs-refresh');
  await page.waitForSelector('#subs-status[data-state="error"]');
  assert.match(await page.textContent('#subs-status'), /subscriber token/);
  assert.deepEqual(errors.page, []);
  assert.deepEqual(errors.console, []);
});

test('outside dev mode: no tokens handed out; publishing needs a pasted token', { timeout: 30000 }, async (t) => {
  const { page, config, errors } = await openDemo(t, plain);

  assert.equal(config.dev, false);
  assert.equal(config.cookieName, '__Secure-mercure_access_token');
  assert.equal(config.publisherToken, null, 'no publisher token outside dev mode');
  assert.equal(config.subscriberToken, null, 'no subscriber token outside dev mode');
  await page.waitForSelector('#config-status[data-state="no-tokens"]');
  assert.equal(await page.inputValue('#pub-token'), '');
  assert.equal(await page.inputValue('#sub-token'), '');

  const topic = T('2');
  // Over plain HTTP the browser would drop the __Secure- cookie: the page
  // says so rather than subscribing without the token.
  await page.getByTestId('sub-topic').first().fill(topic);
  await page.fill('#sub-token', 'a.subscriber.token');
  await page.setChecked('#sub-private', true);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="error"]');
  assert.match(await page.textContent('#sub-error'), /__Secure-mercure_access_token/);

  await subscribeUi(page, [['exact', topic]]);
  const refused = await publishUi(page, { topic, data: 'without a token' });
  assert.equal(refused.state, 'error');
  assert.equal(refused.status, '401');

  await page.fill('#pub-token', publisherToken(KEY, [topic], { aud: plain.hub }));
  const id = await published(page, { topic, data: 'with the token' });
  await eventFor(page, id).waitFor();
  assert.equal(await eventFor(page, id).locator('.event-data').textContent(), 'with the token');
  assert.deepEqual(errors.page, []);
});
