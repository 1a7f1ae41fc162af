// The scenarios every EventSource-style client must pass, written once and
// run by each node suite against its own client (npm `eventsource`,
// Chromium). Test names start with the obligation ids of
// shared/SSE-OBLIGATIONS.md they check.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BASE, ENCODING_EXPECTED, longPayload, serverLog, session, show, sleep } from './common.mjs';

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

const events = (timeline) => timeline.filter((entry) => entry.kind === 'event');
const kinds = (timeline) =>
  timeline.map((e) => (e.kind === 'event' ? `${e.type}:${show(e.data)}` : `${e.kind}(${e.readyState})`));

/**
 * Declares the shared tests. `record(options)` runs lib/record.mjs's
 * `record` with the client under test.
 */
export function sharedTests(client, record) {
  const it = (name, fn) => test(`[${client}] ${name}`, { timeout: 20000 }, fn);

  it('ENC-SPLIT ENC-SPACE ENC-EMPTY ENC-UNICODE: every data value arrives exactly', async () => {
    const { timeline, timedOut } = await record({ url: `${BASE}/encoding`, until: ['end'] });
    assert.equal(timedOut, false, `no end event: ${show(kinds(timeline))}`);
    const received = events(timeline)
      .filter((e) => e.type === 'message')
      .map((e) => e.data);
    assert.equal(received.length, ENCODING_EXPECTED.length, `got ${show(received)}`);
    ENCODING_EXPECTED.forEach((expected, i) => {
      assert.equal(received[i], expected, `vector ${i}: got ${show(received[i])}, want ${show(expected)}`);
    });
  });

  it('ENC-EVENT: typed listeners get their type, case preserved; empty type is message', async () => {
    const { timeline, timedOut } = await record({
      url: `${BASE}/types`,
      types: ['Notice', 'notice'],
      until: ['end'],
    });
    assert.equal(timedOut, false, `no end event: ${show(kinds(timeline))}`);
    assert.deepEqual(
      events(timeline).map((e) => [e.type, e.data]),
      [
        ['Notice', 'upper'],
        ['notice', 'lower'],
        ['message', 'untyped'],
        ['message', 'explicit'],
        ['end', ''],
      ],
    );
  });

  it('ENC-ID: lastEventId as sent (leading space kept), kept without id, reset by empty id', async () => {
    const { timeline, timedOut } = await record({ url: `${BASE}/ids`, until: ['end'] });
    assert.equal(timedOut, false, `no end event: ${show(kinds(timeline))}`);
    assert.deepEqual(
      events(timeline).map((e) => [e.data, e.lastEventId]),
      [
        ['1', ' lead'],
        ['2', '…'],
        ['3', '…'],
        ['4', ''],
        ['', ''],
      ],
    );
  });

  it('ENC-LONG: a 1 MiB single-line data payload arrives intact', async () => {
    const { timeline, timedOut } = await record({ url: `${BASE}/long`, until: ['end'], timeoutMs: 15000 });
    assert.equal(timedOut, false, 'no end event');
    const messages = events(timeline).filter((e) => e.type === 'message');
    assert.equal(messages.length, 1, `${messages.length} messages instead of 1`);
    const got = messages[0].data;
    const want = longPayload();
    assert.equal(got.length, want.length, 'length');
    if (got !== want) {
      let i = 0;
      while (got[i] === want[i]) i++;
      assert.fail(`differs from byte ${i}: ${show(got.slice(i, i + 40))} vs ${show(want.slice(i, i + 40))}`);
    }
  });

  it('HTTP-200-TYPE HTTP-HEADERS-NOW: open fires promptly on a stream that never sends', async () => {
    const { timeline } = await record({ url: `${BASE}/silent`, durationMs: 1500 });
    const open = timeline.find((e) => e.kind === 'open');
    assert.ok(open, `no open event within 1.5 s: ${show(kinds(timeline))}`);
    assert.ok(open.t < 1000, `open after ${open.t} ms`);
    assert.equal(open.readyState, OPEN);
    assert.deepEqual(kinds(timeline), ['open(1)'], 'nothing but open');
  });

  it('KA-INTERVAL: 50 ms keep-alives over 600 ms idle dispatch nothing', async () => {
    const { timeline } = await record({ url: `${BASE}/idle`, durationMs: 1200 });
    assert.deepEqual(kinds(timeline), ['open(1)', 'message:"first"', 'message:"last"']);
    const [first, last] = events(timeline);
    assert.ok(last.t - first.t >= 500, `idle gap only ${last.t - first.t} ms`);
  });

  it('KA-INTERVAL: keep-alives after an event with an id dispatch nothing either', async () => {
    const { timeline } = await record({ url: `${BASE}/idle/with-id`, durationMs: 1200 });
    assert.deepEqual(kinds(timeline), ['open(1)', 'message:"first"', 'message:"last"']);
    assert.deepEqual(events(timeline).map((e) => e.lastEventId), ['k1', 'k1']);
  });

  it('CONN-RETRY-ON-CONNECT HTTP-CLEAN-END: reconnects after retry (500 ms) with Last-Event-ID', async () => {
    const name = session('retry');
    const { timeline, timedOut } = await record({
      url: `${BASE}/reconnect/retry?session=${name}`,
      until: ['resumed', 'fresh'],
    });
    assert.equal(timedOut, false, `never resumed: ${show(kinds(timeline))}`);
    // The clean end is a reconnect (CONNECTING), not a failure (CLOSED).
    assert.deepEqual(kinds(timeline), ['open(1)', 'message:"first"', 'error(0)', 'open(1)', 'resumed:"r1"']);
    const log = await serverLog(name);
    assert.equal(log.length, 2, show(log));
    assert.equal(log[0].last_event_id_header, null);
    assert.equal(log[1].last_event_id_header, 'r1');
    const serverGap = log[1].started_ms - log[0].ended_ms;
    assert.ok(serverGap >= 300 && serverGap <= 2500, `server saw a ${serverGap} ms gap, want ≈ 500`);
    const error = timeline.find((e) => e.kind === 'error');
    const reopen = timeline.filter((e) => e.kind === 'open')[1];
    const clientGap = reopen.t - error.t;
    assert.ok(clientGap >= 300 && clientGap <= 2500, `client reopened after ${clientGap} ms, want ≈ 500`);
  });

  it('ENC-ID: after an empty id the reconnect carries no Last-Event-ID', async () => {
    const name = session('reset');
    const { timeline, timedOut } = await record({
      url: `${BASE}/reconnect/reset?session=${name}`,
      until: ['resumed', 'fresh'],
    });
    assert.equal(timedOut, false, `never reconnected: ${show(kinds(timeline))}`);
    assert.deepEqual(
      events(timeline).map((e) => [e.type, e.data, e.lastEventId]),
      [
        ['message', 'a', 'x1'],
        ['message', 'b', ''],
        ['fresh', '', ''],
      ],
    );
    const log = await serverLog(name);
    assert.equal(log.length, 2, show(log));
    assert.equal(log[1].last_event_id_header, null, 'a Last-Event-ID header was sent');
  });

  it('LEI-HEADER: a non-ASCII id ("…") comes back intact in Last-Event-ID', async () => {
    const name = session('unicode');
    const { timeline, timedOut } = await record({
      url: `${BASE}/reconnect/unicode?session=${name}`,
      until: ['resumed', 'fresh'],
    });
    assert.equal(timedOut, false, `never reconnected: ${show(kinds(timeline))}`);
    assert.deepEqual(kinds(timeline), ['open(1)', 'message:"a"', 'error(0)', 'open(1)', 'resumed:"…"']);
    const log = await serverLog(name);
    assert.equal(log[1].last_event_id_header, '…');
  });

  it('CONN-204: a reconnect answered 204 leaves the EventSource CLOSED, no further request', async () => {
    const name = session('stop');
    // retry is 200 ms: watch for well over 3 × 200 ms after the 204.
    const { timeline, readyState } = await record({
      url: `${BASE}/reconnect/stop?session=${name}`,
      durationMs: 1500,
    });
    assert.equal(readyState, CLOSED, `readyState ${readyState}: ${show(kinds(timeline))}`);
    assert.deepEqual(kinds(timeline), ['open(1)', 'message:"only"', 'error(0)', 'error(2)']);
    await sleep(200);
    const log = await serverLog(name);
    assert.deepEqual(
      log.map((r) => [r.status, r.last_event_id_header]),
      [
        [200, null],
        [204, 's1'],
      ],
    );
    const closedAt = timeline.at(-1).t;
    assert.ok(1500 - closedAt >= 600, `only watched ${1500 - closedAt} ms after CLOSED`);
  });

  for (const status of [401, 404]) {
    it(`CONN-ERRORS: a ${status} answer leaves the EventSource CLOSED`, async () => {
      const name = session(`refuse-${status}`);
      const { timeline, readyState } = await record({
        url: `${BASE}/refuse/${status}?session=${name}`,
        durationMs: 1000,
      });
      assert.equal(readyState, CLOSED, `readyState ${readyState}: ${show(kinds(timeline))}`);
      assert.deepEqual(kinds(timeline), ['error(2)']);
      const log = await serverLog(name);
      assert.equal(log.length, 1, `retried: ${show(log)}`);
    });
  }
}

export { CONNECTING, OPEN, CLOSED };
