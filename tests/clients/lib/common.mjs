// Shared by the node suites: where the server is, what it must deliver, and
// how to read its per-session request log.

import assert from 'node:assert/strict';

/** Base URL of the conformance example server (set by run.sh). */
export const BASE = (() => {
  const base = process.env.SSE_BASE_URL;
  assert.ok(base, 'SSE_BASE_URL is not set (run tests/clients/run.sh)');
  const url = new URL(base);
  // These tests only ever talk to a server on this machine.
  assert.equal(url.hostname, '127.0.0.1', `SSE_BASE_URL must be on 127.0.0.1, got ${base}`);
  return base.replace(/\/$/, '');
})();

/**
 * What a conforming client receives for each `data` value of /encoding
 * (the example's ENCODING_VECTORS), worked out from WHATWG §9.2.6 rather
 * than from ssehub: every CR, LF or CRLF becomes LF, nothing else changes,
 * and empty data still fires an event.
 */
export const ENCODING_EXPECTED = [
  'a\nb',
  'a\n',
  '\n',
  'a\n\nb',
  'a\nb', // sent as "a\r\nb"
  'a\nb', // sent as "a\rb"
  '  lead',
  '\tx',
  ':colon',
  '',
  'x\u2028y\u2029z\u0085w\u000Bv\u000Cu\u0000t\uFEFFs',
];

/** The /long payload: "0000000,0000001,...", 1 MiB, one line. */
export function longPayload() {
  const parts = [];
  for (let i = 0; i < (1 << 20) / 8; i++) parts.push(String(i).padStart(7, '0') + ',');
  return parts.join('');
}

/** A session name no other test uses, for the server's request log. */
export function session(name) {
  return `${name}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The requests the server saw for `session` (see /log in the example). */
export async function serverLog(session) {
  const response = await fetch(`${BASE}/log?session=${encodeURIComponent(session)}`, {
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(response.status, 200);
  return response.json();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Shows strings with their invisible characters, for assertion messages. */
export const show = (value) => JSON.stringify(value);
