import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sidecarV8Flags, wasmTieringBudget } from '../../src/runtime/v8-flags.js';

test('the CLI raises the WebAssembly tiering budget when the user has not set one', () => {
  assert.deepEqual(sidecarV8Flags([]), [`--wasm-tiering-budget=${wasmTieringBudget}`]);
  assert.deepEqual(sidecarV8Flags(['--enable-source-maps', '--max-old-space-size=64']), [`--wasm-tiering-budget=${wasmTieringBudget}`]);
});

test("a budget given on node's command line wins, in either spelling", () => {
  assert.deepEqual(sidecarV8Flags(['--wasm-tiering-budget=1800000']), []);
  assert.deepEqual(sidecarV8Flags(['--wasm_tiering_budget=5']), []);
});
