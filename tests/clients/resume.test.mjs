// Resume with real reconnects (issue 4): the `resume` example
// (crates/ssehub/examples/resume.rs) publishes on channels a, b and c every
// few milliseconds and closes a random client every 50–300 ms, and
// independent EventSource implementations — the npm `eventsource` package
// and headless Chromium's own — reconnect with Last-Event-ID each time.
// Over all its connections, each client must receive exactly what was
// published on its topics, merged in publish order: no gap, no duplicate.
//
// Each test starts its own server (target/debug/examples/resume on
// 127.0.0.1:0, built by the `before` hook) and:
//   1. opens its clients with `lastEventId=earliest`, so their first
//      connection starts from the first event published;
//   2. runs for RUN_MS, and on until the server's chaos task has dropped
//      every client at least MIN_DROPS times (at most MAX_RUN_MS);
//   3. POST /stop: publishing and dropping stop; the answer is everything
//      that was published, in publish order;
//   4. waits until every client has caught up, then compares.
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test resume.test.mjs

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { EventSource } from 'eventsource';
import { launchChromium } from './lib/browser.mjs';

import { buildExample, startExample } from './lib/example.mjs';

/** Least time the clients run under chaos. */
const RUN_MS = 5000;
/** Least number of server-side drops of every client. */
const MIN_DROPS = 3;
/** Most time the clients run under chaos, waiting for MIN_DROPS. */
const MAX_RUN_MS = 20000;
/** How long the clients get to catch up after /stop. */
const CATCH_UP_MS = 15000;
/** EventSource readyState values. */
const OPEN = 1;
const CLOSED = 2;

before(() => buildExample('resume'), { timeout: 660000 });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function getJSON(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 200, `${init.method ?? 'GET'} ${url}`);
  return response.json();
}

/** Polls `condition` every 50 ms; true once it holds, false after `ms`. */
async function waitFor(condition, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** The query naming a client `name` that subscribes to `topics`. */
const query = (name, topics) =>
  `${topics.map((t) => `topic=${encodeURIComponent(t)}`).join('&')}&client=${encodeURIComponent(name)}`;

/** `{"channel":"a","n":17}` -> "a17". */
const key = ({ channel, n }) => `${channel}${n}`;

/**
 * Asserts that `got` is exactly `want` (arrays of keys); on failure says
 * where they part and what is missing, repeated or foreign.
 */
function assertSameSequence(got, want, label) {
  if (got.length === want.length && got.every((k, i) => k === want[i])) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  const seen = new Map();
  for (const k of got) seen.set(k, (seen.get(k) ?? 0) + 1);
  const repeated = [...seen].filter(([, count]) => count > 1).map(([k]) => k);
  const missing = want.filter((k) => !seen.has(k));
  const wanted = new Set(want);
  const foreign = got.filter((k) => !wanted.has(k));
  const around = (list) => JSON.stringify(list.slice(Math.max(0, i - 3), i + 5));
  assert.fail(
    `${label}: received ${got.length} events, ${want.length} were published on its topics; ` +
      `first difference at index ${i}: received ${around(got)}, published ${around(want)}; ` +
      `missing ${missing.length} ${JSON.stringify(missing.slice(0, 20))}; ` +
      `repeated ${repeated.length} ${JSON.stringify(repeated.slice(0, 20))}; ` +
      `not on its topics ${foreign.length} ${JSON.stringify(foreign.slice(0, 20))}`,
  );
}

/**
 * Every event carries a broker-generated id — `EEEEEEEE-P`, the broker's
 * epoch and the event's publish position (see BrokerConfig::generate_ids)
 * — all of one epoch, with positions rising strictly.
 */
function assertIds(received, label) {
  let epoch;
  let previous = 0;
  received.forEach(({ data, lastEventId }, i) => {
    assert.ok(lastEventId, `${label}: event ${i} (${data}) has no lastEventId`);
    const match = /^([0-9a-f]{8})-(\d+)$/.exec(lastEventId);
    assert.ok(match, `${label}: event ${i} (${data}) has id ${JSON.stringify(lastEventId)}, not a generated one`);
    epoch ??= match[1];
    assert.equal(match[1], epoch, `${label}: event ${i} (${data}) is of another epoch`);
    const position = Number(match[2]);
    assert.ok(position > previous, `${label}: event ${i} (${data}) has position ${position} after ${previous}`);
    previous = position;
  });
}

/**
 * Runs `clients` against `server` under chaos and checks each. A client is
 * `{name, topics, snapshot(), close()}`; `snapshot()` resolves with
 * `{received: [{data, lastEventId}], opens: [events received before each
 * open], errors, gaps: [gap event data], readyState}`.
 */
async function exercise(t, server, clients) {
  const started = Date.now();
  const stats = () => getJSON(`${server.base}/stats`);
  const names = clients.map((c) => c.name);

  // 1–2. Chaos for RUN_MS, and until every client was dropped MIN_DROPS times.
  await sleep(RUN_MS);
  await waitFor(async () => {
    const { clients: perClient } = await stats();
    return names.every((name) => (perClient[name]?.dropped ?? 0) >= MIN_DROPS);
  }, MAX_RUN_MS - RUN_MS);
  for (const client of clients) {
    const { readyState } = await client.snapshot();
    assert.notEqual(readyState, CLOSED, `${client.name} gave up reconnecting`);
  }

  // 3. Stop.
  const published = await getJSON(`${server.base}/stop`, { method: 'POST' });
  const chaosMs = Date.now() - started;

  // 4. Catch up: every client has its topics' last event and is connected,
  // and the server has seen every connection it opened. Then a moment more,
  // for anything that would arrive twice.
  const expected = new Map(clients.map((c) => [c.name, published.filter((p) => c.topics.includes(p.channel)).map(key)]));
  await waitFor(async () => {
    const { clients: perClient } = await stats();
    for (const client of clients) {
      const want = expected.get(client.name);
      const { received, opens, readyState } = await client.snapshot();
      const last = received.at(-1);
      const caughtUp = received.length >= want.length || (last && key(JSON.parse(last.data)) === want.at(-1));
      if (!caughtUp || readyState !== OPEN || perClient[client.name]?.connections !== opens.length) return false;
    }
    return true;
  }, CATCH_UP_MS);
  await sleep(500);

  const final = await stats();
  for (const client of clients) {
    const { received, opens, errors, gaps } = await client.snapshot();
    await client.close();
    const label = `${client.name} [${client.topics}]`;
    const seen = final.clients[client.name];
    t.diagnostic(
      `${label}: ${received.length} events over ${opens.length} connections ` +
        `(${seen?.dropped} dropped by the server, ${errors} error events), ` +
        `${seen?.with_last_event_id} requests with Last-Event-ID`,
    );

    assertSameSequence(received.map((e) => key(JSON.parse(e.data))), expected.get(client.name), label);
    assertIds(received, label);
    assert.deepEqual(gaps, [], `${label}: the broker signalled a gap`);

    assert.ok(seen, `${label}: the server never saw it`);
    assert.ok(seen.dropped >= MIN_DROPS, `${label}: dropped only ${seen.dropped} times`);
    assert.ok(errors >= MIN_DROPS, `${label}: only ${errors} error events`);
    assert.ok(opens.length > MIN_DROPS, `${label}: only ${opens.length} connections`);
    assert.equal(seen.connections, opens.length, `${label}: the server saw ${seen.connections} connections, the client ${opens.length}`);
    // Every reconnect after the client had an event sent Last-Event-ID,
    // and every connection (the first asked for `earliest`) resumed exactly.
    const withId = opens.filter((before) => before > 0).length;
    assert.equal(seen.with_last_event_id, withId, `${label}: requests with Last-Event-ID`);
    assert.ok(withId >= MIN_DROPS, `${label}: only ${withId} reconnects with an id`);
    assert.equal(seen.resumed_complete, seen.connections, `${label}: every connection resumed exactly`);
    assert.equal(seen.resumed_gap, 0, `${label}: resumes with a gap`);
  }
  const channels = new Set(published.map((p) => p.channel));
  t.diagnostic(
    `${published.length} events published on ${[...channels].sort()} over ${(chaosMs / 1000).toFixed(1)} s of chaos; ` +
      `${Object.values(final.clients).reduce((sum, c) => sum + c.connections, 0)} connections in all`,
  );
}

test('[npm eventsource] 3 clients dropped at random while publishing get every event of their topics once, in order', { timeout: 90000 }, async (t) => {
  const server = await startExample('resume');
  const clients = [];
  try {
    for (const [name, topics] of [['npm-a', ['a']], ['npm-ab', ['a', 'b']], ['npm-bc', ['b', 'c']]]) {
      const es = new EventSource(`${server.base}/events?${query(name, topics)}&lastEventId=earliest`);
      const state = { received: [], opens: [], errors: 0, gaps: [] };
      es.addEventListener('open', () => state.opens.push(state.received.length));
      es.addEventListener('error', () => { state.errors++; });
      es.addEventListener('message', (e) => state.received.push({ data: e.data, lastEventId: e.lastEventId }));
      es.addEventListener('ssehub-gap', (e) => state.gaps.push(e.data));
      clients.push({
        name,
        topics,
        snapshot: async () => ({ ...state, readyState: es.readyState }),
        close: async () => es.close(),
      });
    }
    await exercise(t, server, clients);
  } finally {
    for (const client of clients) await client.close();
    server.stop();
  }
});

test('[chromium] pages dropped at random while publishing get every event of their topics once, in order', { timeout: 90000 }, async (t) => {
  const server = await startExample('resume');
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    const clients = [];
    for (const [name, topics] of [['chromium-ac', ['a', 'c']], ['chromium-b', ['b']]]) {
      const page = await context.newPage();
      page.setDefaultTimeout(15000);
      const pageErrors = [];
      page.on('pageerror', (err) => pageErrors.push(err));
      // The page itself asks for `lastEventId=earliest` on its first connection.
      const response = await page.goto(`${server.base}/?${query(name, topics)}`);
      assert.equal(response.status(), 200);
      clients.push({
        name,
        topics,
        snapshot: () => page.evaluate(() => ({
          received: window.received,
          opens: window.opens,
          errors: window.errors,
          gaps: window.gaps,
          readyState: window.source.readyState,
        })),
        close: async () => {
          await page.evaluate(() => window.source.close());
          assert.deepEqual(pageErrors, [], `${name}: errors in the page`);
        },
      });
    }
    await exercise(t, server, clients);
  } finally {
    await browser.close();
    server.stop();
  }
});
