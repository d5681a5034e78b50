// SIGHUP's default action ends the process, and a service manager's reload may come right after
// its start (`systemctl reload` just after `systemctl start`: a Type=simple unit is active at
// once). The executable (cli.ts) catches SIGHUP on its first line, before it loads the bundle (the
// longest part of start-up); the CLI (main.ts) then takes over, and a SIGHUP that came meanwhile
// is kept for it. The two are separate builds (cli.js by tsc, main.js by esbuild), so they meet on
// a global, not on a module's state. Only Node's own boot, before the first line runs, is left.

const key = Symbol.for('bearer-sidecar.early-hangups');

interface EarlyHangups {
  pending: boolean;
  readonly listener: () => void;
}

/** Catches SIGHUP from now on, until takeEarlyHangups(). */
export function catchEarlyHangups(): void {
  const global = globalThis as { [key]?: EarlyHangups };
  if (global[key]) return;
  const state: EarlyHangups = {
    pending: false,
    listener: () => {
      state.pending = true;
    },
  };
  global[key] = state;
  process.on('SIGHUP', state.listener);
}

/** Ends the early catch (call it once a handler of one's own is in place); true when a SIGHUP came meanwhile. */
export function takeEarlyHangups(): boolean {
  const global = globalThis as { [key]?: EarlyHangups };
  const state = global[key];
  if (!state) return false;
  process.off('SIGHUP', state.listener);
  delete global[key];
  return state.pending;
}
