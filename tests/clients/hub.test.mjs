// Conformance of the hub (`ssehub`, crate crates/ssehub-server) to the
// Mercure protocol (draft-dunglas-mercure-08) as seen by headless Chromium
// (Debian's `chromium`, driven by playwright-core): pages served by the hub
// open EventSources on it and publish with fetch, with HS256 access tokens
// minted here (lib/hub.mjs).
//
// The `before` hook builds the hub (`cargo build -p ssehub-server`, a no-op
// when up to date) and starts the main hub:
//   ssehub --listen 127.0.0.1:0 --jwt-key K --jwt-audience ssehub-test
//          --anonymous --subscriptions --cors-origin <a page server of this suite>
// Tests needing other flags (--compat, --dev, no --anonymous) start their
// own. Every topic carries this run's random prefix, and negative checks
// ("X never arrives") wait for a sentinel update published after X.
//
// Covered: exact / URL-pattern / `*` matching and several matchers per
// connection; ids, multi-line data and event types as the browser sees
// them; private updates against the token's grants (query, header and
// cookie tokens, their precedence); resume by lastEventID and by the
// browser's own reconnection (Last-Event-ID) after the hub closes the
// stream at the token's exp; --compat (several topics, `topic` parameter,
// legacy `mercure` claim); 400/401/403/413 answers; active subscriptions
// (events and API); CORS and the CSRF check on cookie-authenticated
// publishes; /healthz, /metrics; the demo page in and out of dev mode.
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test hub.test.mjs

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import {
  AUDIENCE,
  buildHub,
  exact,
  grant,
  hubToken,
  newKey,
  pageHelpers,
  signJwt,
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

const KEY = newKey();
const PUB = publisherToken(KEY);

let browser;
let main;
/** Plain pages on other origins, for CORS: {allowed, denied} base URLs. */
const origins = {};
const pageServers = [];

function servePlainPage() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>other origin</title><p>other origin</p>');
  });
  pageServers.push(server);
  return new Promise((resolvePromise) => {
    server.listen(0, '127.0.0.1', () => resolvePromise(`http://127.0.0.1:${server.address().port}`));
  });
}

before(async () => {
  buildHub();
  origins.allowed = await servePlainPage();
  origins.denied = await servePlainPage();
  main = await startHub([
    '--jwt-key', KEY,
    '--jwt-audience', AUDIENCE,
    '--anonymous',
    '--subscriptions',
    '--cors-origin', origins.allowed,
  ]);
  browser = await launchChromium();
}, { timeout: 900000 });

after(async () => {
  await browser?.close();
  await stopAllHubs();
  for (const server of pageServers) server.close();
});

// ------------------------------------------------------------ helpers

/**
 * A fresh browser context (own cookies) with a page on `origin` (the hub's
 * /healthz unless given) and window.hubt talking to `hub`; closed when `t`
 * ends.
 */
async function openPage(t, hub, origin) {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const url = origin ?? `${hub.base}/healthz`;
  const response = await page.goto(url);
  assert.equal(response.status(), 200, `GET ${url}`);
  await page.evaluate(pageHelpers, hub.base);
  return page;
}

const subscribe = (page, name, params, options = {}) =>
  page.evaluate(([n, p, o]) => window.hubt.subscribe(n, p, o), [name, params, options]);
const until = (page, name, cond, ms = STEP) =>
  page.evaluate(([n, c, m]) => window.hubt.until(n, c, m), [name, cond, ms]);
const publish = (page, token, fields, options = {}) =>
  page.evaluate(([tok, f, o]) => window.hubt.publish(tok, f, o), [token, fields, options]);
const request = (page, url, options = {}) =>
  page.evaluate(([u, o]) => window.hubt.request(u, o), [url, options]);

/** Publishes from the page; asserts 200 text/plain and returns the id. */
async function published(page, fields, token = PUB) {
  const answer = await publish(page, token, fields);
  assert.equal(answer.status, 200, `publish ${JSON.stringify(fields)}: ${JSON.stringify(answer)}`);
  assert.match(answer.contentType ?? '', /^text\/plain/, `publish answer content type: ${JSON.stringify(answer)}`);
  assert.ok(answer.body.length > 0, 'publish answered an empty id');
  return answer.body;
}

/** Subscribes and waits until the connection is open. */
async function subscribed(page, name, params, options) {
  await subscribe(page, name, params, options);
  await until(page, name, { opens: 1 });
}

const datas = (snapshot) => snapshot.events.map((e) => e.data);

// ------------------------------------------------------------ the tests

test('exact topic: the id the POST returned, multi-line data kept exactly, named event types', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('exact/1');
  await subscribed(page, 's', [['match', topic]], { types: ['book.updated'] });

  const data = '\nfirst line\r\n\r\nafter a blank line\n\n  two leading spaces\rlone CR\r\nUnicode é ✓ 𝄞\n';
  const id1 = await published(page, { topic, data });
  const id2 = await published(page, { topic, data: 'typed', type: 'book.updated' });
  const own = `urn:uuid:${randomUUID()}`;
  const id3 = await published(page, { topic, data: 'plain again', id: own });
  assert.equal(new Set([id1, id2, id3]).size, 3, `ids must be unique: ${[id1, id2, id3]}`);

  const got = await until(page, 's', { data: 'plain again' });
  assert.deepEqual(
    got.events.map(({ type, data: d, id }) => ({ type, data: d, id })),
    [
      // SSE turns CRLF and lone CR into LF; nothing else may change.
      { type: 'message', data: data.replace(/\r\n|\r/g, '\n'), id: id1 },
      { type: 'book.updated', data: 'typed', id: id2 },
      { type: 'message', data: 'plain again', id: id3 },
    ],
  );
});

test('several matchers on one connection (two match, one matchURLPattern): each update once, in publish order', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const a = T('multi/a');
  const c9 = T('multi/c/9');
  const d = T('multi/d');
  await subscribed(page, 's', [
    ['match', a],
    ['match', c9],
    ['matchURLPattern', T('multi/c/:id')],
    // The explicit spelling of the default matcher type.
    ['matchExact', d],
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
  assert.deepEqual(got.events.map((e) => e.id), want.map((d) => ids[d]));
});

test('URL patterns: https://example.com/books/:id matches /books/1, not /authors/1; relative patterns', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  await subscribed(page, 's', [
    ['matchURLPattern', T('books/:id')],
    ['matchURLPattern', `/${RUN}/local/:n`],
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

test('topics that do not match never arrive (exact is byte-for-byte, not a pattern)', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const only = T('only');
  const literal = T('p/:x');
  await subscribed(page, 's', [['match', only], ['match', literal]]);
  // `*` matches every topic, whatever the matcher type.
  await subscribed(page, 'everything', [['match', '*']]);
  await subscribed(page, 'everythingPattern', [['matchURLPattern', '*']]);
  const sent = [
    [T('only-not'), 'prefix'],
    [T('ONLY'), 'case'],
    [`${only}/`, 'trailing slash'],
    [`${only}#fragment`, 'fragment'],
    [T('onl%79'), 'percent-encoded y'],
    [`${only}?q=1`, 'query'],
    [T('p/1'), 'exact matcher taken as a pattern'],
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

test('one token per request: Authorization header, else access_token, else the cookie', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('precedence/1');
  const good = subscriberToken(KEY, [topic]);
  const bad = subscriberToken(newKey(), [topic]);
  await page.context().addCookies([{ name: 'mercureAccessToken', value: good, url: main.base }]);
  const url = (token) => `/.well-known/mercure?match=${encodeURIComponent(topic)}${token ? `&access_token=${encodeURIComponent(token)}` : ''}`;
  const status = async (token, headers = {}) => (await request(page, url(token), { headers })).status;
  assert.equal(await status(null), 200, 'the cookie alone');
  assert.equal(await status(bad), 401, 'a bad access_token wins over a good cookie');
  assert.equal(await status(good, { Authorization: `Bearer ${bad}` }), 401, 'a bad header wins over a good access_token');
  assert.equal(await status(bad, { Authorization: `Bearer ${good}` }), 200, 'a good header wins over a bad access_token');
  await page.context().addCookies([{ name: 'mercureAccessToken', value: bad, url: main.base }]);
  assert.equal(await status(null), 401, 'a bad cookie alone');
  assert.equal(await status(good), 200, 'a good access_token wins over a bad cookie');

  // The cookie's grant is what counts for private updates.
  await page.context().addCookies([{ name: 'mercureAccessToken', value: good, url: main.base }]);
  await subscribed(page, 'cookie', [['match', topic]]);
  await subscribed(page, 'overridden', [['match', topic], ['access_token', subscriberToken(KEY, [T('precedence/other')])]]);
  await published(page, { topic, data: 'private', private: 'on' });
  await published(page, { topic, data: 'end' });
  assert.deepEqual(datas(await until(page, 'cookie', { data: 'end' })), ['private', 'end']);
  assert.deepEqual(datas(await until(page, 'overridden', { data: 'end' })), ['end']);
});

test('private updates reach only subscribers whose token grants subscribe on their topic', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('private/1');
  const second = T('private/2');
  const subs = {
    anonymous: [['match', topic]],
    otherTopic: [['match', topic], ['access_token', subscriberToken(KEY, [T('private/other')])]],
    subscribeOnlyOnPublishGrant: [['match', topic], ['access_token', publisherToken(KEY, [topic])]],
    granted: [['match', topic], ['access_token', subscriberToken(KEY, [topic])]],
    // Routing wider than the token: the pattern selects private/2 too,
    // the token grants private/1 only (the spec's books example).
    patternRoute: [
      ['matchURLPattern', T('private/:n')],
      ['access_token', hubToken(KEY, [grant(['subscribe'], [exact(topic)])])],
    ],
  };
  for (const [name, params] of Object.entries(subs)) await subscribed(page, name, params);

  await published(page, { topic, data: 'secret 1', private: 'on' });
  await published(page, { topic: second, data: 'secret 2', private: '' });
  await published(page, { topic, data: 'public' });

  const want = {
    anonymous: ['public'],
    otherTopic: ['public'],
    subscribeOnlyOnPublishGrant: ['public'],
    granted: ['secret 1', 'public'],
    patternRoute: ['secret 1', 'public'],
  };
  for (const name of Object.keys(subs)) {
    const got = await until(page, name, { data: 'public' });
    assert.deepEqual(datas(got), want[name], `subscriber ${name}`);
  }
});

test('--compat: one update with several topic fields reaches a subscriber of either topic once, topic subscribe parameter, legacy mercure claim; the strict hub answers 400 / 401', { timeout: 60000 }, async (t) => {
  // Strict hub first: the POST is refused and nothing is dispatched.
  const strictPage = await openPage(t, main);
  const a = T('compat/a');
  const b = T('compat/b');
  await subscribed(strictPage, 'strict', [['match', a], ['match', b]]);
  const refused = await publish(strictPage, PUB, [['topic', a], ['topic', b], ['data', 'two topics']]);
  assert.equal(refused.status, 400, `strict hub, two topic fields: ${JSON.stringify(refused)}`);
  await published(strictPage, { topic: a, data: 'end' });
  assert.deepEqual(datas(await until(strictPage, 'strict', { data: 'end' })), ['end']);

  // Compat hub, without --anonymous: subscribers need a token.
  const compat = await startHub(['--compat', '--jwt-key', KEY, '--jwt-audience', AUDIENCE]);
  const page = await openPage(t, compat);
  // After the page's context is closed (hooks run in order): no stream to drain.
  t.after(() => compat.stop());
  const noToken = await request(page, `/.well-known/mercure?match=${encodeURIComponent(a)}`);
  assert.equal(noToken.status, 401, `subscribe without a token, hub without --anonymous: ${JSON.stringify(noToken)}`);

  const token = ['access_token', subscriberToken(KEY)];
  await subscribed(page, 'a', [['match', a], token]);
  await subscribed(page, 'b', [['match', b], token]);
  await subscribed(page, 'ab', [['match', a], ['match', b], token]);
  await subscribed(page, 'legacyTopicParam', [['topic', a], token]);
  // Tokens of earlier drafts: typ JWT, no aud, no exp, the `mercure` claim.
  const legacy = (claim) => signJwt(KEY, { mercure: claim }, { alg: 'HS256', typ: 'JWT' });
  // Routed to a and b, allowed a's private updates only.
  await subscribed(page, 'legacyClaim', [['topic', a], ['topic', b], ['access_token', legacy({ subscribe: [a] })]]);
  const id = await published(page, [['topic', a], ['topic', b], ['data', 'both']]);

  await published(page, { topic: a, data: 'private a', private: 'on' }, legacy({ publish: ['*'] }));
  await published(page, { topic: b, data: 'private b', private: 'on' }, legacy({ publish: [b] }));
  const strictLegacy = await publish(strictPage, legacy({ publish: ['*'] }), { topic: a, data: 'x' });
  assert.equal(strictLegacy.status, 401, `strict hub, legacy token: ${JSON.stringify(strictLegacy)}`);
  await published(page, { topic: a, data: 'end a' });
  await published(page, { topic: b, data: 'end b' });

  // a, b, ab and legacyTopicParam hold a `*` subscribe grant.
  const want = {
    a: ['both', 'private a', 'end a'],
    b: ['both', 'private b', 'end b'],
    ab: ['both', 'private a', 'private b', 'end a', 'end b'],
    legacyTopicParam: ['both', 'private a', 'end a'],
    legacyClaim: ['both', 'private a', 'end a', 'end b'],
  };
  for (const [name, expected] of Object.entries(want)) {
    const got = await until(page, name, { data: expected.at(-1) });
    assert.deepEqual(datas(got), expected, `subscriber ${name}`);
    assert.equal(got.events[0].id, id, `subscriber ${name}: id of the two-topic update`);
  }
});

test('resume with lastEventID: exactly the matching updates after that id, private ones only with a grant', { timeout: 30000 }, async (t) => {
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

  await subscribed(page, 'after-r1', [['match', topic], ['lastEventID', ids.r1]]);
  await subscribed(page, 'after-r1-granted', [
    ['match', topic],
    ['lastEventID', ids.r1],
    ['access_token', subscriberToken(KEY, [topic])],
  ]);
  ids.r4 = await published(page, { topic, data: 'r4' });
  const anonymous = await until(page, 'after-r1', { data: 'r4' });
  assert.deepEqual(datas(anonymous), ['r2', 'r3', 'r4']);
  assert.deepEqual(anonymous.events.map((e) => e.id), [ids.r2, ids.r3, ids.r4]);
  const granted = await until(page, 'after-r1-granted', { data: 'r4' });
  assert.deepEqual(datas(granted), ['r2', 'private r', 'r3', 'r4']);

  // `earliest`: everything retained on the topic.
  await subscribed(page, 'earliest', [['match', topic], ['lastEventID', 'earliest']]);
  await published(page, { topic, data: 'r5' });
  assert.deepEqual(datas(await until(page, 'earliest', { data: 'r5' })), ['r1', 'r2', 'r3', 'r4', 'r5']);

  // The response carries Last-Event-ID when one was asked for: the id of
  // the update before the first one sent (r1 here), or `earliest`.
  const asked = await request(page, `/.well-known/mercure?match=${encodeURIComponent(topic)}&lastEventID=${encodeURIComponent(ids.r1)}`);
  assert.equal(asked.status, 200, JSON.stringify(asked));
  assert.match(asked.headers['content-type'] ?? '', /^text\/event-stream/);
  assert.ok([ids.r1, 'earliest'].includes(asked.headers['last-event-id']),
    `Last-Event-ID response header ${JSON.stringify(asked.headers['last-event-id'])}, want ${ids.r1} or earliest`);
  // After r2, the update before the first one sent (r3) is the private
  // one: its id must not be disclosed to an anonymous subscriber.
  const afterR2 = await request(page, `/.well-known/mercure?match=${encodeURIComponent(topic)}&lastEventID=${encodeURIComponent(ids.r2)}`);
  assert.equal(afterR2.status, 200, JSON.stringify(afterR2));
  assert.notEqual(afterR2.headers['last-event-id'], ids.private, 'Last-Event-ID disclosed a private update to an anonymous subscriber');
  assert.ok([ids.r2, ids.other, 'earliest'].includes(afterR2.headers['last-event-id']),
    `Last-Event-ID response header ${JSON.stringify(afterR2.headers['last-event-id'])}`);
  // An id the hub never issued: `earliest`.
  const unknown = await request(page, `/.well-known/mercure?match=${encodeURIComponent(topic)}&lastEventID=urn%3Auuid%3A${randomUUID()}`);
  assert.equal(unknown.status, 200, JSON.stringify(unknown));
  assert.equal(unknown.headers['last-event-id'], 'earliest');
});

test("the browser's own reconnect sends Last-Event-ID and gets what it missed (the hub closes at the token's exp)", { timeout: 40000 }, async (t) => {
  const page = await openPage(t, main);
  const context = page.context();
  const topic = T('reconnect/1');
  const details = [grant(['subscribe'], [topic])];
  const exp = Math.floor(Date.now() / 1000) + 4;
  const cookie = (value) => ({ name: 'mercureAccessToken', value, url: main.base });
  await context.addCookies([cookie(hubToken(KEY, details, { exp }))]);
  const hubRequests = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/.well-known/mercure' && req.method() === 'GET') {
      // allHeaders: Last-Event-ID is added below the page, by the network stack.
      hubRequests.push(req.allHeaders());
    }
  });

  // The cookie's token grants the private topic: private updates arrive.
  await subscribed(page, 's', [['match', topic]]);
  const id1 = await published(page, { topic, data: 'u1', retry: '1000', private: 'on' });
  await until(page, 's', { data: 'u1' });
  // The same grant, valid for an hour, for the reconnection.
  await context.addCookies([cookie(hubToken(KEY, details))]);
  // The hub must close the stream by `exp`; while the browser waits to
  // reconnect, the page publishes u2 and u3.
  await page.evaluate(([tok, t1]) => window.hubt.publishOnError('s', tok, [
    [['topic', t1], ['data', 'u2']],
    [['topic', t1], ['data', 'u3'], ['private', 'on']],
  ]), [PUB, topic]);
  const closed = await until(page, 's', { errors: 1 }, exp * 1000 - Date.now() + 3000);
  assert.ok(closed.errors[0].at <= exp * 1000 + 2000,
    `the hub closed the stream ${closed.errors[0].at - exp * 1000} ms after the token's exp`);
  assert.equal(closed.errors[0].readyState, 0, 'EventSource should be reconnecting (CONNECTING)');

  const got = await until(page, 's', { data: 'u3', published: true, opens: 2 });
  const [r2, r3] = got.onError;
  assert.equal(r2.status, 200, JSON.stringify(r2));
  assert.equal(r3.status, 200, JSON.stringify(r3));
  assert.deepEqual(
    got.events.map(({ data, id }) => ({ data, id })),
    [{ data: 'u1', id: id1 }, { data: 'u2', id: r2.body }, { data: 'u3', id: r3.body }],
  );
  // u2 and u3 were published after the first stream closed: they came by
  // replay on the reconnection.
  assert.equal(got.errors[0].afterEvents, 1);
  const requests = await Promise.all(hubRequests);
  assert.equal(requests.length, 2, `requests to the hub: ${JSON.stringify(requests)}`);
  assert.equal(requests[0]['last-event-id'], undefined);
  assert.equal(requests[1]['last-event-id'], id1, 'the reconnection carries Last-Event-ID');

  // And the stream is live again.
  await published(page, { topic, data: 'u4' });
  assert.deepEqual(datas(await until(page, 's', { data: 'u4' })), ['u1', 'u2', 'u3', 'u4']);
});

test('errors seen from the browser: 401 / 403 / 400', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('errors/1');
  const now = Math.floor(Date.now() / 1000);
  const check = async (label, answer, status) => {
    assert.equal(answer.status, status, `${label}: ${JSON.stringify(answer)}`);
    return answer;
  };

  // Publishing.
  const anonymous = await check('POST without a token', await publish(page, null, { topic, data: 'x' }), 401);
  assert.match(anonymous.wwwAuthenticate ?? '', /^Bearer\b/, 'WWW-Authenticate: Bearer challenge');
  assert.doesNotMatch(anonymous.wwwAuthenticate, /error=/, 'no error code without a token (RFC 6750 §3.1)');
  const badTokens = {
    'wrong key': publisherToken(newKey()),
    'typ JWT, not at+jwt': hubToken(KEY, [grant(['publish'], ['*'])], { header: { alg: 'HS256', typ: 'JWT' } }),
    'alg none': hubToken(KEY, [grant(['publish'], ['*'])], { header: { alg: 'none', typ: 'at+jwt' } }),
    expired: publisherToken(KEY, ['*'], { exp: now - 120 }),
    'other audience': publisherToken(KEY, ['*'], { aud: 'another-hub' }),
    'unknown matchType': hubToken(KEY, [grant(['publish'], [{ match: topic, matchType: 'Regex' }])]),
  };
  for (const [label, token] of Object.entries(badTokens)) {
    const answer = await check(`POST, ${label}`, await publish(page, token, { topic, data: 'x' }), 401);
    assert.match(answer.wwwAuthenticate ?? '', /error="invalid_token"/, `${label}: ${JSON.stringify(answer)}`);
  }
  for (const [label, token] of Object.entries({
    'publish granted on another topic': publisherToken(KEY, [T('errors/other')]),
    'subscribe granted, not publish': subscriberToken(KEY, ['*']),
  })) {
    const answer = await check(`POST, ${label}`, await publish(page, token, { topic, data: 'x' }), 403);
    assert.match(answer.wwwAuthenticate ?? '', /insufficient_scope/, `${label}: ${JSON.stringify(answer)}`);
  }
  for (const reserved of [
    '/.well-known/mercure',
    '/.well-known/mercure/subscriptions/Exact/x/y',
    `${main.base}/.well-known/mercure/subscriptions`,
    'https://other.example/.well-known/mercure/anything',
  ]) {
    await check(`POST to reserved topic ${reserved}`, await publish(page, PUB, { topic: reserved, data: 'x' }), 403);
  }
  await published(page, { topic: '/.well-known/mercurex', data: 'not reserved' });
  // Beyond the hub's body limit (1 MiB by default): 413.
  await check('POST, a 2 MiB body', await publish(page, PUB, { topic, data: 'x'.repeat(2 << 20) }), 413);
  for (const [label, fields] of Object.entries({
    'no topic': { data: 'x' },
    'id starting with #': { topic, id: '#mine' },
    'id with LF': { topic, id: 'a\nb' },
    'id with CR': { topic, id: 'a\rb' },
    'type with LF': { topic, type: 'a\nb' },
    'retry not digits': { topic, retry: '12a' },
    'topic with a control character': { topic: `${topic}\u0001` },
  })) {
    await check(`POST, ${label}`, await publish(page, PUB, fields), 400);
  }

  // Subscribing.
  const hubPath = '/.well-known/mercure';
  const enc = encodeURIComponent;
  for (const [label, query] of Object.entries({
    'no matcher': '',
    'matchFoo=': `match=${enc(topic)}&matchFoo=`,
    'matchurlpattern (wrong case)': `matchurlpattern=${enc(T(':x'))}`,
    'MATCH (wrong case)': `MATCH=${enc(topic)}`,
    'C0 control character': `match=${enc(`${topic}\u0001`)}`,
    'C1 control character': `match=${enc(`${topic}\u0085`)}`,
    DEL: `match=${enc(`${topic}\u007f`)}`,
  })) {
    await check(`GET, ${label}`, await request(page, `${hubPath}?${query}`), 400);
  }
  for (const [label, token] of Object.entries({
    'wrong key': subscriberToken(newKey()),
    expired: subscriberToken(KEY, ['*'], { exp: now - 120 }),
  })) {
    await check(`GET, ${label}`, await request(page, `${hubPath}?match=${enc(topic)}&access_token=${enc(token)}`), 401);
  }
  // An EventSource on a refused subscription fails for good.
  await subscribe(page, 'refused', [['matchFoo', topic]]);
  const refused = await until(page, 'refused', { closed: true });
  assert.equal(refused.opens, 0);
});

test('active subscriptions: private subscription events and the subscription API', { timeout: 45000 }, async (t) => {
  const page = await openPage(t, main);
  const topic = T('watched/1');
  const sentinel = T('watched/sentinel');
  const observer = subscriberToken(KEY, ['*']);
  const eventsPattern = '/.well-known/mercure/subscriptions/Exact/:match/:subscriber';
  await subscribed(page, 'observer', [['matchURLPattern', eventsPattern], ['access_token', observer]]);
  await subscribed(page, 'anonymous', [['matchURLPattern', eventsPattern], ['match', sentinel]]);

  const aliceToken = hubToken(KEY, [grant(['subscribe'], [topic], { label: 'alice' })], { sub: 'urn:example:alice' });
  await subscribed(page, 'alice', [['match', topic], ['access_token', aliceToken]]);
  const activeEvent = await until(page, 'observer', { json: { match: topic, active: true } });
  const active = activeEvent.events.map((e) => JSON.parse(e.data)).find((d) => d.match === topic && d.active);
  assert.equal(active.type, 'Subscription');
  assert.equal(active.matchType, 'Exact');
  assert.deepEqual(active.payload, { label: 'alice' });
  assert.equal(typeof active.subscriber, 'string');
  assert.ok(active.subscriber.length > 0);
  assert.equal(active.id, `/.well-known/mercure/subscriptions/Exact/${encodeURIComponent(topic)}/${encodeURIComponent(active.subscriber)}`);

  // Subscription events are private: the anonymous watcher never gets one.
  await published(page, { topic: sentinel, data: 'end' });
  assert.deepEqual(datas(await until(page, 'anonymous', { data: 'end' })), ['end']);

  // The API: needs a token granting subscribe on the path.
  const api = '/.well-known/mercure/subscriptions';
  const listed = await request(page, api, { headers: { Authorization: `Bearer ${observer}` } });
  assert.equal(listed.status, 200, JSON.stringify(listed));
  assert.match(listed.headers['content-type'] ?? '', /^application\/ld\+json/);
  const list = JSON.parse(listed.body);
  assert.equal(list.type, 'Subscriptions');
  assert.equal(list.id, api);
  assert.equal(typeof list.lastEventID, 'string');
  const withoutContext = ({ '@context': _, ...rest } = {}) => rest;
  const mine = list.subscriptions.find((s) => s.match === topic && s.active);
  assert.deepEqual(withoutContext(mine), withoutContext(active), 'the API lists what the event announced');
  const auth = { headers: { Authorization: `Bearer ${observer}` } };
  const perMatcher = `${api}/Exact/${encodeURIComponent(topic)}`;
  const byMatcher = await request(page, perMatcher, auth);
  assert.equal(byMatcher.status, 200, JSON.stringify(byMatcher));
  const matcherList = JSON.parse(byMatcher.body);
  assert.equal(matcherList.type, 'Subscriptions');
  assert.deepEqual(matcherList.subscriptions.map(withoutContext), [withoutContext(active)]);
  const single = await request(page, active.id, auth);
  assert.equal(single.status, 200, JSON.stringify(single));
  const { lastEventID, ...doc } = JSON.parse(single.body);
  assert.equal(typeof lastEventID, 'string');
  assert.deepEqual(withoutContext(doc), withoutContext(active));
  assert.equal((await request(page, `${perMatcher}/urn%3Auuid%3A${randomUUID()}`, auth)).status, 404,
    'an unknown subscription');
  assert.equal((await request(page, api)).status, 401, 'subscription API without a token');
  const narrow = subscriberToken(KEY, [topic]);
  assert.equal((await request(page, api, { headers: { Authorization: `Bearer ${narrow}` } })).status, 403,
    'subscription API with a token that does not grant it');

  // Closing alice's EventSource ends the subscription.
  await page.evaluate(() => window.hubt.close('alice'));
  const inactive = await until(page, 'observer', { json: { match: topic, active: false } }, 20000);
  const ended = inactive.events.map((e) => JSON.parse(e.data)).find((d) => d.match === topic && !d.active);
  assert.equal(ended.id, active.id);
  assert.equal(ended.subscriber, active.subscriber);
});

test('CORS: only the --cors-origin origin may publish and subscribe cross-origin (with credentials)', { timeout: 30000 }, async (t) => {
  const topic = T('cors/1');
  const allowed = await openPage(t, main, origins.allowed);
  await subscribed(allowed, 's', [['match', topic]], { withCredentials: true });
  await published(allowed, { topic, data: 'from an allowed origin' });
  assert.deepEqual(datas(await until(allowed, 's', { data: 'from an allowed origin' })), ['from an allowed origin']);

  const denied = await openPage(t, main, origins.denied);
  const post = await publish(denied, PUB, { topic, data: 'denied' });
  assert.equal(post.status, 'network-error', `publish from ${origins.denied}: ${JSON.stringify(post)}`);
  await subscribe(denied, 's', [['match', topic]], { withCredentials: true });
  const refused = await until(denied, 's', { closed: true });
  assert.equal(refused.opens, 0, 'EventSource from a foreign origin must fail');
});

test('publishing with the cookie: same origin and --cors-origin origins only (CSRF)', { timeout: 30000 }, async (t) => {
  const topic = T('csrf/1');
  const cookie = { name: 'mercureAccessToken', value: PUB, url: main.base };
  const same = await openPage(t, main);
  await subscribed(same, 'watch', [['match', topic]]);
  await same.context().addCookies([cookie]);
  const fromSame = await publish(same, null, { topic, data: 'same origin' });
  assert.equal(fromSame.status, 200, `cookie publish, same origin: ${JSON.stringify(fromSame)}`);

  const allowed = await openPage(t, main, origins.allowed);
  await allowed.context().addCookies([cookie]);
  const fromAllowed = await publish(allowed, null, { topic, data: 'allowed origin' }, { credentials: 'include' });
  assert.equal(fromAllowed.status, 200, `cookie publish from ${origins.allowed}: ${JSON.stringify(fromAllowed)}`);

  // A simple (no-cors) form POST: the browser sends it with the cookie and
  // without a preflight; the hub must not act on it.
  const denied = await openPage(t, main, origins.denied);
  await denied.context().addCookies([cookie]);
  const sent = [];
  denied.on('request', (req) => { if (req.method() === 'POST') sent.push(req.allHeaders()); });
  const forged = await publish(denied, null, { topic, data: 'forged' }, { credentials: 'include', mode: 'no-cors' });
  assert.equal(forged.status, 0, `the no-cors POST was sent: ${JSON.stringify(forged)}`);
  const [forgedHeaders] = await Promise.all(sent);
  assert.ok((forgedHeaders?.cookie ?? '').includes(`mercureAccessToken=${PUB}`),
    `the forged POST must carry the cookie for this check to mean anything: ${JSON.stringify(forgedHeaders)}`);
  assert.equal(forgedHeaders.origin, origins.denied);

  await published(same, { topic, data: 'end' });
  assert.deepEqual(datas(await until(same, 'watch', { data: 'end' })), ['same origin', 'allowed origin', 'end']);
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
});

test('demo page in dev mode: subscribe, publish, private updates, all through the UI', { timeout: 60000 }, async (t) => {
  const dev = await startHub(['--dev', '--jwt-audience', AUDIENCE]);
  const context = await browser.newContext();
  t.after(() => context.close());
  t.after(() => dev.stop());
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  const response = await page.goto(`${dev.base}/`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-type'] ?? '', /^text\/html/);

  const config = await page.evaluate(() => fetch('/demo/config.json').then((r) => r.json()));
  assert.equal(config.hub, '/.well-known/mercure');
  assert.equal(typeof config.publisherToken, 'string');
  assert.equal(typeof config.subscriberToken, 'string');
  await page.waitForSelector('#config-status[data-state="dev"]');
  assert.equal(await page.inputValue('#pub-token'), config.publisherToken);
  assert.equal(await page.inputValue('#sub-token'), config.subscriberToken);

  const topic = T('demo/1');
  const eventFor = (id) => page.locator(`[data-testid="event"][data-id=${JSON.stringify(id)}]`);
  const publishUi = async ({ data, type = '', isPrivate = false }) => {
    await page.fill('#pub-topic', topic);
    await page.fill('#pub-data', data);
    await page.fill('#pub-type', type);
    await page.setChecked('#pub-private', isPrivate);
    await page.click('#publish');
    await page.waitForSelector('#pub-result[data-state="ok"], #pub-result[data-state="error"]');
    const state = await page.getAttribute('#pub-result', 'data-state');
    assert.equal(state, 'ok', `publish through the UI: ${await page.textContent('#pub-result')}`);
    return page.getAttribute('#pub-result', 'data-id');
  };

  // Subscribe without the token (anonymous is allowed in dev mode).
  await page.getByTestId('sub-topic').first().fill(topic);
  await page.setChecked('#sub-private', false);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');

  const data = 'hello\n\n  indented <b>not bold</b>\n';
  const id1 = await publishUi({ data });
  await eventFor(id1).waitFor();
  assert.equal(await eventFor(id1).locator('.event-data').textContent(), data);
  assert.equal(await eventFor(id1).locator('.event-type').textContent(), 'message');
  assert.equal(await page.locator('#events b').count(), 0, 'event data must be inserted as text');

  const id2 = await publishUi({ data: 'typed', type: 'note' });
  await eventFor(id2).waitFor();
  assert.equal(await eventFor(id2).getAttribute('data-type'), 'note');

  // A private update does not reach the token-less subscription…
  const secret1 = await publishUi({ data: 'secret 1', isPrivate: true });
  const after1 = await publishUi({ data: 'public after secret 1' });
  await eventFor(after1).waitFor();
  assert.equal(await eventFor(secret1).count(), 0, 'private update shown on a subscription without token');

  // …and reaches the subscription that sends the subscriber token.
  await page.setChecked('#sub-private', true);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');
  const secret2 = await publishUi({ data: 'secret 2', isPrivate: true });
  await eventFor(secret2).waitFor();
  assert.equal(await eventFor(secret2).locator('.event-data').textContent(), 'secret 2');

  // A URL-pattern row.
  await page.click('#sub-add');
  await page.getByTestId('sub-topic').nth(1).fill(T('demo-pattern/:n'));
  await page.getByTestId('sub-match-type').nth(1).selectOption('URLPattern');
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');
  await page.fill('#pub-topic', T('demo-pattern/5'));
  await page.fill('#pub-data', 'by pattern');
  await page.fill('#pub-type', '');
  await page.setChecked('#pub-private', false);
  await page.click('#publish');
  await page.waitForSelector('#pub-result[data-state="ok"]');
  const id5 = await page.getAttribute('#pub-result', 'data-id');
  await eventFor(id5).waitFor();

  const curl = await page.textContent('#curl');
  assert.ok(curl.includes(`${dev.base}/.well-known/mercure`), curl);
  assert.ok(curl.includes('Authorization: Bearer'), curl);
  assert.deepEqual(pageErrors, []);
});

test('demo page outside dev mode: no tokens handed out, the token box works', { timeout: 30000 }, async (t) => {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const response = await page.goto(`${main.base}/`);
  assert.equal(response.status(), 200);
  const config = await page.evaluate(() => fetch('/demo/config.json').then((r) => (r.ok ? r.json() : null)));
  if (config) {
    assert.equal(config.publisherToken, null, 'no publisher token outside dev mode');
    assert.equal(config.subscriberToken, null, 'no subscriber token outside dev mode');
  }
  await page.waitForSelector('#config-status:not([data-state="loading"]):not([data-state="dev"])');
  assert.equal(await page.inputValue('#pub-token'), '');

  const topic = T('demo/2');
  await page.getByTestId('sub-topic').first().fill(topic);
  await page.click('#subscribe');
  await page.waitForSelector('#status[data-state="open"]');
  await page.fill('#pub-topic', topic);
  await page.fill('#pub-data', 'without a token');
  await page.click('#publish');
  await page.waitForSelector('#pub-result[data-state="error"]');
  assert.equal(await page.getAttribute('#pub-result', 'data-status'), '401');

  await page.fill('#pub-token', publisherToken(KEY, [topic]));
  await page.fill('#pub-data', 'with the token');
  await page.click('#publish');
  await page.waitForSelector('#pub-result[data-state="ok"]');
  const id = await page.getAttribute('#pub-result', 'data-id');
  const item = page.locator(`[data-testid="event"][data-id=${JSON.stringify(id)}]`);
  await item.waitFor();
  assert.equal(await item.locator('.event-data').textContent(), 'with the token');
});
