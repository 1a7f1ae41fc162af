// Headless Chromium for the browser suites: Debian's package, launched with
// the flags this machine's closed network needs (no background networking,
// no component updates, no QUIC).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run tests/clients/install.sh`);
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
