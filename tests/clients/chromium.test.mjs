// Conformance of ssehub's example server as seen by headless Chromium's own
// EventSource (the Debian `chromium` package, driven by playwright-core).
// The page is served by the example itself, so every EventSource is
// same-origin.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';

import { BASE, longPayload } from './lib/common.mjs';
import { record } from './lib/record.mjs';
import { sharedTests } from './lib/suite.mjs';


let browser;
let page;

before(async () => {
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const response = await page.goto(`${BASE}/`);
  assert.equal(response.status(), 200);
});

after(async () => {
  await browser?.close();
});

// `record` runs inside the page, against window.EventSource.
sharedTests('chromium', (options) => page.evaluate(record, options));

test('[chromium] ENC-LONG: the 1 MiB payload is compared in the page too', { timeout: 20000 }, async () => {
  // The shared test ships the string back over the DevTools protocol; this
  // one checks it where the browser decoded it.
  const verdict = await page.evaluate(async (want) => {
    const es = new EventSource('/long');
    try {
      const got = await new Promise((resolve, reject) => {
        es.onmessage = (e) => resolve(e.data);
        setTimeout(() => reject(new Error('no message within 10 s')), 10000);
      });
      return { length: got.length, equal: got === want };
    } finally {
      es.close();
    }
  }, longPayload());
  assert.deepEqual(verdict, { length: 1 << 20, equal: true });
});
