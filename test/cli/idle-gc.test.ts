import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fullCollection, idleCollector, startIdleGc, type IdleGcProbes } from '../../src/idle-gc.js';

const MiB = 1024 * 1024;

/** Probes whose answers the test sets; counts the collections, and a collection sets RSS to `afterCollect`. */
function fakeProbes(start: { rss: number; utilization: number; afterCollect: number }) {
  const state = { ...start, collections: 0 };
  const probes: IdleGcProbes = {
    rss: () => state.rss,
    utilization: () => state.utilization,
    collect: () => {
      state.collections += 1;
      state.rss = state.afterCollect;
    },
  };
  return { state, probes };
}

test('the first quiet look collects start-up garbage, then only new growth does', () => {
  const { state, probes } = fakeProbes({ rss: 70 * MiB, utilization: 0, afterCollect: 62 * MiB });
  const collector = idleCollector(probes, { growthBytes: 8 * MiB, quietUtilization: 0.01 });
  assert.equal(collector.tick(), true, 'start-up: collected at the first quiet look');
  assert.equal(state.collections, 1);
  // Quiet and no growth: nothing to do, however many looks.
  for (let i = 0; i < 5; i++) assert.equal(collector.tick(), false);
  // Growth to just the threshold: still nothing.
  state.rss = 70 * MiB;
  assert.equal(collector.tick(), false);
  // More than the threshold above the level after the last collection (62): collected.
  state.rss = 71 * MiB;
  state.afterCollect = 64 * MiB;
  assert.equal(collector.tick(), true);
  assert.equal(state.collections, 2);
});

test('no collection while the event loop is busy, however much RSS grew; the first quiet look after it collects', () => {
  const { state, probes } = fakeProbes({ rss: 70 * MiB, utilization: 0, afterCollect: 65 * MiB });
  const collector = idleCollector(probes, { growthBytes: 8 * MiB, quietUtilization: 0.01 });
  collector.tick();
  state.rss = 160 * MiB;
  state.utilization = 0.6; // under load
  for (let i = 0; i < 10; i++) assert.equal(collector.tick(), false);
  state.utilization = 0.011; // just above quiet
  assert.equal(collector.tick(), false);
  assert.equal(state.collections, 1);
  state.utilization = 0.002; // the load stopped
  state.afterCollect = 100 * MiB;
  assert.equal(collector.tick(), true);
  assert.equal(state.collections, 2);
});

test('memory that stays up after a collection does not cause a collection at every look', () => {
  const { state, probes } = fakeProbes({ rss: 70 * MiB, utilization: 0, afterCollect: 70 * MiB });
  const collector = idleCollector(probes, { growthBytes: 8 * MiB });
  collector.tick();
  state.rss = 150 * MiB;
  state.afterCollect = 140 * MiB; // the collection gave back little (a bigger working set, the allocator keeps it)
  assert.equal(collector.tick(), true);
  for (let i = 0; i < 10; i++) assert.equal(collector.tick(), false);
  assert.equal(state.collections, 2);
});

test('RSS that went down on its own lowers the level the next growth is measured from', () => {
  const { state, probes } = fakeProbes({ rss: 100 * MiB, utilization: 0, afterCollect: 100 * MiB });
  const collector = idleCollector(probes, { growthBytes: 8 * MiB });
  collector.tick(); // level 100
  state.rss = 80 * MiB; // given back without us
  assert.equal(collector.tick(), false);
  state.rss = 90 * MiB; // 10 above the new level of 80, though below the old one
  assert.equal(collector.tick(), true);
});

test("startIdleGc's timers do not keep the process alive, and stop() ends them", () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const handle = startIdleGc({ firstCheckMs: 60_000, intervalMs: 60_000 });
  try {
    assert.equal(timers(), before, 'an unref\'d timer is not an active resource');
  } finally {
    handle.stop();
  }
});

test('fullCollection collects garbage, and leaves no global gc in the main context', async () => {
  const collect = fullCollection();
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  let ref: WeakRef<object> | undefined;
  (() => {
    ref = new WeakRef({ big: new Array(1000).fill(1) });
  })();
  // A WeakRef target stays alive until the end of the current job: collect in a later one.
  await new Promise((resolve) => setImmediate(resolve));
  collect();
  assert.equal(ref?.deref(), undefined, 'the unreachable object is gone');
  // A context made later does not get gc either: the flag was set only for the collector's.
  const { runInNewContext } = await import('node:vm');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
