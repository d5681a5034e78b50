import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { fullCollection, idleCollector, startIdleGc, type IdleGcProbes } from '../../src/runtime/idle-gc.js';

const MiB = 1024 * 1024;

/** Probes whose answers the test sets; counts the collections, and a collection sets RSS to `afterCollect`. */
function fakeProbes(start: { rss: number; utilization: number; afterCollect: number }) {
  const state = { ...start, collections: 0, startUp: [] as boolean[] };
  const probes: IdleGcProbes = {
    rss: () => state.rss,
    utilization: () => state.utilization,
    collect: (startUp) => {
      state.collections += 1;
      state.startUp.push(startUp);
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
  assert.deepEqual(state.startUp, [true, false], 'only the first is the start-up collection');
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

/** Moves the mocked clock on a second at a time (timers set by a timer's callback are due in a later tick). */
function advance(ms: number): void {
  for (let left = ms; left > 0; left -= 1000) mock.timers.tick(Math.min(1000, left));
}

test('startIdleGc looks every second until the first quiet look collects, then every intervalMs; stop() ends both', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    const { state, probes } = fakeProbes({ rss: 80 * MiB, utilization: 0.2, afterCollect: 66 * MiB });
    let looks = 0;
    const counted = { ...probes, utilization: () => ((looks += 1), state.utilization) };
    const handle = startIdleGc({ firstCheckMs: 1000, intervalMs: 5000 }, counted);
    advance(3000);
    assert.equal(looks, 3, 'one look a second while start-up keeps the loop busy');
    assert.equal(state.collections, 0);
    state.utilization = 0;
    advance(1000);
    assert.equal(state.collections, 1, 'the first quiet second collects');
    advance(4000);
    assert.equal(looks, 4, 'then no look for intervalMs');
    advance(1000);
    assert.equal(looks, 5);
    handle.stop();
    advance(60_000);
    assert.equal(looks, 5, 'stopped');
  } finally {
    mock.timers.reset();
  }
});

test('startIdleGc gives up the one-second looks after 30 busy ones', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  try {
    const { probes } = fakeProbes({ rss: 80 * MiB, utilization: 0.5, afterCollect: 66 * MiB });
    let looks = 0;
    const handle = startIdleGc({ firstCheckMs: 1000, intervalMs: 5000 }, { ...probes, utilization: () => ((looks += 1), 0.5) });
    advance(30_000);
    assert.equal(looks, 30);
    advance(4000);
    assert.equal(looks, 30, 'every intervalMs from then on');
    advance(1000);
    assert.equal(looks, 31);
    handle.stop();
  } finally {
    mock.timers.reset();
  }
});

test('fullCollection collects garbage (the start-up one and the later ones), and leaves no global gc in the main context', async () => {
  const full = fullCollection();
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  for (const startUp of [true, false]) {
    let ref: WeakRef<object> | undefined;
    (() => {
      ref = new WeakRef({ big: new Array(1000).fill(1) });
    })();
    // A WeakRef target stays alive until the end of the current job: collect in a later one.
    await new Promise((resolve) => setImmediate(resolve));
    full(startUp);
    assert.equal(ref?.deref(), undefined, `the unreachable object is gone (startUp: ${startUp})`);
  }
  // A context made later does not get gc either: the flag was set only for the collector's.
  const { runInNewContext } = await import('node:vm');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
