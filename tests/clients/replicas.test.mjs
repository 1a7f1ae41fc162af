// Two replicas of an application (crates/ssehub/examples/replicas.rs), each
// with its own Broker on one Redis stream, seen by headless Chromium: a
// publish on one replica reaches the page of the other, with the same id,
// and a page that reconnects to the other replica resumes exactly.
//
// Needs the Redis at 127.0.0.1:6379 (each run uses a stream of its own and
// deletes it after). Run alone with:
//   cd tests/clients && node --test replicas.test.mjs

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';
import { buildExample, startExample } from './lib/example.mjs';

const STREAM = `ssehub-replicas-test-${process.pid}-${Date.now()}`;
const REDIS = 'redis://127.0.0.1:6379';

let a;
let b;
let browser;

before(async () => {
  buildExample('replicas', ['axum', 'redis']);
  a = await startExample('replicas', {}, ['a', REDIS, STREAM]);
  b = await startExample('replicas', {}, ['b', REDIS, STREAM]);
  for (const replica of [a, b]) {
    const ready = await waitFor(async () => (await fetch(`${replica.base}/readyz`)).status === 200, 10000);
    assert.ok(ready, `replica not ready: ${replica.output()}`);
  }
  browser = await launchChromium();
}, { timeout: 660000 });

after(async () => {
  await browser?.close();
  a?.stop();
  b?.stop();
  // The stream and its meta hash ({STREAM}:meta).
  spawnSync('redis-cli', ['-u', REDIS, 'DEL', STREAM, `{${STREAM}}:meta`]);
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 50 ms; true once it holds, false after `ms`. */
async function waitFor(condition, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await condition()) return true;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** Publishes `data` on `replica`; resolves with the id it answered. */
async function publish(replica, data) {
  const response = await fetch(`${replica.base}/publish`, { method: 'POST', body: data });
  const body = await response.text();
  assert.equal(response.status, 200, `publish on ${replica.base}: ${body}`);
  return body;
}

/** The `{data, id}` of every event the replica's page shows, in order. */
const shown = (page) =>
  page.$$eval('#events li', (items) => items.map((li) => ({ data: li.textContent, id: li.dataset.id })));

/** Opens a replica's page and waits until its EventSource is open. */
async function open(replica) {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  assert.equal((await page.goto(`${replica.base}/`)).status(), 200);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'open');
  return page;
}

test('a publish on one replica reaches the pages of both, once each, with the same id and in one order', { timeout: 30000 }, async () => {
  const [onA, onB] = [await open(a), await open(b)];
  const published = [];
  for (const [replica, data] of [[a, 'one from a'], [b, 'two from b'], [a, 'three from a']]) {
    published.push({ data, id: await publish(replica, data) });
  }
  for (const page of [onA, onB]) {
    await page.waitForFunction((n) => document.querySelectorAll('#events li').length >= n, published.length);
    // Nothing more arrives: every event once.
    await sleep(300);
    assert.deepEqual(await shown(page), published);
  }
  assert.match(await onB.textContent('#replica'), /^b$/);
  await onA.close();
  await onB.close();
});

test('a page that drops from one replica resumes on the other with exactly what it missed', { timeout: 30000 }, async () => {
  const onB = await open(b);
  const before = await publish(a, 'seen on b');
  await onB.waitForFunction((id) => [...document.querySelectorAll('#events li')].some((li) => li.dataset.id === id), before);
  const last = await onB.evaluate(() => [...document.querySelectorAll('#events li')].at(-1).dataset.id);
  assert.equal(last, before);
  await onB.close();

  // Missed meanwhile, published on both replicas.
  const missed = [];
  for (const [replica, data] of [[a, 'missed 1'], [b, 'missed 2'], [a, 'missed 3']]) {
    missed.push({ data, id: await publish(replica, data) });
  }

  // The page comes back on replica a, as the browser's reconnection would,
  // with the id it saw last (fetch can send Last-Event-ID, EventSource's
  // first request cannot).
  const onA = await open(a);
  const resumed = await onA.evaluate(async (lastEventId) => {
    const controller = new AbortController();
    const response = await fetch('/events', { headers: { 'Last-Event-ID': lastEventId }, signal: controller.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const events = [];
    const deadline = Date.now() + 5000;
    while (events.length < 3 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => l && !l.startsWith(':')).map((l) => {
          const at = l.indexOf(':');
          return [l.slice(0, at), l.slice(at + 1).replace(/^ /, '')];
        }));
        if ('data' in fields) events.push({ data: fields.data, id: fields.id });
      }
    }
    // Anything beyond what was missed would be a duplicate or foreign.
    const extra = await Promise.race([
      reader.read().then(({ value }) => value ?? ''),
      new Promise((resolve) => setTimeout(() => resolve(''), 300)),
    ]);
    controller.abort();
    return { status: response.headers.get('ssehub-resume'), events, extra: extra.replace(/^(:[^\n]*\n|retry: \d+\n|\n)*/, '') };
  }, last);
  assert.deepEqual(resumed, { status: 'complete', events: missed, extra: '' });

  // And it goes on live: the next publish on b shows on the page on a.
  const live = await publish(b, 'live after the resume');
  await onA.waitForFunction((id) => [...document.querySelectorAll('#events li')].some((li) => li.dataset.id === id), live);
  await onA.close();
});
