import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, redactPaths } from '../../src/logger.js';

test('redaction uses explicit paths (wildcards cost ~15 µs a line) and still hides the usual places', async () => {
  assert.ok(redactPaths.every((path) => !path.includes('*')));
  let out = '';
  const logger = createLogger({ level: 'trace', destination: new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) }) });
  logger.info({ authorization: 'S1', clientSecret: 'S2', headers: { authorization: 'S3', 'proxy-authorization': 'S4', cookie: 'S5' }, req: { headers: { authorization: 'S6' } }, err: { token: 'S7', access_token: 'S8' } }, 'x');
  await new Promise((resolve) => setImmediate(resolve));
  assert.doesNotMatch(out, /S[1-8]/);
  assert.equal(out.match(/\[redacted\]/g)?.length, 8);
});
