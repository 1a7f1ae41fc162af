// The four documentation examples (crates/ssehub/examples/{dashboard,
// notifications,logs,progress}.rs) driven through their own HTML pages in
// headless Chromium (the Debian `chromium` package, via playwright-core):
// what a reader sees when they open the page is what is checked.
//
// The `before` hook builds the examples
//   cargo build -p ssehub --features axum --examples
// (a no-op when they are up to date) and every test starts its example from
// target/debug/examples/<name> on 127.0.0.1:0, reading the address from the
// first line it prints ("listening on http://ADDR"). SSEHUB_TEST_HOOKS=1
// turns on the examples' test-only route POST /debug/drop-connections,
// which closes every broker client on the server side.
//
// Run with tests/clients/run.sh, or alone:
//   cd tests/clients && node --test examples.test.mjs

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/browser.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug', 'examples');
/** Per-step wait in the browser; each test has its own overall bound. */
const STEP = 15000;

let browser;
const servers = [];

before(async () => {
  const build = spawnSync('cargo', ['build', '-p', 'ssehub', '--features', 'axum', '--examples'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 600000,
  });
  assert.equal(build.status, 0, `building the examples failed:\n${build.stderr}`);
  browser = await launchChromium();
}, { timeout: 660000 });

after(async () => {
  await browser?.close();
  for (const server of servers) server.kill();
});

/**
 * Starts example `name` on an ephemeral port; resolves once it printed
 * "listening on http://ADDR", with its base URL and `line(regex)`, which
 * waits for a later line of its output matching `regex`.
 */
async function startExample(name, env = {}, addr = '127.0.0.1:0') {
  const child = spawn(join(EXAMPLES, name), [addr], {
    env: { ...process.env, SSEHUB_TEST_HOOKS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const lines = [];
  const waiters = new Set();
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters) waiter();
  });
  const line = (regex, ms = 10000) => new Promise((resolvePromise, reject) => {
    const check = () => {
      const match = lines.map((l) => regex.exec(l)).find(Boolean);
      if (match) {
        waiters.delete(check);
        clearTimeout(timer);
        resolvePromise(match);
      }
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`${name}: no line matching ${regex} within ${ms} ms; got ${JSON.stringify(lines)}; stderr: ${stderr}`));
    }, ms);
    waiters.add(check);
    check();
  });
  const exited = new Promise((_, reject) => {
    child.on('exit', (code) => reject(new Error(`${name} exited (${code}): ${stderr}`)));
  });
  exited.catch(() => {}); // only an error while starting matters
  const [, base] = await Promise.race([line(/^listening on (http:\/\/127\.0\.0\.1:\d+)$/), exited]);
  assert.match(lines[0], /^listening on /, 'the first line names the address');
  const exit = new Promise((resolveExit) => child.on('exit', resolveExit));
  return { base, line, stop: () => child.kill(), exited: exit };
}

async function newPage(context, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  page.errors = errors;
  return page;
}

async function post(url, body) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Titles of the notifications shown on a notifications page, newest first. */
const titles = (page) => page.$$eval('#list li b', (bs) => bs.map((b) => b.textContent));
const waitForTitle = (page, title) =>
  page.waitForFunction((t) => [...document.querySelectorAll('#list li b')].some((b) => b.textContent === t), title);

test('notifications: per-user channels reach every tab of the user, broadcast reaches all, and tabs reconnect after a server-side drop', { timeout: 60000 }, async () => {
  const server = await startExample('notifications');
  const context = await browser.newContext();
  try {
    const alice1 = await newPage(context, `${server.base}/?user=alice`);
    const alice2 = await newPage(context, `${server.base}/?user=alice`);
    const bob = await newPage(context, `${server.base}/?user=bob`);
    const pages = [alice1, alice2, bob];
    for (const page of pages) await page.waitForFunction(() => window.states.includes('open'));
    assert.deepEqual(await (await fetch(`${server.base}/notifications/online`)).json(), { alice: 2, bob: 1 });

    // Bob uses the page's form to notify alice.
    await bob.fill('#to', 'alice');
    await bob.fill('#title', 'For alice');
    await bob.fill('#message', 'only alice sees this');
    await bob.click('#send button');
    await bob.waitForFunction(() => document.getElementById('result').textContent === 'sent to 2 open tabs');
    await waitForTitle(alice1, 'For alice');
    await waitForTitle(alice2, 'For alice');

    // A broadcast reaches every tab.
    const everyone = await post(`${server.base}/notifications/send`, { title: 'For everyone', message: 'hi all', type: 'warning' });
    assert.equal(everyone.status, 200);
    for (const page of pages) await waitForTitle(page, 'For everyone');
    assert.deepEqual(await titles(bob), ['For everyone'], 'bob must not see alice’s notification');
    assert.deepEqual(await titles(alice1), ['For everyone', 'For alice']);
    assert.deepEqual(await titles(alice2), ['For everyone', 'For alice']);

    // A user who never connected has no channel.
    const nobody = await post(`${server.base}/notifications/send`, { user_id: 'zed', title: 'x' });
    assert.equal(nobody.status, 404);

    // The server drops every connection; a notification sent while the
    // tabs wait to reconnect (3 s) is replayed to alice's tabs by the broker
    // (Last-Event-ID), and new notifications flow once they are back.
    assert.equal((await post(`${server.base}/debug/drop-connections`)).status, 204);
    assert.equal((await post(`${server.base}/notifications/send`, { user_id: 'alice', title: 'While away' })).status, 200);
    for (const page of pages) {
      await page.waitForFunction(() => window.states.length >= 3);
      assert.deepEqual((await page.evaluate(() => window.states)).slice(0, 3), ['open', 'reconnecting', 'open']);
      assert.equal(await page.evaluate(() => window.source.readyState), 1 /* OPEN */);
    }
    await waitForTitle(alice1, 'While away');
    await waitForTitle(alice2, 'While away');

    assert.equal((await post(`${server.base}/notifications/send`, { title: 'After reconnect' })).status, 200);
    for (const page of pages) await waitForTitle(page, 'After reconnect');
    assert.deepEqual(await titles(alice1), ['After reconnect', 'While away', 'For everyone', 'For alice']);
    assert.deepEqual(await titles(alice2), ['After reconnect', 'While away', 'For everyone', 'For alice']);
    assert.deepEqual(await titles(bob), ['After reconnect', 'For everyone']);

    // Nothing arrived twice, the ids come in sending order, and no tab was
    // told it missed something (the page shows an ssehub-gap event as an
    // item without an id).
    for (const page of pages) {
      assert.equal(await page.$$eval('#list li:not([data-id])', (lis) => lis.length), 0);
      const ids = (await page.evaluate(() => window.received)).map(Number);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `ids out of order: ${ids}`);
      assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids}`);
      assert.deepEqual(page.errors, []);
    }
    await alice1.screenshot({ path: '/tmp/ssehub-notifications.png', fullPage: true });
  } finally {
    await context.close();
    server.stop();
  }
});

test('notifications: a tab that reconnects to a restarted server is told it may have missed notifications', { timeout: 60000 }, async () => {
  let server = await startExample('notifications');
  const context = await browser.newContext();
  try {
    const page = await newPage(context, `${server.base}/?user=carol`);
    await page.waitForFunction(() => window.states.includes('open'));
    assert.equal((await post(`${server.base}/notifications/send`, { user_id: 'carol', title: 'Before the restart' })).status, 200);
    await waitForTitle(page, 'Before the restart');

    // Same port, new process: the tab reconnects with a Last-Event-ID the
    // new broker has never seen.
    server.stop();
    await server.exited;
    server = await startExample('notifications', {}, new URL(server.base).host);
    await page.waitForFunction(() => window.states.slice(1).includes('open'));
    await page.waitForSelector('#list li.warning:not([data-id])');
    assert.equal((await post(`${server.base}/notifications/send`, { user_id: 'carol', title: 'After the restart' })).status, 200);
    await waitForTitle(page, 'After the restart');
    assert.deepEqual(await titles(page), ['After the restart', 'Before the restart']);
    const ids = (await page.evaluate(() => window.received)).map(Number);
    assert.ok(ids[1] > ids[0], `ids must keep rising across restarts: ${ids}`);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    server.stop();
  }
});

test('progress: Start runs a job to 100 % and completed, in order, across a server-side drop', { timeout: 60000 }, async () => {
  const server = await startExample('progress', { PROGRESS_CLEANUP_SECS: '2' });
  const context = await browser.newContext();
  try {
    const page = await newPage(context, `${server.base}/`);

    // An uninterrupted job.
    await page.click('#start');
    await page.waitForFunction(() => window.jobs[1]?.status === 'completed');
    assert.equal(await page.$eval('#job-1 progress', (p) => p.value), 100);
    assert.equal(await page.$eval('#job-1 .percent', (s) => s.textContent), '100 %');
    assert.equal(await page.$eval('#job-1 .message', (s) => s.textContent), 'Job finished successfully');
    assert.ok(await page.$eval('#job-1', (row) => row.classList.contains('completed')));
    // Every update exactly once, in order (the stream starts from the
    // channel's history, so even the first update, published before the
    // page subscribed, is there).
    const ALL = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100];
    assert.deepEqual((await page.evaluate(() => window.jobs[1])).received, ALL);

    // A page opened after the job finished still shows the result.
    const late = await newPage(context, `${server.base}/`);
    await late.evaluate(() => watch(1));
    await late.waitForFunction(() => window.jobs[1]?.status === 'completed');
    assert.deepEqual((await late.evaluate(() => window.jobs[1])).received, ALL);
    assert.equal(await late.$eval('#job-1 progress', (p) => p.value), 100);

    // A job whose stream the server drops at 10-20 %: the page reconnects
    // (after the 1 s the example asks for), gets what it missed meanwhile
    // and then the rest of the job, each update once and in order.
    await page.click('#start');
    await page.waitForFunction(() => window.jobs[2]?.received.some((p) => p >= 10));
    assert.equal((await post(`${server.base}/debug/drop-connections`)).status, 204);
    const beforeDrop = (await page.evaluate(() => window.jobs[2].received)).length;
    await page.waitForFunction(() => window.jobs[2].states.length >= 3);
    assert.deepEqual((await page.evaluate(() => window.jobs[2].states)).slice(0, 3), ['open', 'reconnecting', 'open']);
    await page.waitForFunction(() => window.jobs[2].status === 'completed');
    const job2 = await page.evaluate(() => window.jobs[2]);
    const afterReconnect = job2.received.slice(beforeDrop);
    assert.ok(afterReconnect.length >= 2, `too few updates after the reconnect: ${job2.received} (${beforeDrop} before the drop)`);
    assert.ok(afterReconnect[0] < 100, `the job was over before the reconnect: ${job2.received}`);
    assert.deepEqual(job2.received, ALL, `${beforeDrop} updates before the drop`);
    assert.equal(await page.$eval('#job-2 progress', (p) => p.value), 100);
    assert.deepEqual(page.errors, []);
    assert.deepEqual(late.errors, []);

    // Unknown jobs, and jobs whose channel was cleaned up (2 s after job 1
    // completed), are 404s rather than empty streams.
    assert.equal((await fetch(`${server.base}/jobs/999/progress`)).status, 404);
    await page.waitForTimeout(500);
    assert.equal((await fetch(`${server.base}/jobs/1/progress`)).status, 404);
  } finally {
    await context.close();
    server.stop();
  }
});

test('dashboard: the page shows live stats ticks', { timeout: 30000 }, async () => {
  const server = await startExample('dashboard');
  const context = await browser.newContext();
  try {
    const page = await newPage(context, `${server.base}/`);
    await page.waitForFunction(() => Number(document.getElementById('updates').textContent) >= 1);
    // The count and the full timestamp (the tooltip), read together.
    const tick = () => page.evaluate(() => [Number(document.getElementById('updates').textContent),
                                            document.getElementById('time').title]);
    const [count, first] = await tick();
    await page.waitForFunction((n) => Number(document.getElementById('updates').textContent) > n, count);
    const [, second] = await tick();
    assert.ok(Date.parse(second) > Date.parse(first), `the timestamp must advance: ${first}, then ${second}`);
    const text = (id) => page.$eval(`#${id}`, (e) => e.textContent);
    assert.ok(Number(await text('clients')) >= 1);
    assert.ok(Number(await text('requests')) >= 2, 'the page and its stream are requests');
    assert.match(await text('cpu'), /^\d+\.\d %$/);
    assert.match(await text('memory'), /^\d+\.\d MiB$/);

    // A second page is a second client.
    const other = await newPage(context, `${server.base}/`);
    await other.waitForFunction(() => Number(document.getElementById('clients').textContent) >= 2);
    assert.equal(await text('status'), 'open');
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    server.stop();
  }
});

test('logs: the page shows lines as they are written, follows truncation, and other files are refused', { timeout: 30000 }, async () => {
  const server = await startExample('logs');
  // The example then prints the path of the log it writes.
  const [, demoLog] = await server.line(/^writing (.+)$/);
  const ownLog = join(dirname(demoLog), `test-${process.pid}.log`);
  const context = await browser.newContext();
  try {
    // The demo log: a line every 500 ms.
    const page = await newPage(context, `${server.base}/`);
    await page.waitForFunction(() => Number(document.getElementById('count').textContent) >= 2);
    const lines = await page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
    for (const line of lines) assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} \w+ +request \d+ served in \d+ ms/);

    // A file of the test's own in the log directory.
    await writeFile(ownLog, 'old line, before the page opened\n');
    const own = await newPage(context, `${server.base}/?file=${encodeURIComponent(`test-${process.pid}.log`)}`);
    await own.waitForFunction(() => document.getElementById('status').textContent === 'open');
    // The tail starts at the end of the file once its task runs, a moment
    // after the stream opened: write until a line shows.
    for (let i = 0; (await own.$$('#log div')).length === 0; i++) {
      assert.ok(i < 50, 'no line shown within 5 s');
      await appendFile(ownLog, `ready ${i}\n`);
      await own.waitForTimeout(100);
    }
    const shown = () => own.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
    const waitForLine = (text) =>
      own.waitForFunction((t) => [...document.querySelectorAll('#log div')].some((d) => d.textContent === t), text);
    await appendFile(ownLog, 'one\ntw');
    await own.waitForTimeout(300); // half a line stays unsent until its newline
    await appendFile(ownLog, 'o\n');
    await waitForLine('two');
    await writeFile(ownLog, 'after truncation\n'); // shrinks: read from the top again
    await waitForLine('after truncation');
    const got = (await shown()).filter((l) => !l.startsWith('ready '));
    assert.deepEqual(got, ['one', 'two', 'after truncation']);

    // Only files of the log directory can be streamed.
    for (const file of ['/etc/passwd', '../../../etc/passwd', 'missing.log']) {
      const response = await fetch(`${server.base}/logs/stream?file=${encodeURIComponent(file)}`);
      assert.equal(response.status, 400, file);
    }
    const refused = await newPage(context, `${server.base}/?file=%2Fetc%2Fpasswd`);
    await refused.waitForFunction(() => document.getElementById('status').textContent === 'closed');
    for (const p of [page, own, refused]) assert.deepEqual(p.errors, []);
  } finally {
    await context.close();
    server.stop();
    await rm(ownLog, { force: true });
  }
});
