// Screenshots of the hub's two pages for the README, with real traffic:
//   docs/live-view.png  the demo page at "/" of `ssehub --dev`
//   docs/ui.png         the debugger at /.well-known/mercure/debug/ of a
//                       production-style hub (--issuer/--jwt-key,
//                       --anonymous, --debugger)
// Subscribers connect and leave and publishers publish at changing rates
// for about 25 s first, so that the charts have something to show.
//
// Needs tests/clients/install.sh (headless Chromium, playwright-core).
// Run: node scripts/screenshots.mjs   (from the repository root)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { launchChromium } from '../tests/clients/lib/browser.mjs';
import { ROOT } from '../tests/clients/lib/example.mjs';
import { ISSUER, buildHub, newKey, publisherToken, startHub, stopAllHubs } from '../tests/clients/lib/hub.mjs';
import { openSubscriber, publishLoop } from '../tests/clients/lib/traffic.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const DOCS = join(ROOT, 'docs');

/** About 25 s of churn and publishes at changing rates on `hub`. */
async function traffic(hub, token) {
  const topic = 'https://example.com/books/1';
  const subscribers = [];
  for (let i = 0; i < 4; i += 1) subscribers.push(await openSubscriber(hub, [topic, 'https://example.com/authors/1']));
  for (const [everyMs, seconds, joining] of [[200, 5, 3], [40, 6, 5], [15, 6, 4], [80, 6, -6]]) {
    const loop = publishLoop(hub, token, topic, everyMs);
    for (let i = 0; i < Math.abs(joining); i += 1) {
      await sleep((seconds * 1000) / Math.abs(joining) / 2);
      if (joining > 0) subscribers.push(await openSubscriber(hub, [topic]));
      else subscribers.pop()?.close();
    }
    await sleep((seconds * 1000) / 2);
    await loop.stop();
  }
  // Keep a trickle going for the last samples.
  return publishLoop(hub, token, topic, 120);
}

const browser = await launchChromium();
try {
  buildHub();
  mkdirSync(DOCS, { recursive: true });
  const key = newKey();
  const dev = await startHub(['--dev']);
  const prod = await startHub(['--issuer', ISSUER, '--jwt-key', key, '--anonymous', '--debugger']);
  const devToken = (await (await fetch(`${dev.base}/demo/config.json`)).json()).publisherToken;
  const prodToken = publisherToken(key, ['*'], { aud: prod.hub });

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const devPage = await context.newPage();
  await devPage.goto(`${dev.base}/`);
  await devPage.getByTestId('sub-row').first().getByTestId('sub-topic').fill('https://example.com/books/1');
  await devPage.click('#subscribe');
  await devPage.fill('#pub-topic', 'https://example.com/books/1');
  await devPage.fill('#pub-data', '{"title": "Dune"}');
  const debugPage = await context.newPage();
  await debugPage.goto(`${prod.base}/.well-known/mercure/debug/`);
  await debugPage.click('#watch');

  const [devTrickle, prodTrickle] = await Promise.all([traffic(dev.hub, devToken), traffic(prod.hub, prodToken)]);
  await sleep(1500);
  await devPage.screenshot({ path: join(DOCS, 'live-view.png') });
  await debugPage.screenshot({ path: join(DOCS, 'ui.png'), fullPage: false });
  await Promise.all([devTrickle.stop(), prodTrickle.stop()]);
  console.log(`wrote ${join(DOCS, 'live-view.png')} and ${join(DOCS, 'ui.png')}`);
} finally {
  await browser.close();
  await stopAllHubs();
}
