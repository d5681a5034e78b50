// A worker's copy of the primary's token sources (remote-token-source.ts), over a fake channel:
// asks are single flight and never hang (the primary gone, or silent), a closed source's copy is
// dropped for good, and a rejected token is reported and never handed out again.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ToPrimary } from '../../src/workers/messages.js';
import { RemoteTokens } from '../../src/workers/remote-token-source.js';

function channel(open = true) {
  const sent: ToPrimary[] = [];
  const tokens = new RemoteTokens((message) => {
    if (open) sent.push(message);
    return open;
  });
  return { sent, tokens };
}

const inAnHour = () => Date.now() + 3_600_000;

describe('a worker\'s remote token source', () => {
  test('requests without a token meanwhile share one ask; the answer serves them all', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 5_000 });
    const waiting = Promise.all([source.getToken(), source.getToken(), source.getToken()]);
    assert.equal(sent.length, 1);
    const ask = sent[0] as Extract<ToPrimary, { type: 'bsc:token-wanted' }>;
    assert.deepEqual({ type: ask.type, tokenSource: ask.tokenSource }, { type: 'bsc:token-wanted', tokenSource: 1 });
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 1, token: 't1', usableUntil: inAnHour() });
    assert.deepEqual(await waiting, ['t1', 't1', 't1']);
    assert.equal(source.peek(), 't1', 'the answer is kept until the push comes');
  });

  test('the primary\'s error is the request\'s, code and retry hint included', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 5_000 });
    const waiting = source.getToken();
    const ask = sent[0] as Extract<ToPrimary, { type: 'bsc:token-wanted' }>;
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 1, error: { code: 'BSC_TOKEN_UNAVAILABLE', message: 'no valid token for route "api": endpoint down', retryable: true, retryAfterMs: 4000 } });
    await assert.rejects(waiting, { code: 'BSC_TOKEN_UNAVAILABLE', message: 'no valid token for route "api": endpoint down', retryAfterMs: 4000 });
  });

  test('an ask the primary never answers ends with a 503 error after its bound, not a hang', async () => {
    const { tokens } = channel();
    const started = Date.now();
    const answer = await tokens.ask(1, 50);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(answer.token, undefined);
    assert.equal(answer.error?.code, 'BSC_TOKEN_UNAVAILABLE');
    assert.match(answer.error?.message ?? '', /primary process did not answer within 50 ms/);
  });

  test('the primary gone: asks waiting get a 503, and so does every ask after (nothing waits on a closed channel)', async () => {
    const { tokens } = channel();
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 60_000 });
    const waiting = source.getToken();
    tokens.disconnected();
    await assert.rejects(waiting, { code: 'BSC_TOKEN_UNAVAILABLE', message: /shutting down/ });
    await assert.rejects(source.getToken(), { code: 'BSC_TOKEN_UNAVAILABLE', message: /shutting down/ });
  });

  test('a send on a closed channel answers at once', async () => {
    const { tokens } = channel(false);
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 60_000 });
    await assert.rejects(source.getToken(), { code: 'BSC_TOKEN_UNAVAILABLE' });
  });

  test('pushes update the copy; a closed source\'s copy is emptied and not brought back by a late answer', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('api', { tokenSource: 3, tokenWaitMs: 5_000 });
    tokens.update({ type: 'bsc:token', tokenSource: 3, token: 'pushed', usableUntil: inAnHour(), status: { name: 'api', state: 'ready' } });
    assert.equal(source.peek(), 'pushed');
    tokens.update({ type: 'bsc:token', tokenSource: 3, usableUntil: 0, status: { name: 'api', state: 'starting' } });
    const waiting = source.getToken();
    tokens.update({ type: 'bsc:token', tokenSource: 3, status: { name: 'api', state: 'closed' } });
    assert.equal(tokens.has(3), false);
    const ask = sent.at(-1) as Extract<ToPrimary, { type: 'bsc:token-wanted' }>;
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 3, token: 'late', usableUntil: inAnHour() });
    assert.equal(await waiting, 'late', 'the request that asked gets its answer');
    assert.equal(source.peek(), undefined, 'but the closed source keeps no copy');
    assert.equal(tokens.has(3), false);
  });

  test('a rejected token is reported to the primary and not handed out again', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 5_000 });
    tokens.update({ type: 'bsc:token', tokenSource: 1, token: 'old', usableUntil: inAnHour(), status: { name: 'api', state: 'ready' } });
    await source.invalidate('old');
    assert.deepEqual(sent[0], { type: 'bsc:rejected', tokenSource: 1, token: 'old' });
    assert.equal(source.peek(), undefined);
    const waiting = source.getToken();
    const ask = sent[1] as Extract<ToPrimary, { type: 'bsc:token-wanted' }>;
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 1, token: 'new', usableUntil: inAnHour() });
    assert.equal(await waiting, 'new');
  });

  test('an answer naming another token source than its ask\'s settles nothing: never a token for the wrong route', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('b', { tokenSource: 2, tokenWaitMs: 5_000 });
    const waiting = source.getToken();
    const ask = sent[0] as Extract<ToPrimary, { type: 'bsc:token-wanted' }>;
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 1, token: 'route-a-token', usableUntil: inAnHour() });
    assert.equal(source.peek(), undefined);
    tokens.answered({ type: 'bsc:token-answer', id: ask.id, tokenSource: 2, token: 'route-b-token', usableUntil: inAnHour() });
    assert.equal(await waiting, 'route-b-token');
  });

  test('an ask from before a rejection ending does not end the single flight of the ask after it', async () => {
    const { sent, tokens } = channel();
    const source = tokens.source('api', { tokenSource: 1, tokenWaitMs: 5_000 });
    tokens.update({ type: 'bsc:token', tokenSource: 1, token: 'old', usableUntil: inAnHour(), status: { name: 'api', state: 'ready' } });
    await source.invalidate('old');
    const first = source.getToken();
    // Meanwhile a push brings a token the upstream rejects too: the ask under way may bring it back, so a new one starts.
    tokens.update({ type: 'bsc:token', tokenSource: 1, token: 'mid', usableUntil: inAnHour(), status: { name: 'api', state: 'ready' } });
    await source.invalidate('mid');
    const second = [source.getToken(), source.getToken()];
    const asks = sent.filter((message) => message.type === 'bsc:token-wanted') as Extract<ToPrimary, { type: 'bsc:token-wanted' }>[];
    assert.equal(asks.length, 2, 'one ask before the second rejection, one after');
    tokens.answered({ type: 'bsc:token-answer', id: (asks[0] as { id: number }).id, tokenSource: 1, error: { code: 'BSC_TOKEN_UNAVAILABLE', message: 'x', retryable: true } });
    await assert.rejects(first);
    const third = source.getToken();
    assert.equal(sent.filter((message) => message.type === 'bsc:token-wanted').length, 2, 'the ask under way still serves the requests after it');
    tokens.answered({ type: 'bsc:token-answer', id: (asks[1] as { id: number }).id, tokenSource: 1, token: 'new', usableUntil: inAnHour() });
    assert.deepEqual(await Promise.all([...second, third]), ['new', 'new', 'new']);
  });
});
