// --watch-config: a change of the config file's text reloads, as SIGHUP does: a file edited in
// place or replaced by rename (as editors do), and a Kubernetes ConfigMap volume, whose `..data`
// symlink is swapped onto a new directory. A change to something that does not load is logged and
// changes nothing; the next good one applies.

import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { audit } from '../helpers/audit.js';
import { secretVolume, tempFiles } from '../helpers/config.js';
import { eventually } from '../helpers/sidecar.js';
import { apiRoute, startRig, type Rig } from './rig.js';

after(() => audit.assertNothingLeaked());

/** The whole file, so that the config loaded from it equals the one the rig started with. */
const fileConfig = (tokenUrl: string, upstream: string) => ({ listen: { port: 0 }, admin: { port: 0 }, drainTimeoutMs: 2000, logLevel: audit.logLevel, routes: [apiRoute('api', tokenUrl, upstream)] });
const text = (config: Record<string, unknown>) => JSON.stringify(config, null, 2); // YAML reads JSON

async function watched(file: () => string, write: (text: string) => void): Promise<Rig> {
  return startRig(
    ({ tokenUrl, a }) => {
      write(text(fileConfig(tokenUrl, a)));
      return fileConfig(tokenUrl, a);
    },
    { loadConfig: () => loadConfigFile(file()), watchConfigFile: file() },
  );
}

const servedByB = async (r: Rig) => (await r.get('/x')).status === 200 && r.b.received.length > 0;

describe('--watch-config', () => {
  test('a ConfigMap volume: the `..data` swap reloads; a bad version is refused and the next good one applies', async () => {
    const volume = secretVolume({ 'config.yaml': '{}' });
    const file = join(volume.dir, 'config.yaml');
    const r = await watched(
      () => file,
      (content) => volume.rotate({ 'config.yaml': content }),
    );
    try {
      assert.equal((await r.get('/x')).status, 200);
      assert.equal(r.a.received.length, 1);
      volume.rotate({ 'config.yaml': text(fileConfig(r.tokens.url, r.b.url)) });
      await eventually(() => servedByB(r), 10_000);
      assert.equal(r.lines('config file changed; reloading').length, 1);
      assert.equal(r.lines('config reloaded').length, 1);
      volume.rotate({ 'config.yaml': 'routes: [ oops' });
      await eventually(() => r.lines('config reload failed').length === 1, 10_000);
      assert.equal((await r.get('/x')).status, 200, 'the previous config serves');
      const beforeA = r.a.received.length;
      volume.rotate({ 'config.yaml': text(fileConfig(r.tokens.url, r.a.url)) });
      await eventually(async () => (await r.get('/x')).status === 200 && r.a.received.length > beforeA, 10_000);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="success"}'), 2);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="failure"}'), 1);
      assert.equal(r.tokens.requests.length, 1, 'the same token throughout');
    } finally {
      await r.close();
      rmSync(volume.dir, { recursive: true, force: true });
    }
  });

  test('a plain file written in place, then replaced by rename', async () => {
    const files = tempFiles('bsc-watch-');
    const file = join(files.dir, 'sidecar.yaml');
    const r = await watched(
      () => file,
      (content) => writeFileSync(file, content),
    );
    try {
      writeFileSync(file, text(fileConfig(r.tokens.url, r.b.url)));
      await eventually(() => servedByB(r), 10_000);
      const beforeA = r.a.received.length;
      writeFileSync(join(files.dir, 'sidecar.yaml.tmp'), text(fileConfig(r.tokens.url, r.a.url)));
      renameSync(join(files.dir, 'sidecar.yaml.tmp'), file);
      await eventually(async () => (await r.get('/x')).status === 200 && r.a.received.length > beforeA, 10_000);
      // A write of the same text (touch, a save without changes) is no reload.
      writeFileSync(file, text(fileConfig(r.tokens.url, r.a.url)));
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(r.lines('config file changed').length, 2);
    } finally {
      await r.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });

  test('an edit made between loading the config and listening is seen once the watch starts', async () => {
    const files = tempFiles('bsc-watch-early-');
    const file = join(files.dir, 'sidecar.yaml');
    let loadedText = '';
    // The config in force is the one loaded from `loadedText`; the file was edited since (before listening).
    const r = await startRig(
      ({ tokenUrl, a, b }) => {
        loadedText = text(fileConfig(tokenUrl, a));
        writeFileSync(file, text(fileConfig(tokenUrl, b)));
        return fileConfig(tokenUrl, a);
      },
      { loadConfig: () => loadConfigFile(file), watchConfigFile: file, get watchConfigLoadedText() {
        return loadedText;
      } },
    );
    try {
      await eventually(() => servedByB(r), 10_000);
      assert.equal(r.lines('config file changed; reloading').length, 1);
      assert.equal(r.lines('config reloaded').length, 1);
    } finally {
      await r.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });

  test('a symlink into another directory: an edit of its target is seen there; a retargeted link is followed to its new directory', async () => {
    const files = tempFiles('bsc-watch-link-');
    for (const dir of ['etc', 'data', 'other']) mkdirSync(join(files.dir, dir));
    const target = join(files.dir, 'data', 'real.yaml');
    const link = join(files.dir, 'etc', 'sidecar.yaml');
    const r = await watched(
      () => link,
      (content) => {
        writeFileSync(target, content);
        symlinkSync(target, link);
      },
    );
    try {
      // Edited in place where it lives: nothing changes in the link's own directory.
      writeFileSync(target, text(fileConfig(r.tokens.url, r.b.url)));
      await eventually(() => servedByB(r), 10_000);
      // The link now points into a third directory (swapped by rename, as `ln -sfn` does)...
      const moved = join(files.dir, 'other', 'moved.yaml');
      writeFileSync(moved, text(fileConfig(r.tokens.url, r.b.url)));
      symlinkSync(moved, `${link}.tmp`);
      renameSync(`${link}.tmp`, link);
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(r.lines('config file changed').length, 1, 'the same text through the new link: nothing to reload');
      // ...and an edit there is seen too.
      const beforeA = r.a.received.length;
      writeFileSync(moved, text(fileConfig(r.tokens.url, r.a.url)));
      await eventually(async () => (await r.get('/x')).status === 200 && r.a.received.length > beforeA, 10_000);
      assert.equal(r.lines('config file changed').length, 2);
    } finally {
      await r.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});
