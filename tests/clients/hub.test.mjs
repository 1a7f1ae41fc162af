// Conformance of the hub (`ssehub`, crate crates/ssehub-server) to the
// current Mercure protocol (draft-dunglas-mercure-08, the hub's default
// mode) as seen by headless Chromium (Debian's `chromium`, driven by
// playwright-core): pages served by the hub open EventSources on it, read
// streams with fetch (to send `Authorization` or use `QUERY`) and publish
// with fetch, with HS256 access tokens minted here as `mercure token` mints
// them (lib/hub.mjs). The 0.x dialect (--compat) and the demo page have
// suites of their own.
//
// The `before` hook builds the hub (`cargo build -p ssehub-server`, a no-op
// when up to date) and starts the main hub:
//   ssehub --listen 127.0.0.1:0 --issuer https://issuer.test --jwt-key K
//          --anonymous --subscriptions --cors-origin <a page server of this suite>
// Its resource identifier is derived from the host a request names, so
// tokens carry `aud` = http://127.0.0.1:PORT/.well-known/mercure (main.hub).
// Browsers present tokens in the protocol's cookie,
// `__Secure-mercure_access_token`, with its default name: Chromium counts
// http://127.0.0.1 as potentially trustworthy and stores and sends Secure
// (and `__Secure-`) cookies to it over plain HTTP, so no --cookie-name is
// needed. Cookies ignore ports: a context's cookie reaches every hub and
// page server of the suite, so each token a test needs in a cookie gets a
// browser context of its own. Tests needing other flags start their own
// hub. Every topic carries this run's random prefix, and negative checks
// ("X never arrives") wait for a sentinel update published after X.
//
// Covered: match / match_exact / match_urlpattern / `*` and several
// matchers per connection; ids, multi-line data, event types and retry;
// alternate topics (one update, delivered once; the private audience is the
// union of its topics'); private updates against the grants of the cookie
// (EventSource) or of the Authorization header (fetch), the header winning;
// tokens in the URL (`access_token`, `authorization`) not read; resume by
// `last_event_id` and `Last-Event-ID` (the header winning), the
// Mercure-Last-Event-ID response header, and the browser's own reconnection
// after the hub closes the stream at the token's exp; QUERY subscriptions
// from fetch; 400 / 401 / 403 / 413 answers and their RFC 6750 challenges
// naming the resource metadata; active subscriptions (`event: mercure`
// documents, the JSON API and its cursor); discovery (Link headers, RFC 9728
// metadata); CORS for --cors-origin only; the CSRF check on
// cookie-authenticated publishes (and --publish-origin); --public-url
// answering 421 for other hosts; /healthz, /metrics.
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test hub.test.mjs

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import {
  DETAIL_TYPE,
  ISSUER,
  buildHub,
  exact,
  grant,
  hubToken,
  newKey,
  pageHelpers,
  publisherToken,
  startHub,
  stopAllHubs,
  subscriberToken,
  urlPattern,
} from './lib/hub.mjs';

/** Per-step wait in the browser; each test has its own overall bound. */
const STEP = 10000;
const RUN = randomBytes(4).toString('hex');
/** A topic of this run. */
const T = (path) => `https://example.com/${RUN}/${path}`;
const enc = encodeURIComponent;

/** The cookie the hub reads tokens from (its default name). */
const COOKIE = '__Secure-mercure_access_token';
const HUB_PATH = '/.well-known/mercure';
const METADATA_PATH = '/.well-known/oauth-protected-resource/.well-known/mercure';
const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';

const KEY = newKey();

let browser;
let main;
/** The all-topics publisher token of the main hub. */
let PUB;
/** Plain pages on other origins, for CORS: {allowed, denied} base URLs. */
const origins = {};
const servers = [];

function servePlainPage() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>other origin</title><p>other origin</p>');
  });
  servers.push(server);
  return new Promise((resolvePromise) => {
    server.listen(0, '127.0.0.1', () => resolvePromise(`http://127.0.0.1:${server.address().port}`));
  });
}

/** The flags every hub of this suite starts with. */
const TRUST = ['--issuer', ISSUER, '--jwt-key', KEY];

before(async () => {
  buildHub();
  origins.allowed = await servePlainPage();
  origins.denied = await servePlainPage();
  main = await startHub([...TRUST, '--anonymous', '--subscriptions', '--cors-origin', origins.allowed]);
  PUB = pub();
  browser = await launchChromium();
}, { timeout: 900000 });

after(async () => {
  await browser?.close();
  await stopAllHubs();
  for (const server of servers) server.close();
});

// ------------------------------------------------------------ tokens

/** A token of the main hub (`aud` = its derived resource identifier). */
const token = (details, options = {}) => hubToken(KEY, details, { aud: main.hub, ...options });
/** Publishing on `topics` (default: all), on the main hub. */
const pub = (topics = ['*'], options = {}) => publisherToken(KEY, topics, { aud: main.hub, ...options });
/** Subscribing to `topics` (default: all), on the main hub. */
const sub = (topics = ['*'], options = {}) => subscriberToken(KEY, topics, { aud: main.hub, ...options });

/** The token cookie as a hub on 127.0.0.1 would set it (Path: the hub's URL). */
const cookie = (value) => ({
  name: COOKIE,
  value,
  domain: '127.0.0.1',
  path: HUB_PATH,
  secure: true,
  httpOnly: true,
  sameSite: 'Strict',
});

// ------------------------------------------------------------ helpers

/**
 * A fresh browser context (own cookies, `cookie` the token in the hub's
 * cookie if given) with a page on `origin` (the hub's /healthz unless
 * given) and window.hubt talking to `hub`; closed when `t` ends.
 */
async function openPage(t, hub, { origin, cookie: value } = {}) {
  const context = await browser.newContext();
  t.after(() => context.close());
  if (value) await context.addCookies([cookie(value)]);
  const page = await context.newPage();
  const url = origin ?? `${hub.base}/healthz`;
  const response = await page.goto(url);
  assert.equal(response.status(), 200, `GET ${url}`);
  await page.evaluate(pageHelpers, hub.base);
  return page;
}

const subscribe = (page, name, params, options = {}) =>
  page.evaluate(([n, p, o]) => window.hubt.subscribe(n, p, o), [name, params, options]);
const stream = (page, name, params, options = {}) =>
  page.evaluate(([n, p, o]) => window.hubt.stream(n, p, o), [name, params, options]);
const until = (page, name, cond, ms = STEP) =>
  page.evaluate(([n, c, m]) => window.hubt.until(n, c, m), [name, cond, ms]);
const close = (page, name) => page.evaluate((n) => window.hubt.close(n), name);
const publish = (page, tok, fields, options = {}) =>
  page.evaluate(([k, f, o]) => window.hubt.publish(k, f, o), [tok, fields, options]);
const request = (page, url, options = {}) =>
  page.evaluate(([u, o]) => window.hubt.request(u, o), [url, options]);
const bearer = (tok) => ({ headers: { Authorization: `Bearer ${tok}` } });

/** Publishes from the page; asserts 200 text/plain and returns the id. */
async function published(page, fields, tok = PUB) {
  const answer = await publish(page, tok, fields);
  assert.equal(answer.status, 200, `publish ${JSON.stringify(fields)}: ${JSON.stringify(answer)}`);
  assert.match(answer.contentType ?? '', /^text\/plain; charset=utf-8/i, `publish answer: ${JSON.stringify(answer)}`);
  assert.ok(answer.body.length > 0, 'publish answered an empty id');
  return answer.body;
}

/** Opens an EventSource and waits until the connection is open. */
async function subscribed(page, name, params, options) {
  await subscribe(page, name, params, options);
  await until(page, name, { opens: 1 });
}

/** Opens a fetch-read stream, waits until it is open; returns the snapshot (with its response headers). */
async function streamed(page, name, params, options) {
  await stream(page, name, params, options);
  return until(page, name, { opens: 1 });
}

/** Opens a fetch-read stream the hub must refuse; returns its response {status, headers, body}. */
async function refusedStream(page, name, params, options) {
  await stream(page, name, params, options);
  const got = await until(page, name, { closed: true });
  assert.equal(got.opens, 0, `${name}: the hub opened the stream`);
  return got.response;
}

const datas = (snapshot) => snapshot.events.map((e) => e.data);

/** The RFC 6750 challenge of a refusal: Bearer, the error code (or none), the main hub's metadata. */
function assertChallenge(label, wwwAuthenticate, error, hub = main) {
  const value = wwwAuthenticate ?? '';
  assert.match(value, /^Bearer\b/, `${label}: ${value}`);
  if (error) assert.ok(value.includes(`error="${error}"`), `${label}: want error="${error}" in ${value}`);
  else assert.doesNotMatch(value, /error=/, `${label}: no error code without a token (RFC 6750 §3.1): ${value}`);
  assert.ok(value.includes(`resource_metadata="${hub.base}${METADATA_PATH}"`), `${label}: resource_metadata in ${value}`);
}

// ------------------------------------------------------------ delivery

test('match: ids, multi-line data, event types and retry as EventSource (and a fetch reader) see them', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('exact/1');
  await subscribed(page, 's', [['match', topic]], { types: ['book.updated'] });
  await streamed(page, 'raw', [['match', topic]]);

  const data = '\nfirst line\r\n\r\nafter a blank line\n\n  two leading spaces\rlone CR\r\nUnicode é ✓ 𝄞\n';
  const id1 = await published(page, { topic, data });
  const id2 = await published(page, { topic, data: 'typed', type: 'book.updated' });
  const own = `urn:uuid:${randomUUID()}`;
  const id3 = await published(page, { topic, data: 'plain again', id: own, retry: '2500' });
  assert.equal(id3, own, 'the hub keeps the id the publisher chose');
  // Hub-generated ids are IRIs or fragments.
  for (const id of [id1, id2]) assert.match(id, /^(#|[A-Za-z][A-Za-z0-9+.-]*:)/, id);
  assert.notEqual(id1, id2);

  const want = [
    // SSE turns CRLF and lone CR into LF; nothing else may change.
    { type: 'message', data: data.replace(/\r\n|\r/g, '\n'), id: id1 },
    { type: 'book.updated', data: 'typed', id: id2 },
    { type: 'message', data: 'plain again', id: id3 },
  ];
  const strip = (got) => got.events.map(({ type, data: d, id }) => ({ type, data: d, id }));
  assert.deepEqual(strip(await until(page, 's', { data: 'plain again' })), want);
  const raw = await until(page, 'raw', { data: 'plain again' });
  assert.deepEqual(strip(raw), want);
  // The hub may open the stream with a retry of its own; the update's comes last.
  assert.equal(raw.retries.at(-1), 2500, `retry fields: ${raw.retries}`);
});

test('several matchers on one connection (match, match_exact, match_urlpattern): each update once, in publish order', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const a = T('multi/a');
  const c9 = T('multi/c/9');
  const d = T('multi/d');
  await subscribed(page, 's', [
    ['match', a],
    ['match', c9],
    ['match_urlpattern', T('multi/c/:id')],
    // The explicit spelling of the default matcher type.
    ['match_exact', d],
  ]);
  const sent = [
    [d, 'd1'],
    [a, 'a1'],
    [T('multi/c/1'), 'c1'],
    [c9, 'c9 (exact and pattern)'],
    [T('multi/b'), 'not subscribed'],
    [a, 'a2'],
    [T('multi/c/2'), 'c2'],
    [a, 'end'],
  ];
  const ids = {};
  for (const [topic, data] of sent) ids[data] = await published(page, { topic, data });
  const got = await until(page, 's', { data: 'end' });
  const want = ['d1', 'a1', 'c1', 'c9 (exact and pattern)', 'a2', 'c2', 'end'];
  assert.deepEqual(datas(got), want);
  assert.deepEqual(got.events.map((e) => e.id), want.map((w) => ids[w]));
});

test('match_urlpattern: https://example.com/books/:id matches /books/1, not /authors/1; relative patterns', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  await subscribed(page, 's', [
    ['match_urlpattern', T('books/:id')],
    ['match_urlpattern', `/${RUN}/local/:n`],
  ]);
  const sent = [
    [T('books/1'), 'books/1'],
    [T('authors/1'), 'authors/1'],
    [T('books/1/chapters/2'), 'books/1/chapters/2'],
    [T('books/'), 'books/ (empty id)'],
    [`http://example.com/${RUN}/books/3`, 'http scheme'],
    [`https://other.example/${RUN}/books/3`, 'other host'],
    // Hosts compare case-insensitively (URL canonicalisation).
    [`https://EXAMPLE.com/${RUN}/books/4`, 'books/4 upper-case host'],
    // Relative topic, relative pattern: both resolved on the hub's URL.
    [`/${RUN}/local/7`, 'local/7'],
    [`/${RUN}/remote/7`, 'remote/7'],
    [T('books/end'), 'end'],
  ];
  for (const [topic, data] of sent) await published(page, { topic, data });
  const got = await until(page, 's', { data: 'end' });
  assert.deepEqual(datas(got), ['books/1', 'books/4 upper-case host', 'local/7', 'end']);
});

test('topics that do not match never arrive (exact is byte-for-byte, not a pattern); match=* gets everything', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const only = T('only');
  const literal = T('p/:x');
  await subscribed(page, 's', [['match', only], ['match', literal]]);
  // `*` matches every topic, whatever the matcher type.
  await subscribed(page, 'everything', [['match', '*']]);
  await subscribed(page, 'everythingPattern', [['match_urlpattern', '*']]);
  const sent = [
    [T('only-not'), 'prefix'],
    [T('ONLY'), 'case'],
    [`${only}/`, 'trailing slash'],
    [`${only}#fragment`, 'fragment'],
    [T('onl%79'), 'percent-encoded y'],
    [`${only}?q=1`, 'query'],
    [T('p/1'), 'exact matcher taken as a pattern'],
    [`/${RUN}/only`, 'relative, not resolved for exact'],
    [literal, 'literal :x'],
    [only, 'end'],
  ];
  for (const [topic, data] of sent) await published(page, { topic, data });
  const got = await until(page, 's', { data: 'end' });
  assert.deepEqual(datas(got), ['literal :x', 'end']);
  for (const name of ['everything', 'everythingPattern']) {
    assert.deepEqual(datas(await until(page, name, { data: 'end' })), sent.map(([, data]) => data), name);
  }
});

test('alternate topics: one update with several topic fields reaches subscribers of any once; its private audience is the union of its topics', { timeout: 40000 }, async (t) => {
  const book1 = T('alt/books/1');
  const book2 = T('alt/books/2');
  const mine = T('alt/users/42/books/1');
  const page = await openPage(t, main);
  await subscribed(page, 'canonical', [['match', book1]]);
  await subscribed(page, 'alternate', [['match', mine]]);
  await subscribed(page, 'both', [['match', book1], ['match', mine]]);
  // The protocol's example: routing selects every book, the token grants
  // only the subscriber's own namespace.
  const user42 = await openPage(t, main, { cookie: token([grant(['subscribe'], [urlPattern(T('alt/users/42/*'))])]) });
  await subscribed(user42, 'books', [['match_urlpattern', T('alt/books/:id')]]);
  const everyone = await openPage(t, main, { cookie: sub() });
  await subscribed(everyone, 'both', [['match', book1], ['match', mine]]);

  const id = await published(page, [['topic', book1], ['topic', mine], ['data', 'one update']]);
  await published(page, [['topic', book1], ['topic', mine], ['data', 'private for 42'], ['private', 'on']]);
  await published(page, [['topic', book2], ['topic', T('alt/users/43/books/2')], ['data', 'private for 43'], ['private', 'on']]);
  await published(page, [['topic', book1], ['data', 'private, canonical only'], ['private', 'on']]);
  await published(page, [['topic', book1], ['topic', mine], ['data', 'end']]);

  const want = [
    [page, 'canonical', ['one update', 'end']],
    [page, 'alternate', ['one update', 'end']],
    [page, 'both', ['one update', 'end']],
    [user42, 'books', ['one update', 'private for 42', 'end']],
    [everyone, 'both', ['one update', 'private for 42', 'private, canonical only', 'end']],
  ];
  for (const [where, name, expected] of want) {
    const got = await until(where, name, { data: 'end' });
    assert.deepEqual(datas(got), expected, `subscriber ${name}`);
    assert.equal(got.events[0].id, id, `subscriber ${name}: the id of the two-topic update`);
  }

  // A publisher must be allowed every topic of the update.
  const canonicalOnly = await publish(page, pub([book1]), [['topic', book1], ['topic', mine], ['data', 'x']]);
  assert.equal(canonicalOnly.status, 403, JSON.stringify(canonicalOnly));
  assertChallenge('publish grant on the canonical topic only', canonicalOnly.wwwAuthenticate, 'insufficient_scope');
});

// ------------------------------------------------------------ authorization

test('private updates reach only subscribers whose token grants subscribe on their topic: the cookie (EventSource), the Authorization header (fetch), the header winning', { timeout: 40000 }, async (t) => {
  const topic = T('private/1');
  const second = T('private/2');
  const other = sub([T('private/other')]);
  const pages = {
    anonymous: await openPage(t, main),
    otherTopic: await openPage(t, main, { cookie: other }),
    publishGrantOnly: await openPage(t, main, { cookie: pub([topic]) }),
    granted: await openPage(t, main, { cookie: sub([topic]) }),
    // Routing wider than the token: the pattern selects private/2 too,
    // the token grants private/1 only.
    patternRoute: await openPage(t, main, { cookie: token([grant(['subscribe'], [exact(topic)])]) }),
  };
  for (const [name, page] of Object.entries(pages)) {
    const params = name === 'patternRoute' ? [['match_urlpattern', T('private/:n')]] : [['match', topic]];
    await subscribed(page, name, params);
  }
  const page = pages.anonymous;
  await streamed(page, 'header', [['match', topic]], { token: sub([topic]) });
  await streamed(page, 'headerOtherTopic', [['match', topic]], { token: other });
  // With an Authorization header the cookie is ignored, whatever it grants.
  await streamed(pages.granted, 'headerOverCookie', [['match', topic]], { token: other });
  const invalidHeader = await refusedStream(pages.granted, 'invalidHeader', [['match', topic]], { token: sub([topic], { aud: 'https://another-hub.test/.well-known/mercure' }) });
  assert.equal(invalidHeader.status, 401, 'an invalid header token is refused even beside a good cookie');

  await published(page, { topic, data: 'secret 1', private: 'on' });
  await published(page, { topic: second, data: 'secret 2', private: '' });
  await published(page, { topic, data: 'public' });

  const want = [
    [pages.anonymous, 'anonymous', ['public']],
    [pages.otherTopic, 'otherTopic', ['public']],
    [pages.publishGrantOnly, 'publishGrantOnly', ['public']],
    [pages.granted, 'granted', ['secret 1', 'public']],
    [pages.patternRoute, 'patternRoute', ['secret 1', 'public']],
    [page, 'header', ['secret 1', 'public']],
    [page, 'headerOtherTopic', ['public']],
    [pages.granted, 'headerOverCookie', ['public']],
  ];
  for (const [where, name, expected] of want) {
    assert.deepEqual(datas(await until(where, name, { data: 'public' })), expected, `subscriber ${name}`);
  }
});

test('a token in the URL is not read: access_token and authorization parameters neither grant nor refuse', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('url-token/1');
  const granted = sub([topic]);
  const wrongKey = subscriberToken(newKey(), [topic], { aud: main.hub });
  await subscribed(page, 'accessToken', [['match', topic], ['access_token', granted]]);
  await subscribed(page, 'authorization', [['match', topic], ['authorization', granted]]);
  // Not looked at, so not refused either: the subscriber is anonymous.
  await subscribed(page, 'invalid', [['match', topic], ['access_token', wrongKey], ['authorization', wrongKey]]);
  await published(page, { topic, data: 'secret', private: 'on' });
  await published(page, { topic, data: 'end' });
  for (const name of ['accessToken', 'authorization', 'invalid']) {
    assert.deepEqual(datas(await until(page, name, { data: 'end' })), ['end'], name);
  }

  // Publishing with the token in the URL only: no token was presented.
  const answer = await page.evaluate(async ([tok, topicName]) => {
    const query = new URLSearchParams([['authorization', tok], ['access_token', tok]]);
    const response = await fetch(`/.well-known/mercure?${query}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: topicName, data: 'x' }),
    });
    return { status: response.status, wwwAuthenticate: response.headers.get('www-authenticate') };
  }, [PUB, topic]);
  assert.equal(answer.status, 401, JSON.stringify(answer));
  assertChallenge('POST with the token in the URL', answer.wwwAuthenticate, null);
});

// ------------------------------------------------------------ resuming

test('resume with last_event_id and Last-Event-ID: the matching updates after that id, private ones only with a grant; Mercure-Last-Event-ID', { timeout: 40000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('resume/1');
  const ids = {};
  // Published while nobody subscribes to `topic`.
  for (const [fields, name] of [
    [{ topic, data: 'r1' }, 'r1'],
    [{ topic, data: 'r2' }, 'r2'],
    [{ topic: T('resume/other'), data: 'other topic' }, 'other'],
    [{ topic, data: 'private r', private: 'on' }, 'private'],
    [{ topic, data: 'r3' }, 'r3'],
  ]) ids[name] = await published(page, fields);

  await subscribed(page, 'after-r1', [['match', topic], ['last_event_id', ids.r1]]);
  const granted = await streamed(page, 'after-r1-granted', [['match', topic], ['last_event_id', ids.r1]], { token: sub([topic]) });
  // The header wins over the parameter.
  const header = await streamed(page, 'header-after-r3', [['match', topic], ['last_event_id', ids.r1]], { headers: { 'Last-Event-ID': ids.r3 } });
  ids.r4 = await published(page, { topic, data: 'r4' });
  const anonymous = await until(page, 'after-r1', { data: 'r4' });
  assert.deepEqual(datas(anonymous), ['r2', 'r3', 'r4']);
  assert.deepEqual(anonymous.events.map((e) => e.id), [ids.r2, ids.r3, ids.r4]);
  assert.deepEqual(datas(await until(page, 'after-r1-granted', { data: 'r4' })), ['r2', 'private r', 'r3', 'r4']);
  assert.deepEqual(datas(await until(page, 'header-after-r3', { data: 'r4' })), ['r4']);

  // The response says where the stream resumed: the id asked for when
  // nothing after it was lost; the 0.x Last-Event-ID response header is
  // compat mode's only.
  assert.match(granted.response.headers['content-type'] ?? '', /^text\/event-stream/);
  assert.equal(granted.response.headers['mercure-last-event-id'], ids.r1);
  assert.equal(granted.response.headers['last-event-id'], undefined);
  assert.equal(header.response.headers['mercure-last-event-id'], ids.r3);
  // After r2 the first update an anonymous subscriber gets is r3; the
  // private update in between is not disclosed.
  const afterR2 = await streamed(page, 'after-r2', [['match', topic], ['last_event_id', ids.r2]]);
  assert.equal(afterR2.response.headers['mercure-last-event-id'], ids.r2);
  await close(page, 'after-r2');

  // `earliest`: everything retained on the topic, and says so.
  const earliest = await streamed(page, 'earliest', [['match', topic], ['last_event_id', 'earliest']]);
  assert.equal(earliest.response.headers['mercure-last-event-id'], 'earliest');
  assert.deepEqual(datas(await until(page, 'earliest', { data: 'r4' })), ['r1', 'r2', 'r3', 'r4']);
  await close(page, 'earliest');
  // An id the hub never issued: `earliest` (the client may have lost updates).
  const unknown = await streamed(page, 'unknown', [['match', topic], ['last_event_id', `urn:uuid:${randomUUID()}`]]);
  assert.equal(unknown.response.headers['mercure-last-event-id'], 'earliest');
  await close(page, 'unknown');
  // No resume point asked for: no header.
  const fresh = await streamed(page, 'fresh', [['match', topic]]);
  assert.equal(fresh.response.headers['mercure-last-event-id'], undefined);
});

test("the browser's own reconnect sends Last-Event-ID and gets what it missed (the hub closes the stream at the token's exp)", { timeout: 40000 }, async (t) => {
  const topic = T('reconnect/1');
  const details = [grant(['subscribe'], [topic])];
  const exp = Math.floor(Date.now() / 1000) + 4;
  const page = await openPage(t, main, { cookie: token(details, { exp }) });
  const context = page.context();
  const hubRequests = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === HUB_PATH && req.method() === 'GET') {
      // allHeaders: Last-Event-ID is added below the page, by the network stack.
      hubRequests.push(req.allHeaders());
    }
  });

  // The cookie's token grants the private topic: private updates arrive.
  await subscribed(page, 's', [['match', topic]]);
  const id1 = await published(page, { topic, data: 'u1', retry: '1000', private: 'on' });
  await until(page, 's', { data: 'u1' });
  // The same grant, valid for an hour, for the reconnection.
  await context.addCookies([cookie(token(details))]);
  // The hub must close the stream by `exp`; while the browser waits to
  // reconnect, the page publishes u2 and u3.
  await page.evaluate(([tok, t1]) => window.hubt.publishOnError('s', tok, [
    [['topic', t1], ['data', 'u2']],
    [['topic', t1], ['data', 'u3'], ['private', 'on']],
  ]), [PUB, topic]);
  const closed = await until(page, 's', { errors: 1 }, exp * 1000 - Date.now() + 5000);
  assert.equal(closed.errors[0].readyState, 0, 'EventSource should be reconnecting (CONNECTING)');

  const got = await until(page, 's', { data: 'u3', published: true, opens: 2 });
  const [r2, r3] = got.onError;
  assert.equal(r2.status, 200, JSON.stringify(r2));
  assert.equal(r3.status, 200, JSON.stringify(r3));
  assert.deepEqual(
    got.events.map(({ data, id }) => ({ data, id })),
    [{ data: 'u1', id: id1 }, { data: 'u2', id: r2.body }, { data: 'u3', id: r3.body }],
  );
  // The first stream ended after u1 only.
  assert.equal(got.errors[0].afterEvents, 1);
  const requests = await Promise.all(hubRequests);
  assert.equal(requests.length, 2, `requests to the hub: ${JSON.stringify(requests)}`);
  assert.equal(requests[0]['last-event-id'], undefined);
  assert.equal(requests[1]['last-event-id'], id1, 'the reconnection carries Last-Event-ID');
  assert.ok((requests[1].cookie ?? '').includes(`${COOKIE}=`), 'the reconnection carries the cookie');

  // And the stream is live again.
  await published(page, { topic, data: 'u4' });
  assert.deepEqual(datas(await until(page, 's', { data: 'u4' })), ['u1', 'u2', 'u3', 'u4']);
});

test('QUERY from fetch: matchers and last_event_id in a form body, united with the query', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const a = T('query/a');
  const b = T('query/b');
  const secret = T('query/secret');
  const opened = await streamed(page, 'q', [['match', a], ['last_event_id', 'earliest']], {
    method: 'QUERY',
    body: [['match', b], ['match_urlpattern', T('query/books/:id')], ['last_event_id', 'ignored']],
  });
  // The query's resume point wins over the body's.
  assert.equal(opened.response.headers['mercure-last-event-id'], 'earliest');
  // Everything in the body, with a token in the header.
  await streamed(page, 'bodyOnly', [], { method: 'QUERY', body: [['match', secret], ['match', a]], token: sub([secret]) });
  const refused = await refusedStream(page, 'badBody', [['match', a]], { method: 'QUERY', body: [['match_Foo', b]] });
  assert.equal(refused.status, 400, 'the namespace rule applies to the body too');

  for (const [topic, data, extra] of [
    [a, '1'],
    [b, '2'],
    [T('query/books/3'), '3'],
    [secret, 'private', { private: 'on' }],
    [T('query/c'), 'not me'],
    [a, 'end'],
  ]) await published(page, { topic, data, ...extra });
  assert.deepEqual(datas(await until(page, 'q', { data: 'end' })), ['1', '2', '3', 'end']);
  assert.deepEqual(datas(await until(page, 'bodyOnly', { data: 'end' })), ['1', 'private', 'end']);
});

// ------------------------------------------------------------ refusals

test('errors seen from the browser: 401 / 403 / 400 / 413, with RFC 6750 challenges naming the resource metadata', { timeout: 60000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('errors/1');
  const now = Math.floor(Date.now() / 1000);
  const check = (label, answer, status) => {
    assert.equal(answer.status, status, `${label}: ${JSON.stringify(answer)}`);
    return answer;
  };
  const everything = [grant(['publish', 'subscribe'], ['*'])];
  // Tokens every endpoint refuses as invalid_token.
  const invalid = {
    'wrong key': hubToken(newKey(), everything, { aud: main.hub }),
    'typ JWT, not at+jwt': token(everything, { header: { alg: 'HS256', typ: 'JWT' } }),
    'alg none': token(everything, { header: { alg: 'none', typ: 'at+jwt' } }),
    expired: token(everything, { exp: now - 120 }),
    'no exp': token(everything, { extra: { exp: undefined } }),
    'no aud': token(everything, { aud: undefined }),
    // The same hub reached under another name is another resource.
    'aud of localhost': token(everything, { aud: `http://localhost:${new URL(main.base).port}${HUB_PATH}` }),
    'untrusted issuer': token(everything, { iss: 'https://stranger.test' }),
    'match_type in the wrong case': token([grant(['publish', 'subscribe'], [{ match: '*', match_type: 'Exact' }])]),
  };

  // Publishing.
  const anonymous = check('POST without a token', await publish(page, null, { topic, data: 'x' }), 401);
  assertChallenge('POST without a token', anonymous.wwwAuthenticate, null);
  for (const [label, tok] of Object.entries(invalid)) {
    const answer = check(`POST, ${label}`, await publish(page, tok, { topic, data: 'x' }), 401);
    assertChallenge(`POST, ${label}`, answer.wwwAuthenticate, 'invalid_token');
  }
  for (const [label, tok] of Object.entries({
    'publish granted on another topic': pub([T('errors/other')]),
    'subscribe granted, not publish': sub(),
    // Read by --compat hubs only; here the token grants nothing.
    'the 0.x mercure claim only': token([], { extra: { authorization_details: undefined, mercure: { publish: ['*'] } } }),
  })) {
    const answer = check(`POST, ${label}`, await publish(page, tok, { topic, data: 'x' }), 403);
    assertChallenge(`POST, ${label}`, answer.wwwAuthenticate, 'insufficient_scope');
  }
  // A malformed presentation of the token: 400 invalid_request.
  const basic = check('POST, Authorization: Basic', await page.evaluate(async (topicName) => {
    const response = await fetch('/.well-known/mercure', {
      method: 'POST',
      headers: { Authorization: 'Basic dXNlcjpwYXNz', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: topicName }),
    });
    return { status: response.status, wwwAuthenticate: response.headers.get('www-authenticate') };
  }, topic), 400);
  assertChallenge('POST, Authorization: Basic', basic.wwwAuthenticate, 'invalid_request');
  // Input rules: 400 whatever the token. This hub answers them with an
  // invalid_request challenge too (the protocol allows, not requires, one).
  for (const [label, fields] of Object.entries({
    'type=mercure (reserved for subscription events)': { topic, type: 'mercure' },
    'no topic': { data: 'x' },
    'topic *': { topic: '*' },
    'id starting with #': { topic, id: '#mine' },
    'id earliest': { topic, id: 'earliest' },
    'id with LF': { topic, id: 'a\nb' },
    'type with CR': { topic, type: 'a\rb' },
    'retry not digits': { topic, retry: '12a' },
    'topic with a control character': { topic: `${topic}\u0001` },
    'topic with a format character': { topic: `${topic}\u200b` },
    ...Object.fromEntries([
      HUB_PATH,
      '/.well-known/mercure/subscriptions/exact/x/y',
      `${main.base}${SUBSCRIPTIONS}`,
      'https://other.example/.well-known/mercure/anything',
      '/.well-known/%6Dercure/x',
      '/.well-known/mercure/../mercure/x',
    ].map((reserved) => [`reserved topic ${reserved}`, { topic: reserved }])),
  })) {
    const answer = check(`POST, ${label}`, await publish(page, PUB, fields), 400);
    assertChallenge(`POST, ${label}`, answer.wwwAuthenticate, 'invalid_request');
  }
  await published(page, { topic: '/.well-known/mercurex', data: 'not reserved' });
  await published(page, { topic, type: 'Mercure', data: 'types are case-sensitive' });
  // Size limits: 413 (no challenge: nothing about the token).
  check('POST, a 2 MiB body', await publish(page, PUB, { topic, data: 'x'.repeat(2 << 20) }), 413);
  check('POST, a 5000-byte topic', await publish(page, PUB, { topic: T('x'.repeat(5000)) }), 413);

  // Subscribing, token in the Authorization header (fetch).
  for (const [label, tok] of Object.entries(invalid)) {
    const answer = check(`GET, ${label}`, await refusedStream(page, `invalid ${label}`, [['match', topic]], { token: tok }), 401);
    assertChallenge(`GET, ${label}`, answer.headers['www-authenticate'], 'invalid_token');
  }
  // Parameters outside the protocol's.
  for (const [label, params] of Object.entries({
    'match_Foo': [['match', topic], ['match_Foo', topic]],
    'matchURLPattern (the old spelling)': [['matchURLPattern', T(':x')]],
    'match_URLPattern (wrong case)': [['match_urlpattern', T(':x')], ['match_URLPattern', T(':x')]],
    'MATCH': [['MATCH', topic]],
    'topic (the 0.x parameter)': [['topic', topic]],
    'no matcher': [['last_event_id', 'earliest']],
    'C0 control character': [['match', `${topic}\u0001`]],
    'C1 control character': [['match', `${topic}\u0085`]],
    DEL: [['match', `${topic}\u007f`]],
    'format character': [['match', `${topic}\u200b`]],
    'malformed URL pattern': [['match_urlpattern', 'https://example.com/(']],
  })) {
    const answer = check(`GET, ${label}`, await refusedStream(page, `params ${label}`, params), 400);
    assertChallenge(`GET, ${label}`, answer.headers['www-authenticate'], 'invalid_request');
  }
  // An EventSource on a refused subscription fails for good.
  await subscribe(page, 'refused', [['match_Foo', topic]]);
  assert.equal((await until(page, 'refused', { closed: true })).opens, 0);
  // So does one whose cookie holds an expired token.
  const expiredCookie = await openPage(t, main, { cookie: sub(['*'], { exp: now - 120 }) });
  await subscribe(expiredCookie, 'expired', [['match', topic]]);
  assert.equal((await until(expiredCookie, 'expired', { closed: true })).opens, 0);
  const expiredAnswer = await request(expiredCookie, `${HUB_PATH}?match=${enc(topic)}`);
  assert.equal(expiredAnswer.status, 401, JSON.stringify(expiredAnswer));
  assertChallenge('GET, expired cookie', expiredAnswer.headers['www-authenticate'], 'invalid_token');
});

// ------------------------------------------------------------ active subscriptions

test('active subscriptions: event: mercure documents for a watcher with a grant, the JSON API, 401 / 403 / 404', { timeout: 45000 }, async (t) => {
  const topic = T('watched/1');
  const sentinel = T('watched/sentinel');
  const eventsPattern = '/.well-known/mercure/subscriptions/exact/:match/:subscriber';
  // A grant on the subscriptions namespace: its events and its API.
  const watcher = token([grant(['subscribe'], [urlPattern('/.well-known/mercure/subscriptions{/:rest}*')])]);
  const observer = await openPage(t, main, { cookie: watcher });
  await subscribed(observer, 'events', [['match_urlpattern', eventsPattern]], { types: ['mercure'] });
  const page = await openPage(t, main);
  await subscribed(page, 'anonymous', [['match_urlpattern', eventsPattern], ['match', sentinel]], { types: ['mercure'] });

  const alice = token([grant(['subscribe'], [topic], { label: 'alice' })], { sub: 'urn:example:alice' });
  await streamed(page, 'alice', [['match', topic]], { token: alice });
  const activeEvent = await until(observer, 'events', { json: { match: topic, active: true } });
  const event = activeEvent.events.find((e) => JSON.parse(e.data).match === topic);
  assert.equal(event.type, 'mercure', 'subscription events have the reserved type');
  const active = JSON.parse(event.data);
  assert.equal(active.type, 'subscription');
  assert.equal(active.match_type, 'exact');
  assert.deepEqual(active.payload, { label: 'alice' });
  assert.match(active.subscriber, /^urn:uuid:/, 'the subscriber id is the hub\'s, not the token\'s sub');
  // Each variable percent-encoded once, as a whole (RFC 6570).
  assert.equal(active.id, `${SUBSCRIPTIONS}/exact/${enc(topic)}/${enc(active.subscriber)}`);

  // Subscription events are private: the anonymous watcher never gets one.
  await published(page, { topic: sentinel, data: 'end' });
  assert.deepEqual(datas(await until(page, 'anonymous', { data: 'end' })), ['end']);

  // The API, with the token in the header.
  const auth = bearer(watcher);
  const listed = await request(page, SUBSCRIPTIONS, auth);
  assert.equal(listed.status, 200, JSON.stringify(listed));
  assert.equal(listed.headers['content-type'], 'application/json');
  // The cursor to subscribe to the events from.
  const cursor = /<[^>]*>;\s*rel="mercure";.*last-event-id="([^"]+)"/.exec(listed.headers.link ?? '')?.[1];
  assert.ok(cursor, `Link: ${listed.headers.link}`);
  const list = JSON.parse(listed.body);
  assert.equal(list.type, 'subscriptions');
  assert.equal(list.id, SUBSCRIPTIONS);
  assert.deepEqual(list.subscriptions.find((s) => s.id === active.id), active, 'the API lists what the event announced');
  const unchanged = await request(page, SUBSCRIPTIONS, { headers: { ...auth.headers, 'If-None-Match': listed.headers.etag } });
  assert.equal(unchanged.status, 304, JSON.stringify(unchanged));
  // With the cookie instead (its path is the hub's: the API is below it).
  assert.equal((await request(observer, SUBSCRIPTIONS)).status, 200);

  const perMatcher = `${SUBSCRIPTIONS}/exact/${enc(topic)}`;
  const byMatcher = await request(page, perMatcher, auth);
  assert.equal(byMatcher.status, 200, JSON.stringify(byMatcher));
  assert.deepEqual(JSON.parse(byMatcher.body), { id: perMatcher, type: 'subscriptions', subscriptions: [active] });
  const single = await request(page, active.id, auth);
  assert.equal(single.status, 200, JSON.stringify(single));
  assert.equal(single.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(single.body), active);
  assert.equal((await request(page, `${perMatcher}/${enc(`urn:uuid:${randomUUID()}`)}`, auth)).status, 404, 'an unknown subscription');
  assert.equal((await request(page, `${SUBSCRIPTIONS}/Exact/${enc(topic)}`, auth)).status, 400, 'match types are case-sensitive');
  const none = await request(page, SUBSCRIPTIONS);
  assert.equal(none.status, 401, 'the API without a token, even on an --anonymous hub');
  assertChallenge('API without a token', none.headers['www-authenticate'], null);
  const narrow = await request(page, SUBSCRIPTIONS, bearer(sub([topic])));
  assert.equal(narrow.status, 403, 'the API with a token that does not grant its path');
  assertChallenge('API, narrow token', narrow.headers['www-authenticate'], 'insufficient_scope');

  // Ending alice's stream ends the subscription; a watcher resuming from
  // the API's cursor gets that event too.
  await close(page, 'alice');
  const inactive = await until(observer, 'events', { json: { match: topic, active: false } }, 20000);
  const ended = inactive.events.map((e) => JSON.parse(e.data)).find((d) => d.match === topic && !d.active);
  assert.deepEqual(ended, { ...active, active: false });
  await streamed(page, 'resumed', [['match_urlpattern', eventsPattern], ['last_event_id', cursor]], { token: watcher });
  const resumed = await until(page, 'resumed', { json: { match: topic, active: false } });
  assert.ok(resumed.events.every((e) => e.type === 'mercure'));
});

// ------------------------------------------------------------ discovery, CORS, CSRF

test('discovery: the Link header on streams and publications, the RFC 9728 metadata document the challenges point at', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('discovery/1');
  const link = `<${main.hub}>; rel="mercure"`;
  const opened = await streamed(page, 's', [['match', topic]]);
  assert.equal(opened.response.headers.link, link);
  const posted = await page.evaluate(async ([tok, topicName]) => {
    const response = await fetch('/.well-known/mercure', {
      method: 'POST',
      headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: topicName }),
    });
    return { status: response.status, link: response.headers.get('link') };
  }, [PUB, topic]);
  assert.deepEqual(posted, { status: 200, link });

  // The challenge of a refusal names the metadata; the metadata names the
  // resource identifier tokens carry.
  const refusal = await publish(page, null, { topic });
  const metadataUrl = /resource_metadata="([^"]+)"/.exec(refusal.wwwAuthenticate ?? '')?.[1];
  assert.equal(metadataUrl, `${main.base}${METADATA_PATH}`);
  const metadata = await request(page, metadataUrl);
  assert.equal(metadata.status, 200);
  assert.match(metadata.headers['content-type'] ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(metadata.body), {
    resource: main.hub,
    bearer_methods_supported: ['header'],
    authorization_details_types_supported: [DETAIL_TYPE],
    mercure_cookie: COOKIE,
    mercure_subscriptions: true,
  });

  // From the --cors-origin page: the document, and the exposed Link.
  const allowed = await openPage(t, main, { origin: origins.allowed });
  const crossMetadata = await request(allowed, `${main.base}${METADATA_PATH}`);
  assert.equal(crossMetadata.status, 200, JSON.stringify(crossMetadata));
  assert.equal(JSON.parse(crossMetadata.body).resource, main.hub);
  const crossStream = await streamed(allowed, 's', [['match', topic]]);
  assert.equal(crossStream.response.headers.link, link);
});

test('CORS: only the --cors-origin origin may subscribe (cookie with credentials, header, QUERY) and publish cross-origin, and read the exposed headers', { timeout: 40000 }, async (t) => {
  const topic = T('cors/1');
  const allowed = await openPage(t, main, { origin: origins.allowed, cookie: sub([topic]) });
  await subscribed(allowed, 'cookie', [['match', topic]], { withCredentials: true });
  await subscribed(allowed, 'noCredentials', [['match', topic]]);
  const first = await published(allowed, { topic, data: 'from an allowed origin' });
  const header = await streamed(allowed, 'header', [['match', topic], ['last_event_id', first]], { token: sub([topic]) });
  assert.equal(header.response.headers['mercure-last-event-id'], first, 'Mercure-Last-Event-ID is exposed');
  await streamed(allowed, 'query', [], { method: 'QUERY', body: [['match', topic]], credentials: 'include' });
  await published(allowed, { topic, data: 'secret', private: 'on' });
  await published(allowed, { topic, data: 'end' });
  const want = {
    cookie: ['from an allowed origin', 'secret', 'end'],
    // Without credentials the browser sends no cookie: anonymous.
    noCredentials: ['from an allowed origin', 'end'],
    header: ['secret', 'end'],
    query: ['secret', 'end'],
  };
  for (const [name, expected] of Object.entries(want)) {
    assert.deepEqual(datas(await until(allowed, name, { data: 'end' })), expected, name);
  }

  const denied = await openPage(t, main, { origin: origins.denied });
  const post = await publish(denied, PUB, { topic, data: 'denied' });
  assert.equal(post.status, 'network-error', `publish from ${origins.denied}: ${JSON.stringify(post)}`);
  await subscribe(denied, 's', [['match', topic]], { withCredentials: true });
  assert.equal((await until(denied, 's', { closed: true })).opens, 0, 'EventSource from a foreign origin must fail');
  const read = await refusedStream(denied, 'fetch', [['match', topic]]);
  assert.equal(read.status, 'network-error', JSON.stringify(read));
  const query = await refusedStream(denied, 'query', [], { method: 'QUERY', body: [['match', topic]] });
  assert.equal(query.status, 'network-error', JSON.stringify(query));
});

test('publishing with the cookie: the hub\'s own origin, and --publish-origin origins only (CSRF)', { timeout: 40000 }, async (t) => {
  const topic = T('csrf/1');
  const same = await openPage(t, main, { cookie: PUB });
  await subscribed(same, 'watch', [['match', topic]]);
  const fromSame = await publish(same, null, { topic, data: 'same origin' });
  assert.equal(fromSame.status, 200, `cookie publish, same origin: ${JSON.stringify(fromSame)}`);

  // --cors-origin lets a page read the hub's answers, not publish with the
  // ambient cookie.
  const allowed = await openPage(t, main, { origin: origins.allowed, cookie: PUB });
  const fromAllowed = await publish(allowed, null, { topic, data: 'cors origin' }, { credentials: 'include' });
  // (Status, body and challenge are all readable cross-origin: the hub
  // exposes WWW-Authenticate.)
  assert.equal(fromAllowed.status, 400, `cookie publish from ${origins.allowed}: ${JSON.stringify(fromAllowed)}`);
  assertChallenge('cookie publish from the CORS origin', fromAllowed.wwwAuthenticate, 'invalid_request');
  assert.match(fromAllowed.body, /may not publish with a cookie/);
  // The same page with the token in the header: no CSRF question.
  await published(allowed, { topic, data: 'cors origin, header' });

  // A simple (no-cors) form POST from a foreign origin: the browser sends
  // it with the cookie (127.0.0.1 on another port is same-site, so even
  // SameSite=Strict does not stop it) and without a preflight; the hub
  // must not act on it.
  const denied = await openPage(t, main, { origin: origins.denied, cookie: PUB });
  const sent = [];
  denied.on('request', (req) => { if (req.method() === 'POST') sent.push(req.allHeaders()); });
  const forged = await publish(denied, null, { topic, data: 'forged' }, { credentials: 'include', mode: 'no-cors' });
  assert.equal(forged.status, 0, `the no-cors POST was sent: ${JSON.stringify(forged)}`);
  const [forgedHeaders] = await Promise.all(sent);
  assert.ok((forgedHeaders?.cookie ?? '').includes(`${COOKIE}=${PUB}`),
    `the forged POST must carry the cookie for this check to mean anything: ${JSON.stringify(forgedHeaders)}`);
  assert.equal(forgedHeaders.origin, origins.denied);

  await published(same, { topic, data: 'end' });
  assert.deepEqual(datas(await until(same, 'watch', { data: 'end' })), ['same origin', 'cors origin, header', 'end']);

  // A hub that lets the page's origin publish with the cookie.
  const lenient = await startHub([...TRUST, '--anonymous', '--cors-origin', origins.allowed, '--publish-origin', origins.allowed]);
  const lenientPub = publisherToken(KEY, ['*'], { aud: lenient.hub });
  const watcher = await openPage(t, lenient);
  const publisherPage = await openPage(t, lenient, { origin: origins.allowed, cookie: lenientPub });
  // After the pages' contexts are closed (hooks run in order): no stream to drain.
  t.after(() => lenient.stop());
  await subscribed(watcher, 'watch', [['match', topic]]);
  const fromPublishOrigin = await publish(publisherPage, null, { topic, data: 'publish origin' }, { credentials: 'include' });
  assert.equal(fromPublishOrigin.status, 200, `cookie publish from a --publish-origin: ${JSON.stringify(fromPublishOrigin)}`);
  assert.deepEqual(datas(await until(watcher, 'watch', { data: 'publish origin' })), ['publish origin']);
});

test('--public-url: the hub answers 421 for any other host, and its identity is the public one', { timeout: 40000 }, async (t) => {
  // A TCP relay stands for the public name: localhost:PORT reaches the hub
  // listening on 127.0.0.1, with `Host: localhost:PORT` as the browser sent it.
  let target;
  const relay = createTcpServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  servers.push(relay);
  const port = await new Promise((resolvePort) => relay.listen(0, '127.0.0.1', () => resolvePort(relay.address().port)));
  const publicBase = `http://localhost:${port}`;
  const hub = await startHub([...TRUST, '--anonymous', '--public-url', publicBase]);
  target = Number(new URL(hub.base).port);
  const publicHub = { base: publicBase, hub: `${publicBase}${HUB_PATH}` };
  const topic = T('public/1');

  const page = await openPage(t, publicHub);
  const direct = await openPage(t, hub);
  t.after(() => hub.stop());
  await subscribed(page, 's', [['match', topic]]);
  const publicToken = publisherToken(KEY, ['*'], { aud: publicHub.hub });
  await published(page, { topic, data: 'through the public name' }, publicToken);
  assert.deepEqual(datas(await until(page, 's', { data: 'through the public name' })), ['through the public name']);
  const metadata = await request(page, METADATA_PATH);
  assert.equal(JSON.parse(metadata.body).resource, publicHub.hub);
  // A token for the address the hub listens on is for another resource.
  const forBound = await publish(page, publisherToken(KEY, ['*'], { aud: hub.hub }), { topic, data: 'x' });
  assert.equal(forBound.status, 401, JSON.stringify(forBound));
  assertChallenge('token for the bound address', forBound.wwwAuthenticate, 'invalid_token', publicHub);

  // The same hub at 127.0.0.1 (the page is its /healthz): misdirected.
  for (const path of [`${HUB_PATH}?match=${enc(topic)}`, METADATA_PATH]) {
    const answer = await request(direct, path);
    assert.equal(answer.status, 421, `GET ${path}: ${JSON.stringify(answer)}`);
  }
  const post = await publish(direct, publisherToken(KEY, ['*'], { aud: hub.hub }), { topic, data: 'misdirected' });
  assert.equal(post.status, 421, JSON.stringify(post));
  await subscribe(direct, 'misdirected', [['match', topic]]);
  assert.equal((await until(direct, 'misdirected', { closed: true })).opens, 0);
});

test('healthz and metrics', { timeout: 20000 }, async (t) => {
  const page = await openPage(t, main);
  const health = await request(page, '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.body.trim(), 'ok');
  const metrics = await request(page, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers['content-type'] ?? '', /^(text\/plain|application\/openmetrics-text)/);
  assert.match(metrics.body, /^# (HELP|TYPE) /m);
  assert.match(metrics.body, /^ssehub_published_total \d+/m);
});
