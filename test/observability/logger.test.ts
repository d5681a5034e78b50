import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { pino } from 'pino';
import { createLogger, isoTimestamp, redactPaths } from '../../src/logger.js';

test('redaction uses explicit paths (wildcards cost ~15 µs a line) and still hides the usual places', async () => {
  assert.ok(redactPaths.every((path) => !path.includes('*')));
  let out = '';
  const logger = createLogger({ level: 'trace', destination: new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) }) });
  logger.info({ authorization: 'S1', clientSecret: 'S2', headers: { authorization: 'S3', 'proxy-authorization': 'S4', cookie: 'S5' }, req: { headers: { authorization: 'S6' } }, err: { token: 'S7', access_token: 'S8' } }, 'x');
  await new Promise((resolve) => setImmediate(resolve));
  assert.doesNotMatch(out, /S[1-8]/);
  assert.equal(out.match(/\[redacted\]/g)?.length, 8);
});

test("the cached timestamp is pino's isoTime: across milliseconds, seconds, days, years and before 1970", (t) => {
  let now = 0;
  t.mock.method(Date, 'now', () => now);
  const instants = [Date.UTC(2026, 10, 26, 0, 10, 59, 123), Date.UTC(2026, 11, 31, 23, 59, 59, 990), Date.UTC(2024, 1, 29, 12), -1, 0, -1001, 253_402_300_799_990, -62_167_219_200_005];
  for (const start of instants) {
    // Repeats (the cached string), forwards over second boundaries, and back.
    for (const offset of [0, 0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1999, 2000, 7000, 6999, 6999, 3]) {
      now = start + offset;
      assert.equal(isoTimestamp(), pino.stdTimeFunctions.isoTime(), `at ${now}`);
    }
  }
  now = Date.UTC(2026, 10, 26, 0, 10, 59, 7);
  assert.equal(isoTimestamp(), ',"time":"2026-11-26T00:10:59.007Z"');
});

test('log lines carry an ISO time', async () => {
  let out = '';
  const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) }) });
  const before = Date.now();
  logger.info('x');
  await new Promise((resolve) => setImmediate(resolve));
  const { time } = JSON.parse(out) as { time: string };
  assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Date.parse(time) >= before && Date.parse(time) <= Date.now());
});

test('stdout: a line is written within the flush interval, and an idle logger writes nothing (no empty batch every 100 ms)', () => {
  // In a child: its stdout is the destination's fd 1. fs.write is what SonicBoom calls for it.
  const logger = fileURLToPath(new URL('../../src/logger.ts', import.meta.url));
  const script = `
    import fs from 'node:fs';
    const write = fs.write;
    const lengths = [];
    fs.write = function (fd, buffer, ...rest) { if (fd === 1) lengths.push(buffer.length); return write.call(this, fd, buffer, ...rest); };
    const { stdoutDestination } = await import(${JSON.stringify(logger)});
    const destination = stdoutDestination();
    destination.write('{"msg":"one"}\\n');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    process.stderr.write(JSON.stringify(lengths));
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout, '{"msg":"one"}\n');
  assert.deepEqual(JSON.parse(child.stderr), [14], 'one write of the line in a second, none empty');
});
