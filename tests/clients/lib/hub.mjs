// The hub (`crates/ssehub-server`, binary `ssehub`) for the browser suite
// hub.test.mjs: building and starting it on 127.0.0.1, minting its access
// tokens (HS256 JWTs, node:crypto only), and the helpers that run inside a
// page served by the hub (EventSource recording, publishing with fetch).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { ROOT } from './example.mjs';

/** The binary: $SSEHUB_BIN (then nothing is built), else cargo's debug build. */
export const HUB_BIN = process.env.SSEHUB_BIN
  ?? join(resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'ssehub');

/** The issuer the suite's hubs trust (`--issuer ISSUER --jwt-key KEY`). */
export const ISSUER = 'https://issuer.test';

/** The hub's resource identifier for a hub URL: the `aud` its tokens carry. */
export const audienceOf = (hubUrl) => hubUrl;

/** A fresh HS256 key for one run. */
export const newKey = () => randomBytes(32).toString('hex');

/** `cargo build -p ssehub-server`; a no-op when up to date or with $SSEHUB_BIN. */
export function buildHub() {
  if (process.env.SSEHUB_BIN) return;
  const build = spawnSync('cargo', ['build', '-p', 'ssehub-server'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 900000,
  });
  assert.equal(build.status, 0, `building the hub failed:\n${build.stderr}`);
}

/** Every hub startHub started and has not stopped yet. */
const running = new Set();

/**
 * Starts `ssehub --listen 127.0.0.1:0 ...flags`. Resolves once its first
 * stdout line is "listening on http://127.0.0.1:PORT", with
 * `{base, hub, output, stop}`: `base` is the origin, `hub` the hub URL
 * (`base` + /.well-known/mercure), `output()` everything it printed so far
 * (stdout and stderr), `stop()` ends it (SIGTERM, then SIGKILL after 5 s).
 */
export async function startHub(flags = [], env = {}) {
  const child = spawn(HUB_BIN, ['--listen', '127.0.0.1:0', ...flags], {
    env: { RUST_LOG: 'info', ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let exited = null;
  const exit = new Promise((resolveExit) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolveExit(exited);
    });
  });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const lines = createInterface({ input: child.stdout });
  const stop = async () => {
    running.delete(stop);
    if (exited) return exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    try {
      return await exit;
    } finally {
      clearTimeout(timer);
    }
  };
  running.add(stop);
  try {
    const base = await new Promise((resolveBase, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`ssehub ${flags.join(' ')} did not start within 15 s: ${output}`)),
        15000,
      );
      child.on('error', (err) => reject(new Error(`cannot run ${HUB_BIN}: ${err.message}`)));
      exit.then(({ code, signal }) => reject(new Error(`ssehub ${flags.join(' ')} exited (${code ?? signal}): ${output}`)));
      lines.once('line', (line) => {
        clearTimeout(timer);
        output += `${line}\n`;
        const match = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (match) resolveBase(match[1]);
        else reject(new Error(`ssehub: unexpected first line ${JSON.stringify(line)}`));
      });
    });
    lines.on('line', (line) => { output += `${line}\n`; });
    return { base, hub: `${base}/.well-known/mercure`, output: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Stops every hub still running (for `after` hooks). */
export async function stopAllHubs() {
  await Promise.all([...running].map((stop) => stop()));
}

// ---------------------------------------------------------------- tokens

/** A compact JWS (HS256 unless the header says otherwise) over `claims`. */
export function signJwt(key, claims, header = { alg: 'HS256', typ: 'at+jwt' }) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  if (header.alg === 'none') return `${signingInput}.`;
  const signature = createHmac('sha256', key).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** The `type` of a Mercure authorization detail (exact string). */
export const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';

/** Topic matcher objects of `authorization_details` (`match_type` is case-sensitive). */
export const exact = (match) => ({ match, match_type: 'exact' });
export const urlPattern = (match) => ({ match, match_type: 'urlpattern' });

/**
 * One Mercure authorization detail. `topics` entries are strings (exact,
 * or `*`) or matcher objects from `exact` / `urlPattern`.
 */
export function grant(actions, topics, payload) {
  const detail = {
    type: DETAIL_TYPE,
    actions,
    topics: topics.map((topic) => (typeof topic === 'string' ? { match: topic } : topic)),
  };
  if (payload !== undefined) detail.payload = payload;
  return detail;
}

/**
 * An access token as the reference hub's `mercure token` command mints one:
 * header `{alg: HS256, typ: at+jwt}`, claims `iss`, `aud`, `sub`,
 * `client_id`, `iat`, `exp` (an hour from now unless given), `jti` and the
 * `authorization_details` array `details`; `extra` adds or overrides claims.
 */
export function hubToken(key, details, { aud, iss = ISSUER, exp, sub, header, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss,
    ...(aud === undefined ? {} : { aud }),
    sub: sub ?? `urn:uuid:${randomUUID()}`,
    client_id: iss,
    iat: now,
    exp: exp ?? now + 3600,
    jti: `urn:uuid:${randomUUID()}`,
    authorization_details: details,
    ...extra,
  };
  return signJwt(key, claims, header);
}

/** A token publishing on `topics` (default: all), for `options.aud`. */
export const publisherToken = (key, topics = ['*'], options) => hubToken(key, [grant(['publish'], topics)], options);
/** A token subscribing to `topics` (default: all), for `options.aud`. */
export const subscriberToken = (key, topics = ['*'], options) => hubToken(key, [grant(['subscribe'], topics)], options);

/**
 * A token of the 0.x dialect (`--compat`): the `mercure` claim with
 * `publish` / `subscribe` topic selectors (and `payload`), no `typ`,
 * `aud` or `iss` needed.
 */
export function legacyToken(key, { publish, subscribe, payload, exp, extra = {} } = {}) {
  const mercure = {};
  if (publish !== undefined) mercure.publish = publish;
  if (subscribe !== undefined) mercure.subscribe = subscribe;
  if (payload !== undefined) mercure.payload = payload;
  return signJwt(key, { mercure, ...(exp === undefined ? {} : { exp }), ...extra }, { alg: 'HS256', typ: 'JWT' });
}

// ------------------------------------------------------- inside the page

/**
 * Installs `window.hubt` in a page: run it with
 * `page.evaluate(pageHelpers, hubBase)`. Self-contained (it is shipped to
 * the page as source). All URLs are built on `hubBase` (an origin).
 *
 * - `subscribe(name, params, {types, withCredentials})`: opens an
 *   EventSource on the hub URL with the query `params` (array of
 *   [name, value]) and records `message` events and events of `types`.
 * - `until(name, cond, timeoutMs)`: waits until the recording satisfies
 *   `cond` ({opens, errors, data, count, closed, published, json}: each
 *   given part must hold; `json` is an object some event's data, parsed,
 *   must agree with on every member given) and returns a snapshot {events, opens, errors, readyState,
 *   onError}; rejects with the snapshot on timeout.
 * - `publishOnError(name, token, updates)`: on the subscription's next
 *   `error` event, publishes `updates` (each an array of [field, value])
 *   at once, from the page.
 * - `publish(token, fields, {credentials, mode})`: POST to the hub
 *   (`token` null: no Authorization header); `fields` is an object or an
 *   array of [field, value]. Returns {status, body, contentType,
 *   wwwAuthenticate} (status 0 for an opaque no-cors answer) or
 *   {status: 'network-error', error}.
 * - `request(url, {headers})`: GET; returns {status, headers, body}, body
 *   null for an event stream (aborted once the headers are in).
 * - `stream(name, params, {token, method, body, headers, credentials})`:
 *   a subscription read with fetch instead of EventSource, so that it can
 *   send `Authorization: Bearer token` (and other `headers`) and use
 *   another method (`QUERY` with `body`, an array of [name, value], as a
 *   form). Its events are parsed as the SSE format says and recorded
 *   like `subscribe`'s, so `until`, `close` and `snapshot` work on it; the
 *   snapshot's `response` is {status, headers, body} (body: the text of a
 *   refusal) and `retries` the `retry` fields seen. It counts one open
 *   once a 200 event stream answers, and one error (then CLOSED) when the
 *   stream ends.
 * - `close(name)`, `snapshot(name)`.
 */
export function pageHelpers(hubBase) {
  const subs = new Map();
  const hubUrl = (params = []) => {
    const url = new URL('/.well-known/mercure', hubBase);
    for (const [key, value] of params) url.searchParams.append(key, value);
    return url.href;
  };
  // Whether `data` is a JSON object with every member of `want`.
  const jsonHas = (data, want) => {
    try {
      const got = JSON.parse(data);
      return Object.entries(want).every(([key, value]) => JSON.stringify(got[key]) === JSON.stringify(value));
    } catch {
      return false;
    }
  };
  const snapshot = (sub) => ({
    events: sub.events.map((e) => ({ ...e })),
    opens: sub.opens,
    errors: sub.errors.map((e) => ({ ...e })),
    readyState: sub.es.readyState,
    onError: sub.onError,
    response: sub.response,
    retries: sub.retries ? [...sub.retries] : undefined,
  });
  async function publish(token, fields, { credentials = 'same-origin', mode = 'cors' } = {}) {
    const body = new URLSearchParams();
    for (const [key, value] of Array.isArray(fields) ? fields : Object.entries(fields)) body.append(key, value);
    const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      const response = await fetch(hubUrl(), {
        method: 'POST',
        headers,
        body,
        credentials,
        mode,
        signal: AbortSignal.timeout(10000),
      });
      return {
        status: response.status,
        body: await response.text(),
        contentType: response.headers.get('content-type'),
        wwwAuthenticate: response.headers.get('www-authenticate'),
      };
    } catch (err) {
      return { status: 'network-error', error: String(err) };
    }
  }
  window.hubt = {
    hubUrl,
    publish,
    subscribe(name, params, { types = [], withCredentials = false } = {}) {
      const es = new EventSource(hubUrl(params), { withCredentials });
      const start = Date.now();
      const sub = { es, events: [], opens: 0, errors: [], waiters: new Set(), pending: null, onError: null };
      const notify = () => { for (const waiter of [...sub.waiters]) waiter(); };
      const onEvent = (e) => {
        sub.events.push({ type: e.type, data: e.data, id: e.lastEventId, t: Date.now() - start });
        notify();
      };
      for (const type of new Set(['message', ...types])) es.addEventListener(type, onEvent);
      es.addEventListener('open', () => {
        sub.opens += 1;
        notify();
      });
      es.addEventListener('error', () => {
        sub.errors.push({ readyState: es.readyState, at: Date.now(), afterEvents: sub.events.length });
        if (sub.pending) {
          const { token, updates } = sub.pending;
          sub.pending = null;
          sub.onError = (async () => {
            const results = [];
            for (const fields of updates) results.push(await publish(token, fields));
            return results;
          })().then((results) => {
            sub.onError = results;
            notify();
          });
        }
        notify();
      });
      subs.set(name, sub);
      return hubUrl(params);
    },
    stream(name, params, { token, method = 'GET', body, headers: extra = {}, credentials = 'same-origin' } = {}) {
      const controller = new AbortController();
      const es = { readyState: 0, close() { controller.abort(); this.readyState = 2; } };
      const start = Date.now();
      const sub = {
        es, events: [], opens: 0, errors: [], waiters: new Set(), pending: null, onError: null,
        response: null, retries: [],
      };
      const notify = () => { for (const waiter of [...sub.waiters]) waiter(); };
      const ended = () => {
        if (es.readyState === 2 && sub.errors.length > 0) return;
        es.readyState = 2;
        sub.errors.push({ readyState: 2, at: Date.now(), afterEvents: sub.events.length });
        notify();
      };
      // The SSE interpretation rules (HTML, "event stream interpretation").
      let lastEventId = '';
      let type = '';
      let data = null;
      const line = (text) => {
        if (text === '') {
          if (data !== null) {
            sub.events.push({ type: type || 'message', data: data.slice(0, -1), id: lastEventId, t: Date.now() - start });
            notify();
          }
          data = null;
          type = '';
          return;
        }
        if (text.startsWith(':')) return;
        const colon = text.indexOf(':');
        const field = colon < 0 ? text : text.slice(0, colon);
        let value = colon < 0 ? '' : text.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data = `${data ?? ''}${value}\n`;
        else if (field === 'event') type = value;
        else if (field === 'id' && !value.includes('\0')) lastEventId = value;
        else if (field === 'retry' && /^[0-9]+$/.test(value)) sub.retries.push(Number(value));
      };
      const headers = { ...extra };
      if (token) headers.Authorization = `Bearer ${token}`;
      let form;
      if (body) {
        form = new URLSearchParams();
        for (const [key, value] of body) form.append(key, value);
        headers['Content-Type'] = 'application/x-www-form-urlencoded';
      }
      (async () => {
        const response = await fetch(hubUrl(params), { method, headers, body: form, credentials, signal: controller.signal });
        sub.response = { status: response.status, headers: Object.fromEntries(response.headers.entries()), body: null };
        if (response.status !== 200 || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          sub.response.body = await response.text();
          ended();
          return;
        }
        es.readyState = 1;
        sub.opens += 1;
        notify();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += value;
          // A CR at the end may be the first half of a CRLF: wait for more.
          const lines = buffer.split(/\r\n|\r(?!$)|\n/);
          buffer = lines.pop();
          for (const text of lines) line(text);
        }
        ended();
      })().catch((err) => {
        sub.response ??= { status: 'network-error', headers: {}, body: String(err) };
        ended();
      });
      subs.set(name, sub);
      return hubUrl(params);
    },
    publishOnError(name, token, updates) {
      subs.get(name).pending = { token, updates };
    },
    until(name, cond, timeoutMs = 10000) {
      const sub = subs.get(name);
      const holds = () =>
        (cond.opens === undefined || sub.opens >= cond.opens) &&
        (cond.errors === undefined || sub.errors.length >= cond.errors) &&
        (cond.count === undefined || sub.events.length >= cond.count) &&
        (cond.data === undefined || sub.events.some((e) => e.data === cond.data)) &&
        (cond.closed === undefined || sub.es.readyState === EventSource.CLOSED) &&
        (cond.published === undefined || Array.isArray(sub.onError)) &&
        (cond.json === undefined || sub.events.some((e) => jsonHas(e.data, cond.json)));
      return new Promise((resolvePromise, reject) => {
        const check = () => {
          if (!holds()) return;
          cleanup();
          resolvePromise(snapshot(sub));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name}: ${JSON.stringify(cond)} not reached within ${timeoutMs} ms; got ${JSON.stringify(snapshot(sub))}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          sub.waiters.delete(check);
        };
        sub.waiters.add(check);
        check();
      });
    },
    snapshot: (name) => snapshot(subs.get(name)),
    close(name) {
      subs.get(name)?.es.close();
    },
    async request(url, { headers = {}, method = 'GET', credentials = 'same-origin' } = {}) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 10000);
      try {
        const response = await fetch(new URL(url, hubBase), { method, headers, credentials, signal: controller.signal });
        const headerMap = Object.fromEntries(response.headers.entries());
        let body = null;
        if ((headerMap['content-type'] ?? '').startsWith('text/event-stream')) controller.abort();
        else body = await response.text();
        return { status: response.status, headers: headerMap, body };
      } catch (err) {
        return { status: 'network-error', error: String(err) };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
