// The hub's compatibility mode (`ssehub --compat`) as the Mercure 0.x
// clients still in the field (Symfony's and API Platform's, older
// `mercure` JS code) meet it, from headless Chromium: pages served by the
// hub open EventSources on it and publish with fetch.
//
// The `before` hook builds the hub (`cargo build -p ssehub-server`, a no-op
// when up to date) and starts the hub every test but the last talks to:
//   ssehub --listen 127.0.0.1:0 --compat --issuer https://issuer.test
//          --jwt-key K --anonymous --subscriptions
// (K: a random HS256 key of the run; tokens are minted by lib/hub.mjs.)
// The last test starts the same hub without --compat and checks that each
// 0.x form is refused or ignored there. Every topic carries this run's
// random prefix, and negative checks ("X never arrives") wait for a
// sentinel published after X.
//
// Covered: `topic=` selectors (URI Templates per RFC 6570, plain strings,
// `*`, several per connection, beside `match=` and `match_urlpattern=`);
// tokens of the `mercure` claim (no typ, aud, exp nor iss) for publishing
// and private subscriptions, with current tokens beside them; the 0.x token
// locations (the `authorization` query parameter, the `mercureAuthorization`
// cookie) and their precedence (header, then query, then the configured
// cookie, then the legacy one); the `Last-Event-ID` response header and
// resuming (`last_event_id`, the Last-Event-ID request header, the
// browser's own reconnection); the 0.x subscription events and the
// `/.well-known/mercure/subscriptions/{topic}[/{subscriber}]` routes.
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test hub-compat.test.mjs

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import {
  ISSUER,
  buildHub,
  grant,
  hubToken,
  legacyToken,
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

const KEY = newKey();
/** A 0.x publisher token: the `mercure` claim alone, no iss, aud nor exp. */
const LEGACY_PUB = legacyToken(KEY, { publish: ['*'] });
/** The same claim signed with a key the hub does not know. */
const FORGED = legacyToken(newKey(), { publish: ['*'], subscribe: ['*'] });

const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';
/** The 0.x way to watch every 0.x subscription: a URI Template. */
const WATCH_0X = `${SUBSCRIPTIONS}/{topic}/{subscriber}`;
/** The legacy grant covering the whole subscription API and its events. */
const API_0X = `${SUBSCRIPTIONS}{/topic}{/subscriber}`;

/** The flags of the hub under test, --compat aside. */
const flags = (key) => ['--issuer', ISSUER, '--jwt-key', key, '--anonymous', '--subscriptions'];

let browser;
let compat;
/** A current publisher token for the compat hub (header-presented). */
let PUB;

before(async () => {
  buildHub();
  compat = await startHub(['--compat', ...flags(KEY)]);
  PUB = publisherToken(KEY, ['*'], { aud: compat.hub });
  browser = await launchChromium();
}, { timeout: 900000 });

after(async () => {
  await browser?.close();
  await stopAllHubs();
});

// ------------------------------------------------------------ helpers

/**
 * A cookie for `hub`. Chromium takes a `__Secure-` cookie for plain-HTTP
 * 127.0.0.1 (a secure context) only when it is Secure and set by domain.
 */
function cookie(hub, name, value) {
  if (name.startsWith('__Secure-')) return { name, value, domain: '127.0.0.1', path: '/', secure: true };
  return { name, value, url: hub.base };
}

/**
 * A fresh browser context holding `cookies`, with a page on the hub's
 * /healthz and window.hubt talking to `hub`; closed when `t` ends.
 */
async function openPage(t, hub, cookies = []) {
  const context = await browser.newContext();
  t.after(() => context.close());
  if (cookies.length > 0) await context.addCookies(cookies);
  const page = await context.newPage();
  const url = `${hub.base}/healthz`;
  const response = await page.goto(url);
  assert.equal(response.status(), 200, `GET ${url}`);
  await page.evaluate(pageHelpers, hub.base);
  return page;
}

/** The hub URL of `hub` with the query `params` ([name, value] pairs). */
function hubUrl(hub, params) {
  const url = new URL(hub.hub);
  for (const [name, value] of params) url.searchParams.append(name, value);
  return url.href;
}

const subscribe = (page, name, params, options = {}) =>
  page.evaluate(([n, p, o]) => window.hubt.subscribe(n, p, o), [name, params, options]);
const until = (page, name, cond, ms = STEP) =>
  page.evaluate(([n, c, m]) => window.hubt.until(n, c, m), [name, cond, ms]);
const publish = (page, token, fields) =>
  page.evaluate(([tok, f]) => window.hubt.publish(tok, f), [token, fields]);
const request = (page, url, options = {}) =>
  page.evaluate(([u, o]) => window.hubt.request(u, o), [url, options]);

/** Publishes from the page; asserts 200 and returns the id. */
async function published(page, fields, token = PUB) {
  const answer = await publish(page, token, fields);
  assert.equal(answer.status, 200, `publish ${JSON.stringify(fields)}: ${JSON.stringify(answer)}`);
  assert.ok(answer.body.length > 0, 'publish answered an empty id');
  return answer.body;
}

/** Subscribes and waits until the connection is open. */
async function subscribed(page, name, params, options) {
  await subscribe(page, name, params, options);
  await until(page, name, { opens: 1 });
}

const datas = (snapshot) => snapshot.events.map((e) => e.data);

/** RFC 6570 simple expansion of one value: everything but unreserved is encoded. */
const expand = (value) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The documents of the subscription events `snapshot` holds, parsed. */
const documents = (snapshot) => snapshot.events.filter((e) => e.type === 'mercure').map((e) => JSON.parse(e.data));

// ------------------------------------------------------------ the tests

test('topic= with URI Templates (RFC 6570): {id} stands for one segment, {+path} for several', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, compat);
  await subscribed(page, 'books', [['topic', T('books/{id}')]]);
  await subscribed(page, 'shelf', [['topic', T('shelf/{+path}')]]);

  const sent = [
    [T('books/7'), 'book 7'],
    [T('books/7/chapters'), 'a chapter: {id} never expands to a /'],
    [T('authors/7'), 'an author'],
    [T('shelf/a/b?c=d'), 'deep on the shelf'],
    [T('books/8'), 'book 8'],
    [T('shelf/end'), 'shelf end'],
    [T('books/end'), 'books end'],
  ];
  const ids = {};
  for (const [topic, data] of sent) ids[data] = await published(page, { topic, data });

  const books = await until(page, 'books', { data: 'books end' });
  assert.deepEqual(datas(books), ['book 7', 'book 8', 'books end']);
  assert.deepEqual(books.events.map((e) => e.id), ['book 7', 'book 8', 'books end'].map((d) => ids[d]));
  const shelf = await until(page, 'shelf', { data: 'shelf end' });
  assert.deepEqual(datas(shelf), ['deep on the shelf', 'shelf end']);
});

test('plain-string topics, topic=*, several topic= on one connection: each update once, in publish order', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, compat);
  const plain = `urn:${RUN}:plain`;
  await subscribed(page, 'several', [
    ['topic', T('several/a')],
    ['topic', T('several/b')],
    ['topic', T('several/{x}')],
    ['topic', plain],
    // Not a valid template (unbalanced brace): compared as a plain string.
    ['topic', T('odd/{')],
  ]);
  await subscribed(page, 'all', [['topic', '*']]);

  const sent = [
    [T('several/a'), 'a (exact and template)'],
    [T('several/c'), 'c (template)'],
    [plain, 'plain string'],
    [T('odd/{'), 'the unbalanced brace itself'],
    [T('odd/x'), 'not selected'],
    [T('several/deep/1'), 'too deep'],
    [T('several/b'), 'b (exact and template)'],
    [T('several/end'), 'end'],
  ];
  for (const [topic, data] of sent) await published(page, { topic, data });

  const several = await until(page, 'several', { data: 'end' });
  assert.deepEqual(datas(several), [
    'a (exact and template)',
    'c (template)',
    'plain string',
    'the unbalanced brace itself',
    'b (exact and template)',
    'end',
  ]);
  const all = await until(page, 'all', { data: 'end' });
  assert.deepEqual(datas(all), sent.map(([, data]) => data), 'topic=* selects every topic');
});

test('topic= beside match= and match_urlpattern= on one connection: each update once', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, compat);
  await subscribed(page, 's', [
    ['topic', T('mix/{id}')],
    ['match', T('mix/exact')],
    ['match_urlpattern', T('mix/p/:id')],
  ]);
  const sent = [
    [T('mix/1'), 'template'],
    [T('mix/exact'), 'exact and template'],
    [T('mix/p/1'), 'pattern'],
    [T('mix/q/1'), 'none of them'],
    [T('mix/p/2'), 'pattern again'],
    [T('mix/end'), 'end'],
  ];
  for (const [topic, data] of sent) await published(page, { topic, data });
  assert.deepEqual(
    datas(await until(page, 's', { data: 'end' })),
    ['template', 'exact and template', 'pattern', 'pattern again', 'end'],
  );
});

test('legacy tokens (the mercure claim) publish and read private updates by URI Template selectors; current tokens beside them', { timeout: 40000 }, async (t) => {
  const page = await openPage(t, compat);
  const books = T('legacy/books/{id}');

  // Publishing: the claim's selectors are URI Templates too.
  const narrow = legacyToken(KEY, { publish: [books] });
  await published(page, { topic: T('legacy/books/0'), data: 'narrow publisher' }, narrow);
  const outside = await publish(page, narrow, { topic: T('legacy/authors/0'), data: 'x' });
  assert.equal(outside.status, 403, JSON.stringify(outside));
  assert.match(outside.wwwAuthenticate ?? '', /error="insufficient_scope"/);
  // An iss naming no trusted issuer is no refusal here: the sole issuer's
  // key verifies it, as 0.x hubs had no issuers at all.
  const otherIss = legacyToken(KEY, { publish: ['*'], extra: { iss: 'https://other.test' } });
  await published(page, { topic: T('legacy/books/0'), data: 'another iss' }, otherIss);
  // Still verified: the signature, and exp when present.
  const refused = {
    'an unknown key': FORGED,
    'an exp in the past': legacyToken(KEY, { publish: ['*'], exp: Math.floor(Date.now() / 1000) - 60 }),
  };
  for (const [why, token] of Object.entries(refused)) {
    const answer = await publish(page, token, { topic: T('legacy/books/0'), data: 'x' });
    assert.equal(answer.status, 401, `${why}: ${JSON.stringify(answer)}`);
    assert.match(answer.wwwAuthenticate ?? '', /error="invalid_token"/, why);
  }

  // Subscribing: a 0.x subscriber, a current one (its cookie, in its own
  // browser), and a current-dialect token with none of typ, aud, exp, iss.
  const legacy = legacyToken(KEY, { subscribe: [books] });
  await subscribed(page, 'legacy', [
    ['topic', books],
    ['topic', T('legacy/secret/{id}')],
    ['authorization', legacy],
  ]);
  const current = subscriberToken(KEY, [urlPattern(T('legacy/books/:id'))], { aud: compat.hub });
  const modernPage = await openPage(t, compat, [cookie(compat, '__Secure-mercure_access_token', current)]);
  await subscribed(modernPage, 'current', [['match_urlpattern', T('legacy/books/:id')]]);
  const relaxed = hubToken(KEY, [grant(['subscribe'], [urlPattern(T('legacy/books/:id'))])], {
    header: { alg: 'HS256', typ: 'JWT' },
    extra: { iss: undefined, exp: undefined },
  });
  await subscribed(page, 'relaxed', [['match_urlpattern', T('legacy/books/:id')], ['authorization', relaxed]]);

  const b1 = await published(page, { topic: T('legacy/books/1'), data: 'private 1', private: 'on' }, LEGACY_PUB);
  // The legacy subscriber selects secret/*, its token does not grant it.
  await published(page, { topic: T('legacy/secret/1'), data: 'private secret', private: 'on' }, LEGACY_PUB);
  await published(page, { topic: T('legacy/secret/2'), data: 'public secret' }, LEGACY_PUB);
  const b2 = await published(page, { topic: T('legacy/books/2'), data: 'private 2', private: 'on' }, PUB);
  await published(page, { topic: T('legacy/books/end'), data: 'end' }, LEGACY_PUB);

  const got = await until(page, 'legacy', { data: 'end' });
  assert.deepEqual(datas(got), ['private 1', 'public secret', 'private 2', 'end']);
  assert.deepEqual(got.events.filter((e) => e.data.startsWith('private')).map((e) => e.id), [b1, b2]);
  assert.deepEqual(datas(await until(modernPage, 'current', { data: 'end' })), ['private 1', 'private 2', 'end']);
  assert.deepEqual(datas(await until(page, 'relaxed', { data: 'end' })), ['private 1', 'private 2', 'end']);
});

test('0.x token locations: the authorization query parameter, the mercureAuthorization cookie; header, then query, then cookie', { timeout: 40000 }, async (t) => {
  const grantOnly = (topic) => legacyToken(KEY, { subscribe: [T(topic)] });
  const everything = [['topic', T('where/{x}')]];
  // Each subscriber gets the private update its token grants, and the end.
  const byCookie = await openPage(t, compat, [cookie(compat, 'mercureAuthorization', grantOnly('where/cookie'))]);
  await subscribed(byCookie, 'cookie', everything);
  await subscribed(byCookie, 'query', [...everything, ['authorization', grantOnly('where/query')]]);
  const current = subscriberToken(KEY, [T('where/current')], { aud: compat.hub });
  const bothCookies = await openPage(t, compat, [
    cookie(compat, 'mercureAuthorization', grantOnly('where/cookie')),
    cookie(compat, '__Secure-mercure_access_token', current),
  ]);
  await subscribed(bothCookies, 'current', everything);

  for (const where of ['cookie', 'query', 'current']) {
    await published(byCookie, { topic: T(`where/${where}`), data: `private ${where}`, private: 'on' });
  }
  await published(byCookie, { topic: T('where/end'), data: 'end' });
  assert.deepEqual(datas(await until(byCookie, 'cookie', { data: 'end' })), ['private cookie', 'end']);
  assert.deepEqual(datas(await until(byCookie, 'query', { data: 'end' })), ['private query', 'end'],
    'the query parameter wins over the cookie');
  assert.deepEqual(datas(await until(bothCookies, 'current', { data: 'end' })), ['private current', 'end'],
    'the configured cookie wins over mercureAuthorization');

  // Which token counts, told apart by a forged one: the first present is
  // the one validated, with no fallback to the next.
  const valid = grantOnly('where/query');
  const url = (params) => hubUrl(compat, [...everything, ...params]);
  const bearer = (token) => ({ headers: { Authorization: `Bearer ${token}` } });
  const badCookie = await openPage(t, compat, [cookie(compat, 'mercureAuthorization', FORGED)]);
  const cases = [
    ['a forged header before a valid query parameter', byCookie, url([['authorization', valid]]), bearer(FORGED), 401],
    ['a valid header before a forged query parameter', byCookie, url([['authorization', FORGED]]), bearer(valid), 200],
    ['a forged query parameter before a valid cookie', byCookie, url([['authorization', FORGED]]), {}, 401],
    ['a valid query parameter before a forged cookie', badCookie, url([['authorization', valid]]), {}, 200],
    ['the forged cookie alone', badCookie, url([]), {}, 401],
    // Too short to be a token, or given twice: not a token; the cookie counts.
    ['a query parameter too short to be a token', badCookie, url([['authorization', 'x']]), {}, 401],
    ['the query parameter twice', badCookie, url([['authorization', valid], ['authorization', valid]]), {}, 401],
  ];
  for (const [why, onPage, target, options, status] of cases) {
    const answer = await request(onPage, target, options);
    assert.equal(answer.status, status, `${why}: ${JSON.stringify(answer)}`);
  }

  // A token in the URL: no shared cache may keep the stream.
  const inUrl = await request(byCookie, url([['authorization', valid]]));
  assert.equal(inUrl.headers['cache-control'], 'private, no-cache');
  const inCookie = await request(byCookie, url([]));
  assert.equal(inCookie.status, 200);
  assert.notEqual(inCookie.headers['cache-control'], 'private, no-cache');

  // Discovery says so too.
  const metadata = await request(byCookie, '/.well-known/oauth-protected-resource/.well-known/mercure');
  assert.deepEqual(JSON.parse(metadata.body).bearer_methods_supported, ['header', 'query']);
});

test('resume: the Last-Event-ID response header beside Mercure-Last-Event-ID; last_event_id and the request header', { timeout: 30000 }, async (t) => {
  const page = await openPage(t, compat);
  const template = T('resume/{n}');
  const id1 = await published(page, { topic: T('resume/1'), data: 'r1' });
  const id2 = await published(page, { topic: T('resume/2'), data: 'r2' });
  await published(page, { topic: T('elsewhere'), data: 'not selected' });

  await subscribed(page, 'param', [['topic', template], ['last_event_id', id1]]);
  // `lastEventID`, the 0.x spelling, is read too (after `last_event_id`),
  // so 0.x clients that resume with it do not silently miss updates.
  await subscribed(page, 'spelling', [['topic', template], ['lastEventID', id1]]);
  await published(page, { topic: T('resume/3'), data: 'r3' });
  assert.deepEqual(datas(await until(page, 'param', { data: 'r3' })), ['r2', 'r3']);
  assert.deepEqual(datas(await until(page, 'spelling', { data: 'r3' })), ['r2', 'r3']);

  // The resume point, under both names (0.x clients read Last-Event-ID).
  const resumed = async (params, headers = {}) => {
    const answer = await request(page, hubUrl(compat, [['topic', template], ...params]), { headers });
    assert.equal(answer.status, 200, JSON.stringify(answer));
    assert.equal(answer.headers['last-event-id'], answer.headers['mercure-last-event-id'], JSON.stringify(answer.headers));
    return answer.headers['last-event-id'];
  };
  assert.equal(await resumed([['last_event_id', id1]]), id1);
  assert.equal(await resumed([], { 'Last-Event-ID': id2 }), id2);
  assert.equal(await resumed([['last_event_id', id1]], { 'Last-Event-ID': id2 }), id2, 'the header wins');
  assert.equal(await resumed([['last_event_id', 'earliest']]), 'earliest');
  assert.equal(await resumed([['lastEventID', id1]]), id1, 'the 0.x spelling');
  assert.equal(await resumed([['lastEventID', id2], ['last_event_id', id1]]), id1, 'the current spelling wins');
});

test("the browser's reconnection with a legacy cookie token: the stream ends at its exp, Last-Event-ID brings what was missed", { timeout: 40000 }, async (t) => {
  const selector = T('reconnect/{id}');
  const exp = Math.floor(Date.now() / 1000) + 5;
  const short = legacyToken(KEY, { subscribe: [selector], exp });
  const page = await openPage(t, compat, [cookie(compat, 'mercureAuthorization', short)]);
  const toHub = [];
  page.on('response', (response) => {
    const req = response.request();
    if (new URL(req.url()).pathname === '/.well-known/mercure' && req.method() === 'GET') {
      // allHeaders: Last-Event-ID is added below the page, by the network stack.
      toHub.push(Promise.all([req.allHeaders(), response.allHeaders()]));
    }
  });

  await subscribed(page, 's', [['topic', selector]]);
  const id1 = await published(page, { topic: T('reconnect/1'), data: 'u1', private: 'on', retry: '1000' }, LEGACY_PUB);
  await until(page, 's', { data: 'u1' });
  // The same grant without an expiry, for the reconnection.
  await page.context().addCookies([cookie(compat, 'mercureAuthorization', legacyToken(KEY, { subscribe: [selector] }))]);
  await page.evaluate(([tok, a, b]) => window.hubt.publishOnError('s', tok, [
    [['topic', a], ['data', 'u2']],
    [['topic', b], ['data', 'u3'], ['private', 'on']],
  ]), [LEGACY_PUB, T('reconnect/2'), T('reconnect/3')]);
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
  assert.equal(got.errors[0].afterEvents, 1, 'u2 and u3 came by replay');
  const exchanges = await Promise.all(toHub);
  assert.equal(exchanges.length, 2, `requests to the hub: ${JSON.stringify(exchanges)}`);
  const [[firstRequest, firstResponse], [againRequest, againResponse]] = exchanges;
  assert.equal(firstRequest['last-event-id'], undefined);
  assert.equal(firstResponse['last-event-id'], undefined);
  assert.equal(againRequest['last-event-id'], id1, 'the reconnection carries Last-Event-ID');
  assert.equal(againResponse['last-event-id'], id1);
  assert.equal(againResponse['mercure-last-event-id'], id1);
});

test('0.x subscription events and the /subscriptions/{topic}[/{subscriber}] routes', { timeout: 45000 }, async (t) => {
  const page = await openPage(t, compat);
  const selector = T('watched/{id}');
  const exactTopic = T('watched/exact');
  const sentinel = T('watched-sentinel');

  // A 0.x watcher selects 0.x subscriptions by a URI Template; a current
  // one by a URL pattern. Each sees its own dialect's events only.
  const watcher = legacyToken(KEY, { subscribe: [API_0X] });
  await subscribed(page, 'old', [['topic', WATCH_0X], ['authorization', watcher]], { types: ['mercure'] });
  const modernWatcher = subscriberToken(KEY, [urlPattern(`${SUBSCRIPTIONS}/:type/:match/:sub`)], { aud: compat.hub });
  await subscribed(page, 'new', [
    ['match_urlpattern', `${SUBSCRIPTIONS}/:type/:match/:sub`],
    ['match', sentinel],
    ['authorization', modernWatcher],
  ], { types: ['mercure'] });
  // Subscription events are private: an anonymous watcher gets none.
  await subscribed(page, 'anonymous', [['topic', WATCH_0X], ['topic', sentinel]], { types: ['mercure'] });

  // Alice subscribes with topic= and match= on one connection.
  const alice = legacyToken(KEY, { subscribe: [selector, exactTopic], payload: { user: 'alice' } });
  const alicePage = await openPage(t, compat);
  await subscribed(alicePage, 'alice', [['topic', selector], ['match', exactTopic], ['authorization', alice]]);

  const started = documents(await until(page, 'old', { json: { topic: selector, active: true } }));
  const legacy = started.find((d) => d.topic === selector);
  assert.match(legacy.subscriber, /^urn:uuid:/);
  // What 0.x specified: topic, subscriber, active, payload, and this id...
  assert.equal(legacy.id, `${SUBSCRIPTIONS}/${expand(selector)}/${expand(legacy.subscriber)}`);
  assert.deepEqual(legacy, {
    id: legacy.id,
    type: 'subscription',
    subscriber: legacy.subscriber,
    topic: selector,
    active: true,
    payload: { user: 'alice' },
  });
  // ...but in the current shape, as compatibility mode keeps it: plain
  // JSON (no @context), `type` lowercased (0.x said "Subscription"), the
  // `mercure` event type (0.x sent them as plain messages).
  const oldEvents = (await until(page, 'old', { json: { topic: selector } })).events;
  assert.ok(oldEvents.every((e) => e.type === 'mercure'), JSON.stringify(oldEvents));

  const current = documents(await until(page, 'new', { json: { match: exactTopic, active: true } }))
    .find((d) => d.match === exactTopic);
  assert.equal(current.subscriber, legacy.subscriber, "one connection's subscriptions share its subscriber id");
  assert.equal(current.match_type, 'exact');
  assert.equal(current.id, `${SUBSCRIPTIONS}/exact/${expand(exactTopic)}/${expand(current.subscriber)}`);
  assert.deepEqual(current.payload, { user: 'alice' });

  // The 0.x routes: by topic selector, then one subscription.
  const apiAuth = { headers: { Authorization: `Bearer ${watcher}` } };
  const byTopic = `${SUBSCRIPTIONS}/${expand(selector)}`;
  const collection = await request(page, byTopic, apiAuth);
  assert.equal(collection.status, 200, JSON.stringify(collection));
  // 0.x served application/ld+json with a lastEventID member; the cursor is
  // the Link header's now.
  assert.equal(collection.headers['content-type'], 'application/json');
  assert.match(collection.headers.link ?? '', /rel="mercure"; last-event-id="[^"]+"/);
  assert.deepEqual(JSON.parse(collection.body), { id: byTopic, type: 'subscriptions', subscriptions: [legacy] });
  // The token may come in the URL here too.
  const one = await request(page, `${legacy.id}?authorization=${watcher}`);
  assert.equal(one.status, 200, JSON.stringify(one));
  assert.deepEqual(JSON.parse(one.body), legacy);
  // The current routes still answer beside them.
  const exactOne = await request(page, current.id, { headers: { Authorization: `Bearer ${modernWatcher}` } });
  assert.equal(exactOne.status, 200, JSON.stringify(exactOne));
  assert.deepEqual(JSON.parse(exactOne.body), current);
  const all = await request(page, SUBSCRIPTIONS, apiAuth);
  assert.ok(JSON.parse(all.body).subscriptions.some((d) => d.id === legacy.id));
  assert.equal((await request(page, `${byTopic}/urn%3Auuid%3Anobody`, apiAuth)).status, 404);
  assert.equal((await request(page, byTopic)).status, 401, 'the API needs a token');
  const narrow = legacyToken(KEY, { subscribe: [selector] });
  assert.equal((await request(page, byTopic, { headers: { Authorization: `Bearer ${narrow}` } })).status, 403,
    'and one granting the path');

  // Alice leaves: both subscriptions end, each in its dialect.
  await alicePage.evaluate(() => window.hubt.close('alice'));
  const ended = documents(await until(page, 'old', { json: { topic: selector, active: false } }, 20000))
    .find((d) => d.topic === selector && !d.active);
  assert.deepEqual(ended, { ...legacy, active: false });
  await until(page, 'new', { json: { match: exactTopic, active: false } }, 20000);

  await published(page, { topic: sentinel, data: 'end' });
  const old = await until(page, 'old', { json: { topic: selector, active: false } });
  assert.ok(documents(old).every((d) => d.topic !== undefined), '0.x watchers never see current-shape events');
  const fresh = await until(page, 'new', { data: 'end' });
  assert.ok(documents(fresh).every((d) => d.match_type !== undefined), 'current watchers never see 0.x events');
  assert.deepEqual(datas(await until(page, 'anonymous', { data: 'end' })), ['end']);
});

test('without --compat, every 0.x form is refused or ignored', { timeout: 45000 }, async (t) => {
  const modern = await startHub(flags(KEY));
  t.after(() => modern.stop());
  const pub = publisherToken(KEY, ['*'], { aud: modern.hub });
  const grantsPrivate = subscriberToken(KEY, [T('strict/private')], { aud: modern.hub });
  const legacy = legacyToken(KEY, { publish: ['*'], subscribe: ['*'] });
  const page = await openPage(t, modern, [cookie(modern, 'mercureAuthorization', grantsPrivate)]);
  const strict = [['match', T('strict/private')], ['match', T('strict/end')]];

  // topic= is refused (400), where other unknown parameters are ignored,
  // so that a 0.x client fails loudly instead of hearing nothing.
  const templated = await request(page, hubUrl(modern, [['topic', T('strict/{id}')]]));
  assert.equal(templated.status, 400, JSON.stringify(templated));
  await subscribe(page, 'topic', [['topic', T('strict/{id}')]]);
  await until(page, 'topic', { closed: true });

  // A valid token in the authorization parameter or the mercureAuthorization
  // cookie (this page has it) is not looked at: both subscribers are
  // anonymous and miss the private update.
  await subscribed(page, 'query', [...strict, ['authorization', grantsPrivate]]);
  await subscribed(page, 'cookie', strict);
  await published(page, { topic: T('strict/private'), data: 'private', private: 'on' }, pub);
  await published(page, { topic: T('strict/end'), data: 'end' }, pub);
  assert.deepEqual(datas(await until(page, 'query', { data: 'end' })), ['end']);
  assert.deepEqual(datas(await until(page, 'cookie', { data: 'end' })), ['end']);
  const inUrl = await request(page, hubUrl(modern, [...strict, ['authorization', grantsPrivate]]));
  assert.notEqual(inUrl.headers['cache-control'], 'private, no-cache');

  // Tokens of the mercure claim, or without typ: at+jwt, aud, exp or iss: 401.
  const strictGrant = [grant(['publish', 'subscribe'], ['*'])];
  const refused = {
    'the mercure claim': legacy,
    'no typ: at+jwt': hubToken(KEY, strictGrant, { aud: modern.hub, header: { alg: 'HS256', typ: 'JWT' } }),
    'no aud': hubToken(KEY, strictGrant),
    'no exp': hubToken(KEY, strictGrant, { aud: modern.hub, extra: { exp: undefined } }),
    'no iss': hubToken(KEY, strictGrant, { aud: modern.hub, extra: { iss: undefined } }),
  };
  for (const [why, token] of Object.entries(refused)) {
    const published401 = await publish(page, token, { topic: T('strict/end'), data: 'x' });
    assert.equal(published401.status, 401, `publish, ${why}: ${JSON.stringify(published401)}`);
    assert.match(published401.wwwAuthenticate ?? '', /error="invalid_token"/, why);
    const subscribed401 = await request(page, hubUrl(modern, strict), { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(subscribed401.status, 401, `subscribe, ${why}: ${JSON.stringify(subscribed401)}`);
  }

  // Only Mercure-Last-Event-ID answers the resume point.
  const id = await published(page, { topic: T('strict/end'), data: 'resume' }, pub);
  const resumed = await request(page, hubUrl(modern, [...strict, ['last_event_id', id]]));
  assert.equal(resumed.headers['mercure-last-event-id'], id);
  assert.equal(resumed.headers['last-event-id'], undefined);

  // The 0.x subscription routes are not there: one segment is no route,
  // two whose first is no match type are a bad request.
  const everything = { headers: { Authorization: `Bearer ${subscriberToken(KEY, ['*'], { aud: modern.hub })}` } };
  const selector = expand(T('strict/{id}'));
  assert.equal((await request(page, `${SUBSCRIPTIONS}/${selector}`, everything)).status, 404);
  assert.equal((await request(page, `${SUBSCRIPTIONS}/${selector}/urn%3Auuid%3Ax`, everything)).status, 400);

  const metadata = await request(page, '/.well-known/oauth-protected-resource/.well-known/mercure');
  assert.deepEqual(JSON.parse(metadata.body).bearer_methods_supported, ['header']);
});
