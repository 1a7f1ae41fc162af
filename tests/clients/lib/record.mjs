// The one recording routine both node suites use. It must stay
// self-contained (no imports, no outer variables): the Chromium suite ships
// its source into the page with `page.evaluate`, where it runs against the
// browser's own EventSource; the npm suite passes the package's class.

/**
 * Opens an EventSource on `url` and records everything it reports until an
 * event of a type in `until` arrives, or `durationMs` has passed (when
 * given), or `timeoutMs` runs out. Always closes the EventSource.
 *
 * Returns `{timeline, timedOut, readyState}`; each timeline entry is
 * `{kind: 'open'|'error'|'event', t, readyState, type?, data?, lastEventId?}`
 * with `t` in ms since the EventSource was created.
 */
export async function record(
  { url, types = [], until = [], durationMs = null, timeoutMs = 10000 },
  EventSourceClass = globalThis.EventSource,
) {
  const start = performance.now();
  const es = new EventSourceClass(url);
  const timeline = [];
  const now = () => Math.round((performance.now() - start) * 10) / 10;
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });
  es.addEventListener('open', () => timeline.push({ kind: 'open', t: now(), readyState: es.readyState }));
  es.addEventListener('error', () => timeline.push({ kind: 'error', t: now(), readyState: es.readyState }));
  for (const type of new Set(['message', ...types, ...until])) {
    es.addEventListener(type, (e) => {
      timeline.push({
        kind: 'event',
        t: now(),
        readyState: es.readyState,
        type: e.type,
        data: e.data,
        lastEventId: e.lastEventId,
      });
      if (until.includes(e.type)) finish(false);
    });
  }
  const timers = [setTimeout(() => finish(true), timeoutMs)];
  if (durationMs !== null) timers.push(setTimeout(() => finish(false), durationMs));
  const timedOut = await done;
  timers.forEach(clearTimeout);
  const readyState = es.readyState;
  es.close();
  return { timeline, timedOut, readyState };
}
