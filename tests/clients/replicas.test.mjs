// Replicas of one application on a shared Redis: the `replicas` example
// (crates/ssehub/examples/replicas.rs), two processes of it on the real
// Redis at 127.0.0.1:6379, each test on a stream key of its own.
//
// - A publish on replica A reaches the page that replica B served, in
//   headless Chromium, with the id A answered (the journal id) on the wire.
// - A page behind a load balancer (a small proxy in this file) loses its
//   connection to B; while it is away events are published; its browser
//   reconnects — with Last-Event-ID, as EventSource does — and the balancer
//   sends it to A, which replays exactly the missed events from Redis, then
//   the live ones: none lost, none twice.
//
// The `before` hook builds the example
//   cargo build -p ssehub --features axum,redis --example replicas
// (a no-op when up to date) and checks that Redis answers. Each test
// deletes its keys at the end: the stream and its `{KEY}:meta` hash, the
// only keys the journal creates (checked before deleting them).
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test replicas.test.mjs

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import { ROOT, startExample } from './lib/example.mjs';

const REDIS_URL = process.env.SSEHUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Per-step wait; each test has its own overall bound. */
const STEP = 15000;
/** A Redis stream id behind an 8-hex-digit epoch: what RedisJournal issues. */
const JOURNAL_ID = /^[0-9a-f]{8}-\d+-\d+$/;

let browser;

before(async () => {
  const build = spawnSync('cargo', ['build', '-p', 'ssehub', '--features', 'axum,redis', '--example', 'replicas'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 600000,
  });
  assert.equal(build.status, 0, `building example replicas failed:\n${build.stderr}`);
  assert.equal(redis('PING'), 'PONG', `no Redis at ${REDIS_URL}`);
  browser = await launchChromium();
}, { timeout: 660000 });

after(async () => {
  await browser?.close();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One redis-cli command against the shared Redis; its output, trimmed. */
function redis(...args) {
  const run = spawnSync('redis-cli', ['-u', REDIS_URL, '--no-raw', ...args], { encoding: 'utf8', timeout: 10000 });
  assert.equal(run.status, 0, `redis-cli ${args.join(' ')}: ${run.error ?? run.stderr}`);
  return run.stdout.trim().replace(/^"(.*)"$/, '$1');
}

/** The keys on the shared Redis that start with `prefix`. */
function keysStartingWith(prefix) {
  const run = spawnSync('redis-cli', ['-u', REDIS_URL, '--raw', '--scan', '--pattern', `${prefix}*`], {
    encoding: 'utf8',
    timeout: 10000,
  });
  assert.equal(run.status, 0, `redis-cli --scan: ${run.error ?? run.stderr}`);
  return run.stdout.split('\n').filter(Boolean).sort();
}

/**
 * Two replicas, `a` and `b`, on a stream key no other run uses; both
 * follow the stream (GET /readyz) before this resolves. `stop()` ends them
 * and deletes the journal's keys, after checking they are the only ones.
 */
async function startReplicas(label) {
  const stream = `ssehub-test:replicas:${label}:${process.pid}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
  const journalKeys = [stream, `{${stream}}:meta`].sort();
  const replicas = [];
  const stop = () => {
    for (const replica of replicas) replica.stop();
    // Both key shapes the journal uses; nothing else is touched.
    const left = [...keysStartingWith(stream), ...keysStartingWith(`{${stream}}`)].sort();
    redis('DEL', ...journalKeys);
    assert.deepEqual(left.filter((key) => !journalKeys.includes(key)), [], 'keys the journal left besides its two');
  };
  try {
    for (const name of ['a', 'b']) {
      replicas.push(await startExample('replicas', { REDIS_URL, REPLICAS_STREAM: stream, REPLICA: name }));
    }
    for (const replica of replicas) {
      const response = await fetch(`${replica.base}/readyz`, { signal: AbortSignal.timeout(STEP) });
      assert.equal(response.status, 200, `not ready: ${await response.text()}\n${replica.output()}`);
    }
  } catch (err) {
    stop();
    throw err;
  }
  const [a, b] = replicas;
  return { a, b, stream, journalKeys, stop };
}

/** POST /publish on `replica`: the id it answered (the event is stored). */
async function publish(replica, text) {
  const response = await fetch(`${replica.base}/publish`, {
    method: 'POST',
    body: text,
    signal: AbortSignal.timeout(STEP),
  });
  const body = (await response.text()).trim();
  assert.equal(response.status, 200, `publish ${JSON.stringify(text)}: ${response.status} ${body}`);
  assert.match(body, JOURNAL_ID, `publish ${JSON.stringify(text)} answered ${JSON.stringify(body)}, not a journal id`);
  return body;
}

/** Opens `url` (a replica's page) and waits until its stream is open. */
async function openPage(context, url) {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'open', null, {
    timeout: STEP,
  });
  return page;
}

/** What the page lists: `{id, data}` per item, as a reader sees it. */
const listed = (page) =>
  page.$$eval('#events li', (items) =>
    items.map((item) => ({ id: item.dataset.id, data: item.lastChild.textContent.trim() })),
  );

/** Waits until the page received at least `n` events. */
async function untilReceived(page, n, label) {
  try {
    await page.waitForFunction((count) => window.received.length >= count, n, { timeout: STEP });
  } catch (err) {
    const received = await page.evaluate(() => window.received);
    assert.fail(`${label}: ${received.length} of ${n} events: ${JSON.stringify(received)} (${err.message})`);
  }
}

/**
 * Opens the raw event stream of `url`; `until(expected)` reads it until
 * `expected` appears: the bytes on the wire, not an EventSource's reading.
 */
async function openWire(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(STEP) });
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    async until(expected) {
      try {
        while (!text.includes(expected)) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
      } catch (err) {
        assert.fail(`waiting for ${JSON.stringify(expected)} on ${url}: ${err.message}; got ${JSON.stringify(text)}`);
      } finally {
        await reader.cancel().catch(() => {});
      }
      assert.ok(text.includes(expected), `${url} ended without ${JSON.stringify(expected)}: ${JSON.stringify(text)}`);
    },
  };
}

test('a publish on replica A reaches the page replica B served, with the journal id A answered', { timeout: 90000 }, async () => {
  const { a, b, journalKeys, stop } = await startReplicas('fanout');
  const context = await browser.newContext();
  try {
    const pageB = await openPage(context, `${b.base}/`);
    const pageA = await openPage(context, `${a.base}/`);
    assert.equal(await pageB.textContent('#replica'), 'b');
    assert.equal(await pageA.textContent('#replica'), 'a');

    // A plain reader of B's stream sees the frame itself.
    const wire = await openWire(`${b.base}/events`);

    const idFromA = await publish(a, 'hello from a');
    await untilReceived(pageB, 1, 'page of B');
    assert.deepEqual(await pageB.evaluate(() => window.received), [{ id: idFromA, data: 'hello from a' }]);
    await wire.until(`id: ${idFromA}\ndata: hello from a\n\n`);

    // And the other way round; every page of every replica lists both,
    // once each, in the journal's order.
    const idFromB = await publish(b, 'hello from b');
    const want = [
      { id: idFromA, data: 'hello from a' },
      { id: idFromB, data: 'hello from b' },
    ];
    for (const [label, page] of [['page of B', pageB], ['page of A', pageA]]) {
      await untilReceived(page, 2, label);
      await page.waitForFunction(() => document.querySelectorAll('#events li').length >= 2, null, { timeout: STEP });
      assert.deepEqual(await page.evaluate(() => window.received), want, label);
      assert.deepEqual(await listed(page), want, `${label}: its list`);
    }
    // Let anything extra arrive before the check that nothing did.
    await sleep(500);
    assert.equal((await pageB.evaluate(() => window.received)).length, 2, 'an event twice on B');
    assert.equal((await pageA.evaluate(() => window.received)).length, 2, 'an event twice on A');
    // The journal made both of its keys (stop() checks it made no others).
    assert.deepEqual([...keysStartingWith(journalKeys[0]), ...keysStartingWith(journalKeys[1])].sort(), journalKeys);
  } finally {
    await context.close();
    stop();
  }
});

/**
 * A load balancer in front of the replicas: forwards each request to
 * `target`. `cut()` ends every open event stream (both sides, like a
 * balancer restart); while `hold` is set new requests wait, until
 * `release()` forwards them to the then `target`. `streams` records every
 * /events request: where it went, its Last-Event-ID and the response's
 * SSEHub-Resume header.
 */
async function startBalancer() {
  const open = new Set();
  const held = [];
  const balancer = {
    target: undefined,
    hold: false,
    held,
    streams: [],
    cut() {
      for (const { res, upstream } of open) {
        upstream.destroy();
        res.destroy();
      }
      open.clear();
    },
    release() {
      balancer.hold = false;
      for (const [req, res] of held.splice(0)) forward(req, res);
    },
  };
  const forward = (req, res) => {
    const target = new URL(balancer.target);
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (response) => {
        if (stream) stream.resume = response.headers['ssehub-resume'];
        res.writeHead(response.statusCode, response.headers);
        response.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    let stream;
    if (req.url.startsWith('/events')) {
      stream = { target: balancer.target, lastEventId: req.headers['last-event-id'] };
      balancer.streams.push(stream);
      const entry = { res, upstream };
      open.add(entry);
      res.on('close', () => open.delete(entry));
    }
    req.pipe(upstream);
  };
  const server = http.createServer((req, res) => {
    if (balancer.hold) held.push([req, res]);
    else forward(req, res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  balancer.base = `http://127.0.0.1:${server.address().port}`;
  balancer.close = () => {
    balancer.cut();
    for (const [, res] of held.splice(0)) res.destroy();
    server.closeAllConnections();
    server.close();
  };
  return balancer;
}

test('a page that loses replica B resumes on replica A with Last-Event-ID: exactly the missed events', { timeout: 90000 }, async () => {
  const { a, b, stop } = await startReplicas('resume');
  const balancer = await startBalancer();
  const context = await browser.newContext();
  try {
    // The page and its stream come from B, through the balancer.
    balancer.target = b.base;
    const page = await openPage(context, `${balancer.base}/`);
    assert.equal(await page.textContent('#replica'), 'b');
    const earlier = [];
    for (const text of ['before 1', 'before 2']) earlier.push({ id: await publish(a, text), data: text });
    await untilReceived(page, 2, 'before the cut');
    assert.deepEqual(await page.evaluate(() => window.received), earlier);

    // B's connection goes; the browser's reconnect waits at the balancer.
    balancer.hold = true;
    balancer.cut();
    await page.waitForFunction(() => document.getElementById('status').textContent === 'reconnecting', null, {
      timeout: STEP,
    });
    const deadline = Date.now() + STEP;
    while (!balancer.held.some(([req]) => req.url.startsWith('/events'))) {
      assert.ok(Date.now() < deadline, 'the browser did not reconnect');
      await sleep(50);
    }

    // Published while the page is away, on both replicas.
    const missed = [];
    for (const [replica, text] of [[a, 'missed 1'], [b, 'missed 2'], [a, 'missed 3']]) {
      missed.push({ id: await publish(replica, text), data: text });
    }
    assert.equal((await page.evaluate(() => window.received)).length, 2, 'events reached a disconnected page');

    // The reconnect goes to A.
    balancer.target = a.base;
    balancer.release();
    await untilReceived(page, 5, 'after resuming on A');
    await page.waitForFunction(() => document.getElementById('status').textContent === 'open', null, {
      timeout: STEP,
    });
    const resumed = balancer.streams.at(-1);
    assert.deepEqual(
      resumed,
      { target: a.base, lastEventId: earlier[1].id, resume: 'complete' },
      'the reconnect: to A, after the last event B delivered, resumed exactly',
    );
    assert.equal(balancer.streams.length, 2, `streams: ${JSON.stringify(balancer.streams)}`);

    // Live again: a publish on B reaches the page through A.
    const live = { id: await publish(b, 'live'), data: 'live' };
    await untilReceived(page, 6, 'live after resuming');
    await sleep(500);
    const want = [...earlier, ...missed, live];
    assert.deepEqual(await page.evaluate(() => window.received), want);
    assert.deepEqual(await listed(page), want, 'the page lists');
    assert.deepEqual(await page.evaluate(() => window.gaps), [], 'gap events');
  } finally {
    await context.close();
    balancer.close();
    stop();
  }
});
