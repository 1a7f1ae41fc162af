// Building and starting one of ssehub's examples as a server on
// 127.0.0.1, for suites that need an example of their own rather than the
// conformance server run.sh starts.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const EXAMPLES = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug', 'examples');

/** `cargo build -p ssehub --features <features> --example <name>`; a no-op when up to date. */
export function buildExample(name, features = ['axum']) {
  const build = spawnSync('cargo', ['build', '-p', 'ssehub', '--features', features.join(','), '--example', name], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 600000,
  });
  assert.equal(build.status, 0, `building example ${name} failed:\n${build.stderr}`);
}

/**
 * Starts example `name` on 127.0.0.1 with an ephemeral port. Resolves once
 * its first line is "listening on http://ADDR", with `{base, output, stop}`:
 * `output()` is everything it printed so far (stdout and stderr). `args`
 * follow the address.
 */
export async function startExample(name, env = {}, args = []) {
  const child = spawn(join(EXAMPLES, name), ['127.0.0.1:0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => { output += chunk; });
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => { output += `${line}\n`; });
  try {
    const base = await new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within 10 s: ${output}`)), 10000);
      child.on('exit', (code) => reject(new Error(`${name} exited (${code}): ${output}`)));
      lines.once('line', (line) => {
        clearTimeout(timer);
        const match = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (match) resolvePromise(match[1]);
        else reject(new Error(`${name}: unexpected first line ${JSON.stringify(line)}`));
      });
    });
    return { base, output: () => output, stop: () => child.kill() };
  } catch (err) {
    child.kill();
    throw err;
  }
}
