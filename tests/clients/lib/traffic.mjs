// Subscribers and publishers driven from node (fetch), for the suites that
// watch the hub's figures move (ui.test.mjs) and for scripts/screenshots.mjs.

import assert from 'node:assert/strict';

/**
 * Opens a subscription: GET `hubUrl` with `match` parameters `matchers`
 * (and `Authorization: Bearer token` if given). Resolves once the hub
 * answered 200 with an event stream, with `{events, close}`: `events` the
 * data of every message so far, `close()` ends the connection.
 */
export async function openSubscriber(hubUrl, matchers, { token } = {}) {
  const url = new URL(hubUrl);
  for (const match of matchers) url.searchParams.append('match', match);
  const controller = new AbortController();
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(url, { headers, signal: controller.signal });
  assert.equal(response.status, 200, `subscribe ${url}: ${response.status}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = [];
  (async () => {
    const decoder = new TextDecoderStream();
    let buffer = '';
    for await (const chunk of response.body.pipeThrough(decoder)) {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
        if (data.length) events.push(data.join('\n'));
      }
    }
  })().catch(() => { /* closed */ });
  return { events, close: () => controller.abort() };
}

/** POSTs one update (`fields`: object of form fields); returns its id. */
export async function publish(hubUrl, token, fields) {
  const response = await fetch(hubUrl, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });
  const body = await response.text();
  assert.equal(response.status, 200, `publish ${JSON.stringify(fields)}: ${response.status} ${body}`);
  return body;
}

/**
 * Publishes to `topic` every `everyMs` until `stop()` is called; returns
 * `{stop, count}` (`count()`: updates published so far; `stop()` resolves
 * once the publish in flight ended).
 */
export function publishLoop(hubUrl, token, topic, everyMs = 50) {
  let running = true;
  let count = 0;
  const done = (async () => {
    while (running) {
      await publish(hubUrl, token, { topic, data: JSON.stringify({ n: count, at: Date.now() }) });
      count += 1;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    count: () => count,
    stop: async () => {
      running = false;
      await done;
    },
  };
}
