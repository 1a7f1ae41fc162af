// Conformance of ssehub's example server as seen by the npm `eventsource`
// package (a WHATWG EventSource for Node, over fetch).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EventSource } from 'eventsource';

import { BASE } from './lib/common.mjs';
import { record } from './lib/record.mjs';
import { sharedTests } from './lib/suite.mjs';

sharedTests('npm eventsource', (options) => record(options, EventSource));

test(
  '[npm eventsource] HTTP-200-TYPE HTTP-NOCACHE HTTP-XACCEL HTTP-NOLEN: response headers of the stream',
  { timeout: 10000 },
  async () => {
    let response;
    const es = new EventSource(`${BASE}/silent`, {
      // Wraps the package's fetch to look at the response it opened.
      fetch: async (url, init) => {
        response = await fetch(url, init);
        return response;
      },
    });
    try {
      await new Promise((resolve, reject) => {
        es.onopen = resolve;
        es.onerror = (e) => reject(new Error(`error: ${e.message ?? e.type}`));
        setTimeout(() => reject(new Error('no open within 1 s')), 1000);
      });
    } finally {
      es.close();
    }
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    assert.match(response.headers.get('cache-control') ?? '', /no-cache|no-store/);
    assert.equal(response.headers.get('x-accel-buffering'), 'no');
    assert.equal(response.headers.get('content-length'), null);
    assert.equal(response.headers.get('content-encoding'), null);
  },
);
