// The pinned Node 24 binary (the release the image runs: Dockerfile ARG NODE_VERSION, pinned again in
// scripts/node24/package.json), installed on first use from the npm registry's node-<platform>-<arch>
// package into scripts/node24/node_modules (`npm ci --prefix scripts/node24`, from its own lockfile)
// rather than as a devDependency: a dependency that provides a `node` bin would shadow the machine's
// Node in every npm script. Shared by scripts/run-tests.mjs and the benchmark (scripts/bench.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const node24Dir = fileURLToPath(new URL('node24/', import.meta.url));

/**
 * The path of the pinned Node 24 binary, installed first if it is missing or not the pinned
 * version; `purpose` names the caller in the install line. Throws an Error with a message a user
 * can act on when this platform has no package or the install fails.
 */
export function node24(purpose = 'the tests') {
  const { optionalDependencies } = JSON.parse(readFileSync(join(node24Dir, 'package.json'), 'utf8'));
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  const name = `node-${platform}-${process.arch}`;
  const version = optionalDependencies[name];
  if (!version) throw new Error(`no Node 24 package for ${process.platform}-${process.arch} in scripts/node24/package.json (the registry has none for darwin)`);
  const dir = join(node24Dir, 'node_modules', name);
  const installed = () => existsSync(join(dir, 'package.json')) && JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version === version;
  if (!installed()) {
    process.stdout.write(`# installing Node ${version} for ${purpose}: npm ci --prefix scripts/node24\n`);
    const npm = spawnSync('npm', ['ci', '--prefix', node24Dir, '--no-audit', '--no-fund'], { stdio: 'inherit', shell: process.platform === 'win32' });
    if (npm.status !== 0 || !installed()) throw new Error(`could not install ${name}@${version} (npm ci --prefix scripts/node24 failed)`);
  }
  return join(dir, process.platform === 'win32' ? 'node.exe' : 'bin/node');
}
