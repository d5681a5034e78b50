// The runtime settings' single definition (src/runtime/settings.ts) and how the CLI applies them
// to its own process (src/runtime/launch.ts), with a stand-in process: which settings a profile
// adds (never one the user set), when the process re-executes itself and with what, and the one
// line for a Node without process.execve. test/deploy/runtime-settings.test.ts reads them from
// real running processes, one per launcher.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRuntimeSettings, launchPlan, notAppliedMessage, readCommandLine, reexecutedVariable, requestedTuning } from '../../src/runtime/launch.js';
import { badTuningMessage, isTuningName, runtimeSettings, tuning, tuningNames, tuningProfiles, tuningVariable } from '../../src/runtime/settings.js';

const wasm = '--wasm-tiering-budget=1000000000';

test('the profiles as data: default, lean and none, each setting with why and what going without costs', () => {
  assert.deepEqual(tuningNames, ['default', 'lean', 'none']);
  assert.equal(tuningVariable, 'BEARER_SIDECAR_TUNING');
  for (const setting of Object.values(runtimeSettings)) {
    assert.ok(setting.why.length > 40 && setting.withoutIt.length > 10, setting.value);
  }
  assert.deepEqual(tuning('default'), { name: 'default', nodeFlags: ['--max-semi-space-size=4'], v8Flags: [wasm], environment: {}, idleCollection: true, streamCollection: true });
  assert.deepEqual(tuning('lean'), { name: 'lean', nodeFlags: ['--max-semi-space-size=4'], v8Flags: [wasm], environment: { MALLOC_MMAP_THRESHOLD_: '32768' }, idleCollection: true, streamCollection: true });
  assert.deepEqual(tuning('none'), { name: 'none', nodeFlags: [], v8Flags: [], environment: {}, idleCollection: false, streamCollection: false });
  assert.deepEqual(Object.keys(tuningProfiles), [...tuningNames]);
  assert.ok(isTuningName('lean') && !isTuningName('fast'));
  assert.equal(badTuningMessage('fast', '--tuning'), '--tuning must be default, lean or none, not "fast"');
});

test('a profile adds what the process lacks', () => {
  assert.deepEqual(launchPlan('default', [], {}), { tuning: tuning('default'), nodeFlags: ['--max-semi-space-size=4'], environment: {}, v8Flags: [wasm] });
  assert.deepEqual(launchPlan('lean', ['--enable-source-maps'], {}).environment, { MALLOC_MMAP_THRESHOLD_: '32768' });
  const none = launchPlan('none', [], {});
  assert.deepEqual([none.nodeFlags, none.environment, none.v8Flags], [[], {}, []]);
});

test("a setting the user gave is never overridden: node's command line or NODE_OPTIONS, in either spelling; a malloc variable or its glibc tunable", () => {
  assert.deepEqual(launchPlan('default', ['--max-semi-space-size=16'], {}).nodeFlags, []);
  assert.deepEqual(launchPlan('default', ['--max_semi_space_size=2'], {}).nodeFlags, []);
  assert.deepEqual(launchPlan('default', [], { NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=8' }).nodeFlags, []);
  assert.deepEqual(launchPlan('default', ['--wasm-tiering-budget=1800000'], {}).v8Flags, []);
  assert.deepEqual(launchPlan('default', ['--wasm_tiering_budget=5'], {}).v8Flags, []);
  assert.deepEqual(launchPlan('default', ['--max-old-space-size=64'], { NODE_OPTIONS: '' }).nodeFlags, ['--max-semi-space-size=4']);
  assert.deepEqual(launchPlan('lean', [], { MALLOC_MMAP_THRESHOLD_: '131072' }).environment, {});
  assert.deepEqual(launchPlan('lean', [], { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=65536' }).environment, {});
  assert.deepEqual(launchPlan('lean', [], { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=131072' }).environment, { MALLOC_MMAP_THRESHOLD_: '32768' });
});

test('the command line: the verb and --tuning, as main.ts parses them', () => {
  assert.deepEqual(readCommandLine([]), { verb: 'serve', tuning: undefined });
  assert.deepEqual(readCommandLine(['--config', 'check', '--tuning', 'lean']), { verb: 'serve', tuning: 'lean' });
  assert.deepEqual(readCommandLine(['-c', 'x.yaml', 'check']), { verb: 'check', tuning: undefined });
  assert.deepEqual(readCommandLine(['token', '--route=a', '--tuning=none']), { verb: 'token', tuning: 'none' });
  assert.deepEqual(readCommandLine(['serve', '--watch-config']), { verb: 'serve', tuning: undefined });
  assert.equal(readCommandLine(['serve', '--version']).verb, 'help');
  assert.equal(readCommandLine(['-h']).verb, 'help');
  assert.equal(requestedTuning(undefined, {}), 'default');
  assert.equal(requestedTuning(undefined, { [tuningVariable]: 'lean' }), 'lean');
  assert.equal(requestedTuning('none', { [tuningVariable]: 'lean' }), 'none', 'the flag wins');
});

/** A stand-in process; `execve` records its call (undefined: a Node without it). */
function fakeProcess({ argv = [], execArgv = [], env = {}, execve = true }: { argv?: string[]; execArgv?: string[]; env?: NodeJS.ProcessEnv; execve?: boolean } = {}) {
  const calls: { file: string; args: readonly string[]; env: NodeJS.ProcessEnv }[] = [];
  const flags: string[] = [];
  const proc = {
    argv: ['/usr/bin/node', '/app/dist/cli.js', ...argv],
    argv0: 'node',
    execArgv,
    execPath: '/usr/bin/node',
    env: { ...env },
    version: 'v24.21.0',
    execve: execve
      ? (file: string, args: readonly string[] = [], environment: NodeJS.ProcessEnv = {}) => {
          calls.push({ file, args, env: environment });
          throw new Error('(the stand-in returns)');
        }
      : undefined,
  };
  return { proc, calls, flags, setFlag: (flag: string) => flags.push(flag) };
}

test('serve re-executes the same program with the flags and variables it lacks, once, keeping the rest of its command line and environment', () => {
  const { proc, calls, flags, setFlag } = fakeProcess({ argv: ['--config', 'c.yaml', '--tuning', 'lean'], execArgv: ['--enable-source-maps'], env: { PATH: '/bin', NODE_OPTIONS: '--no-warnings' } });
  applyRuntimeSettings(proc as never, setFlag);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]?.file, '/usr/bin/node');
  assert.deepEqual(calls[0]?.args, ['node', '--enable-source-maps', '--max-semi-space-size=4', '/app/dist/cli.js', '--config', 'c.yaml', '--tuning', 'lean']);
  assert.deepEqual(calls[0]?.env, { PATH: '/bin', NODE_OPTIONS: '--no-warnings', MALLOC_MMAP_THRESHOLD_: '32768', [reexecutedVariable]: '1' });
  // The stand-in returned (a real execve does not): the failure is recorded, and the V8 flag set.
  assert.deepEqual(flags, [wasm]);
});

test('the re-executed process does not re-execute again, and drops the marker from its environment', () => {
  const { proc, calls, flags, setFlag } = fakeProcess({ execArgv: ['--max-semi-space-size=4'], env: { [reexecutedVariable]: '1' } });
  const outcome = applyRuntimeSettings(proc as never, setFlag);
  assert.deepEqual([calls.length, flags, outcome], [0, [wasm], { tuning: 'default', notApplied: [] }]);
  assert.equal(proc.env[reexecutedVariable], undefined);
  // Even if a setting were still missing: no loop.
  const again = fakeProcess({ env: { [reexecutedVariable]: '1' } });
  assert.equal(applyRuntimeSettings(again.proc as never, again.setFlag)?.reason, 're-executed, yet the settings are missing');
  assert.equal(again.calls.length, 0);
});

test('no re-execution for --help, --version, check, token, a worker, a profile with nothing missing, or a bad profile name', () => {
  for (const argv of [['--help'], ['-v'], ['check'], ['token', '--route', 'a'], ['--tuning', 'none'], ['--tuning', 'fast']]) {
    const { proc, calls, setFlag } = fakeProcess({ argv });
    applyRuntimeSettings(proc as never, setFlag);
    assert.equal(calls.length, 0, argv.join(' '));
  }
  const worker = fakeProcess({ env: { BSC_WORKER_SLOT: '1', [tuningVariable]: 'default' } });
  assert.deepEqual(applyRuntimeSettings(worker.proc as never, worker.setFlag), { tuning: 'default', notApplied: [] });
  assert.equal(worker.calls.length, 0);
  assert.deepEqual(worker.flags, [wasm], 'the V8 flag is set in every process');
  const user = fakeProcess({ execArgv: ['--max-semi-space-size=8'] });
  applyRuntimeSettings(user.proc as never, user.setFlag);
  assert.equal(user.calls.length, 0, "the user's own young generation size: nothing to add");
});

test('without process.execve (Node 20) it runs anyway and says once what it lacks, what that costs and the fix', () => {
  const { proc, calls, setFlag } = fakeProcess({ execve: false, env: { [tuningVariable]: 'lean' } });
  const outcome = applyRuntimeSettings(proc as never, setFlag);
  assert.equal(calls.length, 0);
  assert.deepEqual(outcome?.notApplied, ['--max-semi-space-size=4', 'MALLOC_MMAP_THRESHOLD_=32768']);
  const message = notAppliedMessage(outcome!, '/app/dist/cli.js') as string;
  assert.match(message, /running without the runtime settings --max-semi-space-size=4 MALLOC_MMAP_THRESHOLD_=32768 of tuning lean/);
  assert.match(message, /Node v24\.21\.0 cannot re-execute itself \(process\.execve: Node 22\.15\+, 23\.11\+\)/);
  assert.match(message, /peak RSS ~206 MiB instead of < 128 MiB under 100 connections/);
  assert.match(message, /`MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=4 \/app\/dist\/cli\.js`/);
  assert.equal(notAppliedMessage({ tuning: 'default', notApplied: [] }, 'x'), undefined);
});
