// `workers: 2` on a TCP port: where Node has SO_REUSEPORT (reusePort, Linux, 22.12+ and 23.1+) each
// worker listens on a socket of its own and the kernel spreads the connections; elsewhere (Node 20)
// the primary holds the one listening socket and hands each connection over (node:cluster's
// round-robin). Read from /proc: which process has a listening socket on the proxy port.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { reusePortAvailable } from '../../src/listen.js';
import { startScriptedTokenServer, startTree, startUpstream, untilBothWorkersServed, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

test('reusePort is used on Linux from Node 22.12 and 23.1 on', () => {
  assert.equal(reusePortAvailable('20.20.2', 'linux'), false);
  assert.equal(reusePortAvailable('22.11.0', 'linux'), false);
  assert.equal(reusePortAvailable('22.12.0', 'linux'), true);
  assert.equal(reusePortAvailable('23.0.0', 'linux'), false);
  assert.equal(reusePortAvailable('23.1.0', 'linux'), true);
  assert.equal(reusePortAvailable('24.21.0', 'linux'), true);
  assert.equal(reusePortAvailable('24.21.0', 'darwin'), false);
});

/** How many listening TCP sockets on `port` the process `pid` holds (its fds against /proc/net/tcp and tcp6). */
function listeningSockets(pid: number, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const listening = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT; state 0A is LISTEN; the inode is field 9.
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A') listening.add(fields[9] as string);
    }
  }
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode && listening.has(inode)) count += 1;
    } catch {
      // closed meanwhile
    }
  }
  return count;
}

describe('workers: 2 on a TCP port', { skip: process.platform !== 'linux' && 'reads /proc (Linux)' }, () => {
  let tokens: ScriptedTokenServer;
  let upstream: Upstream;
  let tree: Tree;

  before(async () => {
    tokens = await startScriptedTokenServer();
    upstream = await startUpstream();
    tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
  });
  after(async () => {
    if (tree) assert.equal(await tree.stop(), 0);
    await Promise.all([tokens?.close(), upstream?.close()]);
  });

  test(reusePortAvailable() ? 'each worker listens on a socket of its own (SO_REUSEPORT); the primary on none' : 'the primary holds the one listening socket (round-robin); the workers none', async () => {
    await untilBothWorkersServed(tree, '/spread');
    const workers = Object.values(await tree.workerPids());
    assert.equal(workers.length, 2);
    const primary = tree.sidecar.child.pid as number;
    if (reusePortAvailable()) {
      assert.equal(listeningSockets(primary, tree.proxyPort), 0, 'the primary accepts nothing');
      for (const worker of workers) assert.equal(listeningSockets(worker, tree.proxyPort), 1, `worker ${worker} listens itself`);
    } else {
      assert.equal(listeningSockets(primary, tree.proxyPort), 1, 'the primary listens');
      for (const worker of workers) assert.equal(listeningSockets(worker, tree.proxyPort), 0, `worker ${worker} is handed connections`);
    }
  });
});
